"""Giant rows: parsed without copying them whole again and again.

Parsing a 50 MB row with ElementTree held it four times or more (the row's bytes, expat's
copy of them, expat's decoded value, the str of it), and storing it cost three more. A row
longer than LARGE_ROW_BYTES is therefore parsed here: its long attribute values are cut
out, the rest (a small row with those values empty) is parsed by ElementTree as any row,
and each long value is checked and decoded here the way expat would, a piece at a time
(`_decoded_pieces`): the same value, or the same kind of bad input (`BadRow`). A long
Body becomes a `LargeText` (UTF-8 bytes only, handed to the store once) with the first
TEXT_LIMIT characters of its prose, which selection reads and `issue.text` stores; a long
value of any other attribute becomes a str.
"""

from __future__ import annotations

import mmap
import re
from collections.abc import Iterator
from typing import Any

from issueminer.collect.large_text import LargeText, map_large_allocations
from issueminer.collect.sodump.rows import DECLARATIONS, BadRow, parse_row
from issueminer.text import pieces_prose_prefix

LARGE_ROW_BYTES = 1 << 20  # rows longer than this are parsed here (a real one is < 100 KB)
LONG_VALUE_BYTES = 1 << 12  # values longer than this are cut out of a giant row's skeleton
PIECE_BYTES = 1 << 16  # a long value is decoded this much at a time
# The prose kept of a body (`issue.text`, what selection and the classifiers read). Stack
# Overflow refuses bodies over 30,000 characters, so no real post comes near; a giant row
# is cut here, and its issue is flagged TEXT_CUT_FLAG (its body is stored whole).
TEXT_LIMIT = 100_000
TEXT_CUT_FLAG = "text-cut"

_SPACE = b" \t\n\r\x0b\x0c"  # what bytes.strip() strips
# in an attribute value expat refuses these characters (not XML) and "<"
_NOT_IN_VALUE = re.compile("[<\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_REFERENCE = re.compile(r"&(?:(lt|gt|amp|quot|apos)|#([0-9]+)|#x([0-9a-fA-F]+));")
_ENTITY_NAME = re.compile(r"&[A-Za-z_:][\w.:-]*;")
_NAMED = {"lt": "<", "gt": ">", "amp": "&", "quot": '"', "apos": "'"}
# expat normalizes an attribute's line ends (CR LF is one) and tabs to one space each
_WHITESPACE = str.maketrans({"\t": " ", "\n": " ", "\r": " "})


def parse_large_row(buf: Any, start: int, end: int) -> dict[str, Any]:
    """The attributes of the row in buf[start:end] (a line, its end of line included or
    not), as `rows.parse_row` gives them, long values decoded here; BadRow if it is bad."""
    map_large_allocations()
    while end > start and buf[end - 1] in _SPACE:
        end -= 1
    while start < end and buf[start] in _SPACE:
        start += 1
    _refuse_declarations(buf, start, end)
    try:
        attrs = _attributes(buf, start, end)
    except BadRow:
        _refuse_non_utf8(buf, start, end)  # what a row's bytes are is told first, as expat's
        raise
    release_pages(buf, start, end)  # decoded: its pages need not stay in this process
    return attrs


def _attributes(buf: Any, start: int, end: int) -> dict[str, Any]:
    skeleton, long_values = _skeleton(buf, start, end)
    attrs: dict[str, Any] = parse_row(skeleton)
    for name, value_start, value_end in long_values:
        pieces = _decoded_pieces(buf, value_start, value_end, value_start - start)
        if name == "Body":
            attrs[name] = _large_text(pieces, value_end - value_start)
        else:
            attrs[name] = "".join(pieces)
    return attrs


def _refuse_non_utf8(buf: Any, start: int, end: int) -> None:
    """BadRow for the row's first byte that is not UTF-8, if it has one (read a piece at a
    time: pieces end before a byte that starts a character)."""
    position = start
    while position < end:
        stop = min(end, position + PIECE_BYTES)
        while position + 1 < stop < end and buf[stop] & 0xC0 == 0x80:
            stop -= 1
        raw = bytes(buf[position:stop])
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            column = position - start + bad.start + 1
            raise BadRow(
                "non-utf8", f"byte 0x{raw[bad.start]:02x} at column {column} is not UTF-8"
            ) from None
        position = stop


def _refuse_declarations(buf: Any, start: int, end: int) -> None:
    if buf.find(b"<!", start, end) < 0:
        return
    for declaration in DECLARATIONS:
        at = buf.find(declaration, start, end)
        if at >= 0:
            name = declaration[2:].decode()
            raise BadRow(
                "dtd-declaration",
                f"a {name} declaration at column {at - start + 1}: refused (a dump has none)",
            )


def _skeleton(buf: Any, start: int, end: int) -> tuple[bytes, list[tuple[str, int, int]]]:
    """The row with its long values emptied, and (name, start, end) of each of them. A
    value holds no '"' (the dump writes &quot;), so the first '"' after `name="` ends it."""
    kept: list[bytes] = []
    long_values: list[tuple[str, int, int]] = []
    position = start
    while True:
        opening = buf.find(b'="', position, end)
        if opening < 0:
            break
        value_start = opening + 2
        value_end = buf.find(b'"', value_start, end)
        if value_end < 0:
            break
        if value_end - value_start > LONG_VALUE_BYTES:
            name_start = opening
            while name_start > start and buf[name_start - 1] not in _SPACE:
                name_start -= 1
            name = bytes(buf[name_start:opening]).decode("utf-8", "replace")
            kept.append(bytes(buf[position:value_start]))
            long_values.append((name, value_start, value_end))
            position = value_end
        else:
            kept.append(bytes(buf[position : value_end + 1]))
            position = value_end + 1
    kept.append(bytes(buf[position:end]))
    return b"".join(kept), long_values


def _decoded_pieces(buf: Any, start: int, end: int, column: int) -> Iterator[str]:
    """The value in buf[start:end] decoded as expat decodes an attribute, PIECE_BYTES at a
    time; `column`, where it starts in its line (0-based), for the messages."""
    position = start
    while position < end:
        stop = _piece_end(buf, position, end)
        raw = bytes(buf[position:stop])
        at = column + position - start
        try:
            piece = raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            byte = raw[bad.start]
            raise BadRow(
                "non-utf8", f"byte 0x{byte:02x} at column {at + bad.start + 1} is not UTF-8"
            ) from None
        yield _decoded(piece, at)
        position = stop


def _piece_end(buf: Any, start: int, end: int) -> int:
    """Where a piece from `start` ends: not inside a UTF-8 sequence, a reference (&...;)
    or a CR LF, all of which must be read whole."""
    stop = start + PIECE_BYTES
    if stop >= end:
        return end
    ampersand = buf.rfind(b"&", start, stop)
    if ampersand >= 0 and buf.find(b";", ampersand, stop) < 0:
        if ampersand == start:  # a reference longer than a piece: read to its end
            semicolon = buf.find(b";", ampersand, end)
            return end if semicolon < 0 else semicolon + 1
        stop = ampersand
    while stop > start + 1 and buf[stop] & 0xC0 == 0x80:  # a continuation byte
        stop -= 1
    if buf[stop - 1] == 0x0D and stop - 1 > start:  # CR: its LF, if any, comes with it
        stop -= 1
    return stop


def _decoded(piece: str, column: int) -> str:
    bad = _NOT_IN_VALUE.search(piece)
    if bad is not None:
        raise BadRow(
            "malformed-row", f"not well-formed (invalid token) at column {column + bad.start() + 1}"
        )
    piece = piece.replace("\r\n", " ").translate(_WHITESPACE)
    if "&" not in piece:
        return piece
    decoded, references = _REFERENCE.subn(lambda m: _reference(m, column), piece)
    if references != piece.count("&"):
        _refuse_ampersand(piece, column)
    return decoded


def _reference(match: re.Match[str], column: int) -> str:
    named, decimal, hexadecimal = match.groups()
    if named:
        return _NAMED[named]
    number = int(decimal) if decimal else int(hexadecimal, 16)
    if not _is_xml_char(number):
        raise BadRow(
            "invalid-character-reference",
            f"reference to invalid character number at column {column + match.start() + 1}",
        )
    return chr(number)


def _is_xml_char(number: int) -> bool:
    return (
        number in (0x9, 0xA, 0xD)
        or 0x20 <= number <= 0xD7FF
        or 0xE000 <= number <= 0xFFFD
        or 0x10000 <= number <= 0x10FFFF
    )


def _refuse_ampersand(piece: str, column: int) -> None:
    """The first "&" that starts no reference expat knows, as expat reports it."""
    at = 0
    while True:
        at = piece.index("&", at)
        if _REFERENCE.match(piece, at):
            at += 1
            continue
        if _ENTITY_NAME.match(piece, at):  # a name, but no DTD declares it
            raise BadRow("malformed-row", f"undefined entity at column {column + at + 1}")
        raise BadRow(
            "malformed-row", f"not well-formed (invalid token) at column {column + at + 1}"
        )


def _large_text(pieces: Iterator[str], size: int) -> LargeText:
    """A long body as UTF-8 bytes, with the start of its prose read as it is decoded.
    `size`, its length in the row, bounds its decoded length (a reference is longer than
    its character, and CR LF becomes one space): the bytes are written into a buffer of
    that size, cut to length at the end, rather than grown piece by piece."""
    data = bytearray(size)
    length = 0

    def kept(source: Iterator[str]) -> Iterator[str]:
        nonlocal length
        for piece in source:
            encoded = piece.encode("utf-8")
            data[length : length + len(encoded)] = encoded
            length += len(encoded)
            yield piece

    prose, cut = pieces_prose_prefix(kept(pieces), TEXT_LIMIT)
    for _ in kept(pieces):  # the rest of the body, past the prose kept
        pass
    del data[length:]
    return LargeText(data, prose, cut)


def release_pages(buf: Any, start: int, end: int) -> None:
    """Drops the mapped pages of buf[start:end] from this process, when buf is a mapped
    file (the file stays in the page cache; a later read maps them again), so a giant row
    read is not held twice."""
    if not isinstance(buf, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return
    first = start - start % mmap.PAGESIZE
    last = end - end % mmap.PAGESIZE  # whole pages only: the next row may be read on
    if last > first:
        buf.madvise(mmap.MADV_DONTNEED, first, last - first)
