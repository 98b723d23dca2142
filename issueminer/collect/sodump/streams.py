"""Opening a dump: a plain file, a .gz or .7z archive, or stdin, recognised by its first
bytes and checked to be the file asked for (`open_source`); its bytes as a stream,
decompressed on the fly (`open_stream`), read in blocks of whole lines (`stream_blocks`);
and line numbers counted for byte offsets (`line_numbers`).

Bad input found before any scan is `BadInput`: a file with no rows, a DTD in its head, a
compressed file unreadable from its start. A compressed stream damaged further on (cut
short, corrupt) gives every byte it could decompress, then raises `DamagedStream`.
"""

from __future__ import annotations

import gzip
import io
import mmap
import os
import queue
import sys
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from issueminer.collect.large_text import map_large_allocations
from issueminer.collect.sodump.input_identity import InputChanged, file_identity
from issueminer.collect.sodump.rows import DECLARATIONS, NEWLINE

ROOTS = {"posts": b"<posts", "comments": b"<comments"}
CHECK_BYTES = 1 << 20  # a .gz's checksums are checked reading this much at a time
HEAD_BYTES = 4096  # the XML declaration and the root element fit in here
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
GZIP_MAGIC = b"\x1f\x8b"
BLOCK_BYTES = 8 << 20  # what a stream is read in
# No dump row comes near this (Stack Overflow caps a post at 30,000 characters; the
# largest real rows are < 100 KB), yet a row of any plausible size is read whole, as a
# plain file's is: a longer line is a broken file, reported and read past (`LongLine`).
MAX_LINE_BYTES = 1 << 30
OVERLONG_LINE = "overlong-line"  # the kind of bad input such a line is reported as
GIANT_LINE_BYTES = 1 << 20  # a line not ended after this much is read on this much at a time
ROW_START = b"<row"
# what a damaged gzip stream raises (gzip.BadGzipFile is an OSError)
DECOMPRESSION_ERRORS = (EOFError, OSError, zlib.error)


class DumpError(Exception):
    """The input cannot be scanned at all (not a dump, or an unreadable archive)."""


class BadInput(DumpError):
    """A dump whose content is bad input: nothing in it can be stored."""


class DamagedStream(BadInput):
    """A compressed stream that cannot be decompressed past some point."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: the compressed data is damaged ({reason})")
        self.name = name
        self.reason = reason


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


def open_source(
    path: str | Path, root: str = "posts", checked: Callable[[dict[str, Any]], bool] | None = None
) -> DumpSource:
    """Identify a dump by its first bytes (not its name) and check it is the right file;
    `checked(identity)`, whether an unfinished scan of this very input checked a .gz's
    checksums already (`input_identity.checked_inputs`): then they are not checked again."""
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
        head = stream.read(HEAD_BYTES)
        check_head(head, source.name, root, whole=len(head) < HEAD_BYTES, damage=stream.damage)
    if source.kind == "gzip" and not (checked is not None and checked(file_identity(path))):
        _check_gzip_checksums(path, source.name)
    if source.plain and ROW_START not in head and not _holds(path, ROW_START):
        # longer than its head and still no row (padding, comments): refused now, not
        # found empty at the end of the scan
        raise BadInput(f"{source.name}: no rows (none in its {stored} bytes)")
    return source


def _check_gzip_checksums(path: str, name: str) -> None:
    """Refuses a .gz whose data decompresses but does not match its checksum (CRC-32 or
    length): the damage is somewhere in what was decompressed, and where cannot be told,
    so nothing of it can be trusted, and the checksum is only met at the end, when the scan
    would have stored it all. A stream cut short or undecodable is not refused here: the
    scan stores it up to the damage and reports where."""
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(CHECK_BYTES):
                pass
    except gzip.BadGzipFile as exc:
        message = str(exc)
        if "CRC check failed" in message or "Incorrect length" in message:
            raise BadInput(
                f"{name}: the compressed data decompresses but fails its checksum "
                f"({message}): it is damaged somewhere, so nothing of it is stored"
            ) from None
    except DECOMPRESSION_ERRORS:
        return


def _holds(path: str, pattern: bytes) -> bool:
    """Whether a file holds `pattern`, looked for in the mapped file (a dump's first row
    comes early, so this reads little of a real one)."""
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as m:
        return m.find(pattern) >= 0


def check_head(
    head: bytes, name: str, root: str, whole: bool = False, damage: str | None = None
) -> None:
    """The start of a dump: its root element, no DTD, and rows, when `whole` (the head is
    the whole file); `damage`, why a compressed head ends early."""
    if damage is not None and ROW_START not in head:
        raise BadInput(f"{name}: the compressed data is damaged at its start ({damage})")
    if not head and whole:
        raise BadInput(f"{name}: no rows (the file is empty)")
    declaration = declaration_in(head, root)
    if declaration is not None:
        _, line, message = declaration
        raise BadInput(f"{name} line {line}: {message}")
    if ROOTS[root] not in head:
        raise DumpError(
            f"{name} does not look like a Stack Exchange {root.title()}.xml "
            f"(no <{root}> element at its start)"
        )
    if whole and ROW_START not in head:
        raise BadInput(f"{name}: no rows (only the <{root}> element)")


def declaration_in(head: bytes, root: str) -> tuple[int, int, str] | None:
    """(offset, line, message) of a DOCTYPE or entity declaration before the root element
    (one in a row is the row's: see `rows.parse_row`)."""
    end = head.find(ROOTS[root])
    prolog = head if end < 0 else head[:end]
    for declaration in DECLARATIONS:
        at = prolog.find(declaration)
        if at >= 0:
            line = prolog.count(NEWLINE, 0, at) + 1
            message = f"a {declaration[2:].decode()} declaration: refused (a dump has none)"
            return at, line, message
    return None


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
        if head == GZIP_MAGIC:
            yield _Stream(gzip.GzipFile(fileobj=raw), None, source.name, packed="")
        else:
            yield _Stream(raw, None, source.name)
    elif source.kind == "gzip":
        with open(source.path, "rb") as handle:
            counting = _Counting(handle)
            with gzip.GzipFile(fileobj=io.BufferedReader(counting, 1 << 20)) as stream:
                yield _Stream(stream, counting, source.name, packed=source.path)
    elif source.kind == "7z":
        with _SevenZipStream(source.path, source.member or "") as stream:
            yield _Stream(stream, None, source.name)
    else:
        with open(source.path, "rb") as handle:
            yield _Stream(handle, None, source.name)


class _Stream:
    """A dump's bytes. Where a gzip stream's data is damaged, what came before is still
    given: the read that meets the damage returns it, and notes why in `damage`; the next
    raises `DamagedStream`. A read that fails loses what it had decompressed, so a .gz file
    is then read again up to the damage a chunk at a time (`_salvage`); stdin, which cannot
    be read again, is read so all along (`packed` is the file's path, or "" for stdin)."""

    def __init__(
        self, stream: Any, counting: _Counting | None, name: str, packed: str | None = None
    ) -> None:
        self.stream = stream
        self.counting = counting
        self.name = name
        self.packed = packed
        self.read_bytes = 0
        self.damage: str | None = None

    def read(self, n: int) -> bytes:
        if self.damage is not None:
            raise DamagedStream(self.name, self.damage)
        if self.packed == "":
            data = self._unpack(self.stream, n)
        else:
            try:
                data = self.stream.read(n)
            except DECOMPRESSION_ERRORS:
                if not self.packed:
                    raise
                data = self._salvage(self.packed, n)
        self.read_bytes += len(data)
        return data

    def _salvage(self, path: str, n: int) -> bytes:
        """What a failed read of n bytes had before the damage, read again."""
        with gzip.open(path, "rb") as again:
            left = self.read_bytes
            while left > 0:
                data = again.read(min(left, BLOCK_BYTES))  # read before, without damage
                if not data:
                    break
                left -= len(data)
            return self._unpack(again, n)

    def _unpack(self, stream: Any, n: int) -> bytes:
        chunks: list[bytes] = []
        have = 0
        try:
            while have < n:
                chunk = stream.read1(n - have)
                if not chunk:
                    break
                chunks.append(chunk)
                have += len(chunk)
        except DECOMPRESSION_ERRORS as exc:
            self.damage = f"{type(exc).__name__}: {exc}"
            if not chunks:  # nothing before it to give first
                raise DamagedStream(self.name, self.damage) from None
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

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
        self.damage: str | None = None  # why the archive could not be read to its end
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
                self.damage = f"{type(item).__name__}: {item}"
            else:
                self.buffer += item
        if self.damage is not None and not self.buffer:
            raise DamagedStream(Path(self.path).name, self.damage)
        data, self.buffer = self.buffer[:n], self.buffer[n:]
        return data


class _Stopped(Exception):
    pass


@dataclass(frozen=True)
class LongLine:
    """A line longer than MAX_LINE_BYTES, which `stream_blocks` reads past and drops
    rather than hand on: cut, a part of it would be parsed as if it were a whole row."""

    size: int  # its bytes, its newline included
    ended: bool  # whether a newline ends it (else the stream ends in it)
    limit: int  # MAX_LINE_BYTES when it was read

    @property
    def message(self) -> str:
        return long_line_message(self.size - self.ended, self.limit)


def long_line_message(size: int, limit: int) -> str:
    """What a line too long to be a row is told as, whatever path met it."""
    return (
        f"a line of {size} bytes, longer than any row can be ({limit} bytes at most): "
        "a broken file; nothing of it is read or stored"
    )


def stream_blocks(
    stream: Any,
    skip: int = 0,
    block_bytes: int = BLOCK_BYTES,
    digest: Any = None,
    skipped_digest: str | None = None,
) -> Iterator[tuple[int, bytearray | LongLine]]:
    """(offset, block) of whole lines; the first `skip` bytes are read and dropped (resume).
    A line longer than MAX_LINE_BYTES comes as a `LongLine` in place of a block.

    With `digest` (a hashlib object), every byte read goes into it, the skipped ones too;
    when they do not give `skipped_digest`, the input is not the one the checkpoint covers
    (`InputChanged`), and nothing is yielded."""
    offset = 0
    while offset < skip:
        data = stream.read(min(block_bytes, skip - offset))
        if not data:
            break
        if digest is not None:
            digest.update(data)
        offset += len(data)
    if digest is not None and skipped_digest and digest.hexdigest() != skipped_digest:
        raise InputChanged(
            f"stdin is not the input the interrupted scan read: its first {offset} bytes "
            "differ. That scan's checkpoint is set aside and nothing was stored; run the "
            "command again to scan this input from its start"
        )
    if offset < skip:
        return
    # A block is built in a bytearray: the lines after its last newline are copied out
    # to begin the next one, and the block cut to its whole lines in place, where slicing
    # bytes copied the block (a block holding a giant row was held twice, with its tail).
    map_large_allocations()  # a giant line's copies are given back when freed
    block = bytearray()
    while True:
        # a giant line is read on a MiB at a time, so that its block ends soon after it
        data = stream.read(block_bytes if len(block) < GIANT_LINE_BYTES else GIANT_LINE_BYTES)
        if not data:
            break
        before = len(block)  # the block held no newline: only what was read can have one
        block += data
        del data
        if len(block) >= MAX_LINE_BYTES and _starts_long_line(block):
            # one line longer than any row: read past, never handed on (cut, a part of
            # it would be parsed as a whole row, and the rest as the next block's start)
            long_line, block = _past_long_line(stream, block, digest)
            yield offset, long_line
            offset += long_line.size
            continue
        cut = block.rfind(NEWLINE, before) + 1  # not the whole giant line again each MiB
        if cut == 0:
            continue
        tail = block[cut:]
        del block[cut:]
        if digest is not None:
            digest.update(block)
        # handed on as the only reference (a block with a giant row in it must be freed
        # once scanned, before what it held is stored: see DumpCrawler._blocks)
        whole, block = [block], tail
        del tail
        yield offset, whole.pop()
        offset += cut
    if block:
        if digest is not None:
            digest.update(block)
        yield offset, block


def _starts_long_line(block: bytearray) -> bool:
    """Whether the line a block begins with is MAX_LINE_BYTES long or more."""
    first = block.find(NEWLINE, 0, MAX_LINE_BYTES + 1)  # met once, as the line passes it
    return first < 0 or first >= MAX_LINE_BYTES


def _past_long_line(stream: Any, block: bytearray, digest: Any) -> tuple[LongLine, bytearray]:
    """Reads to the end of the line `block` begins, GIANT_LINE_BYTES at a time, keeping
    none of it; the line, and what follows its newline (the next block's start)."""
    end = block.find(NEWLINE) + 1
    size = end or len(block)
    if digest is not None:
        with memoryview(block) as view, view[:size] as line:
            digest.update(line)
    del block[:size]
    while not end:
        data = stream.read(GIANT_LINE_BYTES)
        if not data:
            break
        end = data.find(NEWLINE) + 1
        line_part = data[:end] if end else data
        if digest is not None:
            digest.update(line_part)
        size += len(line_part)
        block += data[end:] if end else b""
    return LongLine(size, end > 0, MAX_LINE_BYTES), block


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
