"""The report's reliability section: the rule that chose the items, every figure with its
95% interval and the items each rule left out, the pairs of annotators, where they
disagreed (confusion heat maps) and the categories they agreed on least.

Every number is written by the report's `number(fmt, *path)`, which points into the
embedded data, so the tests can check each against `issueminer agree --format json`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape
from typing import Any

from issueminer.analyse.agreement_tables import (
    AGREEMENT_TITLE,
    LEFT_OUT_LETTERS,
    LEFT_OUT_WORDS,
    method_text,
)
from issueminer.label.agreement import LEFT_OUT, AgreementRow

Number = Callable[..., str]
CATEGORIES_SHOWN = 30  # the categories agreed on least; --format json of agree has all


def interval(number: Number, *path: str | int) -> str:
    return f"[{number('2f', *path, 0)}, {number('2f', *path, 1)}]"


def figure_cell(number: Number, row: AgreementRow, index: int, name: str) -> str:
    """A figure with its interval: 0.869 [0.77, 0.94]."""
    if getattr(row, name) is None:
        return "<td class=n>\u2013</td>"
    text = number("3f", "agreement", index, name)
    if getattr(row, f"{name}_ci") is not None:
        text += f" <span class=ci>{interval(number, 'agreement', index, f'{name}_ci')}</span>"
    return f"<td class=n>{text}</td>"


def agreement_table(rows: Sequence[AgreementRow], number: Number) -> str:
    masi = any(r.alpha_masi is not None for r in rows)
    fleiss = any(r.fleiss is not None for r in rows)
    head = ["round", "dimension", "items", f"left out ({LEFT_OUT_LETTERS})", "agreement"]
    head += ["kappa [95% CI]", "Landis and Koch", "alpha [95% CI]"]
    head += ["alpha, MASI [95% CI]"] * masi + ["Fleiss' kappa [95% CI]"] * fleiss
    body = []
    for index, row in enumerate(rows):
        left = " / ".join(number("int", "agreement", index, "left_out", k) for k in LEFT_OUT)
        cells = [
            f"<td>{escape(row.round)}</td>",
            f"<td>{escape(row.dimension.replace('_', ' '))}</td>",
            f"<td class=n>{number('int', 'agreement', index, 'n')}</td>",
            f"<td class=n>{left}</td>",
            f"<td class=n>{number('3f', 'agreement', index, 'agreement')}</td>",
            figure_cell(number, row, index, "kappa"),
            f"<td>{escape(row.kappa_band or '')}</td>",
            figure_cell(number, row, index, "alpha"),
        ]
        if masi:
            cells.append(figure_cell(number, row, index, "alpha_masi"))
        if fleiss:
            cells.append(figure_cell(number, row, index, "fleiss"))
        body.append(f"<tr>{''.join(cells)}</tr>")
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    return (
        f'<div class="scroll"><table id="agreement-table"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def pairs_table(rows: Sequence[AgreementRow], number: Number) -> str:
    """Only for rounds of three or more annotators: each pair's kappa."""
    body = []
    for index, row in enumerate(rows):
        if len(row.annotators) < 3:
            continue
        for k, pair in enumerate(row.pairs):
            path = ("agreement", index, "pairs", k)
            ci = interval(number, *path, "kappa_ci") if pair["kappa_ci"] else ""
            body.append(
                f"<tr><td>{escape(row.round)}</td><td>{escape(row.dimension)}</td>"
                f"<td>{escape(' vs '.join(pair['annotators']))}</td>"
                f"<td class=n>{number('int', *path, 'n')}</td>"
                f"<td class=n>{number('3f', *path, 'kappa')} {ci}</td>"
                f"<td>{escape(pair['kappa_band'] or '')}</td></tr>"
            )
    if not body:
        return ""
    return (
        "<h3>Each pair of annotators</h3><table><thead><tr><th>round</th><th>dimension</th>"
        "<th>pair</th><th>items</th><th>Cohen's kappa [95% CI]</th><th>Landis and Koch</th>"
        f"</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def categories_table(categories: list[dict[str, Any]], number: Number) -> str:
    """The categories agreed on least, pooled over rounds (specific agreement below 1)."""
    shown = [(i, c) for i, c in enumerate(categories) if c["specific_agreement"] < 1]
    if not shown:
        return "<p>The annotators agreed on every category they used.</p>"
    rows = "".join(
        f"<tr><td>{escape(c['dimension'].replace('_', ' '))}</td><td>{escape(c['category'])}"
        f"</td><td class=n>{number('int', 'reliability', 'categories', i, 'uses')}</td>"
        f"<td class=n>{number('3f', 'reliability', 'categories', i, 'specific_agreement')}"
        "</td></tr>"
        for i, c in shown[:CATEGORIES_SHOWN]
    )
    more = len(shown) - CATEGORIES_SHOWN
    note = (
        f"<p class=meta>{more} more below 1 in <code>issueminer agree --confusions</code>.</p>"
        if more > 0
        else ""
    )
    return (
        "<table><thead><tr><th>dimension</th><th>category</th><th>uses by the two "
        "annotators</th><th>specific agreement</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>{note}"
    )


def section(
    rows: Sequence[AgreementRow],
    missing: str,
    categories: list[dict[str, Any]],
    number: Number,
    figures: tuple[str, str],
    table_number: int,
) -> str:
    """The whole reliability section; `figures` is the HTML of the agreement figure and of
    the confusion heat maps."""
    if not rows:
        return (
            f'<section id="agreement"><h2>{escape(AGREEMENT_TITLE)}</h2>'
            "<p>No round has two or more annotators, so no agreement is reported.</p>"
            f"{figures[0]}</section>"
        )
    letters = ", ".join(f"{LEFT_OUT_WORDS[k]} ({LEFT_OUT_WORDS[k][0].upper()})" for k in LEFT_OUT)
    return (
        f'<section id="agreement"><h2>{escape(AGREEMENT_TITLE)}</h2>'
        f"<p>{escape(method_text(missing))}</p>"
        "<p>Percent agreement, Cohen's kappa (scikit-learn; the mean over pairs for more than "
        "two annotators) with Landis and Koch's words, Krippendorff's alpha (nominal; for fix "
        "patterns also with the MASI distance between sets), from each annotator's newest "
        f"label (<code>issueminer agree --missing {escape(missing)}</code>; "
        f"<code>tables/agreement.tex</code>). Left out, in order: {escape(letters)}.</p>"
        f'<h3 id="table-agreement">Table {table_number}. {escape(AGREEMENT_TITLE)} '
        f"(missing-label rule: {escape(missing)})</h3>"
        + agreement_table(rows, number)
        + figures[0]
        + pairs_table(rows, number)
        + "<h3>Where the annotators disagree</h3>"
        + figures[1]
        + "<h3>Categories agreed on least (specific agreement, all rounds)</h3>"
        + categories_table(categories, number)
        + "</section>"
    )
