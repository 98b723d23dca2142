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
from issueminer.analyse.figures import StudyFigure, build_figures, save_figures
from issueminer.analyse.stats import (
    AGREEMENT_TITLE,
    StudyStats,
    agreement_frame,
    compute_stats,
    render_table,
    write_tables,
)
from issueminer.collect.selection import selection_sentences
from issueminer.label.agreement import AgreementRow, agreement_table, current_annotations
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

    def as_json(self) -> dict[str, Any]:
        return {
            "stats": self.stats.as_json(),
            "agreement": [row.as_dict() for row in self.agreement],
            "funnel": self.funnel,
            "rounds": self.rounds,
            "taxonomy": self.taxonomy,
        }


@dataclass
class ReportResult:
    html: Path
    tables: list[Path] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


def collect(session: Session, taxonomy: Taxonomy) -> ReportData:
    """The report's numbers: `compute_stats`, `agreement_table` and the selection funnel."""
    stats = compute_stats(session, taxonomy)
    return ReportData(
        stats=stats,
        agreement=agreement_table(session),
        funnel=_funnel(session),
        rounds=_rounds(session),
        taxonomy=_taxonomy_sizes(taxonomy),
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
def build_report(store: Store, taxonomy: Taxonomy, out_dir: Path) -> ReportResult:
    """report.html (self-contained), tables/*.tex and figures/* (PNG, PDF, SVG)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with store.session() as session:
        data = collect(session, taxonomy)
        repositories = _repositories(session)
    tables = write_tables(data.stats, out_dir / "tables", "latex")
    agreement_tex = out_dir / "tables" / "agreement.tex"
    agreement_tex.write_text(
        render_table(agreement_frame(data.agreement), "latex", AGREEMENT_TITLE, decimals=3),
        encoding="utf-8",
    )
    figures = build_figures(data.stats, data.agreement)
    figure_files = save_figures(figures, out_dir / "figures")
    html = render_html(data, taxonomy, figures, repositories)
    path = out_dir / "report.html"
    path.write_text(html, encoding="utf-8")
    return ReportResult(path, [*tables, agreement_tex], figure_files)


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
        _contents(figures, data.stats),
        _methods(payload, taxonomy, repositories, data),
        _results(payload, figures, data.stats),
        _agreement_section(payload, data),
        f'<script type="application/json" id="{DATA_ID}">{_script_json(payload)}</script>',
    ]
    return PAGE.format(title=escape(taxonomy.title), style=STYLESHEET, body="\n".join(body))


def _script_json(payload: dict[str, Any]) -> str:
    # "</" would end the script element early; "<\/" is the same string in JSON
    return json.dumps(payload, indent=1, sort_keys=False).replace("</", "<\\/")


def _contents(figures: list[StudyFigure], stats: StudyStats) -> str:
    items = ['<li><a href="#methods">Method</a></li>', '<li><a href="#results">Results</a><ol>']
    items += [
        f'<li><a href="#fig-{f.name}">Figure {i}: {escape(f.name.replace("_", " "))}</a></li>'
        for i, f in enumerate(figures, start=1)
    ]
    items += [
        f'<li><a href="#table-{name}">Table: {escape(stats.title(name))}</a></li>'
        for name in stats.tables
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
    return (
        "<p>Two or more annotators labelled each round's issues independently; Cohen's kappa "
        "(the mean over pairs for more than two annotators), first and last round:</p>"
        f"<ul>{items}</ul><p>All rounds and dimensions: "
        '<a href="#agreement">agreement</a>.</p>'
    )


def _results(payload: dict[str, Any], figures: list[StudyFigure], stats: StudyStats) -> str:
    parts = ['<section id="results"><h2>Results</h2>']
    for number, item in enumerate(figures, start=1):
        png = base64.b64encode(item.paths["png"].read_bytes()).decode("ascii")
        width_in = item.figure.get_figwidth()
        parts.append(
            f'<figure id="fig-{item.name}"><img src="data:image/png;base64,{png}" '
            f'alt="{escape(item.caption)}" style="width: {width_in * SCREEN_PX_PER_IN:.0f}px">'
            f"<figcaption>Figure {number}. {escape(item.caption)} Files: "
            f"<code>figures/{item.name}.png|pdf|svg</code>.</figcaption></figure>"
        )
    for name, frame in stats.tables.items():
        parts.append(
            f'<h3 id="table-{name}">{escape(stats.title(name))}</h3>'
            f"<p class=meta><code>tables/{name}.tex</code></p>"
            + html_table(frame, ("stats", "tables", name), payload)
        )
    parts.append("</section>")
    return "".join(parts)


def _agreement_section(payload: dict[str, Any], data: ReportData) -> str:
    frame = agreement_frame(data.agreement)
    return (
        f'<section id="agreement"><h2>{escape(AGREEMENT_TITLE)}</h2>'
        "<p>Percent agreement, Cohen's kappa and Krippendorff's alpha (nominal), from each "
        "annotator's newest label (<code>issueminer agree</code>; "
        "<code>tables/agreement.tex</code>).</p>"
        + html_table(frame, ("agreement",), payload, decimals=3)
        + "</section>"
    )


def html_table(
    frame: pd.DataFrame,
    path: tuple[str, ...],
    payload: dict[str, Any],
    decimals: int = 1,
) -> str:
    """A table whose numeric cells name the JSON value they show (`data-path`)."""
    numeric = {c: pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns}
    head = "".join(
        f"<th{' class=n' if numeric[c] else ''}>{escape(str(c))}</th>" for c in frame.columns
    )
    body = []
    for index, row in enumerate(frame.itertuples(index=False)):
        level = getattr(row, "level", None) if "level" in frame.columns else None
        cells = []
        for column, value in zip(frame.columns, row, strict=True):
            if numeric[column]:
                fmt = "int" if pd.api.types.is_integer_dtype(frame[column]) else f"{decimals}f"
                cells.append(f"<td class=n>{_number(payload, fmt, *path, index, column)}</td>")
            else:
                cells.append(f"<td>{escape('' if value is None else str(value))}</td>")
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
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; display: block; }
figcaption { font-size: .9em; margin-top: .4em; }
code { font-size: .9em; }
@media print { body { max-width: none; margin: 0; } nav { display: none; }
  .scroll { overflow: visible; } figure, table { break-inside: avoid; } }
"""
