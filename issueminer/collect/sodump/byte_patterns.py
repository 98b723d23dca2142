"""Byte-pattern searches over a whole buffer at once, in native code: the study tags in
`Tags="` attributes (`TagFinder`) and `Name="<id>"` for a set of ids (`IdMatcher`), both on
Aho-Corasick automata. They find the few candidate rows among millions without a step in
Python per row: this is where the scan spends most of its time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from issueminer.collect.sodump.rows import TAG_CLOSERS, TAG_OPENERS, TAGS_ATTR


class IdMatcher:
    """Finds `Name="<id>"` for any of a set of ids in one pass (an Aho-Corasick automaton).

    The automaton runs in native code over the buffer, so the answers of a few thousand
    kept questions are found among millions of rows without a step in Python per row.
    """

    def __init__(self, prefix: bytes, ids: Iterable[int | bytes | str]) -> None:
        self.prefix = prefix
        self.ids = frozenset(str(int(i)).encode() if not isinstance(i, bytes) else i for i in ids)
        self._automaton: Any = None

    def __getstate__(self) -> dict[str, Any]:
        # the automaton is native and not picklable; each worker builds its own
        return {"prefix": self.prefix, "ids": self.ids, "_automaton": None}

    def starts(self, buf: Any, lo: int, hi: int) -> list[int]:
        if not self.ids or hi <= lo:
            return []
        if self._automaton is None:
            self._automaton = _automaton([self.prefix + i + b'"' for i in sorted(self.ids)])
        return _find_all(self._automaton, buf, lo, hi)


def _automaton(patterns: list[bytes]) -> Any:
    import ahocorasick_rs

    return ahocorasick_rs.BytesAhoCorasick(patterns)


def _find_all(automaton: Any, buf: Any, lo: int, hi: int) -> list[int]:
    with memoryview(buf) as view, view[lo:hi] as part:
        return [lo + start for _, start, _ in automaton.find_matches_as_indexes(part)]


TAGS_WINDOW = 128  # bytes from `Tags="` on looked at side by side; holds almost every value
_QUOTE = ord('"')
_FOLD = 0x20  # set in every lowercase ASCII letter: OR-ing it in folds case (and maps other
# bytes onto others, so folded text matches more than the tag names, never less)


class TagFinder:
    """Finds the `Tags="` attributes that name a study tag, with no step in Python per row.

    Every `Tags="` is found natively. The TAGS_WINDOW bytes after each are copied side by
    side into one array, case-folded, and searched natively for a study tag between its
    delimiters. That finds every row the exact pattern matches, and a few more: only those
    (and the rare value longer than the window) are checked with the pattern.
    """

    def __init__(self, pattern: re.Pattern[bytes], names: Iterable[str]) -> None:
        self.pattern = pattern
        folded = [_fold(name.encode()) for name in names]
        self.delimited = [
            _fold(o) + n + _fold(c) for n in folded for o in TAG_OPENERS for c in TAG_CLOSERS
        ]
        self._automata: tuple[Any, Any] | None = None

    def __getstate__(self) -> dict[str, Any]:
        # the automata are native and not picklable; each worker builds its own
        return {**self.__dict__, "_automata": None}

    def starts(self, buf: Any, lo: int, hi: int) -> list[int]:
        if hi <= lo:
            return []
        if self._automata is None:
            self._automata = (_automaton([TAGS_ATTR]), _automaton(self.delimited))
        starts = np.array(_find_all(self._automata[0], buf, lo, hi), dtype=np.int64)
        match = self.pattern.match
        return [p for p in self._maybe_named(buf, starts, lo, hi) if match(buf, p)]

    def _maybe_named(self, buf: Any, starts: Any, lo: int, hi: int) -> list[int]:
        """The attribute starts (sorted) whose windows hold a folded study tag, or that have
        no full window, or whose value goes on past it: a superset of the exact pattern's."""
        whole = starts[starts <= hi - TAGS_WINDOW]  # sorted, so the rest lack a full window
        maybe = [starts[len(whole) :]]
        if len(whole):
            text = np.frombuffer(buf, dtype=np.uint8, count=hi - lo, offset=lo)
            windows = sliding_window_view(text, TAGS_WINDOW)[whole - lo]
            # a value that ends inside its window holds the whole match, if there is one
            maybe.append(whole[~(windows[:, len(TAGS_ATTR) :] == _QUOTE).any(axis=1)])
            windows |= _FOLD
            found = self._automata[1].find_matches_as_indexes(windows.reshape(-1))
            rows = np.array([start // TAGS_WINDOW for _, start, _ in found], np.int64)
            maybe.append(whole[rows])
        return sorted(set(np.concatenate(maybe).tolist()))


def _fold(data: bytes) -> bytes:
    return bytes(b | _FOLD for b in data)
