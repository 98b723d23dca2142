"""Fill in the text of issues known only by URL (for example from a replication package).

The work list is the store itself: every issue with a URL and no text yet, minus those a
source already said it does not have. Each batch is committed with its results, so a
killed run simply continues with what is still missing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from issueminer.crawl import Checkpointer, Envelope
from issueminer.sources.github import GitHubCrawler
from issueminer.sources.stackexchange import IDS_PER_CALL, StackOverflowCrawler
from issueminer.store import Issue, Store

MISSING_FLAG = "missing-at-source"


@dataclass
class HydrateResult:
    filled: int = 0
    missing: list[dict[str, str]] = field(default_factory=list)  # url and why

    def as_dict(self) -> dict[str, Any]:
        return {"filled": self.filled, "missing": self.missing}


def pending(store: Store, source: str, retry_missing: bool = False) -> list[tuple[str, str, str]]:
    """(uid, url, native id) of issues of `source` that have a URL but no text yet."""
    with store.session() as session:
        rows = session.execute(
            select(Issue.uid, Issue.url, Issue.native_id, Issue.origin, Issue.flags)
            .where(Issue.source == source, Issue.url.is_not(None), Issue.text.is_(None))
            .order_by(Issue.origin, Issue.native_id)
        ).all()
    return [
        (uid, url, f"{origin}#{native}")
        for uid, url, native, origin, flags in rows
        if retry_missing or MISSING_FLAG not in (flags or [])
    ]


def _missing_records(items: list[tuple[str, str, str]], reason: str) -> list[dict[str, Any]]:
    return [
        {"uid": uid, "flags": [MISSING_FLAG, f"{MISSING_FLAG}:{reason}"]} for uid, _, _ in items
    ]


def hydrate_stackoverflow(
    store: Store,
    crawler: StackOverflowCrawler,
    checkpointer: Checkpointer,
    result: HydrateResult,
    on_batch: Callable[[int], None],
    retry_missing: bool = False,
) -> None:
    work = pending(store, "stackoverflow", retry_missing)
    for start in range(0, len(work), IDS_PER_CALL):
        batch = work[start : start + IDS_PER_CALL]
        ids = [key.rsplit("#", 1)[1] for _, _, key in batch]
        envelopes, missing_ids = crawler.hydrate(ids)
        missing = [item for item in batch if item[2].rsplit("#", 1)[1] in missing_ids]
        _commit(
            store, checkpointer, envelopes, missing, "not returned by the API (deleted?)", result
        )
        on_batch(len(batch))


def hydrate_github(
    store: Store,
    crawler: GitHubCrawler,
    checkpointer: Checkpointer,
    result: HydrateResult,
    on_batch: Callable[[int], None],
    retry_missing: bool = False,
) -> None:
    for item in pending(store, "github", retry_missing):
        origin, number = item[2].rsplit("#", 1)
        repo = origin.removeprefix("https://github.com/")
        envelope, reason = crawler.hydrate(repo, int(number))
        _commit(
            store,
            checkpointer,
            [envelope] if envelope else [],
            [] if envelope else [item],
            reason or "",
            result,
        )
        on_batch(1)


def _commit(
    store: Store,
    checkpointer: Checkpointer,
    envelopes: list[Envelope],
    missing: list[tuple[str, str, str]],
    reason: str,
    result: HydrateResult,
) -> None:
    checkpoint = {
        **checkpointer.checkpoint,
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
    result.missing.extend({"url": url, "reason": reason} for _, url, _ in missing)
