"""The scans of a buffer (a piece of a mapped file, or a block of a stream): the questions
the criteria keep (`scan_questions`), the answers or comments of wanted posts
(`scan_replies`), and envelopes made of what they found (`package`, `reply_envelopes`).
`run_job` is one piece of one phase, wherever an executor runs it.

Candidate rows are found by byte patterns over the whole buffer; only they are parsed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from issueminer.collect.checkpoints import Envelope
from issueminer.collect.large_text import LargeText, holds_large
from issueminer.collect.selection import NO_ACCEPTED_ANSWER
from issueminer.collect.sodump import streams
from issueminer.collect.sodump.byte_patterns import IdMatcher
from issueminer.collect.sodump.criteria import Criteria
from issueminer.collect.sodump.file_pieces import Piece, _mapping, _prefetch
from issueminer.collect.sodump.large_rows import (
    LARGE_ROW_BYTES,
    TEXT_CUT_FLAG,
    TEXT_LIMIT,
    parse_large_row,
    release_pages,
)
from issueminer.collect.sodump.rows import (
    ACCEPTED_ATTR,
    LINE_END,
    NEWLINE,
    PARENT_ID,
    ROW_ID,
    BadRow,
    _dump_raw,
    api_answer,
    api_comment,
    api_question,
    decision_fields,
    parse_rows,
    reply_envelope,
)
from issueminer.collect.sources.stackexchange import question_envelope
from issueminer.taxonomy import Taxonomy

FoundReply = tuple[int, str, dict[str, Any], dict[str, str], int]
# (question id, kind, API item, dump row, offset): a reply not yet in an envelope


@dataclass
class Found:
    """What one piece or block yielded; offsets are absolute positions in the file."""

    kept: list[dict[str, Any]] = field(default_factory=list)  # see _kept_entry
    replies: list[FoundReply] = field(default_factory=list)
    envelopes: list[Envelope] = field(default_factory=list)  # kept questions, their answers
    # (answer, question, the answer's offset) in them
    attached: list[tuple[int, int, int]] = field(default_factory=list)
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
    rows = _parsed(buf, lines)
    # a line too long to be a row is not parsed (a stream never even holds it whole)
    found.parsed += sum(not _overlong(row) for row in rows)
    good = []
    for (start, _), row in zip(lines, rows, strict=True):
        if isinstance(row, BadRow):
            found.findings.append(_finding(row, buf, base, start, line_base))
        else:
            good.append((base + start, row))
    return good


def _overlong(row: dict[str, Any] | BadRow) -> bool:
    return isinstance(row, BadRow) and row.kind == streams.OVERLONG_LINE


def _parsed(buf: Any, lines: list[tuple[int, int]]) -> list[dict[str, Any] | BadRow]:
    """The rows in buf at these (start, end) places, in order: giant ones read in place
    (`large_rows`), the others copied out and parsed together."""
    if all(end - start <= LARGE_ROW_BYTES for start, end in lines):
        return parse_rows([_row_bytes(buf, a, b) for a, b in lines])
    small = iter(parse_rows([_row_bytes(buf, a, b) for a, b in lines if b - a <= LARGE_ROW_BYTES]))
    rows: list[dict[str, Any] | BadRow] = []
    limit = streams.MAX_LINE_BYTES  # read here, so that a test can set it small
    for start, end in lines:
        if end - start <= LARGE_ROW_BYTES:
            rows.append(next(small))
            continue
        if end - start >= limit:  # refused as a stream refuses it (`streams.LongLine`)
            message = streams.long_line_message(end - start, limit)
            rows.append(BadRow(streams.OVERLONG_LINE, message))
            continue
        try:
            rows.append(parse_large_row(buf, start, end))
        except BadRow as bad:
            rows.append(bad)
    return rows


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
        found.rejected[NO_ACCEPTED_ANSWER] += len(lines) - len(with_accepted)
        lines = with_accepted
    for offset, attrs in _parse_lines(buf, lines, base, found, line_base):
        if attrs.get("PostTypeId") != "1":
            found.rejected["not a question"] += 1
            continue
        try:
            decision = criteria.decide(decision_fields(attrs))
            if decision.kept:
                found.kept.append(_kept_entry(api_question(attrs), attrs, offset))
        except BadRow as bad:
            found.findings.append(_finding(bad, buf, base, offset - base, line_base))
            continue
        if not decision.kept:
            found.rejected[decision.counted_as] += 1
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
    here = {entry["id"] for entry in found.kept}
    own: list[FoundReply] = []
    others: list[FoundReply] = []
    for reply in found.replies:
        (own if reply[1] == "answer" and reply[0] in here else others).append(reply)
    answers = _by_question(own, found.attached)
    for entry in found.kept:  # every copy of an Id met twice: the store picks (payloads)
        mine = answers.get(entry["id"], ([], []))[0]
        question = entry.pop("question")
        body = question.get("body")
        if isinstance(body, LargeText):  # its prose is read already, and it stays bytes
            question = {**question, "body": None}
        envelope = question_envelope(question, [a for a, _ in mine], [], taxonomy)
        _with_body(envelope.issue, body)
        envelope.issue["raw"] = _dump_raw(entry.pop("attrs"))  # the rest: the run's items
        for reply, (_, attrs) in zip(envelope.replies, mine, strict=True):
            reply["raw"] = _dump_raw(attrs)
        found.envelopes.append(envelope)
    found.replies = others
    return found


def _with_body(issue: dict[str, Any], body: Any) -> None:
    """The question's body and its text, which keeps the first TEXT_LIMIT characters of
    the prose (only a giant row has more): cut, it is flagged TEXT_CUT_FLAG."""
    if isinstance(body, LargeText):
        issue.update(body=body, text=body.prose)
        cut = body.prose_cut
    else:
        cut = len(issue.get("text") or "") > TEXT_LIMIT
        if cut:
            issue["text"] = issue["text"][:TEXT_LIMIT]
    if cut:
        issue["flags"] = [TEXT_CUT_FLAG]


Reply = tuple[dict[str, Any], dict[str, str]]  # (API item, dump row)


def _by_question(
    replies: Iterable[FoundReply],
    attached: list[tuple[int, int, int]] | None = None,
) -> dict[int, tuple[list[Reply], list[Reply]]]:
    """Replies by question id, (answers, comments) in file order; each answer also noted
    in `attached` as (answer, question, offset), when given."""
    by_question: dict[int, tuple[list[Reply], list[Reply]]] = {}
    for question_id, kind, item, attrs, offset in replies:
        answers, comments = by_question.setdefault(question_id, ([], []))
        if kind == "answer":
            answers.append((item, attrs))
            if attached is not None:
                attached.append((item["answer_id"], question_id, offset))
        else:
            comments.append((item, attrs))
    return by_question


@dataclass
class Wanted:
    """The posts whose replies a pass collects: post id -> its question, by attribute."""

    attribute: bytes  # PARENT_ID for answers, POST_ID for comments
    owner: dict[int, int]
    accepted: dict[int, int] = field(default_factory=dict)  # question -> accepted answer
    # replies stored already, not read again: their id -> the question they are under
    stored: dict[bytes, int] = field(default_factory=dict)

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
        unstored = []
        for start, end in lines:
            first = wanted.stored.get(_row_id(buf, start, end) or b"")
            if first is None:
                unstored.append((start, end))
                continue
            found.parsed += 1  # parsed, and kept, when it was stored
            parent = _row_value(buf, start, end, wanted.attribute)
            if parent is not None and parent.isdigit() and wanted.owner.get(int(parent)) != first:
                reply_id = int(_row_id(buf, start, end) or 0)
                owner = wanted.owner.get(int(parent), int(parent))
                found.findings.append(duplicate_answer(reply_id, owner, base + start, first))
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
    return _row_value(buf, start, end, ROW_ID)


def _row_value(buf: Any, start: int, end: int, attribute: bytes) -> bytes | None:
    """The value after `attribute` (which ends in its opening quote) in buf[start:end]."""
    at = buf.find(attribute, start, end)
    close = buf.find(b'"', at + len(attribute), end) if at >= 0 else -1
    return bytes(buf[at + len(attribute) : close]) if close >= 0 else None


def duplicate_answer(
    answer_id: int, question_id: int, offset: int, first: int
) -> tuple[str, int, None, str]:
    """The finding of an answer Id met again under another question than its first."""
    return (
        "duplicate-id",
        offset,
        None,
        f"answer {answer_id} again, under question {question_id}: it stays under question "
        f"{first}, where it came first",
    )


Job = tuple[str, str, int, int]  # (phase, path, start, end)


def run_job(job: Job, context: dict[str, Any]) -> Found:
    """One piece of one phase; runs wherever the executor puts it."""
    phase, path, start, end = job
    piece = Piece(start, end)
    buf = _mapping(path)
    _prefetch(buf, piece)
    found = _run_piece(phase, buf, piece, context)
    if any(holds_large(e.issue) or any(map(holds_large, e.replies)) for e in found.envelopes):
        # a giant row kept: its pages, read again by this piece's scans, need not stay
        # mapped while it is stored (the next phase maps them again)
        release_pages(buf, piece.start, piece.end)
    return found


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
