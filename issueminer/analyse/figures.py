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

from issueminer.analyse.agreement_tables import pooled_confusions
from issueminer.analyse.stats import NO_INNER, PATH_SEPARATOR, StudyStats
from issueminer.label.agreement import LEAF_SEPARATOR as LEAF_PATH
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
    "taxonomy_tree": "The fault taxonomy as a tree: stage, inner category and leaf symptom, "
    "each with its faults (count and share of all faults).",
    "fix_patterns": f"Fix patterns: faults per fix pattern (a fault may have several); the "
    f"{FIX_PATTERNS_SHOWN} most frequent, the rest summed (the table lists all).",
    "symptom_fix": f"Leaf symptom (with its path) x fix pattern: faults with both, for the "
    f"{HEATMAP_COLUMNS} most frequent fix patterns and {HEATMAP_ROWS} most frequent leaf "
    "symptoms (tables/symptom_fix.csv has the full matrix).",
    "sources": "Labelled issues per source and framework, faults and how-to questions.",
    "howto_topics": "How-to questions per topic and sub-topic (count and share).",
    "agreement": "Inter-rater agreement per labelling round: Cohen's kappa with its 95% "
    "bootstrap interval, one panel per dimension; dotted lines at 0.6 and 0.8 bound "
    "Landis and Koch's 'substantial' and 'almost perfect'.",
}
CONFUSION_CAPTION = (
    "Where annotators disagree on {dimension}: the first annotator's value (rows) against "
    "the second's (columns), all rounds; only the categories of at least one disagreement."
)
STAGE_KEY = "Leaf symptoms carry their stage's initials: {key}."
CONFUSION_SHOWN = 24  # categories in a confusion heat map: more no longer fit the page


@dataclass
class StudyFigure:
    name: str
    caption: str
    figure: Figure
    paths: dict[str, Path] = field(default_factory=dict)  # format -> file, once saved


# ---- building ---------------------------------------------------------------------------
def build_figures(stats: StudyStats, agreement: Sequence[AgreementRow]) -> list[StudyFigure]:
    """Every figure of the study, in the order a paper would show them; then one confusion
    heat map per labelled dimension."""
    makers: dict[str, Callable[[], Figure]] = {
        "fault_taxonomy": lambda: fault_taxonomy_figure(stats.tables["fault_taxonomy"]),
        "taxonomy_tree": lambda: taxonomy_tree_figure(stats.tables["fault_taxonomy"]),
        "fix_patterns": lambda: fix_patterns_figure(
            stats.tables["fix_patterns"], stats.summary["totals"]["faults"]
        ),
        "symptom_fix": lambda: symptom_fix_figure(stats.tables["symptom_fix"]),
        "sources": lambda: sources_figure(stats.tables["overview"]),
        "howto_topics": lambda: howto_topics_figure(stats.tables["howto_topics"]),
        "agreement": lambda: agreement_figure(agreement),
    }
    with matplotlib.rc_context(STYLE):
        figures = [StudyFigure(name, CAPTIONS[name], make()) for name, make in makers.items()]
        matrix = stats.tables["symptom_fix"]
        if "stage" in matrix and len(matrix):
            heatmap = next(f for f in figures if f.name == "symptom_fix")
            heatmap.caption += " " + stage_key(sorted(set(matrix.stage)))
        for dimension, table in pooled_confusions(agreement).items():
            words = DIMENSION_NAMES.get(dimension, dimension.replace("_", " "))
            caption = CONFUSION_CAPTION.format(dimension=words)
            if dimension == "leaf_symptom" and table["labels"]:
                caption += " " + stage_key(sorted({v.split(LEAF_PATH)[0] for v in table["labels"]}))
            figure = confusion_figure(table, words)
            figures.append(StudyFigure(f"confusion_{dimension}", caption, figure))
        return figures


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
    """Counts of faults per (leaf symptom, fix pattern), darker = more, numbers written in;
    a leaf is named with its stage (one name can sit under two stages)."""
    named = [c for c in ("stage", "inner_category", "leaf_symptom") if c in table]
    if "stage" in table:
        paths = table[named].astype(str).agg(LEAF_PATH.join, axis=1)
        names = [short_leaf(path) for path in paths]
        matrix = table.drop(columns=named).set_axis(names, axis=0)
    else:
        matrix = table.set_index("leaf_symptom") if "leaf_symptom" in table else table
    matrix = matrix.iloc[:HEATMAP_ROWS, :HEATMAP_COLUMNS]
    matrix = matrix.loc[matrix.sum(axis=1) > 0]
    longest = max((len(str(c)) for c in matrix.columns), default=0)
    figure = _heatmap_figure(DOUBLE_COLUMN_IN, len(matrix), longest)
    ax = figure.axes[0]
    if matrix.empty:
        return _empty(figure, ax, "no fault has both a leaf symptom and a fix pattern")
    _heatmap(figure, ax, matrix, "faults")
    ax.set_xlabel("fix pattern")
    ax.set_ylabel("leaf symptom [stage / inner category]")
    return figure


def confusion_figure(table: dict[str, Any], dimension: str) -> Figure:
    """One annotator's values against the other's, for the categories of any disagreement
    (the most disagreed-on first when there are too many to show)."""
    labels, counts = table["labels"], table["counts"]
    disputed = {
        i: sum(counts[i][j] + counts[j][i] for j in range(len(labels)) if j != i)
        for i in range(len(labels))
    }
    shown = sorted((i for i, n in disputed.items() if n), key=lambda i: (-disputed[i], i))
    shown = sorted(shown[:CONFUSION_SHOWN])
    names = [short_leaf(labels[i]) for i in shown]
    width = SINGLE_COLUMN_IN if len(shown) <= 6 else DOUBLE_COLUMN_IN
    longest = max((len(n) for n in names), default=0)
    figure = _heatmap_figure(width, len(shown), longest)
    ax = figure.axes[0]
    if not shown:
        return _empty(figure, ax, f"the annotators never disagreed on {dimension}")
    matrix = pd.DataFrame([[counts[i][j] for j in shown] for i in shown], names, names)
    _heatmap(figure, ax, matrix, "items")
    ax.set_xlabel(f"second annotator's {dimension}")
    ax.set_ylabel(f"first annotator's {dimension}")
    return figure


def stage_key(stages: Sequence[str]) -> str:
    return STAGE_KEY.format(key=", ".join(f"{stage_initials(s)} = {s}" for s in stages))


def stage_initials(stage: str) -> str:
    """'training & evaluation' -> 'T&E', 'data and model preparation' -> 'DMP'."""
    words = [w for w in stage.replace("&", " & ").split() if w not in ("and", "of", "the")]
    return "".join("&" if w == "&" else w[0].upper() for w in words)


def short_leaf(value: str) -> str:
    """A leaf named by its path ('stage > inner > leaf') as 'leaf [initials / inner]' for
    tick labels; other values as they are."""
    parts = [p for p in value.split(LEAF_PATH) if p not in ("", NO_INNER)]
    if len(parts) < 2:
        return value
    where = " / ".join([stage_initials(parts[0]), *parts[1:-1]])
    return f"{parts[-1]} [{where}]"


def _heatmap_figure(width: float, rows: int, longest_label: int = 30) -> Figure:
    # rotated column labels need height of their own: about 0.045 in per character at 6.5 pt
    height = 1.2 + ROW_IN * rows + 0.045 * longest_label * 0.82
    figure = Figure(figsize=(width, min(MAX_HEIGHT_IN, max(MIN_HEIGHT_IN, height))))
    figure.set_layout_engine("constrained")
    figure.add_subplot()
    return figure


def _heatmap(figure: Figure, ax: Any, matrix: pd.DataFrame, unit: str) -> None:
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
    colorbar.set_label(unit)


# ---- the taxonomy as a tree -------------------------------------------------------------
TREE_INDENT = 0.045  # one level of the tree, as a share of the axes' width


def taxonomy_tree_figure(table: pd.DataFrame) -> Figure:
    """Stage > inner category > leaf symptom drawn as a tree, one node per line with its
    count and share; connectors join each node to its parent."""
    levels = {"stage": 0, "inner": 1, "leaf": 2}
    nodes: list[tuple[int, str, str, int, float]] = []
    for row in table.itertuples(index=False):
        level = levels[row.level]
        if row.level == "leaf" and row.inner_category in ("", "-"):
            level = 1  # a leaf straight under its stage
        name = {"stage": row.stage, "inner": row.inner_category}.get(row.level, row.leaf_symptom)
        nodes.append((level, row.level, name, int(row.faults), float(row.percent)))
    height = min(MAX_HEIGHT_IN, max(MIN_HEIGHT_IN, 0.5 + 0.13 * len(nodes)))
    figure = Figure(figsize=(SINGLE_COLUMN_IN, height), layout="constrained")
    ax = figure.add_subplot()
    ax.set_axis_off()
    if not nodes:
        return _empty(figure, ax, "no faults labelled")
    ax.set_xlim(0, 1)
    ax.set_ylim(len(nodes) - 0.5, -0.5)
    parents: dict[int, int] = {}  # level -> the row of the newest node at that level
    for y, (level, kind, name, count, percent) in enumerate(nodes):
        x = 0.01 + level * TREE_INDENT * 2
        if level:
            parent = parents[level - 1]
            px = 0.01 + (level - 1) * TREE_INDENT * 2 + TREE_INDENT / 2
            ax.plot([px, px, x - 0.008], [parent + 0.35, y, y], color="0.35", linewidth=0.5)
        parents[level] = y
        weight = "bold" if level == 0 else "normal"
        style = "italic" if kind == "inner" else "normal"
        ax.text(x, y, f"{name}", va="center", fontsize=6.5, fontweight=weight, fontstyle=style)
        ax.text(0.99, y, f"{count} ({percent:.1f}%)", va="center", ha="right", fontsize=6.5,
                fontweight=weight)  # fmt: skip
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
    """Kappa per round with its 95% interval, one small panel per dimension, so that no
    round's or dimension's mark hides another's."""
    rounds = list(dict.fromkeys(r.round for r in rows))
    dimensions = list(dict.fromkeys(r.dimension for r in rows))
    if not rounds:
        figure = Figure(figsize=(SINGLE_COLUMN_IN, 2.0), layout="constrained")
        return _empty(figure, figure.add_subplot(), "no round with two or more annotators")
    figure = Figure(
        figsize=(SINGLE_COLUMN_IN, min(MAX_HEIGHT_IN, 0.6 + 1.0 * len(dimensions))),
        layout="constrained",
    )
    axes = figure.subplots(len(dimensions), 1, sharex=True, squeeze=False)[:, 0]
    by_key = {(r.round, r.dimension): r for r in rows}
    lows = [r.kappa_ci[0] for r in rows if r.kappa_ci] + [r.kappa for r in rows if r.kappa]
    bottom = min(0.0, min(lows, default=0.0) - 0.05)
    for ax, dimension in zip(axes, dimensions, strict=True):
        for guide in KAPPA_GUIDES:
            ax.axhline(guide, color="0.7", linewidth=0.5, linestyle=":")
        for x, name in enumerate(rounds):
            row = by_key.get((name, dimension))
            if row is None or row.kappa is None:
                continue
            low, high = row.kappa_ci or (row.kappa, row.kappa)
            ax.errorbar(
                x,
                row.kappa,
                yerr=[[row.kappa - low], [high - row.kappa]],
                fmt="o",
                color="black",
                markersize=3.5,
                elinewidth=0.8,
                capsize=2,
            )
            ax.text(x + 0.12, row.kappa, f"{row.kappa:.2f}", va="center", fontsize=6)
        ax.set_ylim(bottom, 1.05)
        ax.set_xlim(-0.5, len(rounds) - 0.3)
        ax.set_title(DIMENSION_NAMES.get(dimension, dimension.replace("_", " ")), loc="left")
        ax.set_ylabel("kappa")
    axes[-1].set_xticks(range(len(rounds)), rounds)
    axes[-1].set_xlabel("labelling round")
    return figure
