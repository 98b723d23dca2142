"""What a new round may draw, and how: candidates that have text, stratified sampling.

`issueminer.label.rounds.create_round` samples from `candidate_rows`; `round create` reports
`round_candidates` (how many were left out for want of text).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, case, or_, select
from sqlalchemy.orm import Session

from issueminer.store import FinalLabel, Issue, RoundItem


@dataclass(frozen=True)
class Candidates:
    """Issues a new round may draw: not in a round, no final label, a link to open."""

    total: int
    without_text: int  # no title and no body stored (not hydrated yet)


def has_text_clause() -> Any:
    return or_(
        and_(Issue.title.is_not(None), Issue.title != ""),
        and_(Issue.body.is_not(None), Issue.body != ""),
    )


def candidate_rows(session: Session) -> list[Any]:
    """(uid, source, has text) of every candidate, in uid order (the draw's population)."""
    in_a_round = select(RoundItem.issue_uid)
    finalised = select(FinalLabel.issue_uid)
    has_text = case((has_text_clause(), True), else_=False)
    return session.execute(
        select(Issue.uid, Issue.source, has_text)
        .where(Issue.uid.not_in(in_a_round), Issue.uid.not_in(finalised), Issue.url.is_not(None))
        .order_by(Issue.uid)
    ).all()


def round_candidates(session: Session) -> Candidates:
    """How many issues a new round could draw, and how many of them have no text yet."""
    rows = candidate_rows(session)
    return Candidates(len(rows), sum(1 for *_, has_text in rows if not has_text))


def stratified(rows: list[Any], size: int, rng: random.Random) -> list[str]:
    by_source: dict[str, list[str]] = defaultdict(list)
    for uid, source in rows:
        by_source[source].append(uid)
    total = len(rows)
    quotas = {s: size * len(uids) / total for s, uids in by_source.items()}
    counts = {s: int(q) for s, q in quotas.items()}
    for source in sorted(quotas, key=lambda s: quotas[s] - counts[s], reverse=True):
        if sum(counts.values()) >= size:
            break
        counts[source] += 1
    chosen = [uid for s in sorted(by_source) for uid in rng.sample(by_source[s], counts[s])]
    rng.shuffle(chosen)  # annotators should not see all of one source first
    return chosen


def shortfall(size: int, available: int, without_text: int) -> str:
    """Why a round of `size` cannot be drawn from `available` candidates, when
    `without_text` more were left out for want of text (0: none, or --allow-empty)."""
    more = (
        f"; {without_text:,} more have no text yet: fill them with `issueminer crawl hydrate`"
        " (or draw them as they are with --allow-empty)"
        if without_text
        else ""
    )
    with_text = " with text" if without_text else ""
    return (
        f"only {available:,} unlabelled issues{with_text} are not in a round yet "
        f"({size:,} asked for){more}"
    )
