"""Importing the TOSEM 2023 replication package reproduces the study's numbers.

Expected values are computed here straight from the workbooks with openpyxl and a
deliberately simple normalisation, independently of the importer's taxonomy logic.
"""

from __future__ import annotations

import re
import shutil
import tracemalloc
import zipfile
from collections import Counter
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa
from sklearn.metrics import cohen_kappa_score

from issueminer.analyse.stats import compute_stats
from issueminer.cli.main import app
from issueminer.collect.ingest import import_replication
from issueminer.collect.sources import replication
from issueminer.findings import ImportFailure
from issueminer.label.agreement import agreement_table
from issueminer.store import Annotation, FinalLabel, Issue, Store
from issueminer.store.schema import Base

RESULTS = "distributed_training_data/Results"
FINAL = f"{RESULTS}/final results/final categories.xlsx"
ROUNDS = f"{RESULTS}/manual labelling"

# The only spelling variants of final-sheet cells that a lower-case/strip comparison misses.
LEAF_VARIANTS = {
    "hang & timeout": "hang and timeout",
    "unexpected intermediate results": "unexpected intermediate result",
}


def simple(value) -> str | None:
    if value is None or not str(value).strip():
        return None
    return re.sub(r"\s+", " ", str(value).strip().lower())


def sheet_rows(path: Path, sheet: str) -> tuple[list[str], list[tuple]]:
    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    rows = list(book[sheet].iter_rows(values_only=True))
    header = [simple(h) or "" for h in rows[0]]
    return header, [r for r in rows[1:] if any(v is not None for v in r)]


def column(header: list[str], rows: list[tuple], name: str) -> list:
    index = header.index(name)
    return [r[index] if index < len(r) else None for r in rows]


def dump(store: Store) -> dict[str, list]:
    """Every table's content without surrogate keys and clocks, in a stable order."""
    skip = {"id", "created_at", "fetched_at", "started_at"}
    result = {}
    with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            cols = [c for c in table.columns if c.name not in skip]
            rows = conn.execute(sa.select(*cols)).all()
            result[table.name] = sorted(repr(tuple(r)) for r in rows)
    return result


@pytest.fixture(scope="module")
def imported(tosem_dir, taxonomy, tmp_path_factory):
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('tosem') / 'study.db'}")
    report = import_replication(store, tosem_dir, taxonomy)
    with store.session() as session:
        stats = compute_stats(session, taxonomy)
        agreement = agreement_table(session)
    return store, report, stats, agreement


def test_totals_match_the_study(imported, tosem_dir) -> None:
    _, _, stats, _ = imported
    _, faults = sheet_rows(tosem_dir / FINAL, "faults")
    _, howto = sheet_rows(tosem_dir / FINAL, "how-to questions")
    assert (len(faults), len(howto)) == (637, 494)  # the paper's figures
    totals = stats.summary["totals"]
    assert (totals["issues"], totals["faults"], totals["howto"]) == (1131, 637, 494)


def test_fault_figures_match_the_sheet(imported, tosem_dir) -> None:
    _, _, stats, _ = imported
    header, rows = sheet_rows(tosem_dir / FINAL, "faults")
    stages = Counter(simple(v) for v in column(header, rows, "stage"))
    assert stats.summary["stages"] == dict(stages)
    specific = Counter(column(header, rows, "distributed-specific"))
    assert stats.summary["specific"]["yes"] == specific[1]
    assert stats.summary["specific"]["no"] == specific[0]
    leaves = Counter()
    inners = Counter()
    for stage, inner, leaf in zip(
        column(header, rows, "stage"),
        column(header, rows, "inner-category"),
        column(header, rows, "leaf category"),
        strict=True,
    ):
        leaf = LEAF_VARIANTS.get(simple(leaf), simple(leaf))
        parts = [simple(stage), simple(inner), leaf]
        leaves[" / ".join(p for p in parts if p)] += 1
        if inner:
            inners[f"{simple(stage)} / {simple(inner)}"] += 1
    assert stats.summary["leaf_symptoms"] == dict(leaves)
    assert stats.summary["inner_categories"] == dict(inners)


def test_fix_patterns_split_combined_cells(imported, tosem_dir) -> None:
    _, _, stats, _ = imported
    header, rows = sheet_rows(tosem_dir / FINAL, "faults")
    cells = [simple(v) for v in column(header, rows, "fix pattern")]
    # every fault names at least one pattern, and combined cells count once per pattern
    combined = sum(1 for c in cells if c and (" & " in c or " / " in c))
    assert combined > 0
    counted = sum(stats.summary["fix_patterns"].values())
    assert counted >= len(cells) + combined - 2  # two cells repeat one pattern twice at most
    exact = Counter(c for c in cells if c == "fix communication configuration")
    parts = Counter(p.strip() for c in cells if c for p in re.split(r" & | / ", c))
    assert (
        stats.summary["fix_patterns"]["fix communication configuration"]
        >= exact["fix communication configuration"]
    )
    assert stats.summary["fix_patterns"]["fix network setting"] == parts["fix network setting"]


def test_howto_topics_match_the_sheet(imported, tosem_dir) -> None:
    _, _, stats, _ = imported
    header, rows = sheet_rows(tosem_dir / FINAL, "how-to questions")
    topics = Counter(simple(v) for v in column(header, rows, "how-to topic"))
    ours = {k.lower(): v for k, v in stats.summary["howto_topics"].items()}
    assert ours == dict(topics)


def merged_rows(path: Path, sheet: str) -> tuple[list[str], list[list]]:
    """A sheet's non-empty rows with every merged cell's value copied into the rows it
    covers (openpyxl leaves them empty): how the sheet reads to a person."""
    book = openpyxl.load_workbook(path, data_only=True)
    ws = book[sheet]
    values = [list(r) for r in ws.iter_rows(values_only=True)]
    own = [any(v is not None for v in r) for r in values]
    for cells in ws.merged_cells.ranges:
        top = values[cells.min_row - 1][cells.min_col - 1]
        for row in range(cells.min_row, cells.max_row):  # 0-based: the rows below the top
            for col in range(cells.min_col - 1, cells.max_col):
                values[row][col] = top
    header = [simple(h) or "" for h in values[0]]
    return header, [r for r, kept in zip(values[1:], own[1:], strict=True) if kept]


def _source_and_framework(type_cell: str) -> tuple[str, str]:
    """'GitHub-horovod' -> (github, horovod); 'SO-tensorflow & SO-keras' -> (stackoverflow,
    tensorflow & keras)."""
    parts = [p.strip() for p in type_cell.split("&")]
    source = "github" if parts[0].lower().startswith("github") else "stackoverflow"
    return source, " & ".join(p.split("-", 1)[1].lower() for p in parts)


def test_merged_link_rows_are_further_labels_of_their_issue(imported, tosem_dir) -> None:
    """Issue 22: a row inside a merged Type/Link cell labels the issue named at its top."""
    store, report, stats, _ = imported
    labels: Counter = Counter()  # (source, framework, type) -> labels
    issues: dict[tuple[str, str], set[str]] = {}
    links: set[str] = set()
    for sheet, issue_type in (("faults", "faults"), ("how-to questions", "howto")):
        header, rows = merged_rows(tosem_dir / FINAL, sheet)
        for type_cell, link in zip(
            column(header, rows, "type"), column(header, rows, "link"), strict=True
        ):
            assert type_cell and link  # every row lies under a Type and a Link
            key = _source_and_framework(type_cell)
            labels[(*key, issue_type)] += 1
            issues.setdefault(key, set()).add(link.strip())
            links.add(link.strip())
    totals = stats.summary["totals"]
    assert (totals["faults"], totals["howto"]) == (637, 494)
    assert totals["distinct_issues"] == len(links) == 1070
    assert totals["label_only"] == 0
    with store.session() as session:
        sources = Counter(session.scalars(sa.select(Issue.source)))
        assert set(sources) == {"github", "stackoverflow"}  # no 'unknown'
        assert session.scalar(sa.select(sa.func.count()).where(Issue.url.is_(None))) == 0
    overview = stats.tables["overview"]
    body = overview[overview.source != "total"]
    ours = {(r.source, r.framework): (r.faults, r.howto, r.issues) for r in body.itertuples()}
    expected = {
        key: (labels[(*key, "faults")], labels[(*key, "howto")], len(uids))
        for key, uids in issues.items()
    }
    assert ours == expected
    total = overview[overview.source == "total"].iloc[0]
    assert (total.faults, total.howto, total.issues) == (637, 494, len(links))
    assert len(report.of_kind("no-link")) == 0
    # horovod/horovod#110 holds six faults (B18:B23), numbered 1 to 6
    url = "https://github.com/horovod/horovod/issues/110"
    with store.session() as session:
        parts = session.scalars(
            sa.select(FinalLabel.part)
            .join(Issue, Issue.uid == FinalLabel.issue_uid)
            .where(Issue.url == url, FinalLabel.issue_type == "fault")
        ).all()
    header, rows = merged_rows(tosem_dir / FINAL, "faults")
    rows_of_110 = [link for link in column(header, rows, "link") if link.strip() == url]
    assert len(rows_of_110) == 6 and sorted(parts) == [1, 2, 3, 4, 5, 6]


def test_every_sheet_reads_merged_rows_as_parts(imported, tosem_dir) -> None:
    """The pilot and the rounds: each issue's k-th row in a sheet is its part k there."""
    store, *_ = imported
    expected: Counter = Counter()
    sheets = {"label1": "label1", "label2": "label2", "Final": "adjudicated"}
    for path in sorted((tosem_dir / ROUNDS).glob("*.xlsx")):
        number = re.search(r"round(\d+)", path.name)
        round_name = f"round{number[1]}" if number else "pilot"
        for sheet, annotator in (sheets if number else {"pilot": "pilot"}).items():
            header, rows = merged_rows(path, sheet)
            seen: Counter = Counter()
            for link in column(header, rows, "link"):
                if link:  # a row of its own under a merged link; empty rows are skipped
                    seen[link.strip()] += 1
                    expected[(round_name, annotator, seen[link.strip()])] += 1
    with store.session() as session:
        stored = Counter(
            (a.round, a.annotator, a.part) for a in session.scalars(sa.select(Annotation))
        )
    assert stored == expected
    assert max(part for *_, part in expected) > 1


def _round_labels(store: Store, url: str, round_name: str) -> dict[tuple[str, int], Annotation]:
    with store.session() as session:
        rows = session.scalars(
            sa.select(Annotation)
            .join(Issue, Issue.uid == Annotation.issue_uid)
            .where(Issue.url == url, Annotation.round == round_name)
        ).all()
        session.expunge_all()
    return {(a.annotator, a.part): a for a in rows}


EVERY_SHEET_TWICE = [(who, k) for who in ("adjudicated", "label1", "label2") for k in (1, 2)]


def test_a_link_typed_twice_keeps_both_rows(imported) -> None:
    """Round 1 lists horovod/horovod#656 twice in every sheet, with two final fix patterns."""
    store, *_ = imported
    labels = _round_labels(store, "https://github.com/horovod/horovod/issues/656", "round1")
    assert sorted(labels) == EVERY_SHEET_TWICE
    assert labels[("adjudicated", 1)].fix_patterns == ["change packaging tool"]
    assert labels[("adjudicated", 2)].fix_patterns == ["fix dependency version"]
    assert labels[("label2", 2)].fix_patterns == ["fix dependency version"]


def test_a_blank_row_is_never_a_done_label(imported) -> None:
    """Round 2: label1 typed horovod/horovod#23 twice and left the second row blank, where
    label2 and Final merged the Link cell over two labelled rows."""
    store, report, *_ = imported
    labels = _round_labels(store, "https://github.com/horovod/horovod/issues/23", "round2")
    assert sorted(labels) == EVERY_SHEET_TWICE
    blank = labels[("label1", 2)]
    assert blank.status == "pending" and blank.howto_topic is None and blank.issue_type is None
    assert labels[("label2", 2)].howto_subtopic == "data parallelism"
    assert labels[("label2", 2)].status == "done"
    assert [(f.sheet, f.row) for f in report.of_kind("blank-label")] == [("label1", 30)]


def test_merged_round_rows_pair_across_sheets(imported, tosem_dir) -> None:
    """Round 4 merges one Link cell (A73:A74) in label1, label2 and Final alike: the row
    below the top is part 2 of that issue in all three."""
    store, *_ = imported
    book = openpyxl.load_workbook(tosem_dir / ROUNDS / "reliability_analysis_round4.xlsx")
    url = book["label1"]["A73"].value.strip()
    labels = _round_labels(store, url, "round4")
    assert {who for who, part in labels if part == 2} == {"adjudicated", "label1", "label2"}


def test_messy_cells_are_reported(imported) -> None:
    _, report, _, _ = imported
    kinds = report.by_kind()
    for kind in (
        "normalised",
        "placeholder",
        "shifted-cells",
        "merged-link",
        "repeated-link",
        "blank-label",
        "combined-fix-patterns",
        "in-both-sheets",
    ):
        assert kinds.get(kind, 0) > 0, kind
    shifted = report.of_kind("shifted-cells")
    assert any(f.sheet == "label2" and "round4" in f.file and f.row == 3 for f in shifted)
    assert "unknown-label" not in kinds


def test_agreement_for_the_five_rounds(imported, tosem_dir) -> None:
    _, _, _, rows = imported
    dimensions = {"issue_type", "stage", "leaf_symptom", "fix_pattern", "howto_topic"}
    by_round = {}
    for row in rows:
        by_round.setdefault(row.round, set()).add(row.dimension)
    assert by_round == {f"round{i}": dimensions for i in range(1, 6)}
    # round 4's sheets list the same issues in the same order, their merged row included
    # (the k-th row of an issue pairs with its k-th): recompute the issue-type kappa over the
    # rows both annotators typed a type in (an inferred type is no judgement: issue 22)
    path = tosem_dir / ROUNDS / "reliability_analysis_round4.xlsx"
    types = []
    for sheet in ("label1", "label2"):
        header, sheet_data = sheet_rows(path, sheet)
        types.append([simple(t) for t in column(header, sheet_data, "issue type")])
    pairs = [(a, b) for a, b in zip(*types, strict=True) if a and b]
    assert len(pairs) == 105
    expected = cohen_kappa_score([a for a, _ in pairs], [b for _, b in pairs])
    ours = next(r for r in rows if r.round == "round4" and r.dimension == "issue_type")
    assert ours.n == len(pairs)
    assert ours.kappa == pytest.approx(expected)


def test_folder_and_zip_give_the_same_database(imported, tosem_zip, taxonomy, tmp_path) -> None:
    store, *_ = imported
    from_zip = Store(f"sqlite:///{tmp_path / 'zip.db'}")
    import_replication(from_zip, tosem_zip, taxonomy)
    assert dump(from_zip) == dump(store)


def test_reimport_changes_nothing(imported, tosem_dir, taxonomy) -> None:
    store, *_ = imported
    before = dump(store)
    report = import_replication(store, tosem_dir, taxonomy)
    assert dump(store) == before
    assert not any(k.endswith(("added", "updated")) for k in report.counts)


def test_import_on_postgresql_gives_the_same_figures(
    imported, tosem_dir, taxonomy, pg_admin_url
) -> None:
    from tests.pgserver import fresh_database

    with fresh_database(pg_admin_url) as url:
        store = Store(url)
        import_replication(store, tosem_dir, taxonomy)
        with store.session() as session:
            pg_stats = compute_stats(session, taxonomy).summary
            pg_agreement = [r.as_dict() for r in agreement_table(session)]
        store.close()
    _, _, stats, agreement = imported
    assert pg_stats == stats.summary
    assert pg_agreement == [r.as_dict() for r in agreement]


# ---- malformed packages: a clear error, and the database as it was ----------------------
@pytest.fixture
def package_copy(tosem_dir, tmp_path) -> Path:
    target = tmp_path / "package"
    shutil.copytree(tosem_dir, target)
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


def _edit(path: Path, sheet: str, change) -> None:
    book = openpyxl.load_workbook(path)
    change(book[sheet])
    book.save(path)


def _fails_cleanly(store: Store, package: Path, taxonomy, *needles: str) -> None:
    before = dump(store)
    with pytest.raises(ImportFailure) as failure:
        import_replication(store, package, taxonomy)
    message = str(failure.value)
    for needle in needles:
        assert needle in message
    assert dump(store) == before


def test_missing_column_is_named(imported, package_copy, taxonomy) -> None:
    store, *_ = imported
    _edit(package_copy / FINAL, "faults", lambda ws: ws.delete_cols(4))  # the stage column
    _fails_cleanly(
        store, package_copy, taxonomy, "final categories.xlsx", "sheet 'faults'", "row 1", "stage"
    )


def test_unknown_label_is_named_with_its_row(imported, package_copy, taxonomy) -> None:
    store, *_ = imported

    def change(ws):
        ws.cell(row=10, column=6).value = "banana failure"

    _edit(package_copy / FINAL, "faults", change)
    _fails_cleanly(store, package_copy, taxonomy, "sheet 'faults', row 10", "banana failure")
    report = import_replication(
        Store(f"sqlite:///{package_copy.parent / 'k.db'}"),
        package_copy,
        taxonomy,
        keep_unknown=True,
    )
    assert [f.row for f in report.of_kind("unknown-label")] == [10]


def test_unreadable_workbook_is_named(imported, package_copy, taxonomy) -> None:
    store, *_ = imported
    (package_copy / ROUNDS / "reliability_analysis_round3.xlsx").write_bytes(b"not a workbook")
    _fails_cleanly(
        store,
        package_copy,
        taxonomy,
        "reliability_analysis_round3.xlsx",
        "cannot read the workbook",
    )


def test_not_a_package_is_refused(imported, tmp_path, taxonomy) -> None:
    store, *_ = imported
    (tmp_path / "empty").mkdir()
    _fails_cleanly(store, tmp_path / "empty", taxonomy, "final categories.xlsx")
    (tmp_path / "bad.zip").write_bytes(b"PK\x03\x04 broken")
    _fails_cleanly(store, tmp_path / "bad.zip", taxonomy, "not a readable zip")


def test_import_from_an_https_style_url(imported, tosem_zip, taxonomy, tmp_path) -> None:
    """A package URL is downloaded (here from a server on 127.0.0.1) and imported like a file."""
    import functools
    import http.server
    import threading

    handler = functools.partial(
        http.server.SimpleHTTPRequestHandler, directory=str(tosem_zip.parent)
    )
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/{tosem_zip.name}"
        from_url = Store(f"sqlite:///{tmp_path / 'url.db'}")
        import_replication(from_url, url, taxonomy)
        store, *_ = imported
        assert dump(from_url) == dump(store)
        missing = f"http://127.0.0.1:{server.server_port}/nothing.zip"
        with pytest.raises(ImportFailure, match="download failed"):
            import_replication(from_url, missing, taxonomy)
    finally:
        server.shutdown()


# ---- zip bombs: only the package's own files are read, each within bounds -------------------
def _zip_with(tosem_dir: Path, path: Path, extra: dict[str, int], replace: str = "") -> Path:
    """The TOSEM package as a zip, plus (or instead of `replace`) members of zeros."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(tosem_dir.rglob("*")):
            name = f"pkg/{file.relative_to(tosem_dir).as_posix()}"
            if file.is_file() and not (replace and name.endswith(replace)):
                archive.write(file, name)
        for name, size in extra.items():
            with archive.open(f"pkg/{name}", "w", force_zip64=True) as member:
                for _ in range(size // 2**20):
                    member.write(bytes(2**20))
    return path


def _bounded(monkeypatch, member_mb: int = 4) -> None:
    """Bounds a few MB wide, so a bomb of tens of MB is enough to pass them."""
    monkeypatch.setattr(replication, "MAX_MEMBER_BYTES", member_mb * 2**20)
    monkeypatch.setattr(replication, "RATIO_FLOOR_BYTES", 2**20)


def test_a_zip_bomb_member_is_refused_by_its_ratio(
    imported, tosem_dir, taxonomy, tmp_path, monkeypatch
) -> None:
    _bounded(monkeypatch, member_mb=100)
    round3 = f"{ROUNDS}/reliability_analysis_round3.xlsx"
    bomb = _zip_with(tosem_dir, tmp_path / "bomb.zip", {round3: 40 * 2**20}, replace=round3)
    assert bomb.stat().st_size < 2 * 2**20  # 40 MB of zeros pack into about 40 KB
    store, *_ = imported
    _fails_cleanly(store, bomb, taxonomy, "reliability_analysis_round3.xlsx", "zip bomb")
    tracemalloc.start()
    try:
        with pytest.raises(ImportFailure):
            replication.open_package(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 2**20  # the member was never unpacked (40 MB if it had been)


def test_a_member_past_the_size_bound_is_refused(
    imported, tosem_dir, taxonomy, tmp_path, monkeypatch
) -> None:
    _bounded(monkeypatch)
    monkeypatch.setattr(replication, "MAX_RATIO", 10**6)  # the size bound, not the ratio
    pilot = f"{ROUNDS}/pilot_labelling.xlsx"
    bomb = _zip_with(tosem_dir, tmp_path / "big.zip", {pilot: 8 * 2**20}, replace=pilot)
    store, *_ = imported
    _fails_cleanly(store, bomb, taxonomy, "pilot_labelling.xlsx", "more than 4 MB")


def test_the_real_package_passes_the_bounds_with_a_wide_margin(tosem_zip, tosem_dir) -> None:
    with zipfile.ZipFile(tosem_zip) as archive:
        files = [i for i in archive.infolist() if not i.is_dir()]
    used = [i for i in files if replication.is_package_file(i.filename)]
    assert {Path(i.filename).name for i in files if i not in used} == {"LICENSE"}
    assert max(i.file_size for i in used) * 100 < replication.MAX_MEMBER_BYTES
    assert max(i.file_size / i.compress_size for i in used) * 5 < replication.MAX_RATIO
    folder = [p for p in tosem_dir.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in folder) * 1000 < replication.MAX_PACKAGE_BYTES


def test_files_the_importer_does_not_use_are_not_read(
    imported, tosem_dir, taxonomy, tmp_path, monkeypatch
) -> None:
    _bounded(monkeypatch)
    package = _zip_with(tosem_dir, tmp_path / "with-data.zip", {"data/zeros.bin": 64 * 2**20})
    opened: list[str] = []
    real_open = zipfile.ZipFile.open

    def spy(self, name, *args, **kwargs):
        opened.append(getattr(name, "filename", name))
        return real_open(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "open", spy)
    store = Store(f"sqlite:///{tmp_path / 'with-data.db'}")
    import_replication(store, package, taxonomy)
    assert "pkg/data/zeros.bin" not in opened
    assert any(name.endswith("final categories.xlsx") for name in opened)
    assert dump(store) == dump(imported[0])


def test_a_failed_import_leaves_no_new_database(
    imported, tosem_dir, runner, tmp_path, monkeypatch
) -> None:
    _bounded(monkeypatch)
    final = "distributed_training_data/Results/final results/final categories.xlsx"
    bomb = _zip_with(tosem_dir, tmp_path / "bomb.zip", {final: 16 * 2**20}, replace=final)
    fresh = tmp_path / "fresh.db"
    result = runner.invoke(app, ["import", "replication", str(bomb), "--db", str(fresh)])
    assert result.exit_code == 1, result.output
    assert "final categories.xlsx" in result.output and "zip bomb" in result.output
    assert "Traceback" not in result.output
    assert list(tmp_path.glob("fresh.db*")) == []  # nor its -wal / -shm files
    # a database that was there before stays, as it was
    kept = tmp_path / "kept.db"
    assert runner.invoke(app, ["import", "replication", str(tosem_dir), "--db", str(kept)])
    before = dump(Store(f"sqlite:///{kept}"))
    result = runner.invoke(app, ["import", "replication", str(bomb), "--db", str(kept)])
    assert result.exit_code == 1 and kept.is_file()
    assert dump(Store(f"sqlite:///{kept}")) == before


def test_fix_pattern_table_states_both_bases(imported) -> None:
    """Issue 22, item 6: shares of the faults (they sum past 100%: a fault may carry several
    patterns) beside shares of the mentions (they sum to 100%), and the title says which."""
    _, _, stats, _ = imported
    table = stats.tables["fix_patterns"]
    faults = stats.summary["totals"]["faults"]
    mentions = int(table.faults.sum())
    assert stats.summary["fix_pattern_mentions"] == mentions > faults  # 663 over 637
    assert table.percent.tolist() == [round(100 * n / faults, 1) for n in table.faults]
    assert table.percent_of_mentions.tolist() == [
        round(100 * n / mentions, 1) for n in table.faults
    ]
    assert table.percent.sum() > 100
    title = stats.title("fix_patterns")
    assert f"{faults} faults" in title and f"{mentions} mentions" in title


def test_specific_share_per_stage(imported, tosem_dir) -> None:
    """Issue 22, item 6: the distributed-specific share of each stage, from the sheet."""
    import pandas as pd

    _, _, stats, _ = imported
    frame = pd.read_excel(tosem_dir / FINAL, sheet_name="faults")
    frame["stage"] = frame["stage"].map(simple)
    expected = frame.groupby("stage")["distributed-specific"].agg(["size", "sum"])
    table = stats.tables["specific"].set_index("stage")
    for stage, row in expected.iterrows():
        assert table.loc[stage, "faults"] == row["size"]
        assert table.loc[stage, "distributed-specific"] == row["sum"]
        assert table.loc[stage, "percent"] == round(100 * row["sum"] / row["size"], 1)
    shares = table.drop("all faults").percent
    assert (shares.min(), shares.max()) == (80.7, 100.0)  # "from about 81% to 100%"
    assert table.loc["all faults", "faults"] == len(frame)


def test_reimport_mends_a_database_the_old_reading_made(imported, tosem_dir, taxonomy, tmp_path):
    """A database imported before merged cells were read holds label-only issues, a link
    typed twice as one label saved twice, and labelled candidates found by the label sheet.
    Importing the package again leaves it as a fresh import would."""
    store, *_ = imported
    old = Store(f"sqlite:///{tmp_path / 'old.db'}")
    import_replication(old, tosem_dir, taxonomy)
    sheet = "Results/final results/final categories.xlsx"
    with old.session() as session:
        url = "https://github.com/horovod/horovod/issues/110"
        issue = session.scalars(sa.select(Issue).where(Issue.url == url)).one()
        second = session.scalars(
            sa.select(FinalLabel).where(
                FinalLabel.issue_uid == issue.uid,
                FinalLabel.issue_type == "fault",
                FinalLabel.part == 2,
            )
        ).one()
        session.add(  # the old reading: row 2 of #110 was an issue of its own
            Issue(
                uid="0" * 40,
                source="unknown",
                origin=f"replication:{sheet}#faults",
                native_id=f"after {url} +1",
                url=None,
                flags=["label-only"],
            )
        )
        session.flush()
        second.issue_uid, second.part = "0" * 40, 1
        typed_twice = session.scalars(
            sa.select(Annotation).where(Annotation.provenance.like("%round1.xlsx#label1!51"))
        ).one()
        typed_twice.part = 1  # read as a newer save of the label in row 50
        issue.found_by = f"replication:{sheet}"
    assert dump(old) != dump(store)
    report = import_replication(old, tosem_dir, taxonomy)
    assert dump(old) == dump(store)
    assert report.counts["label-only records read as further labels"] == 1
    assert report.counts["annotations stored again under their part"] == 1
    assert report.counts["issues found by a candidate list, not a label sheet"] == 1
