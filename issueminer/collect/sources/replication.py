"""Read a replication package laid out like the TOSEM 2023 one (folder, zip or URL of a zip).

Layout (paths under the package root, which a GitHub "Download ZIP" wraps in one folder):
  Identified distributed-training-related posts/so_dl_distributed.csv     question,tags
  Identified distributed-training-related posts/GitHub_dl_distributed/*.txt   one URL a line
  Results/final results/final categories.xlsx     sheets: faults, how-to questions
  Results/manual labelling/pilot_labelling.xlsx   one sheet: the pilot's agreed labels
  Results/manual labelling/reliability_analysis_round<N>.xlsx   label1, label2, Final

Packages written by `issueminer export` may add, all optional so the TOSEM package reads
as before: a `not relevant` sheet in the final workbook, `resolved by` and `memo` columns in
the final sheets, a `status` column in labelling sheets, a manifest (`issueminer-package.json`
beside `Results/`) naming each round and the annotator behind each sheet, and each workbook
as a folder of one CSV or JSON Lines file per sheet instead of an .xlsx file.

The reader only parses; `issueminer.collect.ingest` writes. Everything it sees ends up either in a
record or in the report, and anything that makes the package unusable raises ImportFailure.
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import openpyxl
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from issueminer.collect.sources.files import csv_header, csv_records, csv_text, json_lines
from issueminer.collect.sources.sheet_parts import SheetParts, merged_issue_cells
from issueminer.findings import ImportFailure, Report
from issueminer.ids import issue_uid, parse_issue_url
from issueminer.label_cells import Labels, Where, normalise_labels
from issueminer.store import ADJUDICATOR, ANNOTATOR, RETRACTED, STATUSES
from issueminer.taxonomy import FAULT, HOWTO, NOT_RELEVANT, Taxonomy

FINAL_WORKBOOK = "final categories.xlsx"
FINAL_SHEETS = {"faults": FAULT, "how-to questions": HOWTO}
OPTIONAL_FINAL_SHEETS = {"not relevant": NOT_RELEVANT}  # the TOSEM package has none
PILOT_WORKBOOK = "pilot_labelling.xlsx"
ROUND_WORKBOOK = re.compile(r"reliability_analysis_round(\d+)\.xlsx$", re.I)
ROUND_ANNOTATOR_SHEETS = ("label1", "label2")
ROUND_FINAL_SHEET = "Final"
# sheet -> (annotator, role) when no manifest names them
ROUND_DEFAULT_SHEETS = {
    **{sheet: (sheet, ANNOTATOR) for sheet in ROUND_ANNOTATOR_SHEETS},
    ROUND_FINAL_SHEET: ("adjudicated", ADJUDICATOR),
}
MANIFEST = "issueminer-package.json"
# A workbook written as a folder of per-sheet files (`final categories/faults.csv`).
FLAT_SHEET = re.compile(
    r"^(?P<book>(?:.*/)?(?:final categories|pilot_labelling|reliability_analysis_round\d+))"
    r"/(?P<sheet>[^/]+)\.(?P<ext>csv|jsonl)$",
    re.I,
)
ANNOTATION_STATUSES = (*STATUSES, RETRACTED)
LABEL_WORKBOOK_PATH = re.compile(
    r"(?:^|/)(?:final categories|pilot_labelling|reliability_analysis_round\d+)(?:\.xlsx)?(?:/|$)",
    re.I,
)
SO_CANDIDATES = "so_dl_distributed.csv"
GITHUB_CANDIDATES = re.compile(r"GitHub_dl_distributed/(?P<framework>[\w.-]+)-issues\.txt$", re.I)
ORIGIN_PREFIX = "replication:"

# Bounds on the files a package's zip unpacks to. The TOSEM 2023 package's largest file is
# 64 KB (so_dl_distributed.csv) and its best-compressed one shrinks 16 times (a list of
# URLs); an exported package of a study a hundred times larger stays far below both. A
# member past them is a damaged or hostile zip: 1.8 MB of zip that unpacks to 1.5 GiB of
# zeros (ratio 850) used to be read whole into memory.
MAX_MEMBER_BYTES = 200 * 2**20  # one file's size, unpacked (a folder's file too)
MAX_PACKAGE_BYTES = 500 * 2**20  # all the files read, unpacked
MAX_RATIO = 100  # unpacked / packed size of one member
RATIO_FLOOR_BYTES = 2**20  # a smaller member may compress as well as it likes: it is harmless

# Header spellings in the package's sheets -> our label fields. Headers are compared in
# lower case with a trailing " final" removed (the Final sheets suffix every header).
_COMMON_HEADERS = {
    "link": "url",
    "issue type": "issue_type",
    "how-to topic": "howto_topic",
    "how-to sub-topic": "howto_subtopic",
    "sub-topic": "howto_subtopic",
    "distributed-specified": "specific",  # the published TOSEM 2023 headers
    "distributed-specific": "specific",
    "stage": "stage",
    "inner-category": "inner_category",
    "inner symptom": "inner_category",
    "leaf category": "leaf_symptom",
    "fix pattern": "fix_patterns",
    "memo": "memo",
    "status": "status",
    "part": "part",  # written by `issueminer export` where rows alone cannot say it
}
ISSUE_CELLS = ("url", "source_type")  # the cells a merged range spreads over its rows
# "Type" means the source in the final sheets and the inner category in labelling sheets.
FINAL_HEADERS = {**_COMMON_HEADERS, "type": "source_type", "resolved by": "resolved_by"}
LABELLING_HEADERS = {**_COMMON_HEADERS, "type": "inner_category"}
REQUIRED = {
    "faults": ("url", "stage", "leaf_symptom", "fix_patterns"),
    "how-to questions": ("url", "howto_topic"),
    "not relevant": ("url",),
    "labelling": ("url", "issue_type", "stage", "leaf_symptom", "fix_patterns", "howto_topic"),
}


@dataclass
class IssueRecord:
    uid: str
    source: str
    origin: str
    native_id: str
    url: str | None
    framework: str | None = None
    tags: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    found_by: str | None = None


@dataclass
class LabelRecord:
    issue: IssueRecord
    kind: str  # final | annotation
    labels: Labels
    provenance: str
    raw_labels: dict[str, Any]
    annotator: str | None = None
    round: str | None = None
    role: str = ANNOTATOR
    part: int = 1  # the issue's k-th row in its sheet: its k-th label there


@dataclass
class Package:
    name: str
    files: dict[str, bytes]  # path under the package root -> content

    def find(self, pattern: re.Pattern[str] | str) -> list[str]:
        if isinstance(pattern, str):
            return sorted(p for p in self.files if PurePosixPath(p).name == pattern)
        return sorted(p for p in self.files if pattern.search(p))


# ---- opening -------------------------------------------------------------------------
def open_package(source: str | Path, progress: Any = None) -> Package:
    """A package from a folder, a zip file, or an http(s) URL of a zip file. Only the files
    the reader uses are read (`is_package_file`): a package may come with data sets, code
    or archives of its own, and nothing needs them in memory."""
    text = str(source)
    if text.startswith(("http://", "https://")):
        return _from_zip(_download(text, progress), name=text)
    path = Path(source)
    if path.is_dir():
        files: dict[str, bytes] = {}
        for file in sorted(path.rglob("*")):
            name = file.relative_to(path).as_posix()
            if file.is_file() and is_package_file(name):
                size = file.stat().st_size
                _check_size(text, name, size, sum(map(len, files.values())) + size)
                files[name] = file.read_bytes()
        return Package(path.name, _rooted(_with_flat_workbooks(files), text))
    if path.is_file():
        return _from_zip(path, name=path.name)
    raise ImportFailure(f"{source}: no such folder, zip file or URL")


def is_package_file(path: str) -> bool:
    """A file the reader uses: the workbooks (or their folders of sheets), the candidate
    lists and the manifest."""
    name = PurePosixPath(path).name
    return name in (FINAL_WORKBOOK, PILOT_WORKBOOK, MANIFEST, SO_CANDIDATES) or any(
        pattern.search(path) for pattern in (ROUND_WORKBOOK, GITHUB_CANDIDATES, FLAT_SHEET)
    )


def _check_size(package: str, member: str, size: int, total: int) -> None:
    if size > MAX_MEMBER_BYTES:
        raise ImportFailure(
            f"{package}: '{member}' unpacks to more than {MAX_MEMBER_BYTES // 2**20} MB "
            f"({size:,} bytes), far more than a package's file holds: refused (a damaged "
            "zip or a zip bomb?)"
        )
    if total > MAX_PACKAGE_BYTES:
        raise ImportFailure(
            f"{package}: the package's files unpack to more than "
            f"{MAX_PACKAGE_BYTES // 2**20} MB by '{member}': refused (a zip bomb?)"
        )


def _from_zip(path: Path, name: str) -> Package:
    try:
        with zipfile.ZipFile(path) as archive:
            files: dict[str, bytes] = {}
            for info in archive.infolist():
                if not info.is_dir() and is_package_file(info.filename):
                    files[info.filename] = _member(archive, info, name, files)
    except (zipfile.BadZipFile, OSError, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise ImportFailure(f"{name}: not a readable zip file ({exc})") from exc
    return Package(name, _rooted(_with_flat_workbooks(files), name))


def _member(
    archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, files: dict[str, bytes]
) -> bytes:
    """A member's content, unpacked a piece at a time and refused as soon as it passes
    the bounds, whatever size its header claims."""
    done = sum(map(len, files.values()))
    _check_size(name, info.filename, info.file_size, done + info.file_size)
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > RATIO_FLOOR_BYTES and ratio > MAX_RATIO:
        raise ImportFailure(
            f"{name}: '{info.filename}' unpacks {ratio:,.0f} times larger than it is packed "
            f"({info.compress_size:,} to {info.file_size:,} bytes; real files stay under "
            f"{MAX_RATIO}): refused as a zip bomb"
        )
    pieces: list[bytes] = []
    size = 0
    with archive.open(info) as stream:
        while piece := stream.read(1 << 16):
            size += len(piece)
            _check_size(name, info.filename, size, done + size)
            pieces.append(piece)
    return b"".join(pieces)


def _rooted(files: dict[str, bytes], name: str) -> dict[str, bytes]:
    """Paths relative to the folder holding the final labels, so folder and zip agree."""
    anchors = [p for p in files if PurePosixPath(p).name == FINAL_WORKBOOK]
    if not anchors:
        raise ImportFailure(f"{name}: no '{FINAL_WORKBOOK}' found; is this a replication package?")
    # .../<root>/Results/final results/final categories.xlsx
    root = PurePosixPath(anchors[0]).parent.parent.parent
    prefix = "" if str(root) == "." else f"{root}/"
    return {p.removeprefix(prefix): data for p, data in files.items() if p.startswith(prefix)}


def _with_flat_workbooks(files: dict[str, bytes]) -> dict[str, bytes]:
    """Folders of per-sheet CSV/JSON Lines files read as the .xlsx workbook they stand for.

    Everything downstream then sees one layout, and provenance names the workbook and
    sheet exactly as it would for the .xlsx form of the same package.
    """
    books: dict[str, dict[str, list[list[Any]]]] = {}
    for path in sorted(files):
        match = FLAT_SHEET.search(path)
        if match:
            rows = _flat_rows(path, files[path], match["ext"].lower())
            books.setdefault(f"{match['book']}.xlsx", {})[match["sheet"]] = rows
    if not books:
        return files
    kept = {p: data for p, data in files.items() if not FLAT_SHEET.search(p)}
    return {**kept, **{book: workbook_bytes(sheets) for book, sheets in books.items()}}


def _decode(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportFailure(f"{path}: not UTF-8 text (byte {exc.start})") from exc


def _flat_rows(path: str, data: bytes, ext: str) -> list[list[Any]]:
    text = _decode(path, data)
    if ext == "csv":  # cells as `issueminer export` wrote them, made safe for spreadsheets
        rows = csv_records(csv.reader(io.StringIO(text)), path)
        return [[csv_text(cell) if cell != "" else None for cell in row] for row in rows]
    records = [record for _, record in json_lines(text, path)]
    header = list(dict.fromkeys(key for record in records for key in record))
    return [header, *([record.get(key) for key in header] for record in records)]


def workbook_bytes(sheets: dict[str, list[list[Any]]]) -> bytes:
    """An .xlsx file with these sheets (rows of cell values, the header first)."""
    book = openpyxl.Workbook(write_only=True)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append([_stored_cell(sheet, value) for value in row])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _stored_cell(sheet: Any, value: Any) -> Any:
    """Text stays text: without this, a cell starting with '=' would become a formula."""
    if not isinstance(value, str):
        return value
    # control characters cannot be stored in .xlsx; openpyxl refuses the whole file
    text = ILLEGAL_CHARACTERS_RE.sub("", value)
    if not text.startswith("="):
        return text
    cell = WriteOnlyCell(sheet, value=text)
    cell.data_type = "s"
    return cell


def _download(url: str, progress: Any) -> Path:
    import urllib.request

    target = Path(tempfile.mkdtemp(prefix="issueminer-")) / "package.zip"
    try:
        with urllib.request.urlopen(url, timeout=60) as response, target.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            task = progress.add_task("download", total=total) if progress else None
            while chunk := response.read(1 << 16):
                out.write(chunk)
                if progress:
                    progress.advance(task, len(chunk))
    except OSError as exc:
        raise ImportFailure(f"{url}: download failed ({exc})") from exc
    return target


# ---- reading -------------------------------------------------------------------------
class PackageReader:
    def __init__(self, package: Package, taxonomy: Taxonomy, report: Report) -> None:
        self.package = package
        self.taxonomy = taxonomy
        self.report = report
        self.manifest = self._manifest()

    def _manifest(self) -> dict[str, Any]:
        found = self.package.find(MANIFEST)
        if not found:
            return {}
        try:
            manifest = json.loads(self._text(found[0]))
        except json.JSONDecodeError as exc:
            raise ImportFailure(f"{found[0]}: not valid JSON ({exc.msg})") from exc
        if not isinstance(manifest, dict) or not isinstance(manifest.get("rounds", {}), dict):
            raise ImportFailure(f"{found[0]}: expected an object with a 'rounds' object")
        return manifest

    def _round_sheets(self, path: str, number: int) -> tuple[str | None, dict[str, Any]]:
        """The round's name and sheet -> (annotator, role), from the manifest or the defaults."""
        entry = self.manifest.get("rounds", {}).get(PurePosixPath(path).name)
        if entry is None:
            return f"round{number}", ROUND_DEFAULT_SHEETS
        try:
            sheets = {
                name: (str(sheet["annotator"]), str(sheet.get("role") or ANNOTATOR))
                for name, sheet in entry["sheets"].items()
            }
        except (KeyError, TypeError, AttributeError) as exc:
            raise ImportFailure(
                f"{MANIFEST}: round workbook '{PurePosixPath(path).name}' needs 'sheets' "
                f"mapping each sheet to an object with 'annotator' ({exc!r})"
            ) from exc
        return entry.get("round"), sheets

    def candidates(self) -> Iterator[IssueRecord]:
        """The URLs the study's filters selected, before labelling."""
        for path in self.package.find(SO_CANDIDATES):
            yield from self._so_candidates(path)
        for path in self.package.find(GITHUB_CANDIDATES):
            framework = GITHUB_CANDIDATES.search(path)["framework"]
            for line_no, line in enumerate(self._text(path).splitlines(), start=1):
                if line.strip():
                    record = self._linked(line, Where(path, None, line_no), framework=framework)
                    if record:
                        record.found_by = f"{ORIGIN_PREFIX}{path}"
                        yield record

    def _so_candidates(self, path: str) -> Iterator[IssueRecord]:
        reader = csv.DictReader(io.StringIO(self._text(path)))
        header = csv_header(reader, path)
        if "question" not in header:
            raise ImportFailure(f"{path}: missing column 'question' (found {header})")
        for row_no, row in enumerate(csv_records(reader, path), start=2):
            tags = re.findall(r"<([^<>]+)>", csv_text(row.get("tags") or ""))
            question = csv_text(row["question"] or "")
            record = self._linked(question, Where(path, None, row_no), tags=tags)
            if record:
                record.found_by = f"{ORIGIN_PREFIX}{path}"
                yield record

    def labels(self) -> Iterator[LabelRecord]:
        final = self.package.find(FINAL_WORKBOOK)
        if not final:
            raise ImportFailure(f"{self.package.name}: missing '{FINAL_WORKBOOK}'")
        yield from self._final(final[0])
        for path in self.package.find(PILOT_WORKBOOK):
            yield from self._labelling(path, "pilot", None, "pilot")
        for path in sorted(
            self.package.find(ROUND_WORKBOOK), key=lambda p: int(ROUND_WORKBOOK.search(p)[1])
        ):
            round_name, sheets = self._round_sheets(path, int(ROUND_WORKBOOK.search(path)[1]))
            yield from self._round(path, round_name, sheets)

    # ---- sheets ----
    def _final(self, path: str) -> Iterator[LabelRecord]:
        book = self._workbook(path)
        present = {sheet.title.strip().lower() for sheet in book.worksheets}
        optional = {k: v for k, v in OPTIONAL_FINAL_SHEETS.items() if k in present}
        for sheet_name, issue_type in {**FINAL_SHEETS, **optional}.items():
            sheet = _sheet(book, sheet_name, path)
            parts = SheetParts(self.report)
            for row_no, row in self._rows(path, sheet, FINAL_HEADERS, REQUIRED[sheet_name]):
                where = Where(path, sheet.title, row_no)
                issue = self._issue(row, where, anchor_scope=f"{path}#{sheet.title}")
                labels = normalise_labels(self.taxonomy, row, where, self.report, issue_type)
                resolved_by = row.get("resolved_by")
                yield LabelRecord(
                    issue,
                    "final",
                    labels,
                    _provenance(where),
                    _raw(row),
                    annotator=str(resolved_by).strip() if _present(resolved_by) else None,
                    role=ADJUDICATOR,
                    part=parts.next(issue, where, self._merged_from.get(row_no), row.get("part")),
                )

    def _round(
        self, path: str, round_name: str | None, sheets: dict[str, Any]
    ) -> Iterator[LabelRecord]:
        book = self._workbook(path)
        for sheet_name, (annotator, role) in sheets.items():
            sheet = _sheet(book, sheet_name, path)
            yield from self._labelling(path, round_name, sheet, annotator, role)

    def _labelling(
        self,
        path: str,
        round_name: str | None,
        sheet: Any,
        annotator: str,
        role: str | None = None,
    ) -> Iterator[LabelRecord]:
        if sheet is None:
            sheet = self._workbook(path).worksheets[0]
        # the pilot sheet holds the labels the authors agreed on, so it is adjudicated too
        role = role or (ADJUDICATOR if round_name == "pilot" else ANNOTATOR)
        parts = SheetParts(self.report)
        for row_no, row in self._rows(path, sheet, LABELLING_HEADERS, REQUIRED["labelling"]):
            where = Where(path, sheet.title, row_no)
            # one anchor scope per workbook: label1, label2 and Final rows pair up
            issue = self._issue(row, where, anchor_scope=path)
            labels = normalise_labels(self.taxonomy, row, where, self.report)
            self._blank_is_pending(labels, where)
            self._explicit_status(row.get("status"), labels, where)
            yield LabelRecord(
                issue,
                "annotation",
                labels,
                _provenance(where),
                _raw(row),
                annotator=annotator,
                round=round_name,
                role=role,
                # the k-th row of an issue in label1 pairs with the k-th in label2 and Final
                part=parts.next(issue, where, self._merged_from.get(row_no), row.get("part")),
            )

    def _blank_is_pending(self, labels: Labels, where: Where) -> None:
        """A row naming an issue but no label (a link typed twice, the second row left
        blank) decides nothing: it is pending, never a done label."""
        if labels.is_empty and labels.status == "done":
            labels.status = "pending"
            where.report(self.report, "blank-label", "a link without labels counts as pending")

    def _explicit_status(self, cell: Any, labels: Labels, where: Where) -> None:
        """A status column (skipped, retracted, ...) says what the label cells cannot."""
        if not _present(cell):
            return
        status = str(cell).strip().lower()
        if status in ANNOTATION_STATUSES:
            labels.status = status
            return
        labels.unknown.append(f"status={cell!r}")
        where.report(
            self.report,
            "unknown-label",
            f"'{cell}' is not a status ({', '.join(ANNOTATION_STATUSES)})",
            "status",
            cell,
        )

    def _rows(
        self, path: str, sheet: Any, headers: dict[str, str], required: tuple[str, ...]
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None) or ()
        columns: dict[int, str] = {}
        for index, name in enumerate(header):
            key = re.sub(r"\s+final$", "", str(name or "").strip().lower())
            if key in headers:
                columns.setdefault(index, headers[key])
        missing = [f for f in required if f not in columns.values()]
        if missing:
            raise ImportFailure(
                f"{path}, sheet '{sheet.title}', row 1: missing column(s) "
                f"{', '.join(missing)} (found headers: {[h for h in header if h]})"
            )
        self._anchor: tuple[str | None, int] = (None, 0)
        merged = merged_issue_cells(sheet, [i for i, f in columns.items() if f in ISSUE_CELLS])
        self._merged_from: dict[int, int] = {}
        for row_no, values in enumerate(rows, start=2):
            cells = {
                field_: values[i] if i < len(values) else None for i, field_ in columns.items()
            }
            extra = [v for i, v in enumerate(values) if i not in columns and v not in (None, "")]
            if not any(_present(v) for v in cells.values()) and not extra:
                self.report.add(
                    "empty-row", path, "empty row skipped", sheet=sheet.title, row=row_no
                )
                continue
            for index, (top_row, value) in merged.get(row_no, {}).items():
                if not _present(cells[columns[index]]):
                    cells[columns[index]] = value
                    if columns[index] == "url":
                        self._merged_from[row_no] = top_row
            if extra:
                self.report.add(
                    "extra-cells",
                    path,
                    f"cells outside the known columns: {extra}",
                    sheet=sheet.title,
                    row=row_no,
                    value=extra,
                )
                memo = "; ".join(str(v) for v in [cells.get("memo"), *extra] if _present(v))
                cells["memo"] = memo
            yield row_no, cells

    # ---- issues ----
    def _issue(self, row: dict[str, Any], where: Where, anchor_scope: str) -> IssueRecord:
        source_type = _present(row.get("source_type")) and str(row["source_type"]).strip()
        framework = _framework_of_type(source_type) if source_type else None
        link = row.get("url")
        if _present(link):
            record = self._linked(str(link), where, framework=framework)
            if record:
                self._anchor = (record.url, 0)
                if source_type and not source_type.lower().startswith(
                    "so" if record.source == "stackoverflow" else "github"
                ):
                    where.report(
                        self.report,
                        "conflict",
                        f"Type '{source_type}' does not match the link {record.url}",
                        "source_type",
                        source_type,
                    )
                return record
        # No usable link: a label-only record. Its id comes from the last link above it and
        # its place after that link, which stays put when rows are added elsewhere and lets
        # the label1/label2/Final sheets of one round name the same record.
        previous, count = self._anchor
        self._anchor = (previous, count + 1)
        native = f"after {previous or 'start'} +{count + 1}"
        origin = f"{ORIGIN_PREFIX}{anchor_scope}"
        where.report(self.report, "no-link", f"kept as a label-only record ({native})", "url", link)
        source = _source_of_type(source_type) if source_type else "unknown"
        return IssueRecord(
            issue_uid(origin, native),
            source,
            origin,
            native,
            None,
            framework=framework,
            flags=["label-only"],
        )

    def _linked(
        self, url: str, where: Where, framework: str | None = None, tags: list[str] | None = None
    ) -> IssueRecord | None:
        ref = parse_issue_url(url)
        if ref is None:
            where.report(
                self.report,
                "bad-link",
                f"'{url.strip()}' is not a Stack Overflow or GitHub issue URL",
                "url",
                url,
            )
            return None
        return IssueRecord(
            ref.uid,
            ref.source,
            ref.origin,
            ref.native_id,
            ref.url,
            framework=framework or self.taxonomy.framework_of(ref.repository, tags),
            tags=list(tags or []),
        )

    # ---- files ----
    def _text(self, path: str) -> str:
        return _decode(path, self.package.files[path])

    def _workbook(self, path: str) -> Any:
        # not read-only: only a fully loaded sheet lists its merged cells
        try:
            return openpyxl.load_workbook(io.BytesIO(self.package.files[path]), data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a damaged file
            raise ImportFailure(
                f"{path}: cannot read the workbook ({type(exc).__name__}: {exc})"
            ) from exc


def names_label_workbook(found_by: str | None) -> bool:
    """True when an issue's first finder is a package's label sheet, not a candidate list
    or a crawl: it was labelled without being among the selected candidates."""
    return (
        bool(found_by)
        and found_by.startswith(ORIGIN_PREFIX)
        and bool(LABEL_WORKBOOK_PATH.search(found_by.removeprefix(ORIGIN_PREFIX)))
    )


def _sheet(book: Any, name: str, path: str) -> Any:
    for sheet in book.worksheets:
        if sheet.title.strip().lower() == name.lower():
            return sheet
    raise ImportFailure(f"{path}: missing sheet '{name}' (found {book.sheetnames})")


def _present(value: Any) -> bool:
    return value is not None and str(value).strip() != ""


def _framework_of_type(source_type: str) -> str:
    """'SO-<a> & SO-<b>' -> '<a> & <b>'; a bare 'SO' names no framework."""
    parts = [
        re.sub(r"^(so|github)(-|$)", "", p.strip(), flags=re.I) for p in source_type.split("&")
    ]
    return " & ".join(p.lower() for p in parts if p)


def _source_of_type(source_type: str) -> str:
    lowered = source_type.lower()
    return (
        "stackoverflow"
        if lowered.startswith("so")
        else "github"
        if lowered.startswith("github")
        else "unknown"
    )


def _provenance(where: Where) -> str:
    return f"{ORIGIN_PREFIX}{where.file}#{where.sheet}!{where.row}"


def _raw(row: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v if isinstance(v, int | float | bool) or v is None else str(v)) for k, v in row.items()
    }
