"""`agreement_table`'s rows as the tables `issueminer agree` prints and the report shows.

Headers are words, intervals print as "[low, high]", and every table states the rule that
chose its items (`--missing`) and how the intervals were computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from issueminer.label.agreement import (
    LEFT_OUT,
    LEFT_OUT_TEXT,
    MISSING_TEXT,
    AgreementRow,
)
from issueminer.label.reliability import LEVEL, RESAMPLES, SEED

if TYPE_CHECKING:
    import pandas as pd

AGREEMENT_TITLE = "Inter-rater agreement per round and dimension"
LEFT_OUT_WORDS = {
    "pending": "pending",
    "inferred": "inferred type",
    "unlabelled": "one annotator",
    "no_value": "no value",
}


def method_text(
    missing: str, resamples: int = RESAMPLES, seed: int = SEED, with_left_out: bool = True
) -> str:
    """One paragraph naming the missing-label rule, the intervals and the left-out reasons."""
    text = (
        f"Missing-label rule '{missing}': {MISSING_TEXT[missing]}. "
        f"Intervals: {100 * LEVEL:.0f}% percentile bootstrap over items, {resamples} "
        f"resamples, seed {seed}. Kappa words: Landis and Koch (1977). Symptoms are compared "
        "with their path (stage and inner category)."
    )
    if with_left_out:
        reasons = "; ".join(f"{LEFT_OUT_WORDS[k]}: {LEFT_OUT_TEXT[k]}" for k in LEFT_OUT)
        text += f" Left out: {reasons}."
    return text


def ci_text(ci: Sequence[float] | None) -> str:
    return "" if ci is None else f"[{ci[0]:.2f}, {ci[1]:.2f}]"


def left_out_text(left_out: dict[str, int]) -> str:
    return ", ".join(f"{LEFT_OUT_WORDS[k]} {n}" for k, n in left_out.items() if n) or "none"


def has_sets(rows: Sequence[AgreementRow]) -> bool:
    return any(r.alpha_masi is not None for r in rows)


def has_many(rows: Sequence[AgreementRow]) -> bool:
    return any(len(r.annotators) > 2 for r in rows)


def agreement_frame(rows: Sequence[AgreementRow]) -> pd.DataFrame:
    """One line per round and dimension: items, what was left out, figures with intervals."""
    import pandas as pd

    records = []
    for row in rows:
        record: dict[str, Any] = {
            "round": row.round,
            "dimension": row.dimension,
            "items": row.n,
            "left out": left_out_text(row.left_out),
            "agreement": row.agreement,
            "kappa": row.kappa,
            "kappa 95% CI": ci_text(row.kappa_ci),
            "Landis-Koch": row.kappa_band or "",
            "alpha": row.alpha,
            "alpha 95% CI": ci_text(row.alpha_ci),
        }
        if has_sets(rows):
            record["alpha MASI"] = row.alpha_masi
            record["alpha MASI 95% CI"] = ci_text(row.alpha_masi_ci)
        if has_many(rows):
            record["Fleiss' kappa"] = row.fleiss
            record["Fleiss 95% CI"] = ci_text(row.fleiss_ci)
        record["annotators"] = ", ".join(row.annotators)
        records.append(record)
    frame = pd.DataFrame(records)
    for column in ("agreement", "kappa", "alpha", "alpha MASI", "Fleiss' kappa"):
        if column in frame.columns:
            frame[column] = frame[column].astype(float)
    return frame


def pairs_frame(rows: Sequence[AgreementRow]) -> pd.DataFrame:
    """Every pair of annotators: items, agreement and Cohen's kappa with its interval."""
    import pandas as pd

    records = [
        {
            "round": row.round,
            "dimension": row.dimension,
            "pair": " vs ".join(pair["annotators"]),
            "items": pair["n"],
            "agreement": pair["agreement"],
            "kappa": pair["kappa"],
            "kappa 95% CI": ci_text(pair["kappa_ci"]),
            "Landis-Koch": pair["kappa_band"] or "",
        }
        for row in rows
        for pair in row.pairs
    ]
    frame = pd.DataFrame(
        records,
        columns=[
            "round",
            "dimension",
            "pair",
            "items",
            "agreement",
            "kappa",
            "kappa 95% CI",
            "Landis-Koch",
        ],
    )
    return frame.astype({"agreement": float, "kappa": float})


def confusions_frame(rows: Sequence[AgreementRow]) -> pd.DataFrame:
    """Where annotators differ: each (first's value, second's value) pair they gave, most
    frequent first. The full tables (agreements too) are in `--format json`."""
    import pandas as pd

    records = []
    for row in rows:
        for table in row.confusions:
            first, second = table["annotators"]
            labels = table["labels"]
            for i, line in enumerate(table["counts"]):
                for j, count in enumerate(line):
                    if count and i != j:
                        records.append(
                            {
                                "round": row.round,
                                "dimension": row.dimension,
                                "pair": f"{first} vs {second}",
                                "first said": labels[i],
                                "second said": labels[j],
                                "items": count,
                            }
                        )
    columns = ["round", "dimension", "pair", "first said", "second said", "items"]
    frame = pd.DataFrame(records, columns=columns)
    order = {(r.round, r.dimension): k for k, r in enumerate(rows)}
    frame["_order"] = [
        order[(r, d)] for r, d in zip(frame["round"], frame["dimension"], strict=True)
    ]
    frame = frame.sort_values(["_order", "items"], ascending=[True, False], kind="stable")
    return frame.drop(columns="_order").reset_index(drop=True)


def categories_frame(rows: Sequence[AgreementRow]) -> pd.DataFrame:
    """Per category: how often annotators used it and their specific agreement on it."""
    import pandas as pd

    records = [
        {
            "round": row.round,
            "dimension": row.dimension,
            "category": entry["category"],
            "uses": entry["uses"],
            "specific agreement": entry["specific_agreement"],
        }
        for row in rows
        for entry in row.categories
    ]
    columns = ["round", "dimension", "category", "uses", "specific agreement"]
    return pd.DataFrame(records, columns=columns).astype({"specific agreement": float})


DIMENSION_WORDS = {
    "issue_type": "issue type",
    "stage": "stage",
    "leaf_symptom": "leaf symptom",
    "fix_pattern": "fix pattern",
    "howto_topic": "how-to topic",
}
# pending / inferred type / one annotator / no value
LEFT_OUT_LETTERS = "/".join(LEFT_OUT_WORDS[k][0].upper() for k in LEFT_OUT)


def paper_caption(missing: str) -> str:
    return (
        f"{AGREEMENT_TITLE}, with 95% bootstrap intervals; missing-label rule '{missing}'. "
        f"Left out: items the rules left out, {LEFT_OUT_LETTERS} = pending / inferred issue "
        "type / labelled by one annotator only / no value from the other. MASI: alpha with the "
        "MASI distance between sets of fix patterns. Kappa words: Landis and Koch."
    )


def paper_frame(rows: Sequence[AgreementRow]) -> pd.DataFrame:
    """The agreement table as a paper prints it: each figure with its interval in one cell,
    the items left out as P/I/U/N counts (`LEFT_OUT_LETTERS`), MASI alpha and Fleiss' kappa
    on lines of their own."""
    import pandas as pd

    def with_ci(value: float | None, ci: Sequence[float] | None) -> str:
        if value is None:
            return "\u2013"
        return f"{value:.3f} {ci_text(ci)}".strip()

    records = []
    for row in rows:
        left = "/".join(str(row.left_out.get(k, 0)) for k in LEFT_OUT)
        base = {"round": row.round, "dimension": DIMENSION_WORDS.get(row.dimension, row.dimension)}
        records.append(
            {
                **base,
                "items": row.n,
                "left out": left,
                "kappa (95% CI)": with_ci(row.kappa, row.kappa_ci),
                "Landis-Koch": row.kappa_band or "",
                "alpha (95% CI)": with_ci(row.alpha, row.alpha_ci),
            }
        )
        if row.alpha_masi is not None:
            records.append(
                {
                    **base,
                    "dimension": f"{base['dimension']}, MASI",
                    "items": row.n,
                    "left out": left,
                    "kappa (95% CI)": "",
                    "Landis-Koch": "",
                    "alpha (95% CI)": with_ci(row.alpha_masi, row.alpha_masi_ci),
                }
            )
        if row.fleiss is not None:
            records.append(
                {
                    **base,
                    "dimension": f"{base['dimension']}, Fleiss",
                    "items": row.fleiss_n,
                    "left out": "",
                    "kappa (95% CI)": with_ci(row.fleiss, row.fleiss_ci),
                    "Landis-Koch": "",
                    "alpha (95% CI)": "",
                }
            )
    return pd.DataFrame(records)


def pooled_confusions(rows: Sequence[AgreementRow]) -> dict[str, dict[str, Any]]:
    """Per dimension, the first pair of each round's confusion table summed over rounds
    (first annotator's value in rows, second's in columns), labels in a stable order."""
    pooled: dict[str, dict[tuple[str, str], int]] = {}
    for row in rows:
        if not row.confusions:
            continue
        table = row.confusions[0]
        cells = pooled.setdefault(row.dimension, {})
        labels = table["labels"]
        for i, line in enumerate(table["counts"]):
            for j, count in enumerate(line):
                if count:
                    key = (labels[i], labels[j])
                    cells[key] = cells.get(key, 0) + count
    result = {}
    for dimension, cells in pooled.items():
        labels = sorted({label for pair in cells for label in pair})
        counts = [[cells.get((a, b), 0) for b in labels] for a in labels]
        result[dimension] = {"labels": labels, "counts": counts}
    return result


def pooled_categories(confusions: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Specific agreement per category from the pooled tables, 2 n_cc / (row_c + column_c),
    the categories annotators disagreed on first."""
    records = []
    for dimension, table in confusions.items():
        counts = table["counts"]
        for c, label in enumerate(table["labels"]):
            margins = sum(counts[c]) + sum(line[c] for line in counts)
            if margins:
                records.append(
                    {
                        "dimension": dimension,
                        "category": label,
                        "uses": margins,
                        "specific_agreement": round(2 * counts[c][c] / margins, 6),
                    }
                )
    return sorted(records, key=lambda r: (r["specific_agreement"], -r["uses"]))
