"""A researcher's own files: issues (JSON Lines or CSV) and labels (CSV).

Issues: `url` is required; `title`, `body`, `source`, `tags`, `created`, `state` and (JSON
Lines only) `answers` are optional. Labels: one row per label with the columns of
`LABEL_COLUMNS`; `kind` is `annotation` (a person's label in a round) or `final`. A column
may also go by an old name (`OLD_CELL_NAMES`: `distributed_specific` is `specific`).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from issueminer.ids import issue_uid, parse_issue_url
from issueminer.labels import OLD_CELL_NAMES, Labels, Where, normalise_labels
from issueminer.report import ImportFailure, Report
from issueminer.store.models import LABEL_FIELDS
from issueminer.taxonomy import Taxonomy
from issueminer.text import plain_text

LABEL_COLUMNS = ("url", "kind", "annotator", "round", *LABEL_FIELDS, "memo")
LABEL_KINDS = ("annotation", "final")


@dataclass
class FileIssue:
    fields: dict[str, Any]
    replies: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class FileLabel:
    issue: dict[str, Any]
    kind: str
    annotator: str
    round: str | None
    labels: Labels
    provenance: str
    raw_labels: dict[str, Any]


def json_lines(text: str, where: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a bad line fails naming its place."""
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportFailure(f"{where}, line {line_no}: not valid JSON ({exc.msg})") from exc
        if not isinstance(record, dict):
            raise ImportFailure(f"{where}, line {line_no}: expected a JSON object")
        yield line_no, record


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line or row number, record) from JSON Lines or CSV, chosen by the file's extension."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFailure(f"{path}: cannot read the file ({exc})") from exc
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        yield from json_lines(text, str(path))
    else:
        reader = csv.DictReader(io.StringIO(text))
        for record in reader:
            yield reader.line_num, record  # the file's line, blank lines and all


def read_issues(path: Path, report: Report, taxonomy: Taxonomy | None = None) -> list[FileIssue]:
    """Every issue of the file; all row errors are collected and raised together."""
    issues, problems = [], []
    seen: dict[str, int] = {}
    for row_no, record in _rows(path):
        try:
            issue = _issue(record, path.name, taxonomy)
        except ValueError as exc:
            problems.append(f"{path}, row {row_no}: {exc}")
            continue
        if issue.fields["uid"] in seen:
            report.add(
                "duplicate",
                path.name,
                f"{issue.fields['url']} also on row {seen[issue.fields['uid']]}; fields merged",
                row=row_no,
            )
        seen.setdefault(issue.fields["uid"], row_no)
        issues.append(issue)
    if problems:
        raise ImportFailure(problems)
    return issues


def issue_from_url(url: str, source: str | None = None) -> dict[str, Any]:
    """The identity fields of an issue known only by its URL."""
    url = (url or "").strip()
    if not url:
        raise ValueError("missing 'url'")
    ref = parse_issue_url(url)
    if ref:
        return ref.identity()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"'{url}' is not an http(s) URL")
    origin = f"{parts.scheme}://{parts.netloc.lower()}"
    native = parts.path.rstrip("/") + (f"?{parts.query}" if parts.query else "")
    return {
        "uid": issue_uid(origin, native),
        "source": source or "web",
        "origin": origin,
        "native_id": native,
        "url": url,
    }


def _issue(record: dict[str, Any], file_name: str, taxonomy: Taxonomy | None) -> FileIssue:
    fields = issue_from_url(str(record.get("url") or ""), record.get("source"))
    tags = _tags(record.get("tags"))
    framework = _str(record.get("framework"))
    if framework is None and taxonomy is not None:
        ref = parse_issue_url(fields["url"])
        framework = taxonomy.framework_of(ref.repository if ref else None, tags)
    body = record.get("body")
    fields.update(
        title=_str(record.get("title")),
        body=_str(body),
        text=plain_text(_str(body), fields["source"]) if body else None,
        tags=tags,
        state=_str(record.get("state")),
        created_at=_date(record.get("created")),
        framework=framework,
        found_by=f"file:{file_name}",
        raw=record,
    )
    replies = []
    answers = record.get("answers") or []
    if not isinstance(answers, list):
        raise ValueError("'answers' must be a list of objects (JSON Lines files only)")
    for index, answer in enumerate(answers, start=1):
        if not isinstance(answer, dict):
            raise ValueError(f"answers[{index}] must be an object")
        kind = "answer" if fields["source"] == "stackoverflow" else "comment"
        replies.append(
            {
                "native_id": str(answer.get("id") or index),
                "kind": kind,
                "author": _str(answer.get("author")),
                "body": _str(answer.get("body")),
                "accepted": bool(answer.get("accepted")),
                "score": answer.get("score"),
                "raw": answer,
            }
        )
    accepted = [r["native_id"] for r in replies if r["accepted"]]
    fields["accepted_answer_id"] = accepted[0] if accepted else None
    return FileIssue(fields, replies)


def _str(value: Any) -> str | None:
    return None if value is None or str(value).strip() == "" else str(value)


def _tags(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value]
    if not value:
        return []
    text = str(value)
    if "<" in text:
        return re.findall(r"<([^<>]+)>", text)
    return [t.strip() for t in re.split(r"[;,|]", text) if t.strip()]


def _date(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"'created' is not an ISO date: {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def read_labels(path: Path, taxonomy: Taxonomy, report: Report) -> list[FileLabel]:
    labels, problems = [], []
    for row_no, record in _rows(path):
        if row_no == 2 and "url" not in record:
            raise ImportFailure(f"{path}, row 1: missing column 'url' (columns: {list(record)})")
        where = Where(path.name, None, row_no)
        kind = (record.get("kind") or "annotation").strip()
        annotator = (record.get("annotator") or "").strip()
        try:
            issue = issue_from_url(str(record.get("url") or ""))
            if kind not in LABEL_KINDS:
                raise ValueError(f"kind must be one of {LABEL_KINDS}, not '{kind}'")
            if not annotator:
                raise ValueError("missing 'annotator' (for a final label: who resolved it)")
        except ValueError as exc:
            problems.append(f"{path}, row {row_no}: {exc}")
            continue
        normalised = normalise_labels(taxonomy, record, where, report)
        if normalised.unknown:
            problems.append(f"{path}, row {row_no}: unknown label {', '.join(normalised.unknown)}")
        labels.append(
            FileLabel(
                issue,
                kind,
                annotator,
                _str(record.get("round")),
                normalised,
                f"file:{path.name}!{row_no}",
                {k: record.get(k) for k in (*LABEL_COLUMNS, *OLD_CELL_NAMES) if k in record},
            )
        )
    if problems:
        raise ImportFailure(problems)
    return labels
