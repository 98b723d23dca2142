"""The crawl: `DumpCrawler` takes a dump through its phases into the store, with a
checkpoint that a killed scan resumes from.

A plain file goes through the phases `questions` and `answers` in pieces (run by an
executor); a compressed file or stdin through `stream` and `late` in blocks; then, with
--comments, Comments.xml through `comments`, one way or the other. Every phase is one
walk through its file in parts, in one loop (`DumpCrawler._walk`): each part's envelopes
are stored, the question and answer ids it kept noted, its rejections and bad input
counted, and the batch committed as `commit_policy.CommitPolicy` says. The phases differ
only in what they scan and how their parts come: pieces from an executor (`_ranges`), or
blocks of a stream scanned here (`_blocks`).
"""

from __future__ import annotations

import gc
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any, BinaryIO, NamedTuple

from issueminer.collect.checkpoints import Checkpointer, Envelope
from issueminer.collect.selection import tokens
from issueminer.collect.sodump.commit_policy import Batch, CommitPolicy, fresh_state
from issueminer.collect.sodump.criteria import Criteria
from issueminer.collect.sodump.executors import Executor, SerialExecutor
from issueminer.collect.sodump.file_pieces import Piece, split_pieces
from issueminer.collect.sodump.input_identity import (
    CHECKSUMS_CHECKED,
    file_identity,
    prefix_hash,
    stdin_identity,
)
from issueminer.collect.sodump.rows import LINE_END, NEWLINE, PARENT_ID, POST_ID, reply_envelope
from issueminer.collect.sodump.scans import (
    Found,
    Job,
    Wanted,
    _by_question,
    duplicate_answer,
    package,
    scan_questions,
    scan_replies,
)
from issueminer.collect.sodump.streams import (
    BLOCK_BYTES,
    HEAD_BYTES,
    OVERLONG_LINE,
    ROW_START,
    DamagedStream,
    DumpSource,
    LongLine,
    declaration_in,
    open_stream,
    stream_blocks,
)
from issueminer.collect.sodump.summary import ScanSummary, summarize

PIECE_BYTES = 64 << 20  # unit of work for a worker
TAPER = 4  # the last round of pieces is cut this many times finer (see DumpCrawler._pieces)
# the phases whose bytes count as scanned: each file's first reading of Posts.xml
FIRST_READS = ("questions", "stream")

ProgressFn = Callable[[str, int, int | None], None]
BlockScan = Callable[[bytes, int], Found]  # (block, its offset in the file) -> what it holds


class Part(NamedTuple):
    """One piece or block of a phase, scanned."""

    end: int  # where it ends in the file: the offset a resumed phase goes on from
    found: Found
    size: int  # bytes
    lines: int | None  # newlines in it, where the phase counts lines (a stream)
    digest: str | None = None  # stdin: the digest of every byte up to `end`


@dataclass
class Walk:
    """A phase's way through its file: the parts in file order, and how far it has come."""

    phase: str
    source: DumpSource
    parts: Iterable[Part]
    pieces: int | None  # how many parts, when they are pieces; None for a stream's blocks
    position: Callable[[], int]  # how far it has read, as its progress counts
    total: int | None  # ... out of


class DumpCrawler:
    """Scans Posts.xml (and optionally Comments.xml) into the store through a Checkpointer.

    The checkpoint holds the phase, the byte offset to go on from and the findings so far;
    the kept questions and attached answers are rows of the run. Both are committed
    together with the envelopes of the parts before that offset (see `CommitPolicy`), so a
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
        self._stdin_identity: dict[str, Any] = {}
        if posts.kind == "stdin":  # named by its first bytes, read ahead and given back
            self.stdin, self._stdin_identity = stdin_identity(stdin or sys.stdin.buffer)
        self.block_bytes = min(BLOCK_BYTES, piece_bytes)  # a stream commits per piece too
        self._answers_of: Wanted | None = None
        self._duplicates_told: set[int] = set()  # offsets of the copies reported
        self.commits: CommitPolicy  # set by `run`
        self.state: dict[str, Any]  # the scan's state: `commits.state`

    def query(self) -> dict[str, Any]:
        return {
            "posts": self._stdin_identity or _identity(self.posts),
            "comments": _identity(self.comments) if self.comments else None,
            **self.criteria.query(),
        }

    def run(self, checkpointer: Checkpointer) -> ScanSummary:
        fresh = fresh_state(self.posts.stored_size, "questions" if self.posts.plain else "stream")
        self.commits = CommitPolicy(checkpointer, fresh, self.executor.workers, self.piece_bytes)
        self.state = self.commits.state
        if self.posts.kind == "gzip":  # opened, so checked: a resumed scan need not again
            self.state[CHECKSUMS_CHECKED] = True
        phases: dict[str, Callable[[], None]] = {
            "questions": self._questions,
            "answers": self._answers,
            "stream": self._stream,
            "late": self._late,
            "comments": self._comments,
        }
        try:
            with _heap_frozen():
                while self.state["phase"] != "done":
                    phases[self.state["phase"]]()
                self.executor.release()  # its workers wind down while the last is stored
                self.commits.flush()
        finally:
            if self.own_executor:
                self.executor.close()
        return summarize(self.state, self.posts, self.comments, self.criteria.known)

    # ---- the phases: what each one scans ---------------------------------------------------
    def _questions(self) -> None:
        _warm_tokenizer()
        context = {"criteria": self.criteria}
        self._ranges(self.posts, "questions", context, "answers", root="posts")

    def _answers(self) -> None:
        stored = {answer.encode(): int(q) for answer, q in self.state["answers"].items()}
        context = {"wanted": replace(self._wanted_answers(), stored=stored)}
        self._ranges(self.posts, "answers", context, self._after_posts())

    def _stream(self) -> None:
        _warm_tokenizer()
        self._blocks(self.posts, "stream", self._stream_block, "late", root="posts")

    def _stream_block(self, block: bytes, offset: int) -> Found:
        """Questions first, so answers anywhere in the same block find theirs."""
        line = self.state["line"]
        found = scan_questions(block, 0, len(block), offset, self.criteria, line)
        for entry in found.kept:
            self.commits.keep_question(entry)
        wanted = self._wanted_answers()
        found.absorb(scan_replies(block, 0, len(block), offset, "answer", wanted, line), False)
        return package(found, self.criteria.taxonomy)

    def _late(self) -> None:
        """Answers that came before their question: a second pass up to the last such one."""
        missing = self._incomplete()
        next_phase = self._after_posts()
        if not missing:
            self.commits.move_on(next_phase)
            return
        kept = self.state["kept"]
        if not self.posts.rereadable:
            found = Found()
            where = "before it in the input, which stdin cannot go back to"
            if self.state["finding_counts"].get("damaged"):
                where = f"in the damaged part or {where}"
            for key in sorted(missing, key=int):
                offset, count, _ = kept[key]
                found.findings.append(
                    (
                        "answers-not-attached",
                        offset,
                        None,
                        f"question {key} has {count} answers, some {where}: "
                        "scan the file by its path",
                    )
                )
            self.commits.move_on(next_phase, Batch(self.posts.name, found))
            return
        wanted = self._wanted_answers(missing)

        def answers(block: bytes, offset: int) -> Found:
            found = scan_replies(block, 0, len(block), offset, "answer", wanted)
            found.findings = []  # reported by the first pass already
            return found

        end = max(kept[key][0] for key in missing)
        self._blocks(self.posts, "late", answers, next_phase, until=end)

    def _comments(self) -> None:
        assert self.comments is not None
        owner = {int(k): int(k) for k in self.state["kept"]}
        owner.update({int(k): int(v) for k, v in self.state["answers"].items()})
        wanted = Wanted(POST_ID, owner)
        source = self.comments
        if source.plain:
            self._ranges(source, "comments", {"wanted": wanted}, "done", root="comments")
            return

        def comments(block: bytes, offset: int) -> Found:
            line = self.state["line"]
            return scan_replies(block, 0, len(block), offset, "comment", wanted, line)

        self._blocks(source, "comments", comments, "done", root="comments")

    def _after_posts(self) -> str:
        return "comments" if self.comments else "done"

    # ---- the parts of a phase: pieces or blocks ---------------------------------------------
    def _ranges(
        self,
        source: DumpSource,
        phase: str,
        context: dict[str, Any],
        next_phase: str,
        root: str | None = None,
    ) -> None:
        """A phase over a plain file's pieces from the checkpoint's offset, run by the
        executor; `root`, the element whose end tag must end the file, when this phase is
        the first to read it to its end."""
        state = self.state
        pieces = self._pieces(source, state["offset"])
        jobs: list[Job] = [(phase, source.path, p.start, p.end) for p in pieces]
        self.on_progress(phase, state["offset"], source.size)
        # the questions phase shares pieces out as workers come free; answers follow it (the
        # same pieces of the same file); comments are another file
        affinity = self.executor.owners if phase == "answers" else None
        results = self.executor.map(jobs, context, affinity)
        if next_phase == "done":
            self.executor.release()  # no job follows: workers exit as soon as theirs are done
        self.commits.flush()  # while workers, if any, start on this phase
        parts = (
            Part(piece.end, found, piece.end - piece.start, None)
            for piece, found in zip(pieces, results, strict=True)
        )
        self._walk(Walk(phase, source, parts, len(pieces), lambda: state["offset"], source.size))
        if root is not None:
            self._check_end(source, root)
        self.commits.move_on(next_phase)

    def _blocks(
        self,
        source: DumpSource,
        phase: str,
        scan: BlockScan,
        next_phase: str,
        root: str | None = None,
        until: int | None = None,
    ) -> None:
        """A phase over a stream's blocks from the checkpoint's offset (up to `until`),
        each scanned here as it is read; `root` as for `_ranges`.

        A stream damaged part way ends the phase at the last whole line before the damage:
        everything before is stored, and the damage is reported where it begins. The head
        of a stream not checked when it was opened (stdin) is checked here."""
        state = self.state
        self.commits.flush()
        total = source.stored_size if source.kind == "gzip" else source.size
        tail = b""  # the last bytes read, for the check that the file is whole
        damage: DamagedStream | None = None
        rows = root is None or state["offset"] > 0  # whether a row was met
        # stdin cannot be read again: its checkpoint keeps the digest of what it covers
        digest = prefix_hash() if source.kind == "stdin" and phase == "stream" else None
        with open_stream(source, self.stdin) as stream:

            def parts() -> Iterator[Part]:
                nonlocal tail, damage, rows
                blocks = stream_blocks(
                    stream, state["offset"], self.block_bytes, digest, state.get("prefix")
                )
                try:
                    for offset, block in blocks:
                        if until is not None and offset >= until:
                            break
                        if isinstance(block, LongLine):
                            yield self._long_line(offset, block, root is not None, digest)
                            continue
                        tail = (tail + block[-HEAD_BYTES:])[-HEAD_BYTES:]  # not the whole block
                        found = scan(block, offset)  # `_walk` then counts its lines
                        if not rows:  # the file's first block, or first with rows
                            rows = ROW_START in block
                            found.findings += _head_findings(block, offset, root)
                        size, lines = len(block), block.count(NEWLINE)
                        del block  # freed before what it held is stored (a giant row)
                        yield Part(
                            offset + size,
                            found,
                            size,
                            lines,
                            digest.hexdigest() if digest is not None else None,
                        )
                except DamagedStream as exc:
                    damage = exc

            self._walk(Walk(phase, source, parts(), None, stream.consumed, total))
        if damage is not None and root is not None:  # a later pass met it again: reported
            offset, line = state["offset"], state["line"] + 1
            self._file_finding(
                "damaged",
                offset,
                line,
                f"{damage.reason}: the data ends at byte {offset} (line {line}) of the "
                "decompressed file; everything before is kept, the rest cannot be read",
                source.name,
            )
        elif root is not None and damage is None:
            if not rows:
                self._file_finding("no-rows", 0, 1, f"no rows: nothing but <{root}>", source.name)
            self._check_tail(tail, source.name, root)
        self.commits.move_on(next_phase)

    def _long_line(self, offset: int, line: LongLine, first_read: bool, digest: Any) -> Part:
        """A stream's line too long to be a row, read past: bad input where it starts
        (told by the phase that first reads the file), and nothing of it stored."""
        found = Found(scanned=line.size)
        if first_read:
            finding = (OVERLONG_LINE, offset, self.state["line"] + 1, line.message)
            found.findings.append(finding)
        return Part(
            offset + line.size,
            found,
            line.size,
            int(line.ended),
            digest.hexdigest() if digest is not None else None,
        )

    def _walk(self, walk: Walk) -> None:
        """The one loop of every phase: each part's envelopes are stored and what it kept
        noted, and the parts are committed in batches as the commit policy says, the
        offset to go on from with them. Progress is reported for every piece (they come
        in as workers finish them), and for a stream as it commits."""
        state, commits = self.state, self.commits
        counted = walk.phase in FIRST_READS  # each file's bytes are counted once
        batch = Batch(walk.source.name)
        for done, part in enumerate(walk.parts, 1):
            batch.add(self._take(part.found), part.found, part.size, counted)
            state["offset"] = part.end
            if part.digest is not None:
                state["prefix"] = part.digest
            if part.lines is not None:
                state["line"] += part.lines
            committed = commits.due(walk.phase, batch, done, walk.pieces)
            if committed:
                commits.commit(batch)
                batch = Batch(walk.source.name)
            if committed or walk.pieces is not None:
                self.on_progress(walk.phase, walk.position(), walk.total)
        if commits.end_pass(batch, walk.pieces):
            self.on_progress(walk.phase, walk.position(), walk.total)

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

    # ---- what a part found, taken into the scan -------------------------------------------
    def _take(self, found: Found) -> list[Envelope]:
        """Note what a part kept and attached; returns the envelopes to store with it.

        Parts come in file order whatever the number of workers, so a post Id met twice is
        decided alike by any of them, and reported: a question's copies are all stored, in
        file order, as payloads of one question (the one with the later LastActivityDate
        stands, the later copy on a tie); an answer stays under the question it came with
        first, and a copy under another question is not stored."""
        kept = self.state["kept"]
        for entry in found.kept:
            first = kept.get(str(entry["id"]))
            if first is not None and first[0] != entry["offset"]:
                found.findings.append(_duplicate_question(entry, first[0]))
            self.commits.keep_question(entry)
        elsewhere: set[tuple[int, int]] = set()
        for answer_id, question_id, offset in found.attached:
            first = self.state["answers"].get(str(answer_id))
            if first is not None and int(first) != question_id:
                found.findings.append(duplicate_answer(answer_id, question_id, offset, first))
                elsewhere.add((answer_id, question_id))
            else:
                self.commits.keep_answer(answer_id, question_id)
        envelopes = [_without(e, elsewhere) for e in found.envelopes] + self._attach(found)
        # a copy is met by more than one phase (beside its question, then again as stored)
        found.findings = [f for f in found.findings if self._first_telling(f)]
        return envelopes

    def _first_telling(self, finding: tuple[str, int, int | None, str]) -> bool:
        """False for a duplicate Id already reported (by its offset)."""
        if finding[0] != "duplicate-id":
            return True
        if finding[1] in self._duplicates_told:
            return False
        self._duplicates_told.add(finding[1])
        return True

    def _attach(self, found: Found) -> list[Envelope]:
        new = []
        for reply in found.replies:
            question_id, kind, item, _, offset = reply
            if kind == "answer" and not self.commits.keep_answer(item["answer_id"], question_id):
                first = int(self.state["answers"][str(item["answer_id"])])
                if first != question_id:  # not the second pass meeting it again: a copy
                    found.findings.append(
                        duplicate_answer(item["answer_id"], question_id, offset, first)
                    )
                continue
            self.state["comments"] += kind != "answer"
            new.append(reply)
        by_question = _by_question(new)  # keep_answer noted the answers
        return [reply_envelope(q, a, c) for q, (a, c) in sorted(by_question.items())]

    def _wanted_answers(self, only: set[str] | None = None) -> Wanted:
        kept = self.state["kept"]
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

    def _incomplete(self) -> set[str]:
        """The kept questions whose answers the stream has not all met."""
        answers = self.state["answers"]
        have = Counter(str(q) for q in answers.values())
        return {
            key
            for key, (_, count, accepted) in self.state["kept"].items()
            if have[key] < count or (accepted and str(accepted) not in answers)
        }

    # ---- the end of a file ---------------------------------------------------------------
    def _check_end(self, source: DumpSource, root: str) -> None:
        size = source.size or 0
        with open(source.path, "rb") as handle:
            handle.seek(max(0, size - HEAD_BYTES))
            self._check_tail(handle.read(), source.name, root, size)

    def _check_tail(self, tail: bytes, name: str, root: str, size: int | None = None) -> None:
        """A file that does not end with its root's closing tag was cut short."""
        if not tail or tail.rstrip().endswith(b"</" + root.encode() + b">"):
            return
        state = self.state
        end = size if size is not None else state["offset"]
        body = tail.rstrip(LINE_END)
        offset = end - (len(tail) - body.rfind(NEWLINE) - 1)
        line = state["line"] if size is None else None
        if line is not None and not tail.endswith(NEWLINE):
            line += 1
        message = f"the file ends before </{root}>: it was cut short; everything before is kept"
        self._file_finding("truncated", offset, line, message, name)

    def _file_finding(
        self, kind: str, offset: int, line: int | None, message: str, name: str
    ) -> None:
        """Bad input of the file as a whole (its end, its damage), committed with the move
        to the next phase; one a file, so kept whatever the findings' cap."""
        state = self.state
        state["finding_counts"][kind] = state["finding_counts"].get(kind, 0) + 1
        state["findings"].append([kind, offset, line, message, name])


def _duplicate_question(entry: dict[str, Any], first: int) -> tuple[str, int, None, str]:
    return (
        "duplicate-id",
        entry["offset"],
        None,
        f"question {entry['id']} again (first at byte {first}): both copies are read, and "
        "the one last active stands (the later copy on a tie)",
    )


def _without(envelope: Envelope, elsewhere: set[tuple[int, int]]) -> Envelope:
    """The envelope without the answers that belong to another question (`elsewhere`)."""
    if not elsewhere:
        return envelope
    question_id = int(envelope.issue["native_id"])
    replies = [
        r
        for r in envelope.replies
        if not (
            r["kind"] == "answer"
            and (int(r["native_id"].removeprefix("answer:")), question_id) in elsewhere
        )
    ]
    return Envelope(envelope.issue, replies)


def _head_findings(
    block: bytes, offset: int, root: str | None
) -> list[tuple[str, int, int | None, str]]:
    """A DOCTYPE or entity declaration in a stream's head (a file's is refused on opening)."""
    if offset or root is None:
        return []
    declaration = declaration_in(block[:HEAD_BYTES], root)
    if declaration is None:
        return []
    at, line, message = declaration
    return [("dtd-declaration", at, line, message)]


def _identity(source: DumpSource) -> dict[str, Any]:
    """A file by its content, not its name (see `input_identity`)."""
    return file_identity(source.path, source.member)


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
