"""The crawl: `DumpCrawler` takes a dump through its phases into the store, with a
checkpoint that a killed scan resumes from.

A plain file goes through the phases `questions` and `answers` in pieces (run by an
executor); a compressed file or stdin through `stream` and `late` in blocks; then, with
--comments, Comments.xml through `comments`, one way or the other. Each phase stores what
it found as envelopes, keeps the question and answer ids it needs later in the run's
items, and counts what it rejected and the bad input it met.
"""

from __future__ import annotations

import gc
import os
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any, BinaryIO

from issueminer.collect.checkpoints import Checkpointer, Envelope
from issueminer.collect.selection import tokens
from issueminer.collect.sodump.commit_policy import ITEM_KINDS, MAX_FINDINGS, _commit_due
from issueminer.collect.sodump.criteria import Criteria
from issueminer.collect.sodump.executors import Executor, SerialExecutor
from issueminer.collect.sodump.file_pieces import Piece, split_pieces
from issueminer.collect.sodump.rows import LINE_END, NEWLINE, PARENT_ID, POST_ID, reply_envelope
from issueminer.collect.sodump.scans import (
    Found,
    Job,
    Wanted,
    _by_question,
    package,
    scan_questions,
    scan_replies,
)
from issueminer.collect.sodump.streams import (
    BLOCK_BYTES,
    HEAD_BYTES,
    DumpSource,
    open_stream,
    stream_blocks,
)
from issueminer.collect.sodump.summary import ScanSummary, _with_lines

PIECE_BYTES = 64 << 20  # unit of work for a worker
TAPER = 4  # the last round of pieces is cut this many times finer (see DumpCrawler._pieces)

ProgressFn = Callable[[str, int, int | None], None]


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
