"""`issues list` read with sqlite3 alone, for an answer at once on a SQLite store.

`issue_lookup.list_issues` (through the store, any database) and `SqliteListing.issues`
give the same rows for the same filters: tests/test_issue_listing.py compares them on the
study's database for every filter. The command uses this reader only when
`store.sqlite_reader.open_at_head` allows it and the database already remembers its study;
otherwise it goes through the store, which reports, upgrades or remembers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from typing import Any

from issueminer.store.label_fields import LABEL_FIELDS
from issueminer.store.sqlite_reader import open_at_head, remembered_meta

LISTED_ISSUE_COLUMNS = ("uid", "url", "source", "framework", "title")


def assemble(rows: Iterable[tuple[Any, ...]], limit: int | None) -> list[dict[str, Any]]:
    """Rows of (uid, url, source, framework, title, final label or None), ordered by issue,
    as one entry per issue with its final labels; stops after `limit` issues."""
    entries: dict[str, dict[str, Any]] = {}
    for uid, url, source, framework, title, label in rows:
        entry = entries.get(uid)
        if entry is None:
            if limit and len(entries) == limit:
                break
            entry = entries[uid] = {
                "uid": uid,
                "url": url,
                "source": source,
                "framework": framework,
                "title": title,
                "final_labels": [],
            }
        if label is not None:
            entry["final_labels"].append(label)
    return list(entries.values())


class SqliteListing:
    """The listing of one SQLite store at the package's schema revision."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.remembered = remembered_meta(conn)

    @classmethod
    def open(cls, url: str | None) -> SqliteListing | None:
        """None when the quick reader does not apply (see the module's docstring)."""
        conn = open_at_head(url)
        if conn is None:
            return None
        listing = cls(conn)
        if "study" not in listing.remembered:  # the store writes it on first use
            conn.close()
            return None
        return listing

    def close(self) -> None:
        self.conn.close()

    def sources(self) -> list[str]:
        return [row[0] for row in self.conn.execute("SELECT DISTINCT source FROM issue")]

    def issues(
        self,
        *,
        source: str | None = None,
        issue_type: str | None = None,
        symptom: str | None = None,
        labelled_only: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """As `issue_lookup.list_issues`: filters combine (AND)."""
        issue_columns = ", ".join(f"issue.{c}" for c in LISTED_ISSUE_COLUMNS)
        label_columns = ", ".join(f"final_label.{c}" for c in LABEL_FIELDS)
        where, params = [], []
        if source:
            where.append("issue.source = ?")
            params.append(source)
        if issue_type:
            where.append("final_label.issue_type = ?")
            params.append(issue_type)
        if symptom:
            where.append("final_label.leaf_symptom = ?")
            params.append(symptom)
        if labelled_only or issue_type or symptom:
            where.append("final_label.id IS NOT NULL")
        sql = (
            f"SELECT {issue_columns}, final_label.id, {label_columns} FROM issue "
            "LEFT OUTER JOIN final_label ON final_label.issue_uid = issue.uid"
            + (" WHERE " + " AND ".join(where) if where else "")
            + " ORDER BY issue.source, issue.url, issue.uid, final_label.id"
        )
        width = len(LISTED_ISSUE_COLUMNS)
        rows = (
            (*row[:width], None if row[width] is None else _label(row[width + 1 :]))
            for row in self.conn.execute(sql, params)
        )
        return assemble(rows, limit)


def _label(values: tuple[Any, ...]) -> dict[str, Any]:
    """A final label's fields with the store's types (SQLite keeps JSON as text and
    booleans as 0/1)."""
    label = dict(zip(LABEL_FIELDS, values, strict=True))
    if label["specific"] is not None:
        label["specific"] = bool(label["specific"])
    label["fix_patterns"] = json.loads(label["fix_patterns"]) if label["fix_patterns"] else []
    return label
