"""Then and now: a study's final tables beside a population's estimated tables.

"Then" is a labelled study (every issue with a final label: its tables are exact counts
of a sample of its era's issues); "now" is an `Estimate` with its 95% intervals. For each
category of a table the difference of shares is tested with both uncertainties:

    d = p_now - p_then,   se_then = sqrt(p_then (1 - p_then) / n_then),
    se_now = the now interval's half-width / 1.96 (the side facing p_then),
    z = d / sqrt(se_then^2 + se_now^2),  two-sided p, Holm-adjusted within the table,

so an estimate's width (a small labelled sample, a weak classifier) widens the test
instead of being ignored, as a chi-square on predicted counts would. The report is an
HTML file with one figure per table: both shares with their error bars.
"""

from __future__ import annotations

import base64
import html
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from issueminer.analyse.estimate.sample import ALPHA, Interval
from issueminer.analyse.estimate.tables import Estimate, EstimatedTable
from issueminer.analyse.study_diff import holm

Z95 = 1.959963984540054
METHOD = (
    "Each share's difference (now minus then) is tested with both uncertainties: the "
    "study's binomial standard error and the estimate's own, read from its 95% interval "
    "on the side facing the study's share; p-values are Holm-adjusted within each table. "
    "Error bars are 95% intervals."
)
FIGURE_WIDTH_IN = 7.0
ROW_IN = 0.28
MAX_ROWS_SHOWN = 25  # categories per figure: the most frequent then or now


@dataclass
class Comparison:
    table: str
    category: str
    then: Interval  # the study's share, with its binomial interval
    now: Interval
    difference: Interval
    p_value: float
    p_holm: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "category": self.category,
            "then": self.then.as_dict(),
            "now": self.now.as_dict(),
            "difference": self.difference.as_dict(),
            "p": round(self.p_value, 4),
            "p_holm": round(self.p_holm, 4),
            "differs": self.p_holm < ALPHA,
        }


def _then_share(count: float, n: float) -> Interval:
    if n <= 0:
        return Interval(float("nan"), 0.0, 1.0)
    share = count / n
    half = Z95 * math.sqrt(share * (1 - share) / n)
    return Interval(share, max(0.0, share - half), min(1.0, share + half))


def compare_table(then: EstimatedTable, now: EstimatedTable) -> list[Comparison]:
    """One comparison per category found then or now (a category missing on one side has
    share 0 there)."""
    from scipy.stats import norm

    n_then = then.denominator.estimate
    then_rows = {row.category: row for row in then.rows}
    now_rows = {row.category: row for row in now.rows}
    found = []
    for category in dict.fromkeys([*then_rows, *now_rows]):
        count = then_rows[category].count.estimate if category in then_rows else 0.0
        past = _then_share(count, n_then)
        present = now_rows[category].share if category in now_rows else Interval(0.0, 0.0, 0.0)
        if not (math.isfinite(past.estimate) and math.isfinite(present.estimate)):
            continue
        d = present.estimate - past.estimate
        facing = present.estimate - present.low if d > 0 else present.high - present.estimate
        se_now = facing / Z95
        se_then = math.sqrt(past.estimate * (1 - past.estimate) / n_then) if n_then else 0.0
        se = math.hypot(se_then, se_now)
        p = 1.0 if se == 0 and d == 0 else (0.0 if se == 0 else 2 * norm.sf(abs(d) / se))
        found.append(
            Comparison(
                then.name,
                category,
                past,
                present,
                Interval(d, d - Z95 * se, d + Z95 * se),
                float(p),
            )
        )
    holm(found)
    return found


def compare(then: Estimate, now: Estimate) -> dict[str, list[Comparison]]:
    """Every table both estimates have."""
    return {
        name: compare_table(then.tables[name], table)
        for name, table in now.tables.items()
        if name in then.tables
    }


def as_json(then: Estimate, now: Estimate, found: dict[str, list[Comparison]]) -> dict[str, Any]:
    return {
        "then": then.as_json()["population"],
        "now": now.as_json()["population"],
        "method": METHOD,
        "tables": {
            name: {
                "now_estimator": now.tables[name].as_dict()["estimator"],
                "now_assumes": now.tables[name].as_dict()["assumes"],
                "rows": [c.as_dict() for c in rows],
            }
            for name, rows in found.items()
        },
    }


def comparison_frame(rows: list[Comparison]) -> Any:
    """The comparison as a table of percents (for md, csv and latex)."""
    import pandas as pd

    return pd.DataFrame(
        [
            {
                "category": c.category,
                "then": round(100 * c.then.estimate, 1),
                "now": round(100 * c.now.estimate, 1),
                "now_low": round(100 * c.now.low, 1),
                "now_high": round(100 * c.now.high, 1),
                "difference": round(100 * c.difference.estimate, 1),
                "p_holm": f"{c.p_holm:.3f}",  # text: the percents keep one decimal
            }
            for c in rows
        ],
        columns=["category", "then", "now", "now_low", "now_high", "difference", "p_holm"],
    )


# ---- the report ------------------------------------------------------------------------
def figure(rows: list[Comparison], title: str) -> Any:
    """Then and now shares of each category, with 95% error bars (gray and black)."""
    import numpy as np
    from matplotlib.figure import Figure

    shown = sorted(rows, key=lambda c: -max(c.then.estimate, c.now.estimate))[:MAX_ROWS_SHOWN]
    shown.reverse()  # largest at the top
    fig = Figure(figsize=(FIGURE_WIDTH_IN, max(1.6, 0.8 + ROW_IN * len(shown))))
    ax = fig.add_subplot()
    y = np.arange(len(shown))
    for offset, side, colour, label in (
        (0.15, "then", "0.55", "then"),
        (-0.15, "now", "black", "now"),
    ):
        values = [getattr(c, side) for c in shown]
        centre = np.array([100 * v.estimate for v in values])
        errors = np.array(
            [
                [100 * (v.estimate - v.low) for v in values],
                [100 * (v.high - v.estimate) for v in values],
            ]
        )
        ax.errorbar(
            centre, y + offset, xerr=errors, fmt="o", color=colour, capsize=2, ms=3, label=label
        )
    ax.set_yticks(y, [c.category for c in shown], fontsize=7)
    ax.set_xlabel("percent (95% interval)", fontsize=7)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(title, fontsize=8)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=150)
    return base64.b64encode(buffer.getvalue()).decode()


def write_report(
    then: Estimate, now: Estimate, found: dict[str, list[Comparison]], path: Path | str
) -> Path:
    """An HTML page: per table the figure with error bars and the comparison table."""
    path = Path(path)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>Then and now</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "table{border-collapse:collapse}td,th{padding:2px 6px;border-bottom:1px solid #ccc}"
        "td.n{text-align:right}</style></head><body>",
        "<h1>Then and now</h1>",
        f"<p>Then: {html.escape(then.population.describe())}, final labels. "
        f"Now: {html.escape(now.population.describe())}.</p>",
        f"<p class='method'>{html.escape(METHOD)}</p>",
    ]
    for name, rows in found.items():
        info = now.tables[name].as_dict()
        parts.append(
            f"<section class='table' id='{html.escape(name)}'><h2>{html.escape(name)}</h2>"
        )
        parts.append(
            f"<p>Now: {html.escape(info['estimator'])}; assumes {html.escape(info['assumes'])}. "
            f"Shares among {html.escape(info['shares_among'])}.</p>"
        )
        if rows:
            parts.append(
                f"<img alt='then and now: {html.escape(name)}' "
                f"src='data:image/png;base64,{_png(figure(rows, name))}'>"
            )
        parts.append(_html_table(rows))
        parts.append("</section>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


def _pct(value: Interval) -> str:
    return f"{100 * value.estimate:.1f} [{100 * value.low:.1f}, {100 * value.high:.1f}]"


def _html_table(rows: list[Comparison]) -> str:
    columns = ("category", "then %", "now %", "difference", "p (Holm)")
    head = "<tr>" + "".join(f"<th>{c}</th>" for c in columns) + "</tr>"
    body = "".join(
        f"<tr class='row'><td>{html.escape(c.category)}</td><td class='n'>{_pct(c.then)}</td>"
        f"<td class='n now'>{_pct(c.now)}</td><td class='n'>{_pct(c.difference)}</td>"
        f"<td class='n'>{c.p_holm:.3f}</td></tr>"
        for c in rows
    )
    return f"<table>{head}{body}</table>"
