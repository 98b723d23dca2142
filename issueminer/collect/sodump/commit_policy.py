"""When the scan commits: how many pieces of a phase are stored in one transaction, with
the checkpoint that says where a killed scan goes on from.
"""

from __future__ import annotations

COMMIT_PIECES = 8  # pieces per checkpoint at most: each commit costs a few ms
MAX_FINDINGS = 10_000  # findings kept with their place; all are counted
# what the checkpoint state keeps per item, stored as the crawl run's items of this kind
ITEM_KINDS = {"kept": "question", "answers": "answer"}


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
