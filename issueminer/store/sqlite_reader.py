"""Read a SQLite store with the standard library's sqlite3, for commands that answer at once.

Importing SQLAlchemy's ORM takes longer than listing a few issues. A read-only command may
use this reader when the database is a plain SQLite file already at `HEAD_REVISION`; in every
other case (PostgreSQL, no such file, another revision, a URL with options, an unreadable
file) `open_at_head` gives None and the command goes through the store, which explains or
upgrades. Nothing here writes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

from issueminer.store.revision import HEAD_REVISION, VERSION_TABLE, resolve_url

SQLITE_PREFIX = "sqlite:///"
# the store's URL forms this reader leaves to SQLAlchemy: a driver (sqlite+pysqlite://),
# options after '?', percent-escapes, and the in-memory database
_LEFT_TO_THE_STORE = ("?", "%")


def sqlite_path(url: str | None) -> Path | None:
    """The file a plain SQLite URL (or bare path, or the default) names; None otherwise."""
    resolved = resolve_url(url)
    if not resolved.startswith(SQLITE_PREFIX):
        return None
    database = resolved.removeprefix(SQLITE_PREFIX)
    if not database or database == ":memory:" or any(c in database for c in _LEFT_TO_THE_STORE):
        return None
    return Path(database)


def open_at_head(url: str | None) -> sqlite3.Connection | None:
    """A connection to the SQLite file `url` names when its schema is at HEAD_REVISION, else
    None (the caller then opens the store, which gives the proper error or upgrade)."""
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return None
    try:
        # mode=rw: never create a file (the check above may race with a delete)
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True)
    except sqlite3.Error:
        return None
    try:
        revisions = [row[0] for row in conn.execute(f"SELECT version_num FROM {VERSION_TABLE}")]
    except sqlite3.Error:  # no version table, not a database, locked beyond the timeout
        conn.close()
        return None
    if revisions != [HEAD_REVISION]:
        conn.close()
        return None
    return conn


def remembered_meta(conn: sqlite3.Connection) -> dict[str, str]:
    """The store's key/value facts (the study it was made for, ...)."""
    return dict(conn.execute("SELECT key, value FROM meta"))
