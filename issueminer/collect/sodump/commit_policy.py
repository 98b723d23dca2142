"""When the scan commits, and what a commit records: the one policy every phase follows.

A commit is one transaction holding the envelopes stored since the last one, the
checkpoint (the scan's state: the phase, the byte offset to go on from, the counts and the
findings so far) and the items kept since (question and answer ids, rows of the run rather
than part of the checkpoint, as they grow with the scan). A killed scan therefore resumes
at the offset and stores nothing twice.

A phase walks its file in parts (pieces an executor scanned, or a stream's blocks) and
commits them in batches: pieces every COMMIT_PIECES (every two rounds while workers look
for questions, see `_commit_due`), a stream's blocks about every piece's worth of bytes.
The last batch of a phase of pieces waits for the next phase's start and is committed
while the workers scan on; a stream's is committed at the end of its pass. Either way the
move to the next phase is committed with or after it, never before.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from issueminer.collect.checkpoints import Checkpointer, Envelope
from issueminer.collect.sodump.scans import Found

COMMIT_PIECES = 8  # pieces per checkpoint at most: each commit costs a few ms
MAX_FINDINGS = 10_000  # findings kept with their place; all are counted
# what the checkpoint state keeps per item, stored as the crawl run's items of this kind
ITEM_KINDS = {"kept": "question", "answers": "answer"}


def fresh_state(size: int | None, phase: str) -> dict[str, Any]:
    """The state of a scan that has not begun: what every checkpoint records."""
    return {
        "size": size,  # the Posts file's stored size: another file starts afresh
        "phase": phase,
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


def _commit_due(phase: str, done: int, batched: int, pieces: int, workers: int) -> bool:
    """Whether to commit after `done` of a phase's `pieces`, `batched` since the last commit.
    The last pieces are left to the next phase (see CommitPolicy.flush)."""
    if done >= pieces or not batched:
        return False
    if phase != "questions" or workers == 1:
        return batched >= COMMIT_PIECES  # the other phases find little, fast
    # with workers, questions are stored two rounds at a time while the workers scan on, so
    # the phase ends with little left to store; but not while each worker has its last
    # piece or two: a commit could outlast them and keep them waiting for the answers
    # phase, whose start commits those pieces instead, while the workers scan
    return batched >= min(2 * workers, COMMIT_PIECES) and pieces - done > 2 * workers


@dataclass
class Batch:
    """What a phase took from its file since its last commit."""

    file: str = ""  # the file's name, which the findings are reported with
    found: Found = field(default_factory=Found)
    envelopes: list[Envelope] = field(default_factory=list)
    parts: int = 0
    size: int = 0  # bytes of the file the parts cover

    def add(self, envelopes: list[Envelope], found: Found, size: int, scanned: bool) -> None:
        """One more part; `scanned=False` when its bytes were counted by an earlier phase."""
        self.envelopes += envelopes
        self.found.absorb(found, scanned)
        self.parts += 1
        self.size += size


class CommitPolicy:
    """When the scan commits (`due`, `end_pass`, `flush`, `move_on`), and what a commit
    records (`commit`, with the items noted by `keep_question` and `keep_answer`).

    `state` is the scan's state, resumed from the checkpointer's last checkpoint when it
    was written for the same Posts file, else `fresh`.
    """

    def __init__(
        self, checkpointer: Checkpointer, fresh: dict[str, Any], workers: int, piece_bytes: int
    ) -> None:
        self.checkpointer = checkpointer
        self.workers = workers
        self.piece_bytes = piece_bytes
        self.new_items: list[tuple[str, str, Any]] = []  # kept since the last commit
        self.pending: Batch | None = None  # a phase's last pieces, see `flush`
        state = dict(checkpointer.checkpoint)
        if not state or state.get("size") != fresh["size"]:
            checkpointer.clear_items()
            state = fresh
        else:
            state = self._with_items(state)
        self.state = state

    def _with_items(self, state: dict[str, Any]) -> dict[str, Any]:
        """A resumed checkpoint with its kept items: from the run's items, or from the
        checkpoint itself when it was written before items were (the next commit moves them
        into the run's items)."""
        for name, kind in ITEM_KINDS.items():
            if name in state:
                self.new_items += [(kind, k, v) for k, v in state[name].items()]
            else:
                state[name] = self.checkpointer.items(kind)
        return state

    # ---- what a commit records -----------------------------------------------------------
    def keep_question(self, entry: dict[str, Any]) -> None:
        key = str(entry["id"])
        kept = self.state["kept"]
        if key not in kept:
            kept[key] = item = [entry["offset"], entry["answer_count"], entry["accepted"]]
            self.new_items.append((ITEM_KINDS["kept"], key, item))

    def keep_answer(self, answer_id: int, question_id: int) -> bool:
        """Note an answer attached to its question; False if it was already."""
        key = str(answer_id)
        answers = self.state["answers"]
        if key in answers:
            return False
        answers[key] = question_id
        self.new_items.append((ITEM_KINDS["answers"], key, question_id))
        return True

    def commit(self, batch: Batch) -> None:
        """Store the batch's envelopes with the checkpoint, its counts and findings added,
        and the items kept since the last commit. The checkpoint leaves out the kept items:
        a commit writes only the new ones (`Checkpointer.items` reads them back)."""
        state, found = self.state, batch.found
        state["parsed"] += found.parsed
        state["scanned"] += found.scanned
        rejected = Counter(state["rejected"])
        rejected.update(found.rejected)
        state["rejected"] = dict(rejected)
        counts = Counter(state["finding_counts"])
        for kind, offset, line, message in found.findings:
            counts[kind] += 1
            if len(state["findings"]) < MAX_FINDINGS:
                state["findings"].append([kind, offset, line, message, batch.file])
        state["finding_counts"] = dict(counts)
        checkpoint = {k: v for k, v in state.items() if k not in ITEM_KINDS}
        self.checkpointer.commit_page(
            batch.envelopes, checkpoint, seen=found.parsed, items=self.new_items
        )
        self.new_items = []

    # ---- when ----------------------------------------------------------------------------
    def due(self, phase: str, batch: Batch, done: int, pieces: int | None) -> bool:
        """Whether to commit the batch now, `done` parts into a phase of `pieces` pieces, or
        of a stream's blocks (None): a commit costs a few ms, a block or piece more."""
        if pieces is None:
            return batch.size >= self.piece_bytes
        return _commit_due(phase, done, batch.parts, pieces, self.workers)

    def end_pass(self, batch: Batch, pieces: int | None) -> bool:
        """The phase's last batch: committed now after a stream's blocks (True), or left to
        the next phase's start after pieces, so that it is stored while the workers begin
        on that phase (False)."""
        if pieces is not None:
            self.pending = batch
            return False
        self.commit(batch)
        return True

    def flush(self) -> None:
        """Commit the last pieces of the phase before, and the move to this one. Not lost
        if the scan stops first: the checkpoint then says to scan those pieces again."""
        if self.pending is not None:
            batch, self.pending = self.pending, None
            self.commit(batch)

    def move_on(self, phase: str, batch: Batch | None = None) -> None:
        """Go on to `phase`, from the start of its file: committed now, unless the last
        pieces of this phase wait for the next one's start, which commits the move with
        them. `batch` (what a phase found without reading) is committed with the move."""
        self.state.update(phase=phase, offset=0, line=0)
        if batch is not None:
            self.flush()  # the move is never committed before what came ahead of it
            self.commit(batch)
        elif self.pending is None:
            self.commit(Batch())
