"""A giant text on its way to the store, handed over once instead of copied at each step.

A 50 MB dump row costs memory at every step that copies its body: a str of it, the UTF-8
bytes SQLite is given (the sqlite3 module has SQLite copy every bound value), and the
record SQLite builds. `LargeText` keeps such a value as UTF-8 bytes only, and
`insert_handing` gives it to SQLite through a function that SQLite calls while it runs the
INSERT: the function returns the bytes and lets go of them, SQLite makes its copy, and
Python's is freed before SQLite builds the record, so the value is held at most twice
(where binding it held it three times). `CAST(... AS TEXT)` makes SQLite store it as text,
exactly what binding the str stored; casting a blob to text relabels it, without a copy.
"""

from __future__ import annotations

import ctypes
import itertools
from contextlib import suppress
from typing import Any

from sqlalchemy import Text, cast, func, insert

TAKE_FUNCTION = "issueminer_take"  # the SQL function that hands a value over, by its key
_handed: dict[int, bytearray] = {}
_keys = itertools.count(1)


class LargeText:
    """A text as UTF-8 bytes, given to the store once (`take`); `prose`, what selection and
    `issue.text` read of it (see `collect.sodump.large_rows`), and whether that was cut."""

    __slots__ = ("data", "prose", "prose_cut")

    def __init__(self, data: bytearray, prose: str = "", prose_cut: bool = False) -> None:
        self.data: bytearray | None = data
        self.prose = prose
        self.prose_cut = prose_cut

    def take(self) -> bytearray:
        """The bytes, let go of here: the caller's reference becomes the only one."""
        if self.data is None:
            raise RuntimeError("a large text is handed to the store once")
        data, self.data = self.data, None
        return data

    def text(self) -> str:
        """The value as a str (costs a copy: for the rare re-read of a stored row)."""
        if self.data is None:
            raise RuntimeError("this large text was handed to the store already")
        return self.data.decode("utf-8")

    def __len__(self) -> int:
        return len(self.data or b"")


def plain_values(record: dict[str, Any]) -> dict[str, Any]:
    """The record with any LargeText made a str: for an ORM update, which binds it."""
    if not any(isinstance(v, LargeText) for v in record.values()):
        return record
    return {k: v.text() if isinstance(v, LargeText) else v for k, v in record.items()}


def holds_large(row: dict[str, Any]) -> bool:
    return isinstance(row.get("body"), LargeText)  # the only field a giant row fills


def insert_handing(connection: Any, table: Any, row: dict[str, Any]) -> None:
    """Insert one row whose LargeText values SQLite takes from Python as it runs the
    INSERT (see the module docstring); other databases are given the text itself."""
    if connection.dialect.name != "sqlite":
        connection.execute(insert(table).values(plain_values(row)))
        return
    _trim_heap()
    # registered again each time (it replaces itself): giant rows are few
    connection.connection.driver_connection.create_function(TAKE_FUNCTION, 1, _take)
    values = dict(row)
    keys = []
    for name, value in row.items():
        if isinstance(value, LargeText):
            keys.append(next(_keys))
            _handed[keys[-1]] = value.take()
            values[name] = cast(getattr(func, TAKE_FUNCTION)(keys[-1]), Text)
    try:
        connection.execute(insert(table).values(values))
    finally:
        for key in keys:  # a failed INSERT leaves nothing behind
            _handed.pop(key, None)
        _trim_heap()  # SQLite's copies, freed: not held through the rest of the scan


def _take(key: int) -> bytearray:
    return _handed.pop(key)


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MAPPED_BYTES = 1 << 20


def map_large_allocations() -> None:
    """From now on, allocations of MAPPED_BYTES or more are mapped memory (glibc), given
    back to the system the moment they are freed. glibc raises that threshold each time a
    mapped block is freed (up to 32 MB): the copies a giant row went through would make
    the next ones (this text, SQLite's copies of it) come from the heap, which keeps what
    is freed, and the peak would hold them all. Called when a giant row is met in a file,
    and when a stream is read (whose giant line is met only as it comes; blocks of 8 MB
    mapped and unmapped cost no measurable time next to decompressing them)."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, MAPPED_BYTES)


def _trim_heap() -> None:
    """Gives the heap's free pages back to the system (glibc): the copies made on a giant
    row's way here are freed, but some lie inside the heap, where they stay resident and
    would count in the peak that storing it reaches next."""
    with suppress(OSError, AttributeError):
        ctypes.CDLL(None).malloc_trim(0)
