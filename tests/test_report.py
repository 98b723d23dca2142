"""`issueminer report`: figures, LaTeX tables and one self-contained HTML file.

The report of the TOSEM 2023 study is opened in real headless Chromium (Debian's package,
driven by Playwright); a screenshot is kept in tests/artifacts/ (not committed).
"""

from __future__ import annotations

import io
import json
import struct
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from playwright.sync_api import sync_playwright
from typer.testing import CliRunner

from issueminer.analyse.figures import (
    CAPTIONS,
    build_figures,
    save_figures,
)
from issueminer.analyse.report import DATA_ID, build_report, collect, format_number, render_html
from issueminer.analyse.stats import compute_stats
from issueminer.cli.main import app
from issueminer.collect.ingest import import_issues, import_labels, import_replication
from issueminer.label.agreement import agreement_table
from issueminer.store import CrawlRun, Store
from tests.conftest import SAMPLE
from tests.helpers import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

FIGURES = list(CAPTIONS)
STATS_TABLES = [
    "overview",
    "fault_taxonomy",
    "specific",
    "fix_patterns",
    "symptom_fix",
    "howto_topics",
]


class Page(HTMLParser):
    """The report's numbers (data-path), its tables' cells, its images and its JSON block."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.numbers: list[tuple[str, str, str]] = []  # pointer, format, text
        self.tables: list[list[list[str]]] = []
        self.images: list[dict[str, str]] = []
        self.data = ""
        self._number: list[Any] | None = None
        self._cell: list[str] | None = None
        self._in_data = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {k: v or "" for k, v in attrs}
        if tag == "table":
            self.tables.append([])
        elif tag == "tr" and self.tables:
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        elif tag == "span" and "data-path" in attributes:
            self._number = [attributes["data-path"], attributes["data-format"], ""]
        elif tag == "img":
            self.images.append(attributes)
        elif tag == "script" and attributes.get("id") == DATA_ID:
            self._in_data = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell))
            self._cell = None
        elif tag == "span" and self._number is not None:
            self.numbers.append(tuple(self._number))
            self._number = None
        elif tag == "script":
            self._in_data = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        if self._number is not None:
            self._number[2] += data
        if self._in_data:
            self.data += data


def resolve(document: Any, pointer: str) -> Any:
    for part in pointer.lstrip("/").split("/"):
        key = part.replace("~1", "/").replace("~0", "~")
        document = document[int(key)] if isinstance(document, list) else document[key]
    return document


def png_size(path: Path) -> tuple[int, int]:
    width, height = struct.unpack(">II", path.read_bytes()[16:24])  # the IHDR chunk
    return width, height


def cell_text(value: Any, decimals: int) -> str:
    if isinstance(value, bool) or value is None:
        return "" if value is None else str(value)
    if isinstance(value, int):
        return format_number(value, "int")
    if isinstance(value, float):
        return format_number(value, f"{decimals}f")
    return str(value)


# ---- the TOSEM 2023 report --------------------------------------------------------------------
@pytest.fixture(scope="module")
def tosem_report(tosem_dir, taxonomy, tmp_path_factory):
    base = tmp_path_factory.mktemp("report")
    db = f"sqlite:///{base / 'study.db'}"
    import_replication(Store(db), tosem_dir, taxonomy)
    runner = CliRunner()
    result = runner.invoke(
        app, ["report", "--db", db, "--out", str(base / "out"), "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    written = json.loads(result.stdout)
    assert written["html"] == str(base / "out" / "report.html")
    assert sorted(written["tables"]) == sorted(str(p) for p in (base / "out" / "tables").iterdir())
    stats = json.loads(runner.invoke(app, ["stats", "--db", db, "--format", "json"]).output)
    agree = json.loads(runner.invoke(app, ["agree", "--db", db, "--format", "json"]).output)
    html = (base / "out" / "report.html").read_text(encoding="utf-8")
    return base / "out", Page(html), stats, agree


def test_report_writes_tables_and_figures(tosem_report) -> None:
    out, *_ = tosem_report
    assert sorted(p.name for p in (out / "tables").iterdir()) == sorted(
        [f"{name}.tex" for name in STATS_TABLES] + ["agreement.tex"]
    )
    taxonomy_tex = (out / "tables" / "fault_taxonomy.tex").read_text()
    assert r"\begin{tabular}" in taxonomy_tex and "training \\& evaluation" in taxonomy_tex
    for name in FIGURES:
        assert (out / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        pdf = (out / "figures" / f"{name}.pdf").read_bytes()
        assert pdf.startswith(b"%PDF")
        assert b"/FontFile2" in pdf and b"/Type3" not in pdf  # embedded TrueType only
        assert (out / "figures" / f"{name}.svg").read_text().lstrip().startswith("<?xml")
    # paper sizes at the 300 dpi ACM and IEEE ask for: the taxonomy and heatmap span both
    # columns of an IEEE page (7.16 in), the others one column (3.5 in)
    widths = {name: png_size(out / "figures" / f"{name}.png")[0] for name in FIGURES}
    for name, width in widths.items():
        double = name in ("fault_taxonomy", "symptom_fix")
        assert width == (2148 if double else 1050), name


def test_report_numbers_equal_stats_and_agree_json(tosem_report) -> None:
    _, page, stats, agree = tosem_report
    embedded = json.loads(page.data)
    assert embedded["stats"] == stats
    assert embedded["agreement"] == agree
    assert len(page.numbers) > 2000  # every table cell and every number in the prose
    for pointer, fmt, text in page.numbers:
        assert text == format_number(resolve(embedded, pointer), fmt), pointer
    pointers = {pointer for pointer, _, _ in page.numbers}
    for name in ("issues", "faults", "howto", "distinct_issues", "label_only"):
        assert f"/stats/totals/{name}" in pointers
    assert "/stats/specific/share" in pointers


def test_report_tables_show_the_stats_rows(tosem_report) -> None:
    """Each rendered table, cell by cell, against `stats --format json` (not the HTML's JSON)."""
    _, page, stats, agree = tosem_report
    by_header = {tuple(t[0]): t[1:] for t in page.tables}
    for name in STATS_TABLES:
        records = stats["tables"][name]
        header = tuple(records[0])
        assert header in by_header, name
        expected = [[cell_text(record[c], 1) for c in header] for record in records]
        assert by_header[header] == expected, name
    agreement = by_header[("round", "dimension", "n", "agreement", "kappa", "alpha", "annotators")]
    assert agreement == [
        [row["round"], row["dimension"], str(row["n"])]
        + [format_number(row[k], "3f") for k in ("agreement", "kappa", "alpha")]
        + [", ".join(row["annotators"])]
        for row in agree
    ]
    taxonomy_rows = by_header[tuple(stats["tables"]["fault_taxonomy"][0])]
    stage = next(r for r in taxonomy_rows if r[1] == "training & evaluation")
    assert stage[-2:] == ["365", "57.3"]  # the paper's training & evaluation stage


def test_report_method_section_says_where_the_issues_came_from(tosem_report) -> None:
    _, page, stats, _ = tosem_report
    embedded = json.loads(page.data)
    assert embedded["funnel"]["crawled"] == {}  # imported, not crawled
    assert embedded["funnel"]["kept"] == {"github": 1933, "stackoverflow": 755}
    assert embedded["taxonomy"]["stages"] == 4
    rounds = {r["round"]: r for r in embedded["rounds"]}
    assert rounds["pilot"]["adjudicated"] > 0 and rounds["pilot"]["independent"] == 0
    assert rounds["round1"]["annotators"] == ["label1", "label2"]
    assert stats["totals"]["distinct_issues"] == 1070  # merged rows label their issue (issue 22)


def test_report_opens_in_headless_chromium(tosem_report) -> None:
    out, page, _, _ = tosem_report
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed (Debian package 'chromium')")
    assert len(page.images) == len(FIGURES)
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.images)
    ARTIFACTS.mkdir(exist_ok=True)
    messages, requests, failures = [], [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 900})
            tab.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
            tab.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
            tab.on("request", lambda r: requests.append(r.url))
            tab.on("requestfailed", lambda r: failures.append(r.url))
            tab.goto((out / "report.html").resolve().as_uri(), wait_until="load")
            images = tab.evaluate(
                "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])"
            )
            headings = tab.locator("h2").all_inner_texts()
            tab.screenshot(path=str(ARTIFACTS / "report-tosem23.png"), full_page=True)
        finally:
            browser.close()
    assert messages == []
    assert failures == []
    assert all(url.startswith(("file://", "data:")) for url in requests), requests
    assert len(images) == len(FIGURES)
    for complete, width, alt in images:
        assert complete and width > 0, alt
    assert {"Method", "Results"} <= set(headings)
    assert (ARTIFACTS / "report-tosem23.png").stat().st_size > 10_000


# ---- figures ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sample_db(taxonomy, tmp_path_factory) -> str:
    db = f"sqlite:///{tmp_path_factory.mktemp('sample') / 'sample.db'}"
    store = Store(db)
    import_issues(store, SAMPLE / "issues.jsonl", taxonomy)
    import_labels(store, SAMPLE / "labels.csv", taxonomy)
    return db


def test_figures_are_gray_only(tosem_report) -> None:
    out, *_ = tosem_report
    for name in FIGURES:
        image = Image.open(io.BytesIO((out / "figures" / f"{name}.png").read_bytes()))
        pixels = np.asarray(image.convert("RGB"))
        # no colour carries meaning: every pixel is a gray level, so it prints as seen
        assert (pixels[..., 0] == pixels[..., 1]).all(), name
        assert (pixels[..., 1] == pixels[..., 2]).all(), name
        assert len(np.unique(pixels)) > 2, name  # not blank


def test_figures_are_reproducible(sample_db, taxonomy, tmp_path) -> None:
    with Store(sample_db).session() as session:
        stats, agreement = compute_stats(session, taxonomy), agreement_table(session)
    saved = []
    for folder in ("a", "b"):
        figures = [f for f in build_figures(stats, agreement) if f.name in ("sources", "agreement")]
        saved.append(save_figures(figures, tmp_path / folder))
    for one, two in zip(*saved, strict=True):
        assert one.read_bytes() == two.read_bytes(), one.name  # no timestamps, stable ids


def test_an_empty_study_still_gets_a_report(sqlite_url, taxonomy, tmp_path) -> None:
    result = build_report(Store(sqlite_url), taxonomy, tmp_path / "out")
    page = Page(result.html.read_text())
    assert len(page.images) == len(FIGURES)
    assert json.loads(page.data)["stats"]["totals"]["issues"] == 0
    assert "no round has two or more annotators" in result.html.read_text().lower()


def test_sample_report_counts_crawled_kept_and_rounds(sample_db, taxonomy) -> None:
    store = Store(sample_db)
    with store.session() as session:
        session.add(CrawlRun(source="github", query={}, query_key="k", items_seen=412))
    try:
        with store.session() as session:
            data = collect(session, taxonomy)
    finally:
        with store.session() as session:
            session.execute(sa.delete(CrawlRun))
    assert data.funnel == {
        "crawled": {"github": 412},
        "kept": {"github": 35, "stackoverflow": 25},  # the sample's README
        "kept_total": 60,
    }
    assert [(r["round"], r["annotators"], r["independent"]) for r in data.rounds] == [
        ("r1", ["alice", "bob"], 30),
        ("r2", ["alice", "bob"], 14),
    ]
    text = render_html(data, taxonomy, [], ["horovod/horovod"])
    page = Page(text)
    assert ("/funnel/crawled/github", "int", "412") in page.numbers
    assert "alice, bob" in text
    for pointer, fmt, shown in page.numbers:
        assert shown == format_number(resolve(json.loads(page.data), pointer), fmt), pointer


