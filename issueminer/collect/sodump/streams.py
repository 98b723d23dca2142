"""Opening a dump: a plain file, a .gz or .7z archive, or stdin, recognised by its first
bytes and checked to be the file asked for (`open_source`); its bytes as a stream,
decompressed on the fly (`open_stream`), read in blocks of whole lines (`stream_blocks`);
and line numbers counted for byte offsets (`line_numbers`).
"""

from __future__ import annotations

import gzip
import io
import os
import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from issueminer.collect.sodump.rows import NEWLINE

ROOTS = {"posts": b"<posts", "comments": b"<comments"}
HEAD_BYTES = 4096  # the XML declaration and the root element fit in here
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
GZIP_MAGIC = b"\x1f\x8b"
BLOCK_BYTES = 8 << 20  # what a stream is read in
MAX_LINE_BYTES = 64 << 20  # no dump row comes near this; longer means a broken file


class DumpError(Exception):
    """The input cannot be scanned at all (not a dump, or an unreadable archive)."""


@dataclass(frozen=True)
class DumpSource:
    """A dump file, archive or stdin; `plain` files are scanned in byte ranges."""

    path: str  # "-" for stdin
    kind: str  # plain | gzip | 7z | stdin
    size: int | None  # bytes to scan (uncompressed size when known)
    stored_size: int | None  # bytes on disk (what a compressed stream's progress counts)
    member: str | None = None  # the file inside a .7z archive

    @property
    def name(self) -> str:
        return "<stdin>" if self.path == "-" else Path(self.path).name

    @property
    def plain(self) -> bool:
        return self.kind == "plain"

    @property
    def rereadable(self) -> bool:
        return self.kind != "stdin"


def open_source(path: str | Path, root: str = "posts") -> DumpSource:
    """Identify a dump by its first bytes (not its name) and check it is the right file."""
    path = str(path)
    if path == "-":
        return DumpSource("-", "stdin", None, None)
    if not os.path.isfile(path):
        raise DumpError(f"{path}: no such file")
    with open(path, "rb") as handle:
        magic = handle.read(8)
    stored = os.path.getsize(path)
    if magic.startswith(SEVEN_ZIP_MAGIC):
        member, size = _seven_zip_member(path, root)
        source = DumpSource(path, "7z", size, stored, member)
    elif magic.startswith(GZIP_MAGIC):
        source = DumpSource(path, "gzip", None, stored)
    else:
        source = DumpSource(path, "plain", stored, stored)
    with open_stream(source) as stream:
        _check_root(stream.read(HEAD_BYTES), source, root)
    return source


def _check_root(head: bytes, source: DumpSource, root: str) -> None:
    if head and ROOTS[root] not in head:
        raise DumpError(
            f"{source.name} does not look like a Stack Exchange {root.title()}.xml "
            f"(no <{root}> element at its start)"
        )


def _seven_zip_member(path: str, root: str) -> tuple[str, int | None]:
    import py7zr

    try:
        with py7zr.SevenZipFile(path) as archive:
            files = [f for f in archive.list() if not f.is_directory]
    except py7zr.exceptions.ArchiveError as exc:
        raise DumpError(f"{path}: not a readable .7z archive ({exc})") from None
    wanted = f"{root}.xml"
    named = [f for f in files if f.filename.lower().endswith(wanted)] or files
    if not named:
        raise DumpError(f"{path}: the archive holds no file")
    return named[0].filename, named[0].uncompressed


class _Counting(io.RawIOBase):
    """Counts what a decompressor reads from disk, for a progress bar in stored bytes."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = self.raw.readinto(buffer)
        self.count += n or 0
        return n or 0


@contextmanager
def open_stream(source: DumpSource, stdin: BinaryIO | None = None) -> Iterator[Any]:
    """The dump's bytes as a stream, decompressing on the fly; `.consumed()` says how far."""
    if source.kind == "stdin":
        raw = stdin or sys.stdin.buffer
        if not hasattr(raw, "peek"):
            raw = io.BufferedReader(raw)
        head = raw.peek(2)[:2]
        stream = gzip.GzipFile(fileobj=raw) if head == GZIP_MAGIC else raw
        yield _Stream(stream, None)
    elif source.kind == "gzip":
        with open(source.path, "rb") as handle:
            counting = _Counting(handle)
            with gzip.GzipFile(fileobj=io.BufferedReader(counting, 1 << 20)) as stream:
                yield _Stream(stream, counting)
    elif source.kind == "7z":
        with _SevenZipStream(source.path, source.member or "") as stream:
            yield _Stream(stream, None)
    else:
        with open(source.path, "rb") as handle:
            yield _Stream(handle, None)


class _Stream:
    def __init__(self, stream: Any, counting: _Counting | None) -> None:
        self.stream = stream
        self.counting = counting
        self.read_bytes = 0

    def read(self, n: int) -> bytes:
        data = self.stream.read(n)
        self.read_bytes += len(data)
        return data

    def consumed(self) -> int:
        """Bytes of the stored file read so far (the compressed size for .gz)."""
        return self.counting.count if self.counting else self.read_bytes


class _SevenZipStream:
    """A .7z member as a readable stream: py7zr decompresses on a thread into a small queue."""

    QUEUE_DEPTH = 2  # decompressed chunks waiting; each is a few MB

    def __init__(self, path: str, member: str) -> None:
        self.path = path
        self.member = member
        self.chunks: queue.Queue[bytes | BaseException | None] = queue.Queue(self.QUEUE_DEPTH)
        self.buffer = b""
        self.done = False
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _SevenZipStream:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        while self.thread.is_alive():  # unblock the producer
            with suppress(queue.Empty):
                self.chunks.get(timeout=0.1)

    def _put(self, item: bytes | BaseException | None) -> None:
        while not self.stopping.is_set():
            try:
                self.chunks.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped

    def _run(self) -> None:
        import py7zr
        from py7zr.io import Py7zIO, WriterFactory

        outer = self

        class Writer(Py7zIO):
            def __init__(self) -> None:
                self.written = 0

            def write(self, s: bytes | bytearray) -> int:
                outer._put(bytes(s))
                self.written += len(s)
                return len(s)

            def read(self, size: int | None = None) -> bytes:
                return b""

            def seek(self, offset: int, whence: int = 0) -> int:
                return 0

            def flush(self) -> None:
                return None

            def size(self) -> int:
                return self.written

        class Factory(WriterFactory):
            def create(self, filename: str) -> Py7zIO:
                return Writer()

        try:
            with py7zr.SevenZipFile(self.path) as archive:
                archive.extract(targets=[self.member], factory=Factory())
            self._put(None)
        except _Stopped:
            return
        except BaseException as exc:  # handed to the reader, raised there
            try:
                self._put(exc)
            except _Stopped:
                return

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n and not self.done:
            item = self.chunks.get()
            if item is None:
                self.done = True
            elif isinstance(item, BaseException):
                self.done = True
                raise DumpError(f"{self.path}: the archive cannot be read ({item})")
            else:
                self.buffer += item
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data


class _Stopped(Exception):
    pass


def stream_blocks(
    stream: Any, skip: int = 0, block_bytes: int = BLOCK_BYTES
) -> Iterator[tuple[int, bytes]]:
    """(offset, block) of whole lines; the first `skip` bytes are read and dropped (resume)."""
    offset = 0
    while offset < skip:
        data = stream.read(min(block_bytes, skip - offset))
        if not data:
            return
        offset += len(data)
    tail = b""
    while True:
        data = stream.read(block_bytes)
        if not data:
            break
        block = tail + data
        cut = block.rfind(NEWLINE) + 1
        if cut == 0 and len(block) < MAX_LINE_BYTES:
            tail = block
            continue
        if cut == 0:  # one line longer than any row: hand it on whole, it is reported
            cut = len(block)
        yield offset, block[:cut]
        offset += cut
        tail = block[cut:]
    if tail:
        yield offset, tail


def line_numbers(stream: Any, offsets: Iterable[int]) -> Iterator[tuple[int, int]]:
    """(offset, 1-based line) for byte offsets, counting newlines in one forward read."""
    wanted = sorted(set(offsets))
    position = 0
    newlines = 0
    carry = b""
    for target in wanted:
        while position + len(carry) < target:
            data = stream.read(BLOCK_BYTES)
            if not data:
                break
            newlines += carry.count(NEWLINE)
            position += len(carry)
            carry = data
        cut = target - position
        yield target, newlines + carry.count(NEWLINE, 0, max(cut, 0)) + 1
