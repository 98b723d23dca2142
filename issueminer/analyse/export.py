"""A study's replication package, laid out like the TOSEM 2023 one, from the database.

`issueminer import replication` reads the package back into the same labels:

  README.md                                  generated from the study file and the data
  taxonomy/<study>.yaml, labeling/<study>.md the taxonomy file and the codebook
  <study>_data/
    issueminer-package.json                  rounds and the annotator behind each sheet
    Identified <study>-related posts/so_dl_distributed.csv           question,tags
    Identified <study>-related posts/GitHub_dl_distributed/<framework>-issues.txt
    Results/final results/final categories.xlsx       faults, how-to questions, not relevant
    Results/manual labelling/pilot_labelling.xlsx
    Results/manual labelling/reliability_analysis_round<N>.xlsx   label1, label2, ..., Final

With `csv` or `jsonl`, each workbook is a folder holding one file per sheet instead. In
CSV files a text cell starting with =, +, -, @, a tab, a carriage return or a quote gets a
quote in front, so a spreadsheet shows it instead of running it as a formula; the importer
removes exactly that quote (`files.csv_cell`). Numbers (the 1/0 of distributed-specific)
are written as they are; xlsx cells hold text as text already (`workbook_bytes`).
Rows keep the database's order (by id), which is the order they were read in: label-only
records (rows without a link) are named after the link above them, so keeping the order
keeps their identity. An issue with several labels of one type has one row per label, its
link typed on each (the k-th row is its k-th label); labelling sheets, which also hold
earlier saves, then get a Part column saying which label a row is.

The candidate lists hold the issues a crawl or a candidate list found; an issue that only a
label sheet named (labelled, never a candidate) stays in the label sheets alone.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path
from typing import Any

from sqlalchemy import select

from issueminer import __version__
from issueminer.analyse.package_cells import (
    ReadBack,
    same_labels,
    sheet_cells,
    type_was_inferred,
    with_placeholder,
)
from issueminer.collect.selection import selection_sentences
from issueminer.collect.sources.files import csv_cell
from issueminer.collect.sources.replication import (
    FINAL_SHEETS,
    FINAL_WORKBOOK,
    MANIFEST,
    OPTIONAL_FINAL_SHEETS,
    PILOT_WORKBOOK,
    ROUND_FINAL_SHEET,
    SO_CANDIDATES,
    names_label_workbook,
    workbook_bytes,
)
from issueminer.ids import parse_issue_url
from issueminer.label.agreement import round_order
from issueminer.store import ADJUDICATOR, Annotation, FinalLabel, Issue, Store
from issueminer.study import codebook_path
from issueminer.taxonomy import Taxonomy

SHEET_FORMATS = ("xlsx", "csv", "jsonl")
MANIFEST_FORMAT = "issueminer replication package"
MANIFEST_VERSION = 1
# `import replication` records this resolver for a final label when the sheet names none
# (see ingest._from_package), so a `resolved by` column is only needed for other names.
IMPORT_DEFAULT_RESOLVER = "replication"
# The TOSEM pilot workbook is one sheet of agreed labels, imported as this annotator.
PILOT_ROUND = "pilot"
PILOT_ANNOTATOR = "pilot"

FINAL_DIR = "Results/final results"
LABELLING_DIR = "Results/manual labelling"
GITHUB_DIR = "GitHub_dl_distributed"

# Final sheets: the TOSEM columns first; other fields get a column only when used. Column
# titles are the published package's (e.g. "distributed-specific" for the `specific` flag,
# whatever the study), so that its readers and `import replication` find them.
FINAL_BASE_COLUMNS = {
    "faults": [
        ("Type", "source_type"),
        ("Link", "url"),
        ("distributed-specific", "specific"),
        ("stage", "stage"),
        ("inner-category", "inner_category"),
        ("leaf category", "leaf_symptom"),
        ("fix pattern", "fix_patterns"),
    ],
    "how-to questions": [
        ("Type", "source_type"),
        ("Link", "url"),
        ("how-to topic", "howto_topic"),
        ("sub-topic", "howto_subtopic"),
    ],
    "not relevant": [("Type", "source_type"), ("Link", "url")],
}
FINAL_OPTIONAL_COLUMNS = [
    ("distributed-specific", "specific"),
    ("stage", "stage"),
    ("inner-category", "inner_category"),
    ("leaf category", "leaf_symptom"),
    ("fix pattern", "fix_patterns"),
    ("how-to topic", "howto_topic"),
    ("sub-topic", "howto_subtopic"),
    ("memo", "memo"),
]
SHEET_OF_TYPE = {
    **{issue_type: sheet for sheet, issue_type in FINAL_SHEETS.items()},
    **{issue_type: sheet for sheet, issue_type in OPTIONAL_FINAL_SHEETS.items()},
}
# Labelling sheets, as in the TOSEM rounds ("Type" is the inner category there).
LABELLING_COLUMNS = [
    ("Link", "url"),
    ("Issue Type", "issue_type"),
    ("How-to topic", "howto_topic"),
    ("How-to sub-topic", "howto_subtopic"),
    ("Distributed-specified", "specific"),
    ("Stage", "stage"),
    ("Type", "inner_category"),
    ("Leaf Category", "leaf_symptom"),
    ("Fix Pattern", "fix_patterns"),
    ("Memo", "memo"),
]
PILOT_HEADERS = {"How-to sub-topic": "Sub-topic", "Type": "Inner Symptom"}
STATUS_COLUMN = ("Status", "status")
PART_COLUMN = ("Part", "part")
# The cells `normalise_labels` reads (the link and the Type column do not change labels).
UNSUFFIXED = ("Link", "Issue Type")  # a TOSEM Final sheet suffixes every other header


class ExportError(ValueError):
    """An export that cannot be written as asked."""


@dataclass
class ExportResult:
    root: Path
    files: list[Path] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)  # what will not read back identically


@dataclass
class Sheet:
    """One sheet: its header and rows, and how the rows map to the label fields."""

    title: str
    columns: list[tuple[str, str]]
    rows: list[dict[str, Any]] = field(default_factory=list)

    def table(self) -> list[list[Any]]:
        return [[h for h, _ in self.columns]] + [
            [row.get(key) for _, key in self.columns] for row in self.rows
        ]


@dataclass
class RoundBook:
    round: str | None
    file_stem: str
    sheets: list[Sheet]
    annotators: dict[str, tuple[str, str]]  # sheet -> (annotator, role)


# ---- entry point ------------------------------------------------------------------------
def export_package(
    store: Store, taxonomy: Taxonomy, out_dir: Path, sheet_format: str = "xlsx"
) -> ExportResult:
    """Write the replication package of the study in `store` to `out_dir`."""
    if sheet_format not in SHEET_FORMATS:
        raise ExportError(f"sheet format must be one of {SHEET_FORMATS}, not '{sheet_format}'")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        # files of an earlier export (another format) would mix with this one's
        raise ExportError(f"{out_dir} is not empty; export into a new or empty folder")
    data_dir = out_dir / f"{taxonomy.study.replace('-', '_')}_data"
    result = ExportResult(out_dir)
    with store.session() as session:
        issues = list(session.scalars(select(Issue).order_by(Issue.uid)))
        finals = [(f, i) for f, i in session.execute(_finals_query())]
        annotations = [(a, i) for a, i in session.execute(_annotations_query())]
        writer = _Writer(result, sheet_format)
        posts = data_dir / f"Identified {taxonomy.study}-related posts"
        _write_candidates(writer, posts, issues)
        read_back = ReadBack(taxonomy)
        final_sheets = _final_sheets(read_back, finals, result)
        writer.book(data_dir / FINAL_DIR / _stem(FINAL_WORKBOOK), final_sheets)
        books = _round_books(read_back, annotations, result)
        for book in books:
            writer.book(data_dir / LABELLING_DIR / book.file_stem, book.sheets)
        writer.text(
            data_dir / MANIFEST, json.dumps(_manifest(taxonomy, books, sheet_format), indent=2)
        )
        _copy_study_files(writer, taxonomy, out_dir)
        repositories = _repositories(issues)
    readme = _readme(taxonomy, result, books, data_dir, sheet_format, repositories)
    writer.text(out_dir / "README.md", readme)
    return result


def _repositories(issues: list[Issue]) -> list[str]:
    refs = (parse_issue_url(i.url) for i in issues if i.url and i.source == "github")
    return sorted({ref.repository for ref in refs if ref and ref.repository})


def _finals_query() -> Any:
    return (
        select(FinalLabel, Issue)
        .join(Issue, Issue.uid == FinalLabel.issue_uid)
        .order_by(FinalLabel.id)
    )


def _annotations_query() -> Any:
    return (
        select(Annotation, Issue)
        .join(Issue, Issue.uid == Annotation.issue_uid)
        .order_by(Annotation.id)
    )


def _stem(workbook: str) -> str:
    return workbook.removesuffix(".xlsx")


# ---- writing files ----------------------------------------------------------------------
class _Writer:
    def __init__(self, result: ExportResult, sheet_format: str) -> None:
        self.result = result
        self.format = sheet_format

    def _path(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.result.files.append(path)
        return path

    def text(self, path: Path, text: str) -> None:
        self._path(path).write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")

    def copy(self, source: Path, path: Path) -> None:
        shutil.copyfile(source, self._path(path))

    def book(self, stem: Path, sheets: list[Sheet]) -> None:
        """A workbook as one .xlsx file, or a folder with one file per sheet."""
        if self.format == "xlsx":
            tables = {sheet.title: sheet.table() for sheet in sheets}
            self._path(stem.with_name(stem.name + ".xlsx")).write_bytes(workbook_bytes(tables))
            return
        for sheet in sheets:
            path = self._path(stem / f"{sheet.title}.{self.format}")
            table = sheet.table()
            if self.format == "csv":
                path.write_text(_csv_text(table), encoding="utf-8")
            else:
                header, rows = table[0], table[1:]
                lines = [json.dumps(dict(zip(header, row, strict=True))) for row in rows]
                path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _csv_text(rows: Iterable[list[Any]]) -> str:
    buffer = io.StringIO()
    plain = csv.writer(buffer, lineterminator="\n")
    # csv (before Python 3.13) leaves a carriage return unquoted when lines end in \n, and
    # the file then does not read back: a row holding one has its text cells quoted
    quoted = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    for row in rows:
        cells = ["" if v is None else csv_cell(v) if isinstance(v, str) else v for v in row]
        (quoted if any("\r" in str(c) for c in cells) else plain).writerow(cells)
    return buffer.getvalue()


# ---- candidate URLs ---------------------------------------------------------------------
def _write_candidates(writer: _Writer, posts: Path, issues: list[Issue]) -> None:
    """The Stack Overflow questions and GitHub issues a crawl or a candidate list found,
    per source; the ones only a label sheet named are no candidates (issue 22)."""
    # one pass: testing each issue against a list of the left-out ones was quadratic
    candidates = [i for i in issues if not (i.url and names_label_workbook(i.found_by))]
    if len(candidates) < len(issues):
        writer.result.counts["labelled, never candidates"] = len(issues) - len(candidates)
        issues = candidates
    questions = sorted(
        (i for i in issues if i.url and i.source == "stackoverflow"), key=_native_order
    )
    rows = [["question", "tags"]] + [
        [i.url, "".join(f"<{t}>" for t in (i.tags or []))] for i in questions
    ]
    writer.text(posts / SO_CANDIDATES, _csv_text(rows))
    writer.result.counts["stackoverflow urls"] = len(questions)
    by_framework: dict[str, list[Issue]] = defaultdict(list)
    for issue in issues:
        ref = parse_issue_url(issue.url) if issue.url else None
        if ref and ref.source == "github":
            by_framework[_file_framework(issue.framework, ref.repository)].append(issue)
    for framework, found in sorted(by_framework.items()):
        path = posts / GITHUB_DIR / f"{framework}-issues.txt"
        found.sort(key=_native_order)
        writer.text(path, "".join(f"{i.url}\n" for i in found))
        writer.result.counts["github urls"] += len(found)
    skipped = [i for i in issues if i.url and i.source not in ("stackoverflow", "github")]
    if skipped:
        writer.result.notes.append(
            f"{len(skipped)} issue(s) from other sources (e.g. {skipped[0].url}) are not "
            "Stack Overflow or GitHub URLs; the package format cannot list them"
        )


def _native_order(issue: Issue) -> tuple[str, int, str]:
    digits = issue.native_id if issue.native_id.isdigit() else ""
    return (issue.origin, int(digits or 0), issue.native_id)


def _file_framework(framework: str | None, repository: str | None) -> str:
    """A name the importer's `<framework>-issues.txt` pattern (GITHUB_CANDIDATES) accepts."""
    name = framework or (repository or "unknown").split("/")[-1]
    return re.sub(r"[^\w.-]+", "-", name).strip("-") or "unknown"


# ---- cells ------------------------------------------------------------------------------
def _describe(issue: Issue, where: str) -> str:
    return f"{where}: {issue.url or f'label-only record {issue.native_id}'}"


# ---- final labels -----------------------------------------------------------------------
def _final_sheets(
    read_back: ReadBack, finals: list[tuple[FinalLabel, Issue]], result: ExportResult
) -> list[Sheet]:
    rows: dict[str, list[dict[str, Any]]] = {sheet: [] for sheet in FINAL_BASE_COLUMNS}
    rows_of: Counter[tuple[str, str]] = Counter()  # (sheet, issue) -> rows written
    needs_part: set[str] = set()
    for final, issue in finals:
        sheet = SHEET_OF_TYPE.get(final.issue_type)
        if sheet is None:
            result.notes.append(
                _describe(issue, "final label without a fault/how-to/not-relevant type")
                + " is left out: the final workbook has no sheet for it"
            )
            continue
        cells = {**sheet_cells(final, issue), "resolved_by": final.resolved_by, "part": final.part}
        rows_of[(sheet, issue.uid)] += 1
        if rows_of[(sheet, issue.uid)] != final.part:
            needs_part.add(sheet)  # the row's place does not say which label it is
        if not same_labels(final, read_back(cells, final.issue_type)):
            result.notes.append(
                _describe(issue, f"final label in '{sheet}'") + " reads back differently"
            )
        rows[sheet].append(cells)
        result.counts[f"final labels ({sheet})"] += 1
    sheets = []
    for title, base in FINAL_BASE_COLUMNS.items():
        if title in OPTIONAL_FINAL_SHEETS and not rows[title]:
            continue  # keep the TOSEM shape when the study has no such labels
        used = {key for row in rows[title] for key, value in row.items() if value is not None}
        have = {key for _, key in base}
        columns = base + [(h, k) for h, k in FINAL_OPTIONAL_COLUMNS if k in used and k not in have]
        resolvers = {row["resolved_by"] for row in rows[title]}
        if resolvers - {IMPORT_DEFAULT_RESOLVER}:
            columns.append(("resolved by", "resolved_by"))
        if title in needs_part:
            columns.append(("part", "part"))
        sheets.append(Sheet(title, columns, rows[title]))
    return sheets


# ---- rounds -----------------------------------------------------------------------------
def _round_books(
    read_back: ReadBack, annotations: list[tuple[Annotation, Issue]], result: ExportResult
) -> list[RoundBook]:
    by_round: dict[str | None, list[tuple[Annotation, Issue]]] = defaultdict(list)
    for annotation, issue in annotations:
        by_round[annotation.round].append((annotation, issue))
    numbers = _workbook_numbers([name for name in by_round if not _is_pilot(name, by_round[name])])
    books = []
    for name, rows in by_round.items():
        if _is_pilot(name, rows):
            stem = _stem(PILOT_WORKBOOK)
        else:
            stem = f"reliability_analysis_round{numbers[name]}"
        books.append(_round_book(read_back, name, stem, rows, result))
    return sorted(books, key=lambda b: (b.file_stem != _stem(PILOT_WORKBOOK), _number(b.file_stem)))


def _is_pilot(name: str | None, rows: list[tuple[Annotation, Issue]]) -> bool:
    """The TOSEM pilot: one sheet of agreed labels; any other pilot is written as a round."""
    return name == PILOT_ROUND and all(
        a.annotator == PILOT_ANNOTATOR and a.role == ADJUDICATOR for a, _ in rows
    )


def _number(stem: str) -> int:
    digits = re.search(r"(\d+)$", stem)
    return int(digits[1]) if digits else 0


def _workbook_numbers(names: list[str | None]) -> dict[str | None, int]:
    """`roundN` keeps N (the importer's default name); other rounds take the free numbers."""
    numbers: dict[str | None, int] = {}
    for name in names:
        match = re.fullmatch(r"round(\d+)", name or "")
        if match and int(match[1]) not in numbers.values():
            numbers[name] = int(match[1])
    free = (n for n in count(1) if n not in numbers.values())
    for name in sorted((n for n in names if n not in numbers), key=round_order):
        numbers[name] = next(free)
    return numbers


def _round_book(
    read_back: ReadBack,
    name: str | None,
    stem: str,
    rows: list[tuple[Annotation, Issue]],
    result: ExportResult,
) -> RoundBook:
    groups: dict[tuple[str, str], list[tuple[Annotation, Issue]]] = defaultdict(list)
    for annotation, issue in rows:
        groups[(annotation.annotator, annotation.role)].append((annotation, issue))
    pilot = stem == _stem(PILOT_WORKBOOK)
    titles = _sheet_titles(list(groups), pilot)
    sheets, annotators = [], {}
    for key, title in titles.items():
        sheet = _labelling_sheet(read_back, title, groups[key], pilot, result)
        sheets.append(sheet)
        annotators[title] = key
        result.counts["annotations"] += len(sheet.rows)
    if not pilot and ROUND_FINAL_SHEET not in titles.values():
        # the TOSEM rounds always have a Final sheet; here it has no rows
        sheets.append(Sheet(ROUND_FINAL_SHEET, _labelling_columns(final=True, pilot=False)))
    return RoundBook(name, stem, sheets, annotators)


def _sheet_titles(groups: list[tuple[str, str]], pilot: bool) -> dict[tuple[str, str], str]:
    """label1, label2, ... for annotators in order of appearance; Final for the adjudicator."""
    if pilot:
        return {groups[0]: "pilot"}
    titles: dict[tuple[str, str], str] = {}
    annotators = [g for g in groups if g[1] != ADJUDICATOR]
    adjudicators = [g for g in groups if g[1] == ADJUDICATOR]
    for index, group in enumerate(annotators, start=1):
        titles[group] = f"label{index}"
    for index, group in enumerate(adjudicators, start=1):
        titles[group] = ROUND_FINAL_SHEET if index == 1 else f"{ROUND_FINAL_SHEET}{index}"
    return titles


def _labelling_columns(final: bool, pilot: bool) -> list[tuple[str, str]]:
    columns = []
    for header, key in LABELLING_COLUMNS:
        if pilot:
            header = PILOT_HEADERS.get(header, header)
        if final and header not in UNSUFFIXED:
            header = f"{header} Final"
        columns.append((header, key))
    return columns


def _labelling_sheet(
    read_back: ReadBack,
    title: str,
    rows: list[tuple[Annotation, Issue]],
    pilot: bool,
    result: ExportResult,
) -> Sheet:
    columns = _labelling_columns(final=title.startswith(ROUND_FINAL_SHEET), pilot=pilot)
    sheet = Sheet(title, columns)
    needs_status = False
    # a link on several rows reads as that many labels unless a Part column says which
    rows_of = Counter(issue.uid for _, issue in rows)
    needs_part = any(n > 1 for n in rows_of.values())
    for annotation, issue in rows:
        cells = {**sheet_cells(annotation, issue), "part": annotation.part}
        if type_was_inferred(annotation):
            cells["issue_type"] = None  # as the sheet had it: agreement counts it apart
        read = read_back(cells, None)
        if annotation.status == "pending" and read.status != "pending":
            cells = with_placeholder(read_back.taxonomy, annotation, cells)
            read = read_back(cells, None)
        if not same_labels(annotation, read):
            result.notes.append(
                _describe(issue, f"{annotation.round} / {annotation.annotator}")
                + " reads back differently"
            )
        cells["status"] = annotation.status
        needs_status |= read.status != annotation.status
        sheet.rows.append(cells)
    if needs_status:
        sheet.columns.append(STATUS_COLUMN)
    if needs_part:
        sheet.columns.append(PART_COLUMN)
    return sheet


# ---- manifest, README, study files ------------------------------------------------------
def _manifest(taxonomy: Taxonomy, books: list[RoundBook], sheet_format: str) -> dict[str, Any]:
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "generated_by": f"issueminer {__version__}",
        "study": taxonomy.study,
        "sheet_format": sheet_format,
        "rounds": {
            f"{book.file_stem}.xlsx": {
                "round": book.round,
                "sheets": {
                    sheet: {"annotator": annotator, "role": role}
                    for sheet, (annotator, role) in book.annotators.items()
                },
            }
            for book in books
            if book.file_stem != _stem(PILOT_WORKBOOK)
        },
    }


def _copy_study_files(writer: _Writer, taxonomy: Taxonomy, out_dir: Path) -> None:
    writer.copy(taxonomy.path, out_dir / "taxonomy" / f"{taxonomy.study}.yaml")
    codebook = codebook_path(taxonomy)
    if codebook is None:
        writer.result.notes.append(f"no codebook labeling/{taxonomy.study}.md found to include")
    else:
        writer.copy(codebook, out_dir / "labeling" / codebook.name)


def _book_name(stem: str, sheet_format: str) -> str:
    if sheet_format == "xlsx":
        return f"`{stem}.xlsx`"
    return f"`{stem}/` (one .{sheet_format} file per sheet)"


def _readme(
    taxonomy: Taxonomy,
    result: ExportResult,
    books: list[RoundBook],
    data_dir: Path,
    sheet_format: str,
    repositories: list[str],
) -> str:
    root = result.root
    data = data_dir.relative_to(root).as_posix()
    finals = [
        f"{sheet} ({result.counts[f'final labels ({sheet})']})"
        for sheet in FINAL_BASE_COLUMNS
        if result.counts[f"final labels ({sheet})"]
    ]
    lines = [
        f"# Replication package: {taxonomy.title}",
        "",
        f"Generated by issueminer {__version__} from the study's database (study "
        f"`{taxonomy.study}`). The layout follows the replication package of the TOSEM 2023 "
        "study of distributed deep-learning training, so tools written for that package "
        "read this one too.",
        "",
        "## Rebuild the labels",
        "",
        "From this folder:",
        "",
        "```",
        f"issueminer import replication {data} --study taxonomy/{taxonomy.study}.yaml "
        "--db study.db",
        "issueminer stats --db study.db",
        "```",
        "",
        "## How the issues were selected",
        "",
        *[f"- {sentence}" for sentence in selection_sentences(taxonomy, repositories)],
        "",
        "## Contents",
        "",
        f"- `taxonomy/{taxonomy.study}.yaml`: every label with its definition and the "
        "spellings found in the sheets.",
    ]
    if any(p.parent.name == "labeling" for p in result.files):
        lines.append(f"- `labeling/{taxonomy.study}.md`: the codebook annotators followed.")
    lines += [
        f"- `{data}/{MANIFEST}`: the name of each labelling round and the annotator behind "
        "each sheet (the sheets themselves say label1, label2, Final).",
        f"- `{data}/Identified {taxonomy.study}-related posts/`: "
        f"{result.counts['stackoverflow urls']} Stack Overflow questions "
        f"(`{SO_CANDIDATES}`: question, tags) and {result.counts['github urls']} GitHub issues "
        f"(`{GITHUB_DIR}/<framework>-issues.txt`, one URL a line). As in the TOSEM package, "
        "only URLs are included, not the posts' text, and GitHub issues without their labels.",
        f"- {_book_name(f'{data}/{FINAL_DIR}/{_stem(FINAL_WORKBOOK)}', sheet_format)}: the final "
        f"labels, one sheet per issue type: {', '.join(finals) or 'none'}. Several fix "
        "patterns in one cell are joined with ' & '; distributed-specific is 1 (yes) or 0 (no).",
    ]
    for book in books:
        sheets = ", ".join(
            f"{sheet} = {annotator}" + (" (adjudicated)" if role == ADJUDICATOR else "")
            for sheet, (annotator, role) in book.annotators.items()
        )
        name = _book_name(f"{data}/{LABELLING_DIR}/{book.file_stem}", sheet_format)
        lines.append(
            f"- {name}: round `{book.round}`, every label as given: "
            f"{sheets}. PENDING marks a label not decided yet."
        )
    if sheet_format == "csv":
        lines.append(
            "- In the CSV files a text cell starting with =, +, -, @, a tab, a carriage return "
            "or ' has a ' added in front, so spreadsheets show it instead of running it as a "
            "formula; `issueminer import replication` removes it again."
        )
    if result.notes:
        lines += ["", "## Notes", "", *[f"- {note}" for note in result.notes]]
    return "\n".join(lines)
