"""An issue's earlier payloads for reading (`issues show`): what changed, when, and from
which crawl (written by `collect.payloads`). Light: the store's schema and nothing else."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from issueminer.store.schema import IssuePayload

SHOWN_CHARACTERS = 60  # a changed body is summed up, not printed twice


def payload_history(session: Session, uid: str) -> list[dict[str, Any]]:
    """The payloads kept for one issue, oldest first: when each came, from which crawl,
    whether it was applied, and what it changed ({field: [old, new]})."""
    rows = session.scalars(
        select(IssuePayload).where(IssuePayload.issue_uid == uid).order_by(IssuePayload.id)
    )
    return [
        {
            "fetched_at": row.fetched_at,
            "found_by": row.found_by,
            "applied": row.applied,
            "changes": row.changes,
            "raw_updated_on": row.raw_updated_on,
        }
        for row in rows
    ]


def history_lines(history: list[dict[str, Any]]) -> list[str]:
    """`payload_history` for reading: when each payload came and from which crawl, the
    source's own update time, and each field it changed, old -> new."""
    lines: list[str] = []
    for entry in history:
        changes = dict(entry["changes"])
        updated = changes.pop("updated_on", [None, None])[1]
        head = f"{_minute(entry['fetched_at'])}  {entry['found_by'] or '-'}"
        if entry["applied"]:
            lines.append(f"{head}  source updated {_minute(updated) or '-'}")
        else:
            older = _minute(entry["raw_updated_on"]) or "-"
            lines.append(f"{head}  an older payload (source updated {older}), kept, not applied")
        lines += [
            f"    {name}: {_shown(old)} -> {_shown(new)}" for name, (old, new) in changes.items()
        ]
    return lines


def _minute(moment: datetime | str | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, str):
        moment = datetime.fromisoformat(moment)
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return f"{aware:%Y-%m-%d %H:%M}"


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str) and len(value) > SHOWN_CHARACTERS:
        return f"({len(value)} characters)"
    return json.dumps(value, ensure_ascii=False) if not isinstance(value, int) else str(value)
