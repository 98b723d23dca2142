"""A consistent copy of a database while the annotation app keeps writing to it.

A SQLite store runs in WAL mode: a saved label sits in the `-wal` file beside the database
until a checkpoint moves it into the main file, so copying the `.db` file alone can lose
the newest labels (or catch a page half-written). `backup_sqlite` uses SQLite's online
backup API instead: it reads one snapshot of every committed transaction, WAL included,
into a new file. PostgreSQL databases are backed up with `pg_dump` (`pg_dump_command`).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import URL, make_url

from issueminer.store.db import SQLITE_BUSY_TIMEOUT_MS, resolve_url, sqlite_file


class BackupError(RuntimeError):
    """A backup that was not made; the message says why and what to do."""


@dataclass(frozen=True)
class Backup:
    path: Path
    size: int  # bytes
    tables: dict[str, int] = field(default_factory=dict)  # table -> rows in the copy


def backup_database(url: str | None, target: Path | str, *, force: bool = False) -> Backup:
    """Copy the database at `url` to the SQLite file `target` (see `backup_sqlite`);
    for PostgreSQL, BackupError with the `pg_dump` command to run instead."""
    parsed = make_url(resolve_url(url))
    if parsed.get_backend_name() == "postgresql":
        command = pg_dump_command(parsed, target)
        raise BackupError(
            "issueminer copies SQLite databases only; back up PostgreSQL with pg_dump, "
            f"which makes a consistent dump while the app runs:\n  {command}"
        )
    source = sqlite_file(parsed)
    if source is None:
        raise BackupError(f"cannot back up {parsed.render_as_string(hide_password=True)}")
    return backup_sqlite(source, target, force=force)


def pg_dump_command(url: URL | str, target: Path | str) -> str:
    """The `pg_dump` command line for a PostgreSQL URL, never with its password (pg_dump
    asks for it, or reads PGPASSWORD or ~/.pgpass)."""
    url = make_url(str(url)) if isinstance(url, str) else url
    words = ["pg_dump", "--format=custom", f"--file={target}"]
    if url.host:
        words.append(f"--host={url.host}")
    if url.port:
        words.append(f"--port={url.port}")
    if url.username:
        words.append(f"--username={url.username}")
    words.append(str(url.database or ""))
    return shlex.join(words)


def backup_sqlite(source: Path | str, target: Path | str, *, force: bool = False) -> Backup:
    """A consistent copy of the SQLite database `source` at `target`, safe while others
    write to it. Written to a temporary file beside `target` and renamed at the end, so a
    failure leaves no half file; an existing `target` is replaced only with `force`."""
    source, target = Path(source), Path(target)
    if not source.is_file():
        raise BackupError(f"no database at {source}")
    if target.exists() or target.is_symlink():
        if target.resolve() == source.resolve():
            raise BackupError(f"{target} is the database itself; name another file")
        if target.is_dir():
            raise BackupError(f"{target} is a folder; name the file to write")
        if not force:
            raise BackupError(f"{target} already exists; pass --force to replace it")
    if not target.parent.is_dir():
        raise BackupError(f"there is no folder {target.parent} to write {target.name} in")
    handle, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    os.close(handle)
    partial = Path(name)
    try:
        _copy(source, partial)
        os.chmod(partial, source.stat().st_mode & 0o777)  # as private as the database
        tables = _check(partial)
        with open(partial, "rb+") as written:
            os.fsync(written.fileno())
        if target.exists() and not force:  # made meanwhile by someone else: keep theirs
            raise BackupError(f"{target} already exists; pass --force to replace it")
        os.replace(partial, target)
    except BaseException:
        for leftover in (partial, Path(f"{partial}-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        raise
    return Backup(target, target.stat().st_size, tables)


def _copy(source: Path, partial: Path) -> None:
    # a single step reads one snapshot (the WAL included) under one read transaction;
    # writers go on meanwhile, their later commits are not in the copy
    reader = sqlite3.connect(source, timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
    try:
        writer = sqlite3.connect(partial)
        try:
            reader.backup(writer)
            # the copy is one self-contained file, not a WAL database with side files
            writer.execute("PRAGMA journal_mode=DELETE")
        finally:
            writer.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot back up {source}: {exc}") from exc
    finally:
        reader.close()


def _check(copy: Path) -> dict[str, int]:
    """The copy's tables and their rows, after SQLite's integrity check passed."""
    connection = sqlite3.connect(copy)
    try:
        verdict = [row[0] for row in connection.execute("PRAGMA integrity_check")]
        if verdict != ["ok"]:
            raise BackupError(f"the copy failed SQLite's integrity check: {'; '.join(verdict)}")
        names = [
            row[0]
            for row in connection.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite_%' ORDER BY name"
            )
        ]
        return {
            name: connection.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]  # noqa: S608
            for name in names
        }
    except sqlite3.Error as exc:
        raise BackupError(f"cannot read the copy: {exc}") from exc
    finally:
        connection.close()
