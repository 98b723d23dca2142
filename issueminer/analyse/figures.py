"""The study's figures, drawn by matplotlib from `compute_stats` tables and agreement rows.

Made for a two-column paper printed in black and white: exact column widths, 7-8 pt
text, gray levels far enough apart to survive a photocopier, hatching and marker shapes
instead of colour, numbers written on the bars. Figures are `matplotlib.figure.Figure`
objects (no pyplot), so drawing them touches no global state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.figure import Figure

from issueminer.analyse.stats import PATH_SEPARATOR, StudyStats
from issueminer.label.agreement import AgreementRow

SINGLE_COLUMN_IN = 3.5  # one column of an ACM/IEEE two-column page (3.33-3.5 in)
DOUBLE_COLUMN_IN = 7.16  # the full text width of an IEEE page (ACM: 7.0 in)
ROW_IN = 0.14  # one bar row: 7 pt labels need about 10 pt of height
MIN_HEIGHT_IN = 1.6  # below this the axis labels crowd the bars
MAX_HEIGHT_IN = 8.5  # a page's text height (9 in) minus room for the caption
PNG_DPI = 300  # the resolution ACM and IEEE ask for in raster figures
FORMATS = ("png", "pdf", "svg")
FIX_PATTERNS_SHOWN = 25  # a column-high chart holds about this many bars; tables list all
HEATMAP_COLUMNS = 20  # fix patterns in the heatmap: more no longer fit the text width
HEATMAP_ROWS = 30  # leaf symptoms in the heatmap
# Gray levels per tree level: far apart so that stage, inner category and leaf stay
# distinguishable after black-and-white printing.
LEVEL_GRAYS = {0: "0.25", 1: "0.6", 2: "0.9"}
EDGE = "black"
# Landis & Koch's bounds of "substantial" and "almost perfect" agreement, the usual
# reading aid for kappa in SE papers.
KAPPA_GUIDES = (0.6, 0.8)
DIMENSION_NAMES = {"howto_topic": "how-to topic", "fix_pattern": "fix pattern(s)"}
# Fills for the issue types stacked in the sources chart, in this order; more types than
# fills reuse them, which the legend still tells apart by order.
TYPE_FILLS = (
    {"color": LEVEL_GRAYS[0]},
    {"color": "white", "hatch": "////"},
    {"color": LEVEL_GRAYS[2], "hatch": "...."},
    {"color": "white", "hatch": "xxx"},
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X")
LINESTYLES = ("-", "--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1, 1, 1)), (0, (1, 2)))

STYLE: dict[str, Any] = {
    "font.family": "DejaVu Sans",  # ships with matplotlib: the same glyphs everywhere
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "legend.fontsize": 7,
    "axes.linewidth": 0.6,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "hatch.linewidth": 0.5,
    "pdf.fonttype": 42,  # TrueType: IEEE PDF eXpress and ACM TAPS reject Type 3 fonts
    "ps.fonttype": 42,
    "svg.fonttype": "path",  # an SVG then looks the same without the font installed
    "svg.hashsalt": "issueminer",  # fixed ids: the same data gives the same SVG bytes
}
# No timestamps in the files, so that regenerating unchanged figures changes no byte.
METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None}, "svg": {"Date": None}}

CAPTIONS = {
    "fault_taxonomy": "Fault taxonomy: faults per stage, inner category and leaf symptom "
    "(count and share of all faults).",
    "fix_patterns": f"Fix patterns: faults per fix pattern (a fault may have several); the "
    f"{FIX_PATTERNS_SHOWN} most frequent, the rest summed (the table lists all).",
    "symptom_fix": f"Leaf symptom x fix pattern: faults with both, for the {HEATMAP_COLUMNS} "
    f"most frequent fix patterns and {HEATMAP_ROWS} most frequent leaf symptoms (the table "
    "has all).",
    "sources": "Labelled issues per source and framework, faults and how-to questions.",
    "howto_topics": "How-to questions per topic and sub-topic (count and share).",
    "agreement": "Inter-rater agreement (Cohen's kappa) per labelling round and dimension.",
}


@dataclass
class StudyFigure:
    name: str
    caption: str
    figure: Figure
    paths: dict[str, Path] = field(default_factory=dict)  # format -> file, once saved


# ---- building ---------------------------------------------------------------------------
def build_figures(stats: StudyStats, agreement: Sequence[AgreementRow]) -> list[StudyFigure]:
    """Every figure of the study, in the order a paper would show them."""
    makers: dict[str, Callable[[], Figure]] = {
        "fault_taxonomy": lambda: fault_taxonomy_figure(stats.tables["fault_taxonomy"]),
        "fix_patterns": lambda: fix_patterns_figure(
            stats.tables["fix_patterns"], stats.summary["totals"]["faults"]
        ),
        "symptom_fix": lambda: symptom_fix_figure(stats.tables["symptom_fix"]),
        "sources": lambda: sources_figure(stats.tables["overview"]),
        "howto_topics": lambda: howto_topics_figure(stats.tables["howto_topics"]),
        "agreement": lambda: agreement_figure(agreement),
    }
    with matplotlib.rc_context(STYLE):
        return [StudyFigure(name, CAPTIONS[name], make()) for name, make in makers.items()]


def save_figures(
    figures: Sequence[StudyFigure], out_dir: Path, formats: Sequence[str] = FORMATS
) -> list[Path]:
    """Write each figure as `<name>.<format>`; returns the files written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with matplotlib.rc_context(STYLE):
        for item in figures:
            for fmt in formats:
                path = out_dir / f"{item.name}.{fmt}"
                item.figure.savefig(path, format=fmt, dpi=PNG_DPI, metadata=METADATA[fmt])
                item.paths[fmt] = path
                written.append(path)
    return written


def _figure(width: float, rows: int) -> tuple[Figure, Any]:
    height = min(MAX_HEIGHT_IN, max(MIN_HEIGHT_IN, 0.6 + ROW_IN * rows))
    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.add_subplot()


def _empty(figure: Figure, ax: Any, message: str) -> Figure:
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes)
    return figure


# ---- nested bars (fault taxonomy, how-to topics) ------------------------------------------
@dataclass(frozen=True)
class Bar:
    level: int  # 0 = stage/topic, 1 = inner category, 2 = leaf/sub-topic
    label: str
    count: int
    percent: float


def _nested_bars(bars: list[Bar], width: float, xlabel: str, empty: str) -> Figure:
    figure, ax = _figure(width, len(bars))
    if not bars:
        return _empty(figure, ax, empty)
    positions = range(len(bars))
    ax.barh(
        positions,
        [b.count for b in bars],
        color=[LEVEL_GRAYS[b.level] for b in bars],
        edgecolor=EDGE,
        linewidth=0.4,
        height=0.75,
    )
    most = max(b.count for b in bars)
    for y, bar in zip(positions, bars, strict=True):
        ax.text(
            bar.count + most * 0.01,
            y,
            f"{bar.count} ({bar.percent:.1f}%)",
            va="center",
            fontsize=6.5,
        )
    ax.set_yticks(list(positions), [b.label for b in bars])
    for tick, bar in zip(ax.get_yticklabels(), bars, strict=True):
        tick.set_fontweight("bold" if bar.level < 2 else "normal")
        tick.set_fontstyle("italic" if bar.level == 1 else "normal")
    for y, bar in zip(positions, bars, strict=True):
        if bar.level == 0 and y:
            ax.axhline(y - 0.5, color="0.5", linewidth=0.4)  # separates the top-level groups
    ax.set_ylim(len(bars) - 0.5, -0.5)
    ax.set_xlim(0, most * 1.3)  # room for the "n (p%)" labels
    ax.set_xlabel(xlabel)
    ax.tick_params(axis="y", length=0)
    return figure


def fault_taxonomy_figure(table: pd.DataFrame) -> Figure:
    """Stage > inner category > leaf, in the taxonomy's order (the stats table's rows)."""
    levels = {"stage": 0, "inner": 1, "leaf": 2}
    bars = [
        Bar(
            levels[row.level],
            row.stage
            if row.level == "stage"
            else row.inner_category
            if row.level == "inner"
            else row.leaf_symptom,
            int(row.faults),
            float(row.percent),
        )
        for row in table.itertuples(index=False)
    ]
    return _nested_bars(bars, DOUBLE_COLUMN_IN, "faults", "no faults labelled")


def howto_topics_figure(table: pd.DataFrame) -> Figure:
    bars = [
        Bar(
            0 if row.level == "topic" else 2,
            row.topic if row.level == "topic" else row.subtopic,
            int(row.questions),
            float(row.percent),
        )
        for row in table.itertuples(index=False)
    ]
    return _nested_bars(bars, SINGLE_COLUMN_IN, "how-to questions", "no how-to questions labelled")


def fix_patterns_figure(table: pd.DataFrame, faults: int) -> Figure:
    """The most frequent fix patterns; the rest as one bar (tables/fix_patterns lists all).

    The rest's share is of the `faults` having any of those patterns, like every bar's.
    """
    shown = table.head(FIX_PATTERNS_SHOWN)
    bars = [
        Bar(1, row.fix_pattern, int(row.faults), float(row.percent))
        for row in shown.itertuples(index=False)
    ]
    rest = table.iloc[FIX_PATTERNS_SHOWN:]
    if len(rest):
        counted = int(rest.faults.sum())
        share = round(100.0 * counted / faults, 1) if faults else 0.0
        bars.append(Bar(2, f"{len(rest)} other patterns", counted, share))
    figure = _nested_bars(bars, SINGLE_COLUMN_IN, "faults", "no fix patterns labelled")
    for tick in figure.axes[0].get_yticklabels():
        tick.set_fontweight("normal")
        tick.set_fontstyle("normal")
    return figure


# ---- heatmap ------------------------------------------------------------------------------
def symptom_fix_figure(table: pd.DataFrame) -> Figure:
    """Counts of faults per (leaf symptom, fix pattern), darker = more, numbers written in."""
    matrix = table.set_index("leaf_symptom") if "leaf_symptom" in table else table
    matrix = matrix.iloc[:HEATMAP_ROWS, :HEATMAP_COLUMNS]
    matrix = matrix.loc[matrix.sum(axis=1) > 0]
    height = min(MAX_HEIGHT_IN, max(MIN_HEIGHT_IN, 1.9 + ROW_IN * len(matrix)))
    figure = Figure(figsize=(DOUBLE_COLUMN_IN, height), layout="constrained")
    ax = figure.add_subplot()
    if matrix.empty:
        return _empty(figure, ax, "no fault has both a leaf symptom and a fix pattern")
    values = matrix.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="Greys", aspect="auto", vmin=0)
    peak = values.max()
    for (y, x), value in pd.DataFrame(values).stack().items():
        if value:
            # white on dark cells, black on light ones: readable in print either way
            colour = "white" if value > peak * 0.55 else "black"
            ax.text(x, y, f"{value:.0f}", ha="center", va="center", fontsize=5.5, color=colour)
    ax.set_xticks(range(matrix.shape[1]), list(matrix.columns), rotation=55, ha="right")
    ax.set_yticks(range(matrix.shape[0]), list(matrix.index))
    ax.tick_params(axis="both", labelsize=6.5, length=0)
    for spine in ax.spines.values():
        spine.set_visible(True)
    colorbar = figure.colorbar(image, ax=ax, shrink=0.6, pad=0.01)
    colorbar.set_label("faults")
    return figure


# ---- sources ------------------------------------------------------------------------------
def sources_figure(table: pd.DataFrame) -> Figure:
    """Final labels per (source, framework), one stacked segment per issue type."""
    rows = table[table.source != "total"]
    figure, ax = _figure(SINGLE_COLUMN_IN, len(rows) + 3)
    if rows.empty:
        return _empty(figure, ax, "no labelled issues")
    labels = [f"{s}{PATH_SEPARATOR}{f}" for s, f in zip(rows.source, rows.framework, strict=True)]
    positions = list(range(len(rows)))
    types = [c for c in rows.columns if c not in ("source", "framework", "total", "issues")]
    left = [0] * len(rows)
    for index, column in enumerate(types):
        counts = rows[column].astype(int).tolist()
        ax.barh(
            positions,
            counts,
            left=left,
            edgecolor=EDGE,
            linewidth=0.4,
            label={"howto": "how-to questions"}.get(column, column),
            **TYPE_FILLS[index % len(TYPE_FILLS)],
        )
        left = [a + b for a, b in zip(left, counts, strict=True)]
    totals = rows.total.astype(int).tolist()
    for y, total in zip(positions, totals, strict=True):
        ax.text(total + max(totals) * 0.01, y, str(total), va="center", fontsize=6.5)
    ax.set_yticks(positions, labels)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlim(0, max(totals) * 1.15)
    ax.set_xlabel("final labels")
    ax.tick_params(axis="y", length=0)
    figure.legend(loc="outside lower center", ncols=len(types), frameon=False)
    return figure


# ---- agreement ----------------------------------------------------------------------------
def agreement_figure(rows: Sequence[AgreementRow]) -> Figure:
    """Kappa per round, one line per dimension: marker and dash tell the lines apart."""
    figure = Figure(figsize=(SINGLE_COLUMN_IN, 2.6), layout="constrained")
    ax = figure.add_subplot()
    rounds = list(dict.fromkeys(r.round for r in rows))
    dimensions = list(dict.fromkeys(r.dimension for r in rows))
    if not rounds:
        return _empty(figure, ax, "no round with two or more annotators")
    kappas = {(r.round, r.dimension): r.kappa for r in rows}
    for guide in KAPPA_GUIDES:
        ax.axhline(guide, color="0.7", linewidth=0.5, linestyle=":")
    low = 0.0
    for index, dimension in enumerate(dimensions):
        points = [
            (x, kappas[(name, dimension)])
            for x, name in enumerate(rounds)
            if kappas.get((name, dimension)) is not None
        ]
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        low = min(low, *ys)
        ax.plot(
            xs,
            ys,
            color="black" if index % 2 == 0 else "0.45",
            marker=MARKERS[index % len(MARKERS)],
            linestyle=LINESTYLES[index % len(LINESTYLES)],
            linewidth=0.9,
            markersize=4,
            markerfacecolor="white" if index % 2 else "black",
            label=DIMENSION_NAMES.get(dimension, dimension.replace("_", " ")),
        )
    ax.set_xticks(range(len(rounds)), rounds)
    ax.set_ylim(min(low - 0.05, 0.0), 1.02)
    ax.set_ylabel("Cohen's kappa")
    ax.set_xlabel("round")
    figure.legend(loc="outside lower center", ncols=3, frameon=False)
    return figure
