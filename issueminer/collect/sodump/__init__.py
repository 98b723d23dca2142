"""Stack Overflow through the Stack Exchange data dump (Posts.xml, Comments.xml), at close to
the speed of reading the file.

Almost every row of a dump is rejected without being parsed. Over a whole piece of the
file at once, a native multi-pattern search (Aho-Corasick) finds every `Tags="` and a
second one, over the short values after them side by side, finds the study tags
(`TagFinder`); answers are found by `ParentId="<id>"` for all kept questions in one such
search. Only those candidate rows are parsed (as XML, one line each) and judged by the
study's `Selection` (after a cheap `KeywordGate` that only rejects), and kept questions
become the envelopes the API crawler stores (`question_envelope`), so an issue found both
ways is one row.

Two ways through a file, with the same result:
- ranges (an uncompressed file): the file is cut into pieces on line boundaries; every
  piece is scanned for questions, stored with the answers that follow them in the same
  piece, then every piece for the other answers of all kept questions (answers merged in
  from another question can come before their question). Pieces run in this process, in
  this process and worker processes beside it, or as tasks on a Dask cluster; they are
  parsed, judged and made into envelopes where they run, and this process stores them.
- stream (.gz, .7z, stdin): one pass, questions and then answers block by block; answers
  that came before their question are found afterwards by a second pass over the part
  of the file before it, for the questions whose AnswerCount says some are missing.

Bad input (a malformed row, an invalid character reference, a non-UTF-8 byte, a file cut
short) is counted and reported with its line number and skipped. Only rows the pre-filter
lets through are parsed, so only those can be found malformed: a broken row that carries
no study tag and answers no kept question is never looked at, as it could not be kept.
"""

from __future__ import annotations

import gc
import gzip
import html
import io
import mmap
import os
import queue
import re
import sys
import threading
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from sqlalchemy import select

from issueminer.collect.checkpoints import Checkpointer, Envelope
from issueminer.collect.selection import TAG_WITHOUT_KEYWORD, Selection, tokenizer, tokens
from issueminer.collect.sources.stackexchange import question_envelope
from issueminer.collect.workers import Workers
from issueminer.findings import Report
from issueminer.ids import STACKOVERFLOW_ORIGIN
from issueminer.store import Issue, Store
from issueminer.taxonomy import Taxonomy
from issueminer.text import URL_PLACEHOLDER

# ---- format quirks of the published dumps ------------------------------------------------
NEWLINE = b"\n"  # one row per line: newlines inside values are written as &#xA;
LINE_END = b"\r\n"  # some dumps end lines with CRLF
# Attributes are always double-quoted, written without spaces around "=", and a `"` inside
# a value is escaped as &quot;, so `Name="` only ever starts that attribute.
PARENT_ID = b'ParentId="'
POST_ID = b'PostId="'  # Comments.xml: the commented post
ROW_ID = b'<row Id="'  # the dump writes Id first in every row
TAGS_ATTR = b'Tags="'
ACCEPTED_ATTR = b'AcceptedAnswerId="'
# Tags come as `|a|b|` (newer dumps) or `<a><b>` written `&lt;a&gt;&lt;b&gt;` (older);
# `>` may legally stay unescaped in an XML attribute.
TAG_OPENERS = (b"|", b"&lt;")
TAG_CLOSERS = (b"|", b"&gt;", b">")
TAG_OPEN = rb"(?:" + b"|".join(map(re.escape, TAG_OPENERS)) + rb")"
TAG_CLOSE = rb"(?:" + b"|".join(map(re.escape, TAG_CLOSERS)) + rb")"
ANGLE_TAG = re.compile(r"<([^<>]+)>")
ROOTS = {"posts": b"<posts", "comments": b"<comments"}
HEAD_BYTES = 4096  # the XML declaration and the root element fit in here
SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
GZIP_MAGIC = b"\x1f\x8b"
DUMP_MARKER = "stackexchange-data-dump"  # raw["source"] of everything stored from a dump

# ---- sizes -------------------------------------------------------------------------------
PIECE_BYTES = 64 << 20  # unit of work for a worker
COMMIT_PIECES = 8  # pieces per checkpoint at most: each commit costs a few ms
TAPER = 4  # the last round of pieces is cut this many times finer (see DumpCrawler._pieces)
BLOCK_BYTES = 8 << 20  # what a stream is read in
MAX_LINE_BYTES = 64 << 20  # no dump row comes near this; longer means a broken file
MAX_FINDINGS = 10_000  # findings kept with their place; all are counted
SUMMARY_FINDINGS = 5
# what the checkpoint state keeps per item, stored as the crawl run's items of this kind
ITEM_KINDS = {"kept": "question", "answers": "answer"}


class DumpError(Exception):
    """The input cannot be scanned at all (not a dump, or an unreadable archive)."""


# ---- rows --------------------------------------------------------------------------------
class BadRow(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return BadRow, (self.kind, self.message)  # so that it can come back from a worker


def parse_row(line: bytes) -> dict[str, str]:
    """The attributes of one `<row .../>` line, XML-unescaped; BadRow says what is wrong."""
    try:
        element = ET.fromstring(line)
    except ET.ParseError as exc:
        raise _bad_row(line, exc) from None
    if element.tag != "row" or "Id" not in element.attrib:
        raise BadRow("malformed-row", f"not a <row> with an Id: {line[:60]!r}")
    return dict(element.attrib)


def _bad_row(line: bytes, exc: ET.ParseError) -> BadRow:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        byte = line[bad.start]
        return BadRow("non-utf8", f"byte 0x{byte:02x} at column {bad.start + 1} is not UTF-8")
    message = str(exc)
    column = exc.position[1] + 1 if exc.position else 0
    if "invalid character number" in message:
        return BadRow("invalid-character-reference", f"{message.split(':')[0]} at column {column}")
    return BadRow("malformed-row", f"{message.split(':')[0]} at column {column}")


def parse_rows(lines: list[bytes]) -> list[dict[str, str] | BadRow]:
    """Many rows at once (one parser run), falling back to one by one when any is broken."""
    if not lines:
        return []
    try:
        root = ET.fromstring(b"<rows>" + NEWLINE.join(lines) + b"</rows>")
    except ET.ParseError:
        root = None
    if root is not None and len(root) == len(lines):
        elements = list(root)
        if all(e.tag == "row" and "Id" in e.attrib for e in elements):
            return [dict(e.attrib) for e in elements]
    results: list[dict[str, str] | BadRow] = []
    for line in lines:
        try:
            results.append(parse_row(line))
        except BadRow as bad:
            results.append(bad)
    return results


def row_tags(value: str) -> list[str]:
    """Tags from either format: `|a|b|` or `<a><b>`."""
    if value.startswith("<"):
        return ANGLE_TAG.findall(value)
    return [tag for tag in value.split("|") if tag]


def dump_time(value: str | None) -> int | None:
    """A dump timestamp (2008-07-31T21:42:52.667, UTC without a zone) as unix seconds."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _int(attrs: dict[str, str], name: str) -> int | None:
    value = attrs.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRow("malformed-row", f"attribute {name}={value!r} is not a number") from None


def _time(attrs: dict[str, str], name: str) -> int | None:
    try:
        return dump_time(attrs.get(name))
    except ValueError:
        raise BadRow("malformed-row", f"attribute {name}={attrs[name]!r} is not a date") from None


def _owner(attrs: dict[str, str], user: str, name: str) -> dict[str, Any] | None:
    owner = {"user_id": _int(attrs, user), "display_name": attrs.get(name)}
    owner = {k: v for k, v in owner.items() if v is not None}
    return owner or None


def _compact(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if v is not None}  # the API leaves out empty fields


def decision_fields(attrs: dict[str, str]) -> dict[str, Any]:
    """The fields the selection reads, in the API's shape."""
    return {
        "question_id": _int(attrs, "Id"),
        # the API sends titles HTML-escaped; the dump has them plain
        "title": html.escape(attrs.get("Title", "")),
        "body": attrs.get("Body"),
        "tags": row_tags(attrs.get("Tags", "")),
        "accepted_answer_id": _int(attrs, "AcceptedAnswerId"),
    }


def api_question(attrs: dict[str, str]) -> dict[str, Any]:
    """A Posts.xml question row in the API's shape, so `question_envelope` stores it alike."""
    return _compact(
        {
            **decision_fields(attrs),
            "score": _int(attrs, "Score"),
            "view_count": _int(attrs, "ViewCount"),
            "answer_count": _int(attrs, "AnswerCount"),
            "comment_count": _int(attrs, "CommentCount"),
            "favorite_count": _int(attrs, "FavoriteCount"),
            "creation_date": _time(attrs, "CreationDate"),
            "last_activity_date": _time(attrs, "LastActivityDate"),
            "last_edit_date": _time(attrs, "LastEditDate"),
            "closed_date": _time(attrs, "ClosedDate"),
            "community_owned_date": _time(attrs, "CommunityOwnedDate"),
            "owner": _owner(attrs, "OwnerUserId", "OwnerDisplayName"),
            "content_license": attrs.get("ContentLicense"),
            "link": f"{STACKOVERFLOW_ORIGIN}/questions/{attrs['Id']}",
        }
    )


def api_answer(attrs: dict[str, str], accepted_answer_id: int | None) -> dict[str, Any]:
    answer_id = _int(attrs, "Id")
    return _compact(
        {
            "answer_id": answer_id,
            "question_id": _int(attrs, "ParentId"),
            "body": attrs.get("Body"),
            "score": _int(attrs, "Score"),
            "is_accepted": answer_id == accepted_answer_id,
            "comment_count": _int(attrs, "CommentCount"),
            "creation_date": _time(attrs, "CreationDate"),
            "last_activity_date": _time(attrs, "LastActivityDate"),
            "last_edit_date": _time(attrs, "LastEditDate"),
            "owner": _owner(attrs, "OwnerUserId", "OwnerDisplayName"),
            "content_license": attrs.get("ContentLicense"),
        }
    )


def api_comment(attrs: dict[str, str]) -> dict[str, Any]:
    return _compact(
        {
            "comment_id": _int(attrs, "Id"),
            "post_id": _int(attrs, "PostId"),
            "body": attrs.get("Text"),  # the dump has the comment's Markdown, not HTML
            "score": _int(attrs, "Score"),
            "creation_date": _time(attrs, "CreationDate"),
            "owner": _owner(attrs, "UserId", "UserDisplayName"),
            "content_license": attrs.get("ContentLicense"),
        }
    )


def _dump_raw(attrs: dict[str, str]) -> dict[str, Any]:
    # The row exactly as the dump has it; `api_question(raw["row"])` gives the API's shape.
    return {"source": DUMP_MARKER, "row": attrs}


def reply_envelope(
    question_id: int,
    answers: list[tuple[dict[str, Any], dict[str, str]]],
    comments: list[tuple[dict[str, Any], dict[str, str]]],
) -> Envelope:
    """Answers and comments found later, attached to a stored question by its uid."""
    built = question_envelope(
        {"question_id": question_id}, [a for a, _ in answers], [c for c, _ in comments]
    )
    for reply, (_, attrs) in zip(built.replies, [*answers, *comments], strict=True):
        reply["raw"] = _dump_raw(attrs)
    # only the uid: upsert_issues leaves the stored question's fields as they are
    return Envelope({"uid": built.issue["uid"]}, built.replies)


# ---- the pre-filter ----------------------------------------------------------------------
_MARKUP_TAG = re.compile(
    r"""</?[A-Za-z][^\s/>]*(?:\s+[^\s/>"'=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*\s*/?>"""
)
_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#[xX][0-9A-Fa-f]+);")
_QUOTED = r"""(?:[^>"']|"[^"]*"|'[^']*')*"""  # the rest of a tag, quoted values whole
_PRE_BLOCK = re.compile(
    rf"<pre(?=[\s/>]){_QUOTED}>.*?</pre(?=[\s/>]){_QUOTED}>", re.IGNORECASE | re.DOTALL
)
# what HTMLParser reads its own way (raw text, comments, declarations, an empty <pre/>)
_UNUSUAL_MARKUP = re.compile(r"<(?:script|style)\b|<[!?]|<pre(?=[\s/>])[^>]*/>", re.I)
_PRE_LEFT = re.compile(r"</?pre", re.I)
_BREAK = "\x00"  # where a tag was; XML forbids this character, so text never has it
_LINK = re.compile(r"https?://[^\s\x00]+")


def _marked_prose(body: str) -> str | None:
    """The body's prose as `text.plain_text` reads it, give or take, with a _BREAK where
    each tag or <pre> block was. Without the breaks it never lacks a word the prose has,
    though it may join words the prose keeps apart; between breaks it is the prose itself:
    a run of text without a break and with whitespace (or an end) on both sides is,
    character for character, a whitespace-separated piece of the prose.

    Only for markup whose tags and entities both readers see alike (plain tags with quoted
    attributes, complete entities, unnested <pre>); None for anything else.
    """
    if "<" in body:
        if _UNUSUAL_MARKUP.search(body):
            return None
        if len(_MARKUP_TAG.findall(body)) != body.count("<"):  # a "<" that starts no tag
            return None
        body = _PRE_BLOCK.sub(_BREAK, body)
        if _PRE_LEFT.search(body):  # nested or unclosed <pre>
            return None
        body = _MARKUP_TAG.sub(_BREAK, body)
    if "&" in body:
        unescaped, entities = _ENTITY.subn(_unescape_entity, body)
        if entities != body.count("&"):  # a bare or unfinished "&"
            return None
        body = unescaped
    # Links become a placeholder in the prose. A link here ends at the first tag, at or
    # before where it ends in the prose, so this never removes more than the prose does.
    return _LINK.sub(URL_PLACEHOLDER, body)


def _unescape_entity(match: re.Match[str]) -> str:
    return html.unescape(match[0])


class KeywordGate:
    """Rejects questions whose title and prose cannot contain any of the study's terms.

    A term matches as a sequence of tokens, and a token is a piece of the text, so a term
    can only match if each of its tokens occurs in the (lowercased) text. This check costs
    one native search; the full match (HTML parsing and spaCy) runs only when it passes,
    and it decides.

    Where a term's tokens all occur, a second check asks whether each occurs as a token:
    spaCy splits a text at whitespace and tokenizes each piece on its own, so the pieces of
    the text that hold a term token are tokenized alone (a few words instead of the whole
    text). `pkg.distributed` holds "distributed" but is a single token, for example.
    """

    def __init__(self, selection: Selection) -> None:
        self.terms = [tuple(dict.fromkeys(tokens(term))) for term in selection.terms]
        self.terms = [t for t in self.terms if t]
        # lowercasing a substring equals a substring of the lowercased text for ASCII only
        self.usable = all(tok.isascii() for t in self.terms for tok in t)
        self._finder: Any = None  # all term tokens in one native automaton, built on use
        if self.usable:
            self.places = {tok: _token_place(tok) for t in self.terms for tok in t}
            self.token_list = list(self.places)
            # Special cases ("can't", ":-)") are the one rule spaCy applies across pieces:
            # a token a special case can take apart or make is not checked piece by piece.
            specials = [key.lower() for key in tokenizer().rules]
            self.whole = {tok for tok in self.places if any(tok in key for key in specials)}

    def could_match(self, title: str, body: str) -> bool:
        if not self.usable:
            return True
        marked = _marked_prose(body)
        if marked is None:
            return True
        present = self._present(f"{title}\n{marked.replace(_BREAK, '')}".lower())
        terms = [term for term in self.terms if present.issuperset(term)]
        # the title too is tokenized as a text of its own
        return bool(terms) and self._any_as_tokens(terms, f"{title}\n{marked}")

    def _any_as_tokens(self, terms: list[tuple[str, ...]], text: str) -> bool:
        """Whether each token of some term may be a token of the text."""
        lowered = text.lower()
        if len(lowered) != len(text):  # a character lowercases to two: no second check
            return True
        known: dict[str, bool] = {}

        def is_token(tok: str) -> bool:
            if tok not in known:
                known[tok] = self._is_token(tok, text, lowered)
            return known[tok]

        return any(all(is_token(tok) for tok in term) for term in terms)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_finder": None}  # native, not picklable: rebuilt on use

    def _present(self, text: str) -> set[str]:
        """The term tokens that occur in text, found in one pass."""
        if self._finder is None:
            import ahocorasick_rs

            self._finder = ahocorasick_rs.AhoCorasick(self.token_list)
        found = self._finder.find_matches_as_indexes(text, overlapping=True)
        return {self.token_list[i] for i, _, _ in found}

    def _is_token(self, tok: str, text: str, lowered: str) -> bool:
        """Whether tok may be a token of the text: some piece of it where it occurs either
        had markup inside (the prose may join it differently) or tokenizes to hold it.

        Markup at either end of a piece does not count: a tag adds nothing or a line
        break to the prose, so the prose's piece ends there all the same.
        """
        if tok in self.whole:
            return True
        place = self.places[tok].search(lowered)
        while place is not None:
            start, end = _piece_around(text, place.start(), place.end())
            piece = text[start:end].strip(_BREAK)
            if _BREAK in piece or tok in tokens(piece):
                return True
            place = self.places[tok].search(lowered, end)
        return False


def _token_place(tok: str) -> re.Pattern[str]:
    # the token's letters, with any breaks between them: a tag may split a word
    return re.compile(f"{_BREAK}*".join(re.escape(char) for char in tok))


def _piece_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The whitespace-separated piece of text that holds text[start:end]."""
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return start, end


@dataclass
class Criteria:
    """What decides a question, and the byte patterns that find its candidates."""

    selection: Selection
    taxonomy: Taxonomy | None = None
    known: frozenset[bytes] | None = None  # --only-known: exactly these question ids

    @cached_property
    def tags_pattern(self) -> re.Pattern[bytes]:
        names = b"|".join(re.escape(t.encode()) for t in self.selection.stackoverflow_tags)
        # case-insensitive like the selection; [^"\n] keeps a match inside one attribute
        return re.compile(
            TAGS_ATTR + rb'[^"\n]*?' + TAG_OPEN + rb"(?i:" + names + rb")" + TAG_CLOSE
        )

    @cached_property
    def tag_finder(self) -> TagFinder:
        return TagFinder(self.tags_pattern, self.selection.stackoverflow_tags)

    @cached_property
    def known_rows(self) -> IdMatcher:
        return IdMatcher(ROW_ID, self.known or ())

    @cached_property
    def gate(self) -> KeywordGate:
        return KeywordGate(self.selection)

    @cached_property
    def tags_alone(self) -> set[str]:
        return {t.lower() for t in self.selection.tags_alone}

    def decide(self, question: dict[str, Any]) -> tuple[bool, str]:
        if self.known is not None:
            return True, "already in the store"
        tags = {str(t).lower() for t in question.get("tags") or []}
        # the selection's own first check, repeated so that the gate below (a shortcut for
        # its keyword check) only turns away what the selection would count the same way
        if self.selection.require_accepted_answer and not question.get("accepted_answer_id"):
            return False, "no accepted answer"
        if not tags & self.tags_alone and not self.gate.could_match(
            html.unescape(question.get("title") or ""), question.get("body") or ""
        ):
            return False, TAG_WITHOUT_KEYWORD
        decision = self.selection.stackoverflow(question)
        return decision.kept, "kept" if decision.kept else decision.counted_as

    def query(self) -> dict[str, Any]:
        selection = self.selection
        if self.known is not None:
            return {"only_known": True}
        return {
            "tags": selection.stackoverflow_tags,
            "terms": selection.terms,
            "accepted_answer": selection.require_accepted_answer,
        }


# ---- pieces of a file --------------------------------------------------------------------
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


# ---- scanning a buffer -------------------------------------------------------------------
FoundReply = tuple[int, str, dict[str, Any], dict[str, str], int]
# (question id, kind, API item, dump row, offset): a reply not yet in an envelope


@dataclass
class Found:
    """What one piece or block yielded; offsets are absolute positions in the file."""

    kept: list[dict[str, Any]] = field(default_factory=list)  # see _kept_entry
    replies: list[FoundReply] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)  # kept questions, their answers
    attached: list[tuple[int, int]] = field(default_factory=list)  # (answer, question) in them
    findings: list[tuple[str, int, int | None, str]] = field(default_factory=list)
    rejected: Counter[str] = field(default_factory=Counter)
    parsed: int = 0
    scanned: int = 0

    def absorb(self, other: Found, scanned: bool = True) -> None:
        """Add another scan's results; `scanned=False` when it read the same bytes again."""
        self.kept += other.kept
        self.replies += other.replies
        self.envelopes += other.envelopes
        self.attached += other.attached
        self.findings += other.findings
        self.rejected.update(other.rejected)
        self.parsed += other.parsed
        self.scanned += other.scanned if scanned else 0


def _line_at(buf: Any, position: int, lo: int, hi: int) -> tuple[int, int]:
    start = buf.rfind(NEWLINE, lo, position) + 1 or lo
    start = max(start, lo)
    end = buf.find(NEWLINE, position, hi)
    return start, hi if end < 0 else end


def _row_bytes(buf: Any, start: int, end: int) -> bytes:
    return bytes(buf[start:end]).rstrip(LINE_END).lstrip()


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


def _candidate_lines(positions: Iterable[int], buf: Any, lo: int, hi: int) -> list[tuple[int, int]]:
    lines: dict[int, int] = {}
    for position in positions:
        start, end = _line_at(buf, position, lo, hi)
        lines.setdefault(start, end)
    return list(lines.items())


def _parse_lines(
    buf: Any, lines: list[tuple[int, int]], base: int, found: Found, line_base: int | None
) -> list[tuple[int, dict[str, str]]]:
    """(offset, attributes) of the good rows; bad ones become findings."""
    rows = parse_rows([_row_bytes(buf, a, b) for a, b in lines])
    found.parsed += len(rows)
    good = []
    for (start, _), row in zip(lines, rows, strict=True):
        if isinstance(row, BadRow):
            found.findings.append(_finding(row, buf, base, start, line_base))
        else:
            good.append((base + start, row))
    return good


def scan_questions(
    buf: Any, lo: int, hi: int, base: int, criteria: Criteria, line_base: int | None = None
) -> Found:
    """Questions in buf[lo:hi] that the criteria keep (buf offset 0 is file offset base)."""
    found = Found(scanned=hi - lo)
    if criteria.known is not None:
        positions = criteria.known_rows.starts(buf, lo, hi)
    else:
        positions = criteria.tag_finder.starts(buf, lo, hi)
    lines = _candidate_lines(positions, buf, lo, hi)
    if criteria.known is None and criteria.selection.require_accepted_answer:
        # a row without the attribute has no accepted answer: rejected without parsing
        with_accepted = [(a, b) for a, b in lines if buf.find(ACCEPTED_ATTR, a, b) >= 0]
        found.rejected["no accepted answer"] += len(lines) - len(with_accepted)
        lines = with_accepted
    for offset, attrs in _parse_lines(buf, lines, base, found, line_base):
        if attrs.get("PostTypeId") != "1":
            found.rejected["not a question"] += 1
            continue
        try:
            kept, reason = criteria.decide(decision_fields(attrs))
            if kept:
                found.kept.append(_kept_entry(api_question(attrs), attrs, offset))
        except BadRow as bad:
            found.findings.append(_finding(bad, buf, base, offset - base, line_base))
            continue
        if not kept:
            found.rejected[reason] += 1
    return found


def _finding(
    bad: BadRow, buf: Any, base: int, position: int, line_base: int | None
) -> tuple[str, int, int | None, str]:
    """A bad row at buf[position] as (kind, file offset, line, message); the line only when
    the buffer's first line number is known (a stream), else it is counted at the end."""
    line = None if line_base is None else line_base + buf.count(NEWLINE, 0, position) + 1
    return bad.kind, base + position, line, bad.message


def _kept_entry(question: dict[str, Any], attrs: dict[str, str], offset: int) -> dict[str, Any]:
    return {
        "id": question["question_id"],
        "offset": offset,
        "answer_count": question.get("answer_count") or 0,
        "accepted": question.get("accepted_answer_id"),
        "question": question,  # these two only until `package` makes the envelope
        "attrs": attrs,
    }


def package(found: Found, taxonomy: Taxonomy | None) -> Found:
    """Envelopes for the kept questions in found, each with the answers found beside it.

    Storing a question together with its answers costs one store round trip instead of
    two; the answers that belong to questions kept elsewhere stay in `found.replies`.
    """
    here = {entry["id"]: entry for entry in found.kept}
    own: list[FoundReply] = []
    others: list[FoundReply] = []
    for reply in found.replies:
        (own if reply[1] == "answer" and reply[0] in here else others).append(reply)
    answers = _by_question(own, found.attached)
    for question_id, entry in here.items():
        mine = answers.get(question_id, ([], []))[0]
        envelope = question_envelope(entry.pop("question"), [a for a, _ in mine], [], taxonomy)
        envelope.issue["raw"] = _dump_raw(entry.pop("attrs"))  # the rest: the run's items
        for reply, (_, attrs) in zip(envelope.replies, mine, strict=True):
            reply["raw"] = _dump_raw(attrs)
        found.envelopes.append(envelope)
    found.replies = others
    return found


Reply = tuple[dict[str, Any], dict[str, str]]  # (API item, dump row)


def _by_question(
    replies: Iterable[FoundReply],
    attached: list[tuple[int, int]] | None = None,
) -> dict[int, tuple[list[Reply], list[Reply]]]:
    """Replies by question id, (answers, comments) in file order; each answer also noted
    in `attached` as (answer, question), when given."""
    by_question: dict[int, tuple[list[Reply], list[Reply]]] = {}
    for question_id, kind, item, attrs, _ in replies:
        answers, comments = by_question.setdefault(question_id, ([], []))
        if kind == "answer":
            answers.append((item, attrs))
            if attached is not None:
                attached.append((item["answer_id"], question_id))
        else:
            comments.append((item, attrs))
    return by_question


@dataclass
class Wanted:
    """The posts whose replies a pass collects: post id -> its question, by attribute."""

    attribute: bytes  # PARENT_ID for answers, POST_ID for comments
    owner: dict[int, int]
    accepted: dict[int, int] = field(default_factory=dict)  # question -> accepted answer
    stored: frozenset[bytes] = frozenset()  # ids of replies stored already: not read again

    @cached_property
    def matcher(self) -> IdMatcher:
        return IdMatcher(self.attribute, self.owner)


def scan_replies(
    buf: Any,
    lo: int,
    hi: int,
    base: int,
    kind: str,
    wanted: Wanted,
    line_base: int | None = None,
) -> Found:
    """Answers (by ParentId) or comments (by PostId) of the wanted posts in buf[lo:hi]."""
    found = Found(scanned=hi - lo)
    if not wanted.owner:
        return found
    lines = _candidate_lines(wanted.matcher.starts(buf, lo, hi), buf, lo, hi)
    if wanted.stored:
        unstored = [(a, b) for a, b in lines if _row_id(buf, a, b) not in wanted.stored]
        found.parsed += len(lines) - len(unstored)  # parsed, and kept, when they were stored
        lines = unstored
    accepted = wanted.accepted
    for offset, attrs in _parse_lines(buf, lines, base, found, line_base):
        try:
            if kind == "answer":
                if attrs.get("PostTypeId") != "2":
                    found.rejected["not an answer"] += 1
                    continue
                parent = wanted.owner[int(attrs.get("ParentId", ""))]
                item = api_answer(attrs, accepted.get(parent))
            else:
                parent = wanted.owner[int(attrs.get("PostId", ""))]
                item = api_comment(attrs)
        except (KeyError, ValueError):
            found.rejected[f"not a {kind} of a kept question"] += 1
            continue
        except BadRow as bad:
            found.findings.append(_finding(bad, buf, base, offset - base, line_base))
            continue
        found.replies.append((parent, kind, item, attrs, offset))
    return found


def _row_id(buf: Any, start: int, end: int) -> bytes | None:
    """The Id of the row in buf[start:end], read without parsing it."""
    at = buf.find(ROW_ID, start, end)
    close = buf.find(b'"', at + len(ROW_ID), end) if at >= 0 else -1
    return bytes(buf[at + len(ROW_ID) : close]) if close >= 0 else None


# ---- opening a dump ----------------------------------------------------------------------
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


# ---- running pieces: here, in processes, or on Dask ---------------------------------------
Job = tuple[str, str, int, int]  # (phase, path, start, end)


def run_job(job: Job, context: dict[str, Any]) -> Found:
    """One piece of one phase; runs wherever the executor puts it."""
    phase, path, start, end = job
    piece = Piece(start, end)
    buf = _mapping(path)
    _prefetch(buf, piece)
    return _run_piece(phase, buf, piece, context)


def _run_piece(phase: str, buf: Any, piece: Piece, context: dict[str, Any]) -> Found:
    # Everything but the writing happens here, wherever the piece runs: storing what comes
    # back is all the parent process must do besides, so it keeps up with several workers.
    if phase == "questions":
        criteria = context["criteria"]
        found = scan_questions(buf, piece.start, piece.end, 0, criteria)
        # stored now, while the other pieces are scanned, with the answers beside them
        return package(_own_answers(buf, piece, found), criteria.taxonomy)
    kind = "answer" if phase == "answers" else "comment"
    found = scan_replies(buf, piece.start, piece.end, 0, kind, context["wanted"])
    return reply_envelopes(found) if phase == "answers" else found


def _own_answers(buf: Any, piece: Piece, found: Found) -> Found:
    """Found with the answers in the piece to the questions it kept there (most answers
    follow their question closely), so they are stored together in one envelope.

    The answers phase reads these rows again, skips them as stored and counts them; only
    it counts and reports the rest (rows that are not answers, broken rows).
    """
    owner = {entry["id"]: entry["id"] for entry in found.kept}
    accepted = {entry["id"]: entry["accepted"] for entry in found.kept if entry["accepted"]}
    wanted = Wanted(PARENT_ID, owner, accepted)
    found.replies += scan_replies(buf, piece.start, piece.end, 0, "answer", wanted).replies
    return found


def reply_envelopes(found: Found) -> Found:
    """The answers in found as envelopes for their stored questions, by question id."""
    by_question = _by_question(found.replies, found.attached)
    found.envelopes += [reply_envelope(q, a, c) for q, (a, c) in sorted(by_question.items())]
    found.replies = []
    return found


class Executor(Protocol):
    """Where pieces run: this process, worker processes, or a Dask cluster."""

    workers: int
    owners: list[int]  # worker index per job of the last batch, where the executor knows

    def map(
        self, jobs: list[Job], context: dict[str, Any], affinity: list[int] | None = None
    ) -> Iterator[Found]:
        """Results in job order; `affinity` (an earlier batch's `owners`) asks for each
        job on the worker that ran the same piece before."""

    def release(self) -> None:
        """No more jobs for now: workers may wind down while the caller stores the last."""

    def close(self) -> None: ...


class SerialExecutor:
    """Pieces one after another in this process."""

    workers = 1
    owners: list[int] = []

    def map(
        self, jobs: list[Job], context: dict[str, Any], affinity: list[int] | None = None
    ) -> Iterator[Found]:
        for job in jobs:
            yield run_job(job, context)

    def release(self) -> None:
        pass

    def close(self) -> None:
        _unmap()


class ProcessExecutor(Workers):
    """Pieces on N workers: this process and N - 1 others (see `issueminer.collect.workers`);
    results in file order.

    This process scans whenever the next result to store has not come in. The other
    workers start with the first phase and serve every later one until `close`, so a phase
    costs no process start-up. In the questions phase idle workers claim the next piece;
    later phases give each piece to the worker that scanned it for questions, whose pages
    of it are still mapped (another worker would fault them in again, about a tenth of the
    scan's CPU time).
    """

    def __init__(self, workers: int) -> None:
        super().__init__(workers, run_job, helping=True)

    def close(self) -> None:
        _unmap()  # this process scanned too; unmapped while the workers exit (tens of ms each)
        super().close()


class DaskExecutor:
    """Pieces as tasks on a Dask cluster; every worker must see the dump at the same path."""

    def __init__(self, scheduler: str | None = None, workers: int = 1) -> None:
        from dask.distributed import Client, LocalCluster

        self.cluster = None
        if scheduler is None:
            self.cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, dashboard_address=None
            )
            scheduler = self.cluster.scheduler_address
        self.client = Client(scheduler)
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        self.owners: list[int] = []  # Dask places tasks itself

    def map(
        self, jobs: list[Job], context: dict[str, Any], affinity: list[int] | None = None
    ) -> Iterator[Found]:
        shared = self.client.scatter(context, broadcast=True)
        futures = self.client.map(run_job, jobs, context=shared, pure=False)
        try:
            for future in futures:
                yield future.result()
        finally:
            self.client.cancel(futures)

    def release(self) -> None:
        pass  # the cluster outlives the scan

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


# ---- the crawl ---------------------------------------------------------------------------
@dataclass
class ScanSummary:
    """What a scan kept and noticed (counts exact; findings capped at MAX_FINDINGS)."""

    questions: int = 0
    answers: int = 0
    comments: int = 0
    parsed: int = 0
    scanned_bytes: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    finding_counts: Counter[str] = field(default_factory=Counter)
    findings: list[dict[str, Any]] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # --only-known ids not in the dump

    def as_dict(self) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "answers": self.answers,
            "comments": self.comments,
            "parsed": self.parsed,
            "scanned_bytes": self.scanned_bytes,
            "rejected": dict(sorted(self.rejected.items())),
            "bad_input": dict(sorted(self.finding_counts.items())),
            "first_findings": self.findings[:SUMMARY_FINDINGS],
            "not_in_dump": self.missing,
        }


ProgressFn = Callable[[str, int, int | None], None]


def _commit_due(phase: str, done: int, batched: int, pieces: int, workers: int) -> bool:
    """Whether to commit after `done` of a phase's `pieces`, `batched` since the last commit.
    The last pieces are left to the next phase (see DumpCrawler._flush)."""
    if done >= pieces or not batched:
        return False
    if phase != "questions" or workers == 1:
        return batched >= COMMIT_PIECES  # the other phases find little, fast
    # with workers, questions are stored two rounds at a time while the workers scan on, so
    # the phase ends with little left to store; but not while each worker has its last
    # piece or two: a commit could outlast them and keep them waiting for the answers
    # phase, whose start commits those pieces instead, while the workers scan
    return batched >= min(2 * workers, COMMIT_PIECES) and pieces - done > 2 * workers


class DumpCrawler:
    """Scans Posts.xml (and optionally Comments.xml) into the store through a Checkpointer.

    The checkpoint holds the phase, the byte offset to go on from and the findings so far;
    the kept questions and attached answers are rows of the run (see `_save`). Both are
    committed together with the envelopes of the pieces before that offset (every
    COMMIT_PIECES pieces, or every two rounds while workers look for questions), so a
    killed scan resumes where it stopped and stores nothing twice.
    """

    def __init__(
        self,
        posts: DumpSource,
        criteria: Criteria,
        comments: DumpSource | None = None,
        executor: Executor | None = None,
        piece_bytes: int = PIECE_BYTES,
        on_progress: ProgressFn | None = None,
        stdin: BinaryIO | None = None,
    ) -> None:
        self.posts = posts
        self.comments = comments
        self.criteria = criteria
        self.own_executor = executor is None
        self.executor = executor or SerialExecutor()
        self.piece_bytes = piece_bytes
        self.on_progress = on_progress or (lambda _phase, _done, _total: None)
        self.stdin = stdin
        self.block_bytes = min(BLOCK_BYTES, piece_bytes)  # a stream commits per piece too
        self._answers_of: Wanted | None = None
        self._new_items: list[tuple[str, str, Any]] = []  # kept since the last commit
        self._pending: tuple[Found, list[Envelope], str] | None = None  # see _flush

    def query(self) -> dict[str, Any]:
        return {
            "posts": _identity(self.posts),
            "comments": _identity(self.comments) if self.comments else None,
            **self.criteria.query(),
        }

    # ---- state kept in the checkpoint ------------------------------------------------------
    def _fresh_state(self) -> dict[str, Any]:
        return {
            "size": self.posts.stored_size,
            "phase": "questions" if self.posts.plain else "stream",
            "offset": 0,
            "line": 0,
            "kept": {},  # question id -> [offset, answer count, accepted answer id]
            "answers": {},  # answer id -> question id
            "comments": 0,
            "parsed": 0,
            "scanned": 0,
            "rejected": {},
            "finding_counts": {},
            "findings": [],  # [kind, offset, line, message, file]
        }

    def run(self, checkpointer: Checkpointer) -> ScanSummary:
        state = dict(checkpointer.checkpoint)
        if not state or state.get("size") != self.posts.stored_size:
            checkpointer.clear_items()
            state = self._fresh_state()
        else:
            state = self._with_items(checkpointer, state)
        phases: dict[str, Callable[[Checkpointer, dict[str, Any]], dict[str, Any]]] = {
            "questions": self._questions,
            "answers": self._answers,
            "stream": self._stream,
            "late": self._late,
            "comments": self._comments,
        }
        try:
            with _heap_frozen():
                while state["phase"] != "done":
                    state = phases[state["phase"]](checkpointer, state)
                self.executor.release()  # its workers wind down while the last is stored
                self._flush(checkpointer, state)
        finally:
            if self.own_executor:
                self.executor.close()
        return self._summary(state)

    def _commit(
        self,
        checkpointer: Checkpointer,
        state: dict[str, Any],
        found: Found,
        envelopes: list[Envelope],
        file: str,
    ) -> None:
        state["parsed"] += found.parsed
        state["scanned"] += found.scanned
        rejected = Counter(state["rejected"])
        rejected.update(found.rejected)
        state["rejected"] = dict(rejected)
        counts = Counter(state["finding_counts"])
        for kind, offset, line, message in found.findings:
            counts[kind] += 1
            if len(state["findings"]) < MAX_FINDINGS:
                state["findings"].append([kind, offset, line, message, file])
        state["finding_counts"] = dict(counts)
        self._save(checkpointer, state, envelopes, found.parsed)

    def _save(
        self,
        checkpointer: Checkpointer,
        state: dict[str, Any],
        envelopes: list[Envelope],
        seen: int,
    ) -> None:
        """Commit envelopes with the checkpoint and the items kept since the last commit.
        The checkpoint leaves out the kept items: they grow with the scan, and a commit
        writes only the new ones (`Checkpointer.items` reads them back)."""
        checkpoint = {k: v for k, v in state.items() if k not in ITEM_KINDS}
        checkpointer.commit_page(envelopes, checkpoint, seen=seen, items=self._new_items)
        self._new_items = []

    def _with_items(self, checkpointer: Checkpointer, state: dict[str, Any]) -> dict[str, Any]:
        """A resumed checkpoint with its kept items: from the run's items, or from the
        checkpoint itself when it was written before items were (the next commit moves them
        into the run's items)."""
        for name, kind in ITEM_KINDS.items():
            if name in state:
                self._new_items += [(kind, k, v) for k, v in state[name].items()]
            else:
                state[name] = checkpointer.items(kind)
        return state

    def _keep_question(self, state: dict[str, Any], entry: dict[str, Any]) -> None:
        key = str(entry["id"])
        if key not in state["kept"]:
            state["kept"][key] = kept = [entry["offset"], entry["answer_count"], entry["accepted"]]
            self._new_items.append((ITEM_KINDS["kept"], key, kept))

    def _keep_answer(self, state: dict[str, Any], answer_id: int, question_id: int) -> bool:
        """Note an answer attached to its question; False if it was already."""
        key = str(answer_id)
        if key in state["answers"]:
            return False
        state["answers"][key] = question_id
        self._new_items.append((ITEM_KINDS["answers"], key, question_id))
        return True

    def _take(self, state: dict[str, Any], found: Found) -> list[Envelope]:
        """Note what a piece kept and attached; returns the envelopes to store with it."""
        for entry in found.kept:
            self._keep_question(state, entry)
        for answer_id, question_id in found.attached:
            self._keep_answer(state, answer_id, question_id)
        return found.envelopes + self._attach(state, found)

    def _attach(self, state: dict[str, Any], found: Found) -> list[Envelope]:
        new = []
        for reply in found.replies:
            question_id, kind, item, _, _ = reply
            if kind == "answer" and not self._keep_answer(state, item["answer_id"], question_id):
                continue  # met again by the second pass
            state["comments"] += kind != "answer"
            new.append(reply)
        by_question = _by_question(new)  # _keep_answer noted the answers
        return [reply_envelope(q, a, c) for q, (a, c) in sorted(by_question.items())]

    def _wanted_answers(self, state: dict[str, Any], only: set[str] | None = None) -> Wanted:
        kept = state["kept"]
        if (
            only is None
            and self._answers_of is not None
            and len(self._answers_of.owner) == len(kept)
        ):
            return self._answers_of  # a stream asks after every block; rebuilt when it grew
        owner = {int(k): int(k) for k in kept if only is None or k in only}
        accepted = {int(k): int(v[2]) for k, v in kept.items() if v[2]}
        wanted = Wanted(PARENT_ID, owner, accepted)
        if only is None:
            self._answers_of = wanted
        return wanted

    # ---- ranges: a plain file, questions then answers ------------------------------------
    def _pieces(self, source: DumpSource, start: int) -> list[Piece]:
        """Pieces of about piece_bytes, as many for every worker: with one left over, all
        but one worker would wait for it at the end of the phase. With several workers
        the last round is cut TAPER times finer: a phase ends when its last worker does,
        and the others wait meanwhile, up to a whole piece's time."""
        size = source.size or 0
        workers = max(1, self.executor.workers)
        count = -(-(size - start) // self.piece_bytes)  # rounded up
        count = max(1, -(-count // workers) * workers)
        pieces = split_pieces(source.path, start, size, -(-(size - start) // count))
        if workers == 1 or len(pieces) < 2 * workers:
            return pieces
        last = [
            split_pieces(source.path, p.start, p.end, -(-(p.end - p.start) // TAPER))
            for p in pieces[-workers:]
        ]
        return pieces[:-workers] + [small for piece in last for small in piece]

    def _run_phase(
        self,
        checkpointer: Checkpointer,
        state: dict[str, Any],
        source: DumpSource,
        phase: str,
        context: dict[str, Any],
        handle: Callable[[dict[str, Any], Found], list[Envelope]],
        next_phase: str,
    ) -> dict[str, Any]:
        pieces = self._pieces(source, state["offset"])
        jobs: list[Job] = [(phase, source.path, p.start, p.end) for p in pieces]
        self.on_progress(phase, state["offset"], source.size)
        batch, envelopes, batched = Found(), [], 0
        workers = self.executor.workers
        # the questions phase shares pieces out as workers come free; answers follow it (the
        # same pieces of the same file); comments are another file
        affinity = self.executor.owners if phase == "answers" else None
        results = self.executor.map(jobs, context, affinity)
        if next_phase == "done":
            self.executor.release()  # no job follows: workers exit as soon as theirs are done
        self._flush(checkpointer, state)  # while workers, if any, start on this phase
        for done, (piece, found) in enumerate(zip(pieces, results, strict=True), 1):
            envelopes += handle(state, found)
            batch.absorb(found, scanned=phase == "questions")  # each file's bytes once
            batched += 1
            state["offset"] = piece.end
            if _commit_due(phase, done, batched, len(pieces), workers):
                self._commit(checkpointer, state, batch, envelopes, source.name)
                batch, envelopes, batched = Found(), [], 0
            self.on_progress(phase, piece.end, source.size)
        if phase in ("questions", "comments"):
            self._check_end(source, state, "posts" if phase == "questions" else "comments")
        state.update(phase=next_phase, offset=0, line=0)
        self._pending = (batch, envelopes, source.name)  # committed once the next phase runs
        return state

    def _flush(self, checkpointer: Checkpointer, state: dict[str, Any]) -> None:
        """Commit the last pieces of the phase before, and the move to this one. Not lost
        if the scan stops first: the checkpoint then says to scan those pieces again."""
        if self._pending is not None:
            batch, envelopes, name = self._pending
            self._pending = None
            self._commit(checkpointer, state, batch, envelopes, name)

    def _questions(self, checkpointer: Checkpointer, state: dict[str, Any]) -> dict[str, Any]:
        _warm_tokenizer()
        return self._run_phase(
            checkpointer,
            state,
            self.posts,
            "questions",
            {"criteria": self.criteria},
            self._take,
            "answers",
        )

    def _answers(self, checkpointer: Checkpointer, state: dict[str, Any]) -> dict[str, Any]:
        stored = frozenset(answer.encode() for answer in state["answers"])
        context = {"wanted": replace(self._wanted_answers(state), stored=stored)}
        next_phase = "comments" if self.comments else "done"
        return self._run_phase(
            checkpointer, state, self.posts, "answers", context, self._take, next_phase
        )

    # ---- stream: compressed or stdin, one pass --------------------------------------------
    def _stream(self, checkpointer: Checkpointer, state: dict[str, Any]) -> dict[str, Any]:
        _warm_tokenizer()
        tail = self._stream_pass(checkpointer, state, self.posts, "stream", self._stream_block)
        self._check_tail(tail, state, self.posts.name)
        return self._next_phase(checkpointer, state, "late")

    def _stream_pass(
        self,
        checkpointer: Checkpointer,
        state: dict[str, Any],
        source: DumpSource,
        phase: str,
        scan_block: Callable[[dict[str, Any], bytes, int], Found],
        until: int | None = None,
    ) -> bytes:
        """One pass over a stream from the checkpoint's offset (up to `until`), block by
        block, committed about every piece_bytes; returns the last bytes it read. Only the
        first pass counts as scanned Posts bytes: the late one reads them again, and
        comments are another file."""
        total = source.stored_size if source.kind == "gzip" else source.size
        batch, envelopes, batched, tail = Found(), [], 0, b""
        with open_stream(source, self.stdin) as stream:
            for offset, block in stream_blocks(stream, state["offset"], self.block_bytes):
                if until is not None and offset >= until:
                    break
                found = scan_block(state, block, offset)
                envelopes += self._take(state, found)
                batch.absorb(found, scanned=phase == "stream")
                batched += len(block)
                state["line"] += block.count(NEWLINE)
                state["offset"] = offset + len(block)
                tail = (tail + block[-HEAD_BYTES:])[-HEAD_BYTES:]  # not the whole block
                if batched >= self.piece_bytes:
                    self._commit(checkpointer, state, batch, envelopes, source.name)
                    batch, envelopes, batched = Found(), [], 0
                    self.on_progress(phase, stream.consumed(), total)
            self._commit(checkpointer, state, batch, envelopes, source.name)
            self.on_progress(phase, stream.consumed(), total)
        return tail

    def _next_phase(
        self, checkpointer: Checkpointer, state: dict[str, Any], phase: str
    ) -> dict[str, Any]:
        state.update(phase=phase, offset=0, line=0)
        self._save(checkpointer, state, [], 0)
        return state

    def _stream_block(self, state: dict[str, Any], block: bytes, offset: int) -> Found:
        """Questions first, so answers anywhere in the same block find theirs."""
        line = state["line"]
        found = scan_questions(block, 0, len(block), offset, self.criteria, line)
        for entry in found.kept:
            self._keep_question(state, entry)
        wanted = self._wanted_answers(state)
        found.absorb(scan_replies(block, 0, len(block), offset, "answer", wanted, line), False)
        return package(found, self.criteria.taxonomy)

    def _late(self, checkpointer: Checkpointer, state: dict[str, Any]) -> dict[str, Any]:
        """Answers that came before their question: a second pass up to the last such one."""
        missing = self._incomplete(state)
        next_phase = "comments" if self.comments else "done"
        if not missing:
            return self._next_phase(checkpointer, state, next_phase)
        if not self.posts.rereadable:
            found = Found()
            for key in sorted(missing, key=int):
                offset, count, _ = state["kept"][key]
                found.findings.append(
                    (
                        "answers-not-attached",
                        offset,
                        None,
                        f"question {key} has {count} answers, some before it in the input, "
                        "which stdin cannot go back to: scan the file by its path",
                    )
                )
            state.update(phase=next_phase, offset=0, line=0)
            self._commit(checkpointer, state, found, [], self.posts.name)
            return state
        wanted = self._wanted_answers(state, missing)

        def answers(_state: dict[str, Any], block: bytes, offset: int) -> Found:
            found = scan_replies(block, 0, len(block), offset, "answer", wanted)
            found.findings = []  # reported by the first pass already
            return found

        end = max(state["kept"][key][0] for key in missing)
        self._stream_pass(checkpointer, state, self.posts, "late", answers, until=end)
        return self._next_phase(checkpointer, state, next_phase)

    def _incomplete(self, state: dict[str, Any]) -> set[str]:
        have = Counter(str(q) for q in state["answers"].values())
        answered = set(state["answers"])
        return {
            key
            for key, (_, count, accepted) in state["kept"].items()
            if have[key] < count or (accepted and str(accepted) not in answered)
        }

    # ---- comments ----------------------------------------------------------------------------
    def _comments(self, checkpointer: Checkpointer, state: dict[str, Any]) -> dict[str, Any]:
        assert self.comments is not None
        owner = {int(k): int(k) for k in state["kept"]}
        owner.update({int(k): int(v) for k, v in state["answers"].items()})
        wanted = Wanted(POST_ID, owner)
        source = self.comments
        if source.plain:
            context = {"wanted": wanted}
            return self._run_phase(
                checkpointer, state, source, "comments", context, self._take, "done"
            )
        self._flush(checkpointer, state)

        def comments(state: dict[str, Any], block: bytes, offset: int) -> Found:
            return scan_replies(block, 0, len(block), offset, "comment", wanted, state["line"])

        tail = self._stream_pass(checkpointer, state, source, "comments", comments)
        self._check_tail(tail, state, source.name, "comments")
        return self._next_phase(checkpointer, state, "done")

    # ---- the end of a file ---------------------------------------------------------------
    def _check_end(self, source: DumpSource, state: dict[str, Any], root: str) -> None:
        size = source.size or 0
        with open(source.path, "rb") as handle:
            handle.seek(max(0, size - HEAD_BYTES))
            self._check_tail(handle.read(), state, source.name, root, size)

    def _check_tail(
        self,
        tail: bytes,
        state: dict[str, Any],
        name: str,
        root: str = "posts",
        size: int | None = None,
    ) -> None:
        """A file that does not end with its root's closing tag was cut short."""
        if not tail or tail.rstrip().endswith(b"</" + root.encode() + b">"):
            return
        end = size if size is not None else state["offset"]
        body = tail.rstrip(LINE_END)
        offset = end - (len(tail) - body.rfind(NEWLINE) - 1)
        line = state["line"] if size is None else None
        if line is not None and not tail.endswith(NEWLINE):
            line += 1
        state["finding_counts"]["truncated"] = state["finding_counts"].get("truncated", 0) + 1
        state["findings"].append(
            [
                "truncated",
                offset,
                line,
                f"the file ends before </{root}>: it was cut short; everything before is kept",
                name,
            ]
        )

    # ---- the summary -----------------------------------------------------------------------
    def _summary(self, state: dict[str, Any]) -> ScanSummary:
        findings = _with_lines(state["findings"], self.posts, self.comments)
        answers = len(state["answers"])
        summary = ScanSummary(
            questions=len(state["kept"]),
            answers=answers,
            comments=state["comments"],
            parsed=state["parsed"],
            scanned_bytes=state["scanned"],
            rejected=Counter(state["rejected"]),
            finding_counts=Counter(state["finding_counts"]),
            findings=findings,
        )
        if self.criteria.known is not None:
            seen = {int(k) for k in state["kept"]}
            summary.missing = sorted(int(k) for k in self.criteria.known if int(k) not in seen)
        return summary


def known_questions(store: Store) -> frozenset[bytes]:
    """Ids of the Stack Overflow questions the store has, as the dump writes them."""
    with store.session() as session:
        ids = session.scalars(
            select(Issue.native_id).where(
                Issue.source == "stackoverflow", Issue.origin == STACKOVERFLOW_ORIGIN
            )
        ).all()
    return frozenset(i.encode() for i in ids if i and i.isdigit())


def findings_report(summary: ScanSummary) -> Report:
    """Every kept finding with its file and line, for `Report.write`."""
    report = Report()
    for f in summary.findings:
        report.add(f["kind"], f["file"], f["message"], row=f["line"], value=f["offset"])
    report.counts.update({f"bad input: {k}": n for k, n in summary.finding_counts.items()})
    return report


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


def _identity(source: DumpSource) -> dict[str, Any]:
    if source.path == "-":
        return {"path": "-"}
    return {"path": os.path.abspath(source.path), "size": source.stored_size}


@contextmanager
def _heap_frozen() -> Iterator[None]:
    """Leaves the objects alive when a scan starts (the tokenizer, the ORM and the rest)
    out of the garbage collector's passes while it runs: they outlive it anyway, a full
    pass over them takes about 0.1 s, and in a forked worker it would also copy every page
    they lie on. Nothing is done if some other code already froze objects."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def _warm_tokenizer() -> None:
    # loads spaCy before any worker is forked, so each inherits it instead of loading it
    tokens("warm")


def _with_lines(
    findings: list[list[Any]], posts: DumpSource, comments: DumpSource | None
) -> list[dict[str, Any]]:
    """Findings sorted by place, with line numbers counted now where the scan had none."""
    unresolved: dict[str, list[int]] = {}
    for _kind, offset, line, _message, file in findings:
        if line is None:
            unresolved.setdefault(file, []).append(offset)
    lines: dict[tuple[str, int], int] = {}
    for source in filter(None, [posts, comments]):
        offsets = unresolved.get(source.name)
        if offsets and source.rereadable:
            with open_stream(source) as stream:
                lines.update({(source.name, o): n for o, n in line_numbers(stream, offsets)})
    result = [
        {
            "kind": kind,
            "file": file,
            "line": line if line is not None else lines.get((file, offset)),
            "offset": offset,
            "message": message,
        }
        for kind, offset, line, message, file in findings
    ]
    unique = {(f["file"], f["offset"], f["kind"]): f for f in result}
    return sorted(unique.values(), key=lambda f: (f["file"] != posts.name, f["offset"]))


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
