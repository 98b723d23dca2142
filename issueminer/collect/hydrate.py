"""Fill in the text of issues known only by URL (for example from a replication package).

The work list is the store itself: every issue with a URL and no text yet, minus those a
source already said it does not have. Each batch is committed with its results, so a
killed run simply continues with what is still missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import select

from issueminer.collect.checkpoints import Checkpointer, Envelope
from issueminer.collect.payloads import MISSING_FLAG
from issueminer.collect.sources.github import GitHubCrawler
from issueminer.collect.sources.stackexchange import IDS_PER_CALL, StackOverflowCrawler
from issueminer.ids import GITHUB_HOST
from issueminer.store import Issue, Store


@dataclass
class HydrateResult:
    filled: int = 0
    missing: list[dict[str, str]] = field(default_factory=list)  # url and why

    def as_dict(self) -> dict[str, Any]:
        return {"filled": self.filled, "missing": self.missing}


class Pending(NamedTuple):
    uid: str
    url: str
    origin: str  # site or repository URL
    native_id: str  # question id or issue number


def pending(store: Store, source: str, retry_missing: bool = False) -> list[Pending]:
    """The issues of `source` that have a URL but no text yet (the work list)."""
    with store.session() as session:
        rows = session.execute(
            select(Issue.uid, Issue.url, Issue.origin, Issue.native_id, Issue.flags)
            .where(Issue.source == source, Issue.url.is_not(None), Issue.text.is_(None))
            .order_by(Issue.origin, Issue.native_id)
        ).all()
    return [
        Pending(uid, url, origin, native)
        for uid, url, origin, native, flags in rows
        if retry_missing or MISSING_FLAG not in (flags or [])
    ]


def _missing_records(items: list[Pending], reason: str) -> list[dict[str, Any]]:
    return [
        {"uid": item.uid, "flags": [MISSING_FLAG, f"{MISSING_FLAG}:{reason}"]} for item in items
    ]


def hydrate_stackoverflow(
    store: Store,
    crawler: StackOverflowCrawler,
    checkpointer: Checkpointer,
    result: HydrateResult,
    on_batch: Callable[[int], None],
    work: list[Pending],
) -> None:
    """Fill in `work` (`pending(store, "stackoverflow")`), IDS_PER_CALL questions a call."""
    for start in range(0, len(work), IDS_PER_CALL):
        batch = work[start : start + IDS_PER_CALL]
        envelopes, missing_ids = crawler.hydrate([item.native_id for item in batch])
        missing_set = set(missing_ids)
        missing = [item for item in batch if item.native_id in missing_set]
        reason = "not returned by the API (deleted?)"
        limits = {"quota_remaining": crawler.client.quota_remaining}
        _commit(store, checkpointer, envelopes, missing, reason, result, limits)
        on_batch(len(batch))


def hydrate_github(
    store: Store,
    crawler: GitHubCrawler,
    checkpointer: Checkpointer,
    result: HydrateResult,
    on_batch: Callable[[int], None],
    work: list[Pending],
) -> None:
    """Fill in `work` (`pending(store, "github")`), one issue a call."""
    client = crawler.client
    for item in work:
        repo = item.origin.removeprefix(f"{GITHUB_HOST}/")
        envelope, reason = crawler.hydrate(repo, int(item.native_id))
        _commit(
            store,
            checkpointer,
            [envelope] if envelope else [],
            [] if envelope else [item],
            reason or "",
            result,
            {"rate_remaining": client.rate_remaining, "limits": dict(client.limits)},
        )
        on_batch(1)


def _commit(
    store: Store,
    checkpointer: Checkpointer,
    envelopes: list[Envelope],
    missing: list[Pending],
    reason: str,
    result: HydrateResult,
    limits: dict[str, Any],
) -> None:
    """Store a batch, the issues found missing and the run's counts and the API's limits
    left (for `crawl status`) in one transaction."""
    checkpoint = {
        **checkpointer.checkpoint,
        **limits,
        "filled": result.filled + len(envelopes),
        "missing": len(result.missing) + len(missing),
    }
    checkpointer.commit_page(
        envelopes,
        checkpoint,
        seen=len(envelopes) + len(missing),
        issue_updates=_missing_records(missing, reason),
    )
    result.filled += len(envelopes)
    result.missing.extend({"url": item.url, "reason": reason} for item in missing)
