"""`issueminer export` writes a TOSEM-shaped package that `import replication` reads back.

The round trip is checked field by field: final labels, every annotation (superseded
saves, statuses, roles and rounds included), the issues' identities (label-only records
too), and the statistics and agreement computed from them.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from issueminer.analyse.export import ExportError, _csv_text, export_package
from issueminer.analyse.stats import compute_stats
from issueminer.cli.main import app
from issueminer.collect.ingest import import_issues, import_labels, import_replication
from issueminer.collect.sources.files import csv_text
from issueminer.collect.sources.replication import _flat_rows
from issueminer.findings import ImportFailure
from issueminer.label.agreement import agreement_table
from issueminer.store import Annotation, FinalLabel, Issue, LabelingRound, Store
from issueminer.taxonomy import TAXONOMY_DIR
from tests.conftest import SAMPLE

DATA = "distributed_training_data"
FINAL = f"{DATA}/Results/final results/final categories.xlsx"
ROUNDS = f"{DATA}/Results/manual labelling"
LABEL_COLUMNS = (
    "issue_type",
    "specific",
    "stage",
    "inner_category",
    "leaf_symptom",
    "fix_patterns",
    "howto_topic",
    "howto_subtopic",
    "memo",
)


def finals(store: Store) -> dict[tuple[str, str, int], tuple]:
    with store.session() as session:
        return {
            (f.issue_uid, f.issue_type, f.part): (
                *(getattr(f, c) for c in LABEL_COLUMNS),
                f.resolved_by,
            )
            for f in session.scalars(sa.select(FinalLabel))
        }


def annotations(store: Store) -> list[tuple]:
    """Every annotation row, as a sorted list (append-only: superseded saves count too)."""
    with store.session() as session:
        rows = session.scalars(sa.select(Annotation).order_by(Annotation.id))
        return sorted(
            (
                a.issue_uid,
                a.annotator,
                a.round or "",
                a.role,
                a.part,
                a.status,
                *(repr(getattr(a, c)) for c in LABEL_COLUMNS),
            )
            for a in rows
        )


def newest_first_order(store: Store) -> dict[tuple, list[str]]:
    """Per (issue, annotator, round, role): the statuses in save order (newest last)."""
    order: dict[tuple, list[str]] = {}
    with store.session() as session:
        for a in session.scalars(sa.select(Annotation).order_by(Annotation.id)):
            key = (a.issue_uid, a.annotator, a.round, a.role)
            order.setdefault(key, []).append(f"{a.status}:{a.leaf_symptom}:{a.howto_topic}")
    return order


def issues(store: Store) -> dict[str, tuple]:
    with store.session() as session:
        return {
            i.uid: (i.url, i.source, i.framework, list(i.flags))
            for i in session.scalars(sa.select(Issue))
        }


def summaries(store: Store, taxonomy) -> tuple[dict, list[dict]]:
    with store.session() as session:
        stats = compute_stats(session, taxonomy).as_json()
        agreement = [row.as_dict() for row in agreement_table(session)]
    return stats, agreement


def assert_same_labels(a: Store, b: Store, taxonomy) -> None:
    assert finals(b) == finals(a)
    assert annotations(b) == annotations(a)
    assert newest_first_order(b) == newest_first_order(a)
    assert issues(b) == issues(a)
    assert summaries(b, taxonomy) == summaries(a, taxonomy)


# ---- the TOSEM 2023 study -----------------------------------------------------------------
@pytest.fixture(scope="module")
def tosem_trip(tosem_dir, taxonomy, tmp_path_factory):
    base = tmp_path_factory.mktemp("tosem-trip")
    original = Store(f"sqlite:///{base / 'a.db'}")
    import_replication(original, tosem_dir, taxonomy)
    result = export_package(original, taxonomy, base / "package")
    rebuilt = Store(f"sqlite:///{base / 'b.db'}")
    report = import_replication(rebuilt, base / "package", taxonomy)
    return original, rebuilt, result, report


def test_tosem_labels_round_trip_exactly(tosem_trip, taxonomy) -> None:
    original, rebuilt, result, report = tosem_trip
    assert result.notes == []
    assert_same_labels(original, rebuilt, taxonomy)
    assert "unknown-label" not in report.by_kind()


def test_tosem_several_labels_and_both_sheet_issues_survive(tosem_trip) -> None:
    """An issue's several faults (merged Link cells in the TOSEM sheets) come back as the
    same parts of the same issue; issues in both final sheets stay in both."""
    original, rebuilt, _, _ = tosem_trip
    a, b = finals(original), finals(rebuilt)
    several = {uid for uid, _, part in a if part > 1}
    assert len(several) > 40  # horovod/horovod#110 alone has six faults
    assert {key for key in a if key[0] in several} == {key for key in b if key[0] in several}
    both = {uid for uid, t, _ in a if (uid, "fault", 1) in a and (uid, "how-to question", 1) in a}
    assert len(both) == 5
    assert {u for u, _, _ in b if (u, "fault", 1) in b and (u, "how-to question", 1) in b} == both
    rows = [(key[0], key[4]) for key in annotations(rebuilt)]  # (issue, part)
    assert rows == [(key[0], key[4]) for key in annotations(original)]
    assert max(part for _, part in rows) > 1


def test_labelled_links_are_not_made_candidates(tosem_trip, tosem_dir) -> None:
    """Issue 22, item 3: the five labelled links no candidate list holds stay out of the
    exported candidate lists, so a round trip keeps 2,683 candidates."""
    original, rebuilt, result, report = tosem_trip
    posts = tosem_dir / DATA / "Identified distributed-training-related posts"
    listed = {
        line.strip()
        for path in (posts / "GitHub_dl_distributed").glob("*.txt")
        for line in path.read_text().splitlines()
        if line.strip()
    }
    with (posts / "so_dl_distributed.csv").open(newline="") as handle:
        listed |= {row["question"].strip() for row in csv.DictReader(handle)}
    labelled = {url for url, *_ in issues(original).values() if url}
    never_candidates = labelled - {u.rstrip("/") for u in listed}
    assert result.counts["labelled, never candidates"] == len(never_candidates) == 5
    assert report.counts["candidate urls"] == 2683
    assert result.counts["stackoverflow urls"] + result.counts["github urls"] == 2683
    assert issues(rebuilt) == issues(original)  # the five are still labelled issues


def test_tosem_package_has_the_tosem_layout(tosem_trip, tosem_dir) -> None:
    _, _, result, _ = tosem_trip
    root = result.root
    original = {
        p.relative_to(tosem_dir).as_posix() for p in (tosem_dir / DATA).rglob("*") if p.is_file()
    }
    exported = {p.relative_to(root).as_posix() for p in (root / DATA).rglob("*") if p.is_file()}
    assert original <= exported
    assert exported - original == {f"{DATA}/issueminer-package.json"}
    for sheet in ("faults", "how-to questions"):
        theirs = _header(tosem_dir / FINAL, sheet)
        ours = _header(root / FINAL, sheet)
        assert ours[: len(theirs)] == theirs, sheet
    book = openpyxl.load_workbook(
        root / ROUNDS / "reliability_analysis_round3.xlsx", read_only=True
    )
    assert book.sheetnames == ["label1", "label2", "Final"]
    fix = _column(root / FINAL, "faults", "fix pattern")
    assert any(" & " in (cell or "") for cell in fix)  # several patterns, one cell
    pending = _column(root / ROUNDS / "reliability_analysis_round1.xlsx", "label1", "Fix Pattern")
    assert "PENDING" in pending  # a label not decided yet, the TOSEM way


def _header(path: Path, sheet: str) -> list[str]:
    book = openpyxl.load_workbook(path, read_only=True)
    header = next(book[sheet].iter_rows(max_row=1, values_only=True))
    return [str(h).strip() for h in header if h is not None]


def _column(path: Path, sheet: str, name: str) -> list:
    book = openpyxl.load_workbook(path, read_only=True)
    rows = list(book[sheet].iter_rows(values_only=True))
    index = [str(h).strip() if h else "" for h in rows[0]].index(name)
    return [row[index] if index < len(row) else None for row in rows[1:]]


def test_package_carries_taxonomy_codebook_readme_and_manifest(tosem_trip, taxonomy) -> None:
    _, _, result, _ = tosem_trip
    root = result.root
    assert (root / "taxonomy" / "distributed-training.yaml").read_bytes() == (
        TAXONOMY_DIR / "distributed-training.yaml"
    ).read_bytes()
    codebook = TAXONOMY_DIR.parent / "labeling" / "distributed-training.md"
    assert (root / "labeling" / "distributed-training.md").read_bytes() == codebook.read_bytes()
    readme = (root / "README.md").read_text()
    assert taxonomy.title in readme
    assert "issueminer import replication distributed_training_data" in readme
    assert "horovod/horovod" in readme and "accepted answer" in readme
    assert "faults (637), how-to questions (494)" in readme
    manifest = json.loads((root / DATA / "issueminer-package.json").read_text())
    assert manifest["study"] == "distributed-training"
    assert list(manifest["rounds"]) == [f"reliability_analysis_round{i}.xlsx" for i in range(1, 6)]
    assert manifest["rounds"]["reliability_analysis_round2.xlsx"]["sheets"]["Final"] == {
        "annotator": "adjudicated",
        "role": "adjudicator",
    }


# ---- the sample study: other annotators, other round names, all statuses -------------------
def sample_study(store: Store, taxonomy) -> Store:
    import_issues(store, SAMPLE / "issues.jsonl", taxonomy)
    import_labels(store, SAMPLE / "labels.csv", taxonomy)
    with store.session() as session:
        uids = [i.uid for i in session.scalars(sa.select(Issue).order_by(Issue.url)).all()]
        extra = [
            # an app save that was skipped, then undone; a pending one without a placeholder
            Annotation(issue_uid=uids[0], annotator="alice", round="r2", status="skipped"),
            Annotation(issue_uid=uids[0], annotator="alice", round="r2", status="retracted"),
            Annotation(
                issue_uid=uids[1],
                annotator="bob",
                round="r2",
                status="pending",
                issue_type="fault",
                stage="communication setup",
                memo='=SUM(A1) "quoted", comma\nand a new line',
            ),
            # an adjudicator inside a round, and annotations without a round
            Annotation(
                issue_uid=uids[1],
                annotator="carol",
                round="r1",
                role="adjudicator",
                issue_type="how-to question",
                howto_topic="communication",
            ),
            Annotation(issue_uid=uids[2], annotator="dave", round=None, issue_type="not relevant"),
        ]
        session.add_all(extra)
    return store


@pytest.mark.parametrize("sheet_format", ["xlsx", "csv", "jsonl"])
def test_sample_round_trips_in_every_format(store, taxonomy, tmp_path, sheet_format) -> None:
    original = sample_study(store, taxonomy)
    result = export_package(original, taxonomy, tmp_path / "package", sheet_format)
    assert result.notes == []
    rebuilt = Store(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    import_replication(rebuilt, tmp_path / "package", taxonomy)
    assert_same_labels(original, rebuilt, taxonomy)
    with original.session() as a, rebuilt.session() as b:
        rounds_a = {r.name: r.annotators for r in a.scalars(sa.select(LabelingRound))}
        rounds_b = {r.name: r.annotators for r in b.scalars(sa.select(LabelingRound))}
    # import also records the rounds of annotations saved outside the app's round table
    assert {name: rounds_b[name] for name in rounds_a} == rounds_a
    assert {"r1", "r2"} <= set(rounds_b)


def test_sample_package_names_its_people_and_rounds(sqlite_url, taxonomy, tmp_path) -> None:
    original = sample_study(Store(sqlite_url), taxonomy)
    result = export_package(original, taxonomy, tmp_path / "package", "csv")
    manifest = json.loads((result.root / DATA / "issueminer-package.json").read_text())
    r1 = manifest["rounds"]["reliability_analysis_round1.xlsx"]
    assert r1["round"] == "r1"
    assert r1["sheets"] == {
        "label1": {"annotator": "alice", "role": "annotator"},
        "label2": {"annotator": "bob", "role": "annotator"},
        "Final": {"annotator": "carol", "role": "adjudicator"},
    }
    faults = (result.root / DATA / "Results/final results/final categories/faults.csv").read_text()
    assert faults.splitlines()[0].endswith(",resolved by")  # carol and dave, not the default
    nothing_relevant = result.root / DATA / "Results/final results/final categories"
    assert (nothing_relevant / "not relevant.csv").read_text().count("\n") == 1 + 3
    r2 = result.root / ROUNDS / "reliability_analysis_round2"
    header = (r2 / "label1.csv").read_text().splitlines()[0].split(",")
    # alice saved some issues twice: a Part column says those rows are saves of one label
    assert header[-2:] == ["Status", "Part"]


def test_export_twice_gives_the_same_files(sqlite_url, taxonomy, tmp_path) -> None:
    """Export, import, export again: byte-identical CSV packages (nothing drifts)."""
    original = sample_study(Store(sqlite_url), taxonomy)
    first = export_package(original, taxonomy, tmp_path / "first", "csv")
    rebuilt = Store(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    import_replication(rebuilt, first.root, taxonomy)
    second = export_package(rebuilt, taxonomy, tmp_path / "second", "csv")
    files = sorted(p.relative_to(first.root) for p in first.files)
    assert files == sorted(p.relative_to(second.root) for p in second.files)
    for path in files:
        assert (second.root / path).read_bytes() == (first.root / path).read_bytes(), path


def test_export_refuses_a_folder_that_is_not_empty(sqlite_url, taxonomy, tmp_path) -> None:
    store = Store(sqlite_url)
    (tmp_path / "old.txt").write_text("earlier work")
    with pytest.raises(ExportError, match="not empty"):
        export_package(store, taxonomy, tmp_path)
    with pytest.raises(ExportError, match="sheet format"):
        export_package(store, taxonomy, tmp_path / "new", "ods")
    assert (tmp_path / "old.txt").read_text() == "earlier work"


# ---- the importer's new, optional parts ----------------------------------------------------
def test_a_broken_manifest_is_named(sqlite_url, taxonomy, tmp_path) -> None:
    original = sample_study(Store(sqlite_url), taxonomy)
    export_package(original, taxonomy, tmp_path / "package", "jsonl")
    manifest = tmp_path / "package" / DATA / "issueminer-package.json"
    manifest.write_text("{not json")
    target = Store(f"sqlite:///{tmp_path / 'b.db'}")
    with pytest.raises(ImportFailure, match="issueminer-package.json: not valid JSON"):
        import_replication(target, tmp_path / "package", taxonomy)
    manifest.write_text(json.dumps({"rounds": {"reliability_analysis_round1.xlsx": {}}}))
    with pytest.raises(ImportFailure, match="needs 'sheets'"):
        import_replication(target, tmp_path / "package", taxonomy)


def test_an_unknown_status_is_refused_with_its_row(sqlite_url, taxonomy, tmp_path) -> None:
    original = sample_study(Store(sqlite_url), taxonomy)
    export_package(original, taxonomy, tmp_path / "package", "csv")
    sheet = tmp_path / "package" / DATA / "Results/manual labelling/reliability_analysis_round2"
    path = sheet / "label1.csv"
    rows = list(csv.reader(io.StringIO(path.read_text())))
    rows[1][rows[0].index("Status")] = "maybe"
    path.write_text(_csv_text(rows))
    with pytest.raises(ImportFailure, match=r"sheet 'label1', row 2: unknown label status='maybe'"):
        import_replication(Store(f"sqlite:///{tmp_path / 'b.db'}"), tmp_path / "package", taxonomy)


# ---- the command ----------------------------------------------------------------------------
def test_cli_export_then_import_gives_the_same_stats(sqlite_url, taxonomy, tmp_path) -> None:
    runner = CliRunner()
    sample_study(Store(sqlite_url), taxonomy)
    package = tmp_path / "package"
    result = runner.invoke(app, ["export", "--db", sqlite_url, "--out", str(package)])
    assert result.exit_code == 0, result.output
    assert "final labels (faults): 30" in result.output
    again = runner.invoke(app, ["export", "--db", sqlite_url, "--out", str(package)])
    assert again.exit_code == 1 and "not empty" in again.output
    rebuilt = f"sqlite:///{tmp_path / 'rebuilt.db'}"
    imported = runner.invoke(app, ["import", "replication", str(package), "--db", rebuilt])
    assert imported.exit_code == 0, imported.output
    stats = [
        json.loads(runner.invoke(app, ["stats", "--db", db, "--format", "json"]).output)
        for db in (sqlite_url, rebuilt)
    ]
    assert stats[0] == stats[1]
    assert stats[0]["totals"]["faults"] == 30


# ---- CSV injection: cells a spreadsheet would run are written as text ------------------------
HOSTILE = [
    '=HYPERLINK("https://example.com/x","click")',
    "=1+1",
    "+cmd",
    "-2",
    "@SUM(A1)",
    "'quoted",
    "''two quotes",
    "'=looks escaped",
    "it's fine",
]
# The importer strips the spaces around any cell (label_cells), in every format, so these
# read back as '=x'; the CSV layer itself gives them back exactly.
WHITESPACE_LED = ["\t=x", "\r=x"]


def test_csv_cells_a_spreadsheet_would_run_get_a_quote() -> None:
    memos = HOSTILE + WHITESPACE_LED
    text = _csv_text([["memo", "specific", "score"], *([memo, -1, -2.5] for memo in memos)])
    rows = list(csv.reader(io.StringIO(text)))[1:]
    assert [row[0] for row in rows] == [m if m == "it's fine" else f"'{m}" for m in memos]
    # numbers are not text: a spreadsheet reads them as numbers, and nothing runs
    assert {(row[1], row[2]) for row in rows} == {("-1", "-2.5")}
    assert [csv_text(row[0]) for row in rows] == memos
    assert csv_text("'plain") == "'plain"  # a quote the export did not add stays
    # the importer's reading of a sheet file removes exactly the added quote
    read = _flat_rows("faults.csv", text.encode(), "csv")
    assert [row[0] for row in read[1:]] == memos


@pytest.mark.parametrize("sheet_format", ["csv", "xlsx", "jsonl"])
def test_hostile_memos_round_trip_exactly(sqlite_url, taxonomy, tmp_path, sheet_format) -> None:
    original = sample_study(Store(sqlite_url), taxonomy)
    with original.session() as session:
        labels = session.scalars(sa.select(FinalLabel).order_by(FinalLabel.id)).all()
        for label, memo in zip(labels, HOSTILE, strict=False):
            label.memo = memo
        notes = session.scalars(sa.select(Annotation).order_by(Annotation.id)).all()
        for annotation, memo in zip(notes, reversed(HOSTILE), strict=False):
            annotation.memo = memo
    package = tmp_path / "package"
    assert export_package(original, taxonomy, package, sheet_format).notes == []
    rebuilt = Store(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    import_replication(rebuilt, package, taxonomy)
    assert_same_labels(original, rebuilt, taxonomy)
    with rebuilt.session() as session:
        memos = set(session.scalars(sa.select(FinalLabel.memo)))
    assert set(HOSTILE) <= memos
    final = package / "distributed_training_data" / "Results" / "final results"
    if sheet_format == "csv":
        sheets = sorted((final / "final categories").glob("*.csv"))
        text = "".join(sheet.read_text(encoding="utf-8") for sheet in sheets)
        assert "'=1+1" in text and "'''two quotes" in text and "'-2" in text
        rows = [
            row for s in sheets for row in csv.reader(io.StringIO(s.read_text(encoding="utf-8")))
        ]
        cells = [cell for row in rows for cell in row]
        assert not [c for c in cells if c.startswith(("=", "+", "-", "@"))]
    if sheet_format == "xlsx":  # openpyxl keeps text as text: no formula in the workbook
        book = openpyxl.load_workbook(final / "final categories.xlsx")
        cells = [c for sheet in book.worksheets for row in sheet.iter_rows() for c in row]
        assert {c.data_type for c in cells if c.value in HOSTILE} == {"s"}
        assert not [c for c in cells if c.data_type == "f"]


def test_a_second_fault_stored_before_the_first_gets_a_part_column(
    sqlite_url, taxonomy, tmp_path
) -> None:
    """Rows alone say which label is which only when an issue's labels come in order; an
    issue whose part 2 was stored first is written with a part column, and reads back."""
    original = sample_study(Store(sqlite_url), taxonomy)
    with original.session() as session:
        first = session.scalars(
            sa.select(FinalLabel).where(FinalLabel.issue_type == "fault").order_by(FinalLabel.id)
        ).first()
        session.add(
            FinalLabel(
                issue_uid=first.issue_uid,
                issue_type="fault",
                part=2,
                stage="communication setup",
                leaf_symptom="hang and timeout",
                fix_patterns=["fix network setting"],
                resolved_by=first.resolved_by,
            )
        )
        first.part, uid = 3, first.issue_uid  # part 3 is now the older row
    result = export_package(original, taxonomy, tmp_path / "package", "csv")
    faults = result.root / DATA / "Results/final results/final categories/faults.csv"
    header = faults.read_text().splitlines()[0].split(",")
    assert header[-1] == "part"
    rebuilt = Store(f"sqlite:///{tmp_path / 'b.db'}")
    import_replication(rebuilt, result.root, taxonomy)
    assert finals(rebuilt) == finals(original)
    assert {key[2] for key in finals(rebuilt) if key[0] == uid} == {2, 3}
