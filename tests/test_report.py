"""`issueminer report`: figures, LaTeX tables and one self-contained HTML file.

The report of the TOSEM 2023 study is opened in real headless Chromium (Debian's package,
driven by Playwright); a screenshot is kept in tests/artifacts/ (not committed).
"""

from __future__ import annotations

import io
import json
import re
import shutil
import sqlite3
import struct
import subprocess
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image
from typer.testing import CliRunner

from issueminer.analyse.figures import (
    CAPTIONS,
    build_figures,
    save_figures,
)
from issueminer.analyse.report import DATA_ID, build_report, collect, format_number, render_html
from issueminer.analyse.report_tables import TEXT_WIDTH_CM
from issueminer.analyse.stats import compute_stats
from issueminer.cli.main import app
from issueminer.collect.ingest import import_issues, import_labels, import_replication
from issueminer.label.agreement import agreement_table
from issueminer.store import CrawlRun, Store
from tests.conftest import SAMPLE
from tests.helpers import ARTIFACTS

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


def pooled(agree: list[dict]) -> dict[str, Counter]:
    """Per dimension: (first's value, second's value) -> items, all rounds, from agree JSON."""
    cells: dict[str, Counter] = {}
    for row in agree:
        for table in row["confusions"][:1]:
            labels = table["labels"]
            for i, line in enumerate(table["counts"]):
                for j, count in enumerate(line):
                    cells.setdefault(row["dimension"], Counter())[(labels[i], labels[j])] += count
    return cells


def confusion_figures(agree: list[dict]) -> dict[str, int]:
    """Each confusion heat map and the number of categories it shows (those disputed)."""
    shown = {}
    for dimension, cells in pooled(agree).items():
        disputed = {v for (a, b), n in cells.items() if n and a != b for v in (a, b)}
        shown[f"confusion_{dimension}"] = min(len(disputed), 24)
    return shown


def test_report_writes_tables_and_figures(tosem_report) -> None:
    out, _, _, agree = tosem_report
    assert sorted(p.name for p in (out / "tables").iterdir()) == sorted(
        [f"{name}.tex" for name in STATS_TABLES] + ["agreement.tex", "symptom_fix.csv"]
    )
    taxonomy_tex = (out / "tables" / "fault_taxonomy.tex").read_text()
    # 45 rows: longer than a page's float holds, so a longtable (it breaks across pages)
    assert r"\begin{longtable}" in taxonomy_tex and "training \\& evaluation" in taxonomy_tex
    assert r"\begin{tabular}" in (out / "tables" / "overview.tex").read_text()
    confusions = confusion_figures(agree)
    assert set(confusions) == {f"confusion_{d}" for d in {r["dimension"] for r in agree}}
    for name in [*FIGURES, *confusions]:
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
    for name, categories in confusions.items():  # a heat map of more than 6 needs the page
        width = png_size(out / "figures" / f"{name}.png")[0]
        assert width == (2148 if categories > 6 else 1050), name


def test_report_numbers_equal_stats_and_agree_json(tosem_report) -> None:
    _, page, stats, agree = tosem_report
    embedded = json.loads(page.data)
    assert embedded["stats"] == stats
    assert embedded["agreement"] == agree
    reliability = embedded["reliability"]
    assert reliability["missing"] == "skip" and {r["missing"] for r in agree} == {"skip"}
    for dimension, cells in pooled(agree).items():
        table = reliability["confusions"][dimension]
        labels = table["labels"]
        found = Counter(
            {
                (labels[i], labels[j]): n
                for i, line in enumerate(table["counts"])
                for j, n in enumerate(line)
                if n
            }
        )
        assert found == +cells, dimension
        for entry in (c for c in reliability["categories"] if c["dimension"] == dimension):
            c = entry["category"]
            margins = sum(n for (a, b), n in cells.items() if a == c) + sum(
                n for (a, b), n in cells.items() if b == c
            )
            assert entry["uses"] == margins
            assert entry["specific_agreement"] == pytest.approx(2 * cells[(c, c)] / margins)
    # every table cell and every number in the prose (the symptom x fix-pattern table is
    # printed as top patterns per symptom; its full matrix is a CSV file)
    assert len(page.numbers) > 900
    for pointer, fmt, text in page.numbers:
        assert text == format_number(resolve(embedded, pointer), fmt), pointer
    pointers = {pointer for pointer, _, _ in page.numbers}
    for name in ("issues", "faults", "howto", "distinct_issues", "label_only"):
        assert f"/stats/totals/{name}" in pointers
    assert "/stats/specific/share" in pointers


HEADER_WORDS = {"howto": "how-to questions"}


def worded(column: str) -> str:
    return HEADER_WORDS.get(column, column.replace("_", " "))


def test_report_tables_show_the_stats_rows(tosem_report) -> None:
    """Each rendered table, cell by cell, against `stats --format json` (not the HTML's JSON):
    flat tables as they are (headers in words), trees as indented names, the symptom x
    fix-pattern matrix as each symptom's top fix patterns."""
    _, page, stats, agree = tosem_report
    by_header = {tuple(t[0]): t[1:] for t in page.tables}
    for name in ("overview", "specific", "fix_patterns"):
        records = stats["tables"][name]
        header = tuple(worded(c) for c in records[0])
        assert header in by_header, (name, header, list(by_header))
        expected = [[cell_text(record[c], 1) for c in records[0]] for record in records]
        assert by_header[header] == expected, name
    tree = by_header[("category", "faults", "percent")]
    expected = []
    for r in stats["tables"]["fault_taxonomy"]:
        name = {"stage": r["stage"], "inner": r["inner_category"]}.get(
            r["level"], r["leaf_symptom"]
        )
        expected.append([name, cell_text(r["faults"], 1), cell_text(r["percent"], 1)])
    assert [[row[0].strip("\u2003"), *row[1:]] for row in tree] == expected
    assert next(r for r in tree if r[0] == "training & evaluation")[1:] == ["365", "57.3"]
    matrix = stats["tables"]["symptom_fix"]
    top = by_header[("stage", "leaf symptom", "mentions", "most frequent fix patterns", "other")]
    assert len(top) == len(matrix)
    named = ("stage", "inner_category", "leaf_symptom")
    for shown, record in zip(top, matrix, strict=True):
        counts = {k: v for k, v in record.items() if k not in named and v}
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        inner = record["inner_category"]
        leaf = record["leaf_symptom"] if inner == "-" else f"{inner}: {record['leaf_symptom']}"
        assert shown[:2] == [record["stage"], leaf]
        assert shown[2] == str(sum(counts.values()))
        assert shown[3] == "; ".join(f"{p} ({n})" for p, n in ranked[:3])
        assert shown[4] == str(sum(n for _, n in ranked[3:]))
    # the agreement table: every figure with its interval and the items left out
    header = next(h for h in by_header if h[:3] == ("round", "dimension", "items"))
    rows = by_header[header]
    assert len(rows) == len(agree)
    for shown, row in zip(rows, agree, strict=True):
        left = " / ".join(str(row["left_out"][k]) for k in row["left_out"])
        assert shown[:5] == [
            row["round"],
            row["dimension"].replace("_", " "),
            str(row["n"]),
            left,
            format_number(row["agreement"], "3f"),
        ]
        low, high = row["kappa_ci"]
        kappa = f"{format_number(row['kappa'], '3f')} [{low:.2f}, {high:.2f}]"
        assert shown[5] == kappa and shown[6] == row["kappa_band"]


# ---- LaTeX tables fit a page ------------------------------------------------------------------
def column_widths_cm(spec: str, rows: list[list[str]]) -> list[float]:
    """Each column's width: a p{..} column's declared width, an l/r column's longest cell
    at about 0.16 cm a character of \\small text (LaTeX commands not counted)."""
    kinds = re.findall(r"p\{([\d.]+)cm\}|([lrc])", spec)
    widths = []
    for index, (paragraph, _) in enumerate(kinds):
        if paragraph:
            widths.append(float(paragraph))
            continue
        longest = max(len(plain(row[index])) for row in rows)
        widths.append(0.16 * longest)
    return widths


def plain(cell: str) -> str:
    cell = re.sub(r"\\(textbf|newline|quad)\b", "", cell).replace("\\", "")
    return cell.replace("{", "").replace("}", "").strip()


def test_every_latex_table_fits_the_text_width(tosem_report) -> None:
    out, *_ = tosem_report
    tables = sorted((out / "tables").glob("*.tex"))
    assert len(tables) == len(STATS_TABLES) + 1
    for path in tables:
        text = path.read_text()
        assert "\\caption{" in text and f"\\label{{tab:{path.stem.replace('_', '-')}}}" in text
        begin = next(
            line
            for line in text.splitlines()
            if line.startswith(("\\begin{tabular}", "\\begin{longtable}"))
        )
        spec = begin.split("}{", 1)[1].removesuffix("}")
        columns = len(re.findall(r"p\{[\d.]+cm\}|[lrc]", spec))
        body = text.split("\\midrule\n")[-1].split("\\bottomrule")[0]
        if "\\endlastfoot" in text:
            body = text.split("\\endlastfoot\n")[1].split("\\end{longtable}")[0]
        rows = [
            re.split(r"(?<!\\)&", line.removesuffix("\\\\").strip())
            for line in body.strip().splitlines()
        ]
        header = text.split("\\toprule\n")[1].split("\n")[0].removesuffix("\\\\")
        rows.append(re.split(r"(?<!\\)&", header))
        assert {len(r) for r in rows} == {columns}, path.name
        widths = column_widths_cm(spec, rows)
        # each column also takes 2 x \\tabcolsep (6 pt each side, 0.42 cm)
        assert sum(widths) + 0.42 * columns <= TEXT_WIDTH_CM, (path.name, widths)
        if len(rows) > 51:
            assert "\\begin{longtable}" in text, path.name  # too long for one page's float
    matrix = (out / "tables" / "symptom_fix.csv").read_text().splitlines()
    assert matrix[0].startswith("stage,inner_category,leaf_symptom,")
    assert len(matrix[0].split(",")) > 40


def test_every_latex_table_compiles_on_a_page_with_room(tosem_report, tmp_path) -> None:
    """pdflatex (Debian's TeX Live) sets every table on a letter page with 2.5 cm margins:
    no line wider than the text (overfull box), no float taller than the page."""
    out, *_ = tosem_report
    if shutil.which("pdflatex") is None:
        pytest.fail("pdflatex is missing (Debian: texlive-latex-base, texlive-latex-recommended)")
    inputs = "".join(
        f"\\input{{{path}}}\n\\clearpage\n" for path in sorted((out / "tables").glob("*.tex"))
    )
    (tmp_path / "tables.tex").write_text(
        "\\documentclass{article}\n\\usepackage[letterpaper,margin=2.5cm]{geometry}\n"
        "\\usepackage[T1]{fontenc}\n\\usepackage{booktabs,longtable}\n"
        f"\\begin{{document}}\n{inputs}\\end{{document}}\n"
    )
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "tables.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    log = (tmp_path / "tables.log").read_text(errors="replace")
    assert done.returncode == 0, log[-2000:]
    assert "Overfull \\hbox" not in log
    assert "Float too large" not in log
    assert (tmp_path / "tables.pdf").read_bytes().startswith(b"%PDF")


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


def test_report_opens_in_headless_chromium(tosem_report, browser) -> None:
    """At 1440 px the page has no sideways scroll, nor does any table inside it."""
    out, page, _, agree = tosem_report
    figures = len(FIGURES) + len(confusion_figures(agree))
    assert len(page.images) == figures
    assert all(img["src"].startswith("data:image/png;base64,") for img in page.images)
    messages, requests, failures = [], [], []
    tab = browser.new_page(viewport={"width": 1440, "height": 900})
    try:
        tab.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
        tab.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
        tab.on("request", lambda r: requests.append(r.url))
        tab.on("requestfailed", lambda r: failures.append(r.url))
        tab.goto((out / "report.html").resolve().as_uri(), wait_until="load")
        images = tab.evaluate(
            "Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt])"
        )
        headings = tab.locator("h2").all_inner_texts()
        widths = tab.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        overflowing = tab.evaluate(
            "Array.from(document.querySelectorAll('table')).filter(t => "
            "t.getBoundingClientRect().right > document.documentElement.clientWidth || "
            "(t.parentElement.scrollWidth > t.parentElement.clientWidth + 1))"
            ".map(t => t.querySelector('th') && t.querySelector('th').textContent)"
        )
        captions = tab.locator("h3[id^=table-]").all_inner_texts()
        tab.screenshot(path=str(ARTIFACTS / "report-tosem23.png"), full_page=True)
    finally:
        tab.close()
    assert messages == []
    assert failures == []
    assert all(url.startswith(("file://", "data:")) for url in requests), requests
    assert len(images) == figures
    for complete, width, alt in images:
        assert complete and width > 0, alt
    assert {"Method", "Results"} <= set(headings)
    assert widths[0] <= widths[1], widths
    assert overflowing == []
    numbers = [int(re.match(r"Table (\d+)\.", c).group(1)) for c in captions]
    assert numbers == list(range(2, 2 + len(numbers)))  # Table 1 is the rounds' table
    assert (ARTIFACTS / "report-tosem23.png").stat().st_size > 10_000


# ---- leaves with their stage, the tree, the intervals ------------------------------------------
def test_symptom_fix_rows_are_leaves_with_their_stage(tosem_report) -> None:
    """Counted again from the database: fix-pattern mentions per (stage, leaf symptom)."""
    out, _, stats, _ = tosem_report
    with sqlite3.connect(out.parent / "study.db") as connection:
        rows = connection.execute(
            "SELECT stage, coalesce(inner_category, '-'), leaf_symptom, fix_patterns "
            "FROM final_label WHERE issue_type = 'fault' AND leaf_symptom IS NOT NULL"
        ).fetchall()
    expected: Counter = Counter()
    for stage, inner, leaf, patterns in rows:
        for pattern in json.loads(patterns):
            expected[(stage, inner, leaf, pattern)] += 1
    found = Counter()
    named = ("stage", "inner_category", "leaf_symptom")
    for record in stats["tables"]["symptom_fix"]:
        for pattern, n in record.items():
            if pattern not in named and n:
                found[(*(record[k] for k in named), pattern)] = n
    assert found == expected
    leaves = Counter(r["leaf_symptom"] for r in stats["tables"]["symptom_fix"])
    # "device error" under two stages, "others" under two inner categories: two rows each
    assert leaves["others"] == 2 and leaves["device error"] == 2


def test_figures_draw_the_tree_the_intervals_and_axis_titles(tosem_report, taxonomy) -> None:
    out, _, stats, agree = tosem_report
    with Store(f"sqlite:///{out.parent / 'study.db'}").session() as session:
        figures = {
            f.name: f.figure
            for f in build_figures(compute_stats(session, taxonomy), agreement_table(session))
        }
    texts = [t.get_text() for t in figures["taxonomy_tree"].axes[0].texts]
    for record in stats["tables"]["fault_taxonomy"]:
        name = {"stage": record["stage"], "inner": record["inner_category"]}.get(
            record["level"], record["leaf_symptom"]
        )
        assert name in texts
        assert f"{record['faults']} ({record['percent']:.1f}%)" in texts
    # one panel per dimension, each round's kappa with its 95% interval as the error bar
    dimensions = list(dict.fromkeys(r["dimension"] for r in agree))
    panels = figures["agreement"].axes
    assert len(panels) == len(dimensions)
    for ax, dimension in zip(panels, dimensions, strict=True):
        rows = [r for r in agree if r["dimension"] == dimension and r["kappa"] is not None]
        bars = [c for c in ax.containers if type(c).__name__ == "ErrorbarContainer"]
        assert len(bars) == len(rows)
        for bar, row in zip(bars, rows, strict=True):
            (_, y), *_ = bar.lines[0].get_xydata()
            assert y == pytest.approx(row["kappa"])
            segment = bar.lines[2][0].get_segments()[0]
            assert [p[1] for p in segment] == pytest.approx(row["kappa_ci"])
    heat = figures["symptom_fix"].axes[0]
    assert heat.get_xlabel() == "fix pattern"
    assert heat.get_ylabel() == "leaf symptom [stage / inner category]"
    names = [t.get_text() for t in heat.get_yticklabels()]
    assert len(set(names)) == len(names) and all(re.fullmatch(r".+ \[.+\]", n) for n in names)
    assert "others [T&E / program failure]" in names
    for name in (n for n in figures if n.startswith("confusion_")):
        ax = figures[name].axes[0]
        assert ax.get_xlabel().startswith("second annotator's")
        assert ax.get_ylabel().startswith("first annotator's")


def test_report_names_its_missing_label_rule(tosem_report, tmp_path) -> None:
    out, page, _, _ = tosem_report
    html = (out / "report.html").read_text()
    assert "missing-label rule 'skip'" in html and "missing-label rule: skip" in html
    assert "missing-label rule 'skip'" in (out / "tables" / "agreement.tex").read_text()
    runner = CliRunner()
    db = f"sqlite:///{out.parent / 'study.db'}"
    other = runner.invoke(
        app, ["report", "--db", db, "--out", str(tmp_path), "--missing", "as-category"]
    )
    assert other.exit_code == 0, other.output
    embedded = Page((tmp_path / "report.html").read_text())
    rows = json.loads(embedded.data)["agreement"]
    assert {r["missing"] for r in rows} == {"as-category"}
    agree = runner.invoke(app, ["agree", "--db", db, "--missing", "as-category", "-f", "json"])
    assert rows == json.loads(agree.stdout)
    assert "missing-label rule 'as-category'" in (tmp_path / "report.html").read_text()
    wrong = runner.invoke(app, ["report", "--db", db, "--out", str(tmp_path), "--missing", "x"])
    assert wrong.exit_code == 1 and "--missing must be one of skip, as-category" in wrong.output


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
