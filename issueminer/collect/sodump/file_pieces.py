"""An uncompressed dump file as pieces: byte ranges that end on line boundaries, the units
of work the scan hands out (`split_pieces`; `parse_size` reads the size asked for), and the
file mapped into memory once per process, which every piece of every phase reads from.
"""

from __future__ import annotations

import mmap
import os
import threading
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from issueminer.collect.sodump.rows import NEWLINE


@dataclass(frozen=True)
class Piece:
    start: int
    end: int


def split_pieces(path: str | Path, start: int, end: int, piece_bytes: int) -> list[Piece]:
    """[start, end) of a file cut into pieces of about piece_bytes, each ending at a newline."""
    cuts = [start]
    with open(path, "rb") as handle:
        while cuts[-1] + piece_bytes < end:
            cut = _next_line_start(handle, cuts[-1] + piece_bytes, end)
            if cut >= end:
                break
            cuts.append(cut)
    cuts.append(end)
    return [Piece(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def _next_line_start(handle: BinaryIO, offset: int, end: int) -> int:
    handle.seek(offset - 1)
    position = offset - 1
    while position < end:
        block = handle.read(1 << 16)
        if not block:
            return end
        found = block.find(NEWLINE)
        if found >= 0:
            return position + found + 1
        position += len(block)
    return end


_MAPS: dict[str, tuple[tuple[int, int], Any]] = {}  # path -> (size and mtime, mapping)
_MAPS_LOCK = threading.Lock()  # Dask may run several pieces at once on threads of a process


def _mapping(path: str | Path) -> Any:
    """The file mapped into memory, once per process: both phases read the same pages, and
    pages that stay mapped stay in the page cache between them."""
    status = os.stat(path)
    key = (status.st_size, status.st_mtime_ns)
    if status.st_size == 0:
        return b""
    with _MAPS_LOCK:  # else two threads could map it at once, and one close the other's
        cached = _MAPS.get(str(path))
        if cached is not None and cached[0] == key:
            return cached[1]
        with open(path, "rb") as handle:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        _unmap(str(path))  # the file changed since it was mapped
        _MAPS[str(path)] = (key, mapped)
        return mapped


def _unmap(path: str | None = None) -> None:
    for name in [path] if path else list(_MAPS):
        if name in _MAPS:
            with suppress(BufferError):  # a view still open; the process exit closes it
                _MAPS.pop(name)[1].close()


def _prefetch(buf: Any, piece: Piece) -> None:
    """Ask the kernel to read the piece ahead (it may come from disk, not the cache)."""
    if isinstance(buf, mmap.mmap) and hasattr(mmap, "MADV_WILLNEED"):
        start = piece.start - piece.start % mmap.PAGESIZE
        buf.madvise(mmap.MADV_WILLNEED, start, piece.end - start)


def parse_size(text: str) -> int:
    """A size like 64MB, 512KB, 1GB or a number of bytes."""
    units = {"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    cleaned = text.strip().upper().removesuffix("IB").removesuffix("B") + "B"
    for suffix in sorted(units, key=len, reverse=True):
        if cleaned.endswith(suffix) and cleaned[: -len(suffix)].strip().replace(".", "").isdigit():
            return int(float(cleaned[: -len(suffix)]) * units[suffix])
    if text.strip().isdigit():
        return int(text)
    raise ValueError(f"not a size: {text!r} (for example 64MB)")
