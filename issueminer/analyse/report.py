"""The study report: one self-contained HTML file, LaTeX tables and figures.

Every number comes from `compute_stats` and `agreement_table`, the same functions behind
`issueminer stats` and `issueminer agree`; the HTML carries both results as JSON so anyone
(and the tests) can check each rendered number against them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from issueminer import __version__
from issueminer.analyse import report_agreement
from issueminer.analyse.agreement_tables import (
    paper_caption,
    paper_frame,
    pooled_categories,
    pooled_confusions,
)
from issueminer.analyse.figures import StudyFigure, build_figures, save_figures
from issueminer.analyse.report_tables import (
    INDENT,
    PaperTable,
    agreement_paper_table,
    paper_tables,
    printable_records,
    write_paper_tables,
)
from issueminer.analyse.stats import StudyStats, compute_stats
from issueminer.collect.selection import selection_sentences
from issueminer.label.agreement import (
    MISSING_TEXT,
    SKIP,
    AgreementRow,
    agreement_table,
    current_annotations,
)
from issueminer.store import ADJUDICATOR, ANNOTATOR, CrawlRun, Issue, Store
from issueminer.taxonomy import Taxonomy


# ---- what the report shows --------------------------------------------------------------
@dataclass
class ReportData:
    """Everything the HTML shows; `as_json` is embedded in the page as it was rendered."""

    stats: StudyStats
    agreement: list[AgreementRow]
    funnel: dict[str, Any]
    rounds: list[dict[str, Any]]
    taxonomy: dict[str, int]
    missing: str = SKIP
    tables: list[PaperTable] = field(default_factory=list)  # the printable forms

    def reliability(self) -> dict[str, Any]:
        confusions = pooled_confusions(self.agreement)
        return {
            "missing": self.missing,
            "confusions": confusions,
            "categories": pooled_categories(confusions),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "stats": self.stats.as_json(),
            "agreement": [row.as_dict() for row in self.agreement],
            "funnel": self.funnel,
            "rounds": self.rounds,
            "taxonomy": self.taxonomy,
            "printable": printable_records(self.tables),
            "reliability": self.reliability(),
        }


@dataclass
class ReportResult:
    html: Path
    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def collect(session: Session, taxonomy: Taxonomy, missing: str = SKIP) -> ReportData:
    """The report's numbers: `compute_stats`, `agreement_table` (under the missing-label
    rule `missing`) and the selection funnel."""
    stats = compute_stats(session, taxonomy)
    labels = {name: taxonomy.label(name) for name in ("stage", "inner_category")}
    return ReportData(
        stats=stats,
        agreement=agreement_table(session, missing=missing),
        funnel=_funnel(session),
        rounds=_rounds(session),
        taxonomy=_taxonomy_sizes(taxonomy),
        missing=missing,
        tables=paper_tables(stats, labels),
    )


def _funnel(session: Session) -> dict[str, Any]:
    """Issues at each step before labelling: seen by crawls, kept in the database."""
    crawled = session.execute(
        select(CrawlRun.source, func.sum(CrawlRun.items_seen)).group_by(CrawlRun.source)
    ).all()
    kept = session.execute(
        select(Issue.source, func.count())
        .where(Issue.url.is_not(None))
        .group_by(Issue.source)
        .order_by(Issue.source)
    ).all()
    kept_by_source = {source: int(n) for source, n in kept}
    return {
        "crawled": {source: int(n or 0) for source, n in sorted(crawled)},
        "kept": kept_by_source,
        "kept_total": sum(kept_by_source.values()),
    }


def _rounds(session: Session) -> list[dict[str, Any]]:
    """Per round: who labelled, how many issues independently and how many adjudicated."""
    rows: dict[str, dict[str, Any]] = {}
    for role in (ANNOTATOR, ADJUDICATOR):
        for annotation in current_annotations(session, role=role, live=True):
            entry = rows.setdefault(
                annotation.round or "",
                {
                    "round": annotation.round or "",
                    "annotators": set(),
                    "independent": set(),
                    "adjudicated": set(),
                },
            )
            if role == ANNOTATOR:
                entry["annotators"].add(annotation.annotator)
                entry["independent"].add(annotation.issue_uid)
            else:
                entry["adjudicated"].add(annotation.issue_uid)
    return [
        {
            "round": entry["round"],
            "annotators": sorted(entry["annotators"]),
            "independent": len(entry["independent"]),
            "adjudicated": len(entry["adjudicated"]),
        }
        for entry in sorted(rows.values(), key=lambda e: _round_key(e["round"]))
    ]


def _round_key(name: str) -> tuple[int, str]:
    digits = "".join(ch for ch in name if ch.isdigit())
    return (int(digits) if digits else -1, name)  # the pilot (no digits) comes first


def _taxonomy_sizes(taxonomy: Taxonomy) -> dict[str, int]:
    inners = {inner for inners in taxonomy.tree.values() for inner in inners if inner}
    return {
        "stages": len(taxonomy.tree),
        "inner_categories": len(inners),
        "leaf_paths": len(taxonomy.leaf_paths()),
        "fix_patterns": len(taxonomy.names("fix_pattern")),
        "howto_topics": len(taxonomy.howto_tree),
        "howto_subtopics": sum(len(subs) for subs in taxonomy.howto_tree.values()),
    }


# ---- numbers with their source ----------------------------------------------------------
def json_pointer(*parts: str | int) -> str:
    """RFC 6901: '/stats/totals/faults'; '~' and '/' inside a name are escaped."""
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


def format_number(value: Any, fmt: str) -> str:
    """How the report writes a number (the tests apply the same rule to the JSON)."""
    if value is None or (isinstance(value, float) and value != value):
        return MISSING
    if fmt == "int":
        return str(int(value))
    if fmt == "pct":
        return f"{100 * value:.1f}%"
    return f"{value:.{int(fmt[0])}f}"  # "1f", "3f"


def _number(data: dict[str, Any], fmt: str, *parts: str | int) -> str:
    value = data
    for part in parts:
        value = value[part]
    pointer = escape(json_pointer(*parts))
    return (
        f'<span class="num" data-path="{pointer}" data-format="{fmt}">'
        f"{format_number(value, fmt)}</span>"
    )


# ---- HTML -------------------------------------------------------------------------------
def build_report(
    store: Store, taxonomy: Taxonomy, out_dir: Path, missing: str = SKIP
) -> ReportResult:
    """report.html (self-contained), tables/*.tex (and the full symptom x fix-pattern
    matrix as tables/symptom_fix.csv) and figures/* (PNG, PDF, SVG)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with store.session() as session:
        data = collect(session, taxonomy, missing)
        repositories = _repositories(session)
    agreement = agreement_paper_table(paper_frame(data.agreement), paper_caption(missing))
    tables = write_paper_tables(
        data.tables, data.stats.tables["symptom_fix"], out_dir / "tables", [agreement]
    )
    figures = build_figures(data.stats, data.agreement)
    figure_files = save_figures(figures, out_dir / "figures")
    html = render_html(data, taxonomy, figures, repositories)
    path = out_dir / "report.html"
    path.write_text(html, encoding="utf-8")
    return ReportResult(path, tables, figure_files)


def _repositories(session: Session) -> list[str]:
    origins = session.scalars(select(Issue.origin).where(Issue.source == "github").distinct()).all()
    return sorted(o.removeprefix("https://github.com/") for o in origins if o)


def render_html(
    data: ReportData,
    taxonomy: Taxonomy,
    figures: list[StudyFigure],
    repositories: list[str],
) -> str:
    payload = data.as_json()
    body = [
        f"<header><h1>{escape(taxonomy.title)}</h1>"
        f"<p class=meta>Study <code>{escape(taxonomy.study)}</code>; generated by issueminer "
        f"{escape(__version__)} from the study database. Every number below comes from "
        "<code>issueminer stats</code> and <code>issueminer agree</code>; the same numbers "
        f"are embedded as JSON (<code>#{DATA_ID}</code>).</p></header>",
        _contents(figures, data),
        _methods(payload, taxonomy, repositories, data),
        _results(payload, figures, data),
        _agreement_section(payload, data, figures),
        f'<script type="application/json" id="{DATA_ID}">{_script_json(payload)}</script>',
    ]
    return PAGE.format(title=escape(taxonomy.title), style=STYLESHEET, body="\n".join(body))


def _script_json(payload: dict[str, Any]) -> str:
    # "</" would end the script element early; "<\/" is the same string in JSON
    return json.dumps(payload, indent=1, sort_keys=False).replace("</", "<\\/")


def _in_results(figure: StudyFigure) -> bool:
    # the agreement figure and the confusion heat maps belong to the reliability section
    return figure.name != "agreement" and not figure.name.startswith("confusion_")


def _contents(figures: list[StudyFigure], data: ReportData) -> str:
    items = ['<li><a href="#methods">Method</a></li>', '<li><a href="#results">Results</a><ol>']
    items += [
        f'<li><a href="#fig-{f.name}">Figure {i}: {escape(f.name.replace("_", " "))}</a></li>'
        for i, f in enumerate(figures, start=1)
        if _in_results(f)
    ]
    items += [
        f'<li><a href="#table-{t.name}">Table {i}: {escape(t.caption)}</a></li>'
        for i, t in enumerate(data.tables, start=2)
    ]
    items.append('</ol></li><li><a href="#agreement">Agreement</a></li>')
    return f"<nav><h2>Contents</h2><ol>{''.join(items)}</ol></nav>"


def _methods(
    payload: dict[str, Any], taxonomy: Taxonomy, repositories: list[str], data: ReportData
) -> str:
    def n(fmt: str, *parts: str | int) -> str:
        return _number(payload, fmt, *parts)

    sources = "".join(f"<li>{escape(s)}</li>" for s in selection_sentences(taxonomy, repositories))
    funnel = data.funnel
    crawled = (
        ", ".join(
            f"{n('int', 'funnel', 'crawled', source)} from {escape(source)}"
            for source in funnel["crawled"]
        )
        if funnel["crawled"]
        else "not recorded in this database (its issues were imported, not crawled)"
    )
    kept = ", ".join(
        f"{n('int', 'funnel', 'kept', source)} {escape(source)}" for source in funnel["kept"]
    )
    totals = ("stats", "totals")
    steps = [
        f"<li><b>Crawled</b>: items the crawlers looked at: {crawled}.</li>",
        f"<li><b>Kept</b>: issues that met the criteria and are in the database with a link: "
        f"{n('int', 'funnel', 'kept_total')} ({kept or 'none'}).</li>",
        f"<li><b>Labelled</b>: {n('int', *totals, 'distinct_issues')} distinct issues carry "
        f"{n('int', *totals, 'final_labels')} final labels: {n('int', *totals, 'faults')} "
        f"faults, {n('int', *totals, 'howto')} how-to questions and "
        f"{n('int', *totals, 'not_relevant')} marked not relevant; "
        f"{n('int', *totals, 'label_only')} of the labels have no link in the sheets "
        "(label-only records).</li>",
        f"<li><b>In the study</b>: {n('int', *totals, 'issues')} issues "
        f"({n('int', *totals, 'faults')} faults, {n('int', *totals, 'howto')} how-to "
        f"questions); {n('int', 'stats', 'specific', 'yes')} faults "
        f"({n('pct', 'stats', 'specific', 'share')}) are "
        f"{escape(data.stats.summary['specific']['label'])}."
        "</li>",
    ]
    sizes = ("taxonomy",)
    scheme = (
        f"The taxonomy file (<code>{escape(taxonomy.path.name)}</code>) defines "
        f"{n('int', *sizes, 'stages')} stages, {n('int', *sizes, 'inner_categories')} inner "
        f"categories and {n('int', *sizes, 'leaf_paths')} stage/leaf-symptom paths for "
        f"faults, {n('int', *sizes, 'fix_patterns')} fix patterns, and "
        f"{n('int', *sizes, 'howto_topics')} how-to topics with "
        f"{n('int', *sizes, 'howto_subtopics')} sub-topics."
    )
    return (
        '<section id="methods"><h2>Method</h2>'
        f"<h3>Sources and selection criteria</h3><ul>{sources}</ul>"
        f"<h3>From crawled to labelled</h3><ol>{''.join(steps)}</ol>"
        f"<h3>Labelling scheme</h3><p>{scheme}</p>"
        f"<h3>Labelling rounds</h3>{_rounds_table(payload, data)}"
        f"{_agreement_summary(payload, data)}</section>"
    )


def _rounds_table(payload: dict[str, Any], data: ReportData) -> str:
    if not data.rounds:
        return "<p>No labelling rounds are recorded.</p>"
    rows = "".join(
        f"<tr><td>{escape(r['round'] or MISSING)}</td><td>{escape(', '.join(r['annotators']))}"
        f"</td><td>{_number(payload, 'int', 'rounds', i, 'independent')}</td>"
        f"<td>{_number(payload, 'int', 'rounds', i, 'adjudicated')}</td></tr>"
        for i, r in enumerate(data.rounds)
    )
    return (
        "<p><b>Table 1.</b> Labelling rounds.</p>"
        "<table><thead><tr><th>round</th><th>annotators</th><th>issues labelled "
        "independently</th><th>issues adjudicated</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _agreement_summary(payload: dict[str, Any], data: ReportData) -> str:
    """Per dimension: kappa in the first and the last round with two annotators."""
    by_dimension: dict[str, list[int]] = {}
    for index, row in enumerate(data.agreement):
        if row.kappa is not None:
            by_dimension.setdefault(row.dimension, []).append(index)
    if not by_dimension:
        return "<p>No round has two or more annotators, so no agreement is reported.</p>"
    items = "".join(
        f"<li>{escape(dimension.replace('_', ' '))}: "
        f"{_number(payload, '3f', 'agreement', rows[0], 'kappa')} in "
        f"{escape(data.agreement[rows[0]].round)}, "
        f"{_number(payload, '3f', 'agreement', rows[-1], 'kappa')} in "
        f"{escape(data.agreement[rows[-1]].round)}</li>"
        for dimension, rows in by_dimension.items()
    )
    rule = data.missing
    return (
        "<p>Two or more annotators labelled each round's issues independently; Cohen's kappa "
        "(the mean over pairs for more than two annotators), first and last round, under the "
        f"missing-label rule '{escape(rule)}' ({escape(MISSING_TEXT[rule])}); symptoms are "
        "compared with their path (stage, inner category), and labels left pending or issue "
        "types the importer "
        "inferred are counted apart:</p>"
        f"<ul>{items}</ul><p>All rounds and dimensions: "
        '<a href="#agreement">agreement</a>.</p>'
    )


def _figure_html(number: int, item: StudyFigure) -> str:
    png = base64.b64encode(item.paths["png"].read_bytes()).decode("ascii")
    width_in = item.figure.get_figwidth()
    return (
        f'<figure id="fig-{item.name}"><img src="data:image/png;base64,{png}" '
        f'alt="{escape(item.caption)}" style="width: {width_in * SCREEN_PX_PER_IN:.0f}px">'
        f"<figcaption>Figure {number}. {escape(item.caption)} Files: "
        f"<code>figures/{item.name}.png|pdf|svg</code>.</figcaption></figure>"
    )


def _results(payload: dict[str, Any], figures: list[StudyFigure], data: ReportData) -> str:
    """Figures, then tables, numbered (Table 1 is the rounds table in the method)."""
    parts = ['<section id="results"><h2>Results</h2>']
    for number, item in enumerate(figures, start=1):
        if _in_results(item):
            parts.append(_figure_html(number, item))
    for number, table in enumerate(data.tables, start=2):
        files = f"tables/{table.name}.tex" + (
            " and tables/symptom_fix.csv (the full matrix)" if table.name == "symptom_fix" else ""
        )
        parts.append(
            f'<h3 id="table-{table.name}">Table {number}. {escape(table.caption)}</h3>'
            f"<p class=meta><code>{escape(files)}</code></p>"
            + html_table(
                table.frame,
                table.path,
                payload,
                headers=table.headers,
                indent=table.indent,
                kinds=table.kinds,
            )
        )
    parts.append("</section>")
    return "".join(parts)


def _agreement_section(
    payload: dict[str, Any], data: ReportData, figures: list[StudyFigure]
) -> str:
    def number(fmt: str, *parts: str | int) -> str:
        return _number(payload, fmt, *parts)

    numbered = list(enumerate(figures, start=1))
    shown = (
        "".join(_figure_html(i, f) for i, f in numbered if f.name == "agreement"),
        "".join(_figure_html(i, f) for i, f in numbered if f.name.startswith("confusion_")),
    )
    return report_agreement.section(
        data.agreement,
        data.missing,
        payload["reliability"]["categories"],
        number,
        shown,
        len(data.tables) + 2,
    )


def html_table(
    frame: pd.DataFrame,
    path: tuple[str, ...],
    payload: dict[str, Any],
    decimals: int = 1,
    headers: dict[str, str] | None = None,
    indent: list[int] | None = None,
    kinds: list[str] | None = None,
) -> str:
    """A table whose numeric cells name the JSON value they show (`data-path`); headers in
    words when given, and the first column indented by `indent` levels (a tree whose rows
    are `kinds`: stage, inner, leaf, topic, subtopic)."""
    numeric = {c: pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns}
    head = "".join(
        f"<th{' class=n' if numeric[c] else ''}>{escape((headers or {}).get(c, str(c)))}</th>"
        for c in frame.columns
    )
    body = []
    for index, row in enumerate(frame.itertuples(index=False)):
        level = getattr(row, "level", None) if "level" in frame.columns else None
        if kinds is not None:
            level = kinds[index]
        cells = []
        for position, (column, value) in enumerate(zip(frame.columns, row, strict=True)):
            if numeric[column]:
                fmt = "int" if pd.api.types.is_integer_dtype(frame[column]) else f"{decimals}f"
                cells.append(f"<td class=n>{_number(payload, fmt, *path, index, column)}</td>")
            else:
                text = escape("" if value is None else str(value))
                if indent is not None and position == 0:
                    text = INDENT * 2 * indent[index] + text
                cells.append(f"<td>{text}</td>")
        css = f' class="level-{escape(str(level))}"' if level else ""
        body.append(f"<tr{css}>{''.join(cells)}</tr>")
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


DATA_ID = "report-data"
MISSING = "\u2013"  # an en dash where a value is undefined (e.g. kappa of one annotator)
SCREEN_PX_PER_IN = 130  # figures sized for paper read comfortably on screen at this scale

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; img-src data:; style-src 'unsafe-inline'">
<link rel="icon" href="data:,">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
{body}
</body>
</html>
"""

# Black text on white, no colour carrying meaning: the page prints as it looks.
STYLESHEET = """
body { font: 15px/1.45 Georgia, "DejaVu Serif", serif; color: #111; background: #fff;
  max-width: 1100px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.7em; margin-bottom: .2em; } h2 { border-bottom: 1px solid #999; }
.meta { color: #444; font-size: .9em; }
nav ol { font-size: .9em; }
table { border-collapse: collapse; font: 13px/1.3 "DejaVu Sans", Arial, sans-serif;
  margin: .5em 0 1.5em; }
th, td { border-bottom: 1px solid #ccc; padding: 2px 8px; text-align: left; }
th { border-bottom: 2px solid #333; }
.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.level-stage td, tr.level-topic td { font-weight: bold; border-top: 1px solid #333; }
tr.level-inner td { font-style: italic; }
.scroll { overflow-x: auto; }
.ci { color: #444; font-size: .92em; white-space: nowrap; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: .9em; margin-top: .4em; }
code { font-size: .9em; }
@media print { body { max-width: none; margin: 0; } nav { display: none; }
  .scroll { overflow: visible; } figure, table { break-inside: avoid; } }
"""
