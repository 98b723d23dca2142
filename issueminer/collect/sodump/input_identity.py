"""Which input a scan's checkpoint belongs to: its content, not its name.

Every stdin scan was one query ("-"), so after an interrupted `-` scan a different input
on stdin "resumed" at the old byte offset and its rows before it were never read; a file
edited in place to the same size was resumed too. Now:

- a file is known by its size, its modification time and a digest of samples of its bytes
  (the head, the tail and evenly spread blocks between): an edit in place changes the
  time; a file moved or renamed (or copied with its time kept, `cp -p`) is the same
  input, while a plain copy has a new time and is scanned afresh (safe: nothing is lost);
- stdin is known by a digest of its first bytes (read ahead, then given to the scan as if
  never read), so a different input starts afresh;
- and since two inputs may begin alike, a stdin scan also keeps the digest of everything
  it has read up to its checkpoint; a resumed one compares it while it reads up to there
  again (stdin cannot seek), and stops with a clear error before it stores anything if
  the bytes differ.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
from collections.abc import Callable
from typing import Any, BinaryIO

from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from issueminer.collect.checkpoints import RESUMABLE
from issueminer.store.db import resolve_url, sqlite_file

HEAD_ID_BYTES = 1 << 20  # stdin: how much is read ahead to name the input
# In a scan's checkpoint: its .gz passed the checksum check when it was opened. The check
# decompresses the whole file, so a resumed scan of the same input (the checkpoint belongs
# to one input: see above) does not check it again.
CHECKSUMS_CHECKED = "checksums_checked"
SAMPLE_BYTES = 1 << 16  # a file: each sampled block
SAMPLES = 32  # a file: blocks sampled between its head and its tail


class InputChanged(Exception):
    """A resumed stdin scan reads bytes that are not the ones its checkpoint covers."""


def prefix_hash() -> Any:
    """The running digest of a stream's bytes (fast; it names, it does not protect)."""
    return hashlib.blake2b(digest_size=20)


def file_identity(path: str, member: str | None = None) -> dict[str, Any]:
    """A file's identity for its checkpoint: size, modification time and sampled content."""
    status = os.stat(path)
    digest = prefix_hash()
    size = status.st_size
    with open(path, "rb") as handle:
        for offset in _sample_offsets(size):
            handle.seek(offset)
            digest.update(handle.read(SAMPLE_BYTES))
    identity = {"size": size, "mtime_ns": status.st_mtime_ns, "sampled": digest.hexdigest()}
    if member:
        identity["member"] = member
    return identity


def _sample_offsets(size: int) -> list[int]:
    if size <= (SAMPLES + 2) * SAMPLE_BYTES:  # small: every byte
        return list(range(0, size, SAMPLE_BYTES))
    step = (size - SAMPLE_BYTES) // (SAMPLES + 1)
    return [i * step for i in range(SAMPLES + 1)] + [size - SAMPLE_BYTES]


class _Prefixed(io.RawIOBase):
    """Bytes already read ahead, then the rest of the stream they came from."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head = memoryview(head)
        self.rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if len(self.head):
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.rest.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def stdin_identity(stdin: BinaryIO) -> tuple[BinaryIO, dict[str, Any]]:
    """(a reader that gives stdin whole, the identity its first bytes give it)."""
    chunks: list[bytes] = []
    left = HEAD_ID_BYTES
    while left > 0:
        data = stdin.read(left)
        if not data:
            break
        chunks.append(data)
        left -= len(data)
    head = b"".join(chunks)
    digest = prefix_hash()
    digest.update(head)
    reader = io.BufferedReader(_Prefixed(head, stdin), 1 << 20)
    return reader, {"path": "-", "head": digest.hexdigest(), "head_bytes": len(head)}


def checked_inputs(db: str | None) -> Callable[[dict[str, Any]], bool]:
    """Whether an input (by `file_identity`) had its checksums checked by an unfinished
    scan in the SQLite store --db names: read without opening the store (which a refused
    input must not create), and nothing when there is no such file or it cannot be read."""
    try:
        path = sqlite_file(make_url(resolve_url(db)))
    except (ArgumentError, ValueError):  # a bad --db: opening the store says so
        path = None
    checked = _checked(str(path)) if path is not None and path.is_file() else []
    return lambda identity: identity in checked


def _checked(path: str) -> list[dict[str, Any]]:
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return []
    try:
        runs = connection.execute(
            "SELECT query, checkpoint FROM crawl_run WHERE source = 'so-dump' "
            f"AND status IN ({', '.join('?' * len(RESUMABLE))})",
            RESUMABLE,
        ).fetchall()
        return [
            json.loads(query).get("posts")
            for query, checkpoint in runs
            if json.loads(checkpoint or "{}").get(CHECKSUMS_CHECKED)
        ]
    except (sqlite3.Error, ValueError):
        return []
    finally:
        connection.close()
