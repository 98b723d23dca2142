"""A researcher's own files: issues (JSON Lines or CSV) and labels (CSV).

Issues: `url` is required; `title`, `body`, `source`, `tags`, `created`, `state` and (JSON
Lines only) `answers` are optional. Labels: one row per label with the columns of
`LABEL_COLUMNS`, all of them and no other in a CSV header; `kind` is `annotation` (a
person's label in a round, which it names) or `final`. A column may also go by an old name
(`OLD_CELL_NAMES`: `distributed_specific` is `specific`). A CSV row with more or fewer
fields than its header is refused with its line, as a misread row would be worse.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from issueminer.findings import ImportFailure, Report
from issueminer.ids import issue_uid, parse_issue_url
from issueminer.label_cells import OLD_CELL_NAMES, Labels, Where, normalise_labels
from issueminer.store.schema import LABEL_FIELDS
from issueminer.taxonomy import Taxonomy
from issueminer.text import not_utf8, plain_text

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
            raise ImportFailure(
                f"{where}, line {line_no}: not valid JSON ({exc.msg} at column {exc.colno})"
            ) from exc
        if not isinstance(record, dict):
            raise ImportFailure(f"{where}, line {line_no}: expected a JSON object")
        yield line_no, record


# csv.DictReader's key for the fields of a row beyond the header's
_MORE_FIELDS = "\x00more fields"

# Python's csv module refuses a field over 131,072 characters (128 KiB) by default, with a
# traceback, and real issue bodies run to megabytes (GitLab allows a million characters in
# a description). The bound is raised, not removed: 16 Mi characters is far beyond any real
# cell, so what goes past it is a file that is not CSV or a quote left open near the top
# of a huge file, and it is refused naming the file and the line instead of being read
# whole into one cell.
CSV_FIELD_LIMIT = 16 * 2**20  # characters in one field

# A cell the export neutralised for spreadsheets (see `csv_cell`) starts with one of these
# after its added quote.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "'")


def csv_cell(value: str) -> str:
    """A text cell made safe to open in a spreadsheet (CSV injection): a cell starting with
    =, +, -, @, a tab or a carriage return would run as a formula, so it gets a single
    quote in front, as OWASP advises. So does a cell that already starts with a quote,
    which keeps the escape unambiguous: `csv_text` removes exactly one added quote, from a
    cell whose next character is one of those, and a text that really starts with a quote
    reads back as written."""
    return f"'{value}" if value.startswith(_FORMULA_STARTS) else value


def csv_text(value: str) -> str:
    """The text a cell written by `csv_cell` stood for (any other cell is left as it is)."""
    if value.startswith("'") and value[1:].startswith(_FORMULA_STARTS):
        return value[1:]
    return value


def csv_records(reader: Any, where: str) -> Iterator[Any]:
    """The rows of a csv reader (plain or Dict), with fields up to `CSV_FIELD_LIMIT`; a
    malformed file fails naming its place instead of raising csv.Error."""
    if isinstance(reader, csv.DictReader):
        csv_header(reader, where)
    while True:
        first = reader.line_num + 1  # the line the next row starts on
        with _csv_errors(where, first):
            row = next(reader, None)
        if row is None:
            return
        yield row


def csv_header(reader: csv.DictReader, where: str) -> list[str]:
    """A DictReader's header, read with the same bound and messages as its rows."""
    with _csv_errors(where, 1):
        return list(reader.fieldnames or [])


@contextmanager
def _csv_errors(where: str, line: int) -> Iterator[None]:
    csv.field_size_limit(CSV_FIELD_LIMIT)
    try:
        yield
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            raise ImportFailure(
                f"{where}, line {line}: a field of more than {CSV_FIELD_LIMIT:,} characters, "
                "more than any real cell holds: a quote left open in this row, or not a "
                "CSV file?"
            ) from exc
        raise ImportFailure(f"{where}, line {line}: not readable as CSV ({exc})") from exc


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() not in (".jsonl", ".ndjson", ".json")


def _rows(path: Path, problems: list[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line or row number, record) from JSON Lines or CSV, chosen by the file's extension.
    A CSV row with more or fewer fields than the header is not a record: its problem is
    added to `problems` (the columns would be misread) and it is left out."""
    try:
        data = path.read_bytes()
        text = data.decode("utf-8-sig")
    except OSError as exc:
        raise ImportFailure(f"{path}: cannot read the file ({exc})") from exc
    except UnicodeDecodeError as exc:
        line, problem = not_utf8(data, exc)
        raise ImportFailure(f"{path}, line {line}: {problem}") from exc
    if not _is_csv(path):
        yield from json_lines(text, str(path))
        return
    reader = csv.DictReader(io.StringIO(text), restkey=_MORE_FIELDS)
    lines = text.split("\n")
    line = 1  # the header's
    for record in csv_records(reader, str(path)):
        first, line = line + 1, reader.line_num  # the file's lines, blank lines and all
        problem = _width_problem(record, first, line) or _swallowed_row(
            lines, first, line, reader.fieldnames or []
        )
        if problem:
            problems.append(f"{path}, row {line}: {problem}")
        else:
            yield line, record


def _swallowed_row(lines: list[str], first: int, last: int, header: list[str]) -> str | None:
    """A quote left open in the last column takes in the rows after it with the right
    number of fields all the same. A line of a multi-line field that reads as a whole row
    of its own (as many fields, a URL in the url column) gives it away; text of a body or a
    memo that spans lines does not look like that."""
    if "url" not in header:
        return None
    for number in range(first + 1, last + 1):
        fields = next(csv.reader([lines[number - 1].rstrip("\r")]), [])
        url = fields[header.index("url")].strip() if len(fields) == len(header) else ""
        if re.fullmatch(r"https?://\S+", url):
            return (
                f"line {number} reads as a row of its own, inside a field that runs from "
                f"line {first}: a quote left open there?"
            )
    return None


def _width_problem(record: dict[str, Any], first: int, last: int) -> str | None:
    header = len(record) - (_MORE_FIELDS in record)
    fields = header + len(record.get(_MORE_FIELDS, ()))
    fields -= sum(value is None for value in record.values())  # past the end of the row
    if fields == header:
        return None
    spans = f"; the row runs from line {first}: a quote left open there?" if first < last else ""
    return f"{fields} fields where the header has {header}{spans}"


def read_issues(path: Path, report: Report, taxonomy: Taxonomy | None = None) -> list[FileIssue]:
    """Every issue of the file; all row errors are collected and raised together."""
    issues: list[FileIssue] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    csv_file = _is_csv(path)
    for row_no, record in _rows(path, problems):
        if csv_file and "url" not in record:  # the header lacks it: said once, not per row
            raise ImportFailure(f"{path}, row 1: missing column 'url' (columns: {list(record)})")
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
    if re.search(r"\s", url):
        raise ValueError(f"{url[:80]!r} has spaces or line breaks in it: not one URL")
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


@lru_cache(maxsize=16)  # asked for every row: a CSV's rows all have the header's columns
def _label_columns_problem(columns: tuple[str, ...], whole_header: bool) -> str | None:
    """Unknown columns, and (in a CSV header, which names every column of the file) missing
    ones: a misspelt or renamed column would otherwise import as empty labels, and a final
    label imported again would lose that field."""
    named = [OLD_CELL_NAMES.get(c, c) for c in columns]
    unknown = [c for c in columns if OLD_CELL_NAMES.get(c, c) not in LABEL_COLUMNS]
    missing = [c for c in LABEL_COLUMNS if c not in named] if whole_header else []
    problems = [
        f"{what} column{'s' * (len(names) > 1)} {', '.join(map(repr, names))}"
        for what, names in (("unknown", unknown), ("missing", missing))
        if names
    ]
    if not problems:
        return None
    return f"{'; '.join(problems)} (a label file has the columns {', '.join(LABEL_COLUMNS)})"


def _label_row(record: dict[str, Any]) -> tuple[dict[str, Any], str, str, str | None]:
    """Issue, kind, annotator and round of a label row; ValueError says what is wrong."""
    issue = issue_from_url(str(record.get("url") or ""))
    kind = (record.get("kind") or "").strip()
    annotator = (record.get("annotator") or "").strip()
    round_name = _str(record.get("round"))
    if kind not in LABEL_KINDS:
        raise ValueError(f"kind must be one of {', '.join(LABEL_KINDS)}, not {kind!r}")
    if not annotator:
        raise ValueError("missing 'annotator' (for a final label: who resolved it)")
    if kind == "annotation" and round_name is None:
        raise ValueError("an annotation needs its round")
    return issue, kind, annotator, round_name


def read_labels(path: Path, taxonomy: Taxonomy, report: Report) -> list[FileLabel]:
    labels: list[FileLabel] = []
    problems: list[str] = []
    whole_header = _is_csv(path)
    for row_no, record in _rows(path, problems):
        columns_problem = _label_columns_problem(tuple(record), whole_header)
        if columns_problem and whole_header:
            raise ImportFailure(f"{path}, row 1: {columns_problem}")
        where = Where(path.name, None, row_no)
        try:
            if columns_problem:
                raise ValueError(columns_problem)
            issue, kind, annotator, round_name = _label_row(record)
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
                round_name,
                normalised,
                f"file:{path.name}!{row_no}",
                {k: record.get(k) for k in (*LABEL_COLUMNS, *OLD_CELL_NAMES) if k in record},
            )
        )
    if problems:
        raise ImportFailure(problems)
    return labels
