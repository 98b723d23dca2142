"""Crawl runs: what was asked, how far it got, and page-by-page commits that make it resumable.

Every page a crawler fetches is stored in one transaction together with the run's new
checkpoint. A crawl killed at any moment (even with SIGKILL) therefore leaves either the
page and its checkpoint or neither, and the next run of the same query resumes from the
last committed checkpoint. Issues are upserted by uid, so nothing is stored twice.
"""

from __future__ import annotations

import hashlib
import json
import signal
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from issueminer.collect.ingest import insert_many, upsert_issues, upsert_replies
from issueminer.collect.payloads import apply_payloads
from issueminer.collect.sources.unaccepted import summary as waiting_summary
from issueminer.store import CrawlItem, CrawlRun, Issue, Store
from issueminer.store.schema import utcnow

RESUMABLE = ("running", "interrupted", "quota")  # states a later run picks up


@contextmanager
def ctrl_c_after_commit() -> Iterator[None]:
    """Holds a Ctrl-C that comes during a commit until the commit is done. Raised inside
    it, the interrupt can leave the connection with its transaction open, and the database
    locked for the run's "interrupted" status written just after."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread receives Python's signal handlers
        return
    held: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if held:  # the commit is done: now the interrupt, as it would have come
        if callable(previous):
            previous(signal.SIGINT, None)
        elif previous != signal.SIG_IGN:
            raise KeyboardInterrupt


@dataclass
class Envelope:
    """One issue as every source yields it: store fields (raw item under `raw`) and replies."""

    issue: dict[str, Any]
    replies: list[dict[str, Any]] = field(default_factory=list)


def query_key(source: str, query: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([source, query], sort_keys=True).encode()).hexdigest()


class QuotaExhausted(Exception):
    """The API allows no more requests for now; `resume_at` says when it will."""

    def __init__(self, message: str, resume_at: datetime | None = None) -> None:
        super().__init__(message)
        self.resume_at = resume_at


class Checkpointer:
    """The crawl_run row of one crawl: resume state in, page commits out."""

    def __init__(self, store: Store, source: str, query: dict[str, Any]) -> None:
        self.store = store
        self.source = source
        self.query = query
        self.key = query_key(source, query)
        with store.session() as session:
            unfinished = session.scalar(
                select(CrawlRun)
                .where(CrawlRun.query_key == self.key, CrawlRun.status.in_(RESUMABLE))
                .order_by(CrawlRun.id.desc())
            )
            finished = session.scalar(
                select(CrawlRun)
                .where(CrawlRun.query_key == self.key, CrawlRun.status == "done")
                .order_by(CrawlRun.id.desc())
            )
            self.previous: dict[str, Any] | None = dict(finished.checkpoint) if finished else None
            if unfinished is not None:
                self.resumed = True
                run = unfinished
                run.status = "running"
            else:
                self.resumed = False
                run = CrawlRun(source=source, query=query, query_key=self.key, checkpoint={})
                session.add(run)
                session.flush()
            self.run_id = run.id
            self.checkpoint: dict[str, Any] = dict(run.checkpoint or {})
            self.items_seen = run.items_seen
            self.items_stored = run.items_stored

    @property
    def found_by(self) -> str:
        return f"crawl:{self.source}#{self.run_id}"

    def commit_page(
        self,
        envelopes: Iterable[Envelope],
        checkpoint: dict[str, Any],
        seen: int,
        issue_updates: list[dict[str, Any]] | None = None,
        items: Iterable[tuple[str, str, Any]] = (),
    ) -> int:
        """Store a page's issues and the checkpoint after it, atomically.

        `issue_updates` (partial issue records, e.g. flags) and new `items` (kind, key,
        value: see `items`) are written in the same transaction. Returns how many issues
        were new or changed; a re-read of an unchanged issue (the boundary item of keyset
        paging, an overlapping search) does not count.
        """
        envelopes = list(envelopes)
        written = 0
        with ctrl_c_after_commit(), self.store.session() as session:
            if envelopes:
                records = [{**e.issue, "found_by": self.found_by} for e in envelopes]
                # a whole item from the source is its newest payload; a bare uid (a dump's
                # late answers) only names the issue its replies belong to
                payloads = [r for r in records if "raw" in r]
                counts = apply_payloads(session, payloads)
                counts += upsert_issues(session, [r for r in records if "raw" not in r])
                written = counts["added"] + counts["updated"]
                replies: dict[str, list[dict[str, Any]]] = {}
                for envelope in envelopes:  # an issue may come twice in one batch
                    replies.setdefault(envelope.issue["uid"], []).extend(envelope.replies)
                upsert_replies(session, replies)
            if issue_updates:
                upsert_issues(session, issue_updates)
            rows = [{"run_id": self.run_id, "kind": k, "key": n, "value": v} for k, n, v in items]
            if rows:
                insert_many(session, CrawlItem, rows)
            run = session.get(CrawlRun, self.run_id)
            run.checkpoint = checkpoint
            run.items_seen += seen
            run.items_stored += written
            self.items_seen, self.items_stored = run.items_seen, run.items_stored
        self.checkpoint = checkpoint
        return written

    def stored(self, uids: list[str]) -> set[str]:
        """Which of these issues the store holds."""
        if not uids:
            return set()
        with self.store.session() as session:
            return set(session.scalars(select(Issue.uid).where(Issue.uid.in_(uids))))

    def items(self, kind: str) -> dict[str, Any]:
        """The items of one kind this run has committed so far, by key."""
        with self.store.session() as session:
            found = session.execute(
                select(CrawlItem.key, CrawlItem.value).where(
                    CrawlItem.run_id == self.run_id, CrawlItem.kind == kind
                )
            )
            return {key: value for key, value in found}

    def clear_items(self) -> None:
        """Forget the run's items (a resumed run that has to start over)."""
        with self.store.session() as session:
            session.execute(delete(CrawlItem).where(CrawlItem.run_id == self.run_id))

    def note(self, **facts: Any) -> None:
        """Record facts about the API (quota, rate limit) beside the checkpoint."""
        with self.store.session() as session:
            run = session.get(CrawlRun, self.run_id)
            run.checkpoint = {**run.checkpoint, **facts}
            self.checkpoint = dict(run.checkpoint)

    def finish(self, status: str = "done", message: str | None = None) -> None:
        with ctrl_c_after_commit(), self.store.session() as session:
            run = session.get(CrawlRun, self.run_id)
            run.status = status
            run.message = message
            if status == "done":
                run.finished_at = utcnow()


def crawl_status(store: Store) -> list[dict[str, Any]]:
    """Every crawl run: what it asked, how far it got, and where it would resume."""
    with store.session() as session:
        runs = session.scalars(select(CrawlRun).order_by(CrawlRun.id)).all()
        return [
            {
                "id": run.id,
                "source": run.source,
                "query": run.query,
                "status": run.status,
                "items_seen": run.items_seen,
                "items_stored": run.items_stored,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "checkpoint": run.checkpoint,
                # what the run found wrong but went past (a repository the search refuses,
                # a search that stayed incomplete), each with a message saying so
                "findings": list((run.checkpoint or {}).get("findings") or []),
                "message": run.message,
            }
            for run in runs
        ]


def limit_left(checkpoint: dict[str, Any]) -> str:
    """What a run's API had left when it last said: GitHub's limits by resource (core,
    search), else Stack Exchange's daily quota or the one rate GitHub reported."""
    limits = checkpoint.get("limits") or {}
    if limits:
        return ", ".join(f"{name} {left}" for name, left in sorted(limits.items()))
    left = checkpoint.get("quota_remaining", checkpoint.get("rate_remaining"))
    return str(left) if left is not None else "?"


def status_lines(run: dict[str, Any]) -> list[str]:
    """One run of `crawl_status` for reading (`crawl status`): counts and limit, where each
    tag or query would resume, the questions waiting for an accepted answer, findings."""
    checkpoint = run["checkpoint"] or {}
    lines = [
        f"#{run['id']} {run['source']} [{run['status']}] seen {run['items_seen']} "
        f"stored {run['items_stored']} limit left {limit_left(checkpoint)}"
    ]
    if run["source"] == "so-dump" and checkpoint.get("phase") not in (None, "done"):
        lines.append(f"    phase {checkpoint['phase']} from byte {checkpoint.get('offset', 0)}")
    for name, state in (checkpoint.get("tags") or {}).items():
        resume = "done" if state.get("done") else f"from {_when(state.get('cursor'))}"
        lines.append(f"    tag {name}: {resume}")
    if "waiting" in checkpoint and (run.get("query") or {}).get("accepted_answer"):
        figures = waiting_summary(checkpoint)
        lines.append(
            f"    waiting for an accepted answer: {figures['waiting_for_acceptance']} "
            f"(this run rechecked {figures['rechecked']}, kept {figures['kept_on_recheck']}, "
            f"gave up on {figures['given_up']})"
        )
    for name, state in (checkpoint.get("queries") or {}).items():
        windows = state.get("windows") or []
        if windows:
            resume = f"window {windows[0][0]}..{windows[0][1]} page {state.get('page')}"
        elif state.get("skipped"):
            resume = "skipped (the search refuses the repository)"
        else:
            resume = "done"
        lines.append(f"    {name}: {resume}")
    lines += [f"    finding: {finding['message']}" for finding in run["findings"]]
    if run["message"]:
        lines.append(f"    {run['message']}")
    return lines


def _when(timestamp: Any) -> str:
    if not timestamp:
        return "the beginning"
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
