"""Which issues an estimate is about: a crawl, a date range, a framework group of the study.

A population is the issues of the database that pass every filter given; with none, all
issues. The study file's `selection.github.repositories` entries carry a `group` (e.g.
`study`, `current`) and a `framework`: `--group current` keeps the issues whose framework
is one of that group's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from issueminer.store import FinalLabel, Issue
from issueminer.taxonomy import Taxonomy


class PopulationError(ValueError):
    """A population that cannot be chosen (unknown group, empty range)."""


@dataclass(frozen=True)
class Population:
    """The filters that chose the issues, and the issues' uids."""

    filters: dict[str, Any] = field(default_factory=dict)
    uids: tuple[str, ...] = ()

    def describe(self) -> str:
        if not self.filters:
            return f"all {len(self.uids):,} issues of the database"
        said = ", ".join(f"{k} {v}" for k, v in self.filters.items())
        return f"{len(self.uids):,} issues ({said})"


def group_frameworks(taxonomy: Taxonomy, group: str) -> list[str]:
    """The frameworks of one group of the study file's GitHub repositories."""
    entries = (taxonomy.selection.get("github") or {}).get("repositories") or []
    groups = sorted({str(e.get("group")) for e in entries if e.get("group")})
    found = sorted({str(e["framework"]) for e in entries if e.get("group") == group})
    if not found:
        known = ", ".join(groups) or "none"
        raise PopulationError(f"the study file has no framework group '{group}' (groups: {known})")
    return found


def choose_population(
    session: Session,
    taxonomy: Taxonomy,
    *,
    crawl: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    group: str | None = None,
    frameworks: list[str] | None = None,
    labelled_only: bool = False,
) -> Population:
    """The issues that pass every filter given (created in [since, until), found by crawl
    run `crawl`, of the group's or the given frameworks, with a final label)."""
    query = select(Issue.uid).order_by(Issue.uid)
    filters: dict[str, Any] = {}
    if crawl is not None:
        query = query.where(Issue.found_by.like(f"crawl:%#{crawl}"))
        filters["crawl"] = crawl
    if since is not None:
        query = query.where(Issue.created_at >= since)
        filters["since"] = since.date().isoformat()
    if until is not None:
        query = query.where(Issue.created_at < until)
        filters["until"] = until.date().isoformat()
    chosen = list(frameworks or [])
    if group is not None:
        chosen += group_frameworks(taxonomy, group)
        filters["group"] = group
    if chosen:
        query = query.where(Issue.framework.in_(sorted(set(chosen))))
        filters["frameworks"] = sorted(set(chosen))
    if labelled_only:
        query = query.where(Issue.uid.in_(select(FinalLabel.issue_uid)))
        filters["labelled only"] = True
    uids = tuple(session.scalars(query))
    if not uids:
        raise PopulationError("no issue of the database is in this population")
    return Population(filters, uids)


def labelled_population(session: Session) -> Population:
    """Every issue with a final label: a finished study's population ("then")."""
    query = select(FinalLabel.issue_uid).distinct().order_by(FinalLabel.issue_uid)
    uids = tuple(session.scalars(query))
    if not uids:
        raise PopulationError("the database has no final label to compare with")
    return Population({"with final labels": "all"}, uids)
