"""The study's tables, computed from final labels in the database (never typed by hand).

pandas and the database are imported by the functions that use them, not with the module:
every `issueminer` command loads this module for its table names, and most need neither.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from issueminer.taxonomy import FAULT, HOWTO, Taxonomy

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.orm import Session

PATH_SEPARATOR = " / "
NO_INNER = "-"  # stages without inner categories show this in the inner column
NO_SUBTOPIC = "(none)"


def _path(*parts: str | None) -> str:
    return PATH_SEPARATOR.join(p for p in parts if p)


def _pct(n: int, total: int) -> float:
    return round(100.0 * n / total, 1) if total else 0.0


@dataclass
class StudyStats:
    summary: dict[str, Any]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    titles: dict[str, str] = field(default_factory=dict)  # table name -> caption
    # one row per final label (`load_final`): what a paired comparison of two snapshots
    # needs, issue by issue
    labels: pd.DataFrame | None = None

    def title(self, name: str) -> str:
        return self.titles.get(name, name)

    def as_json(self) -> dict[str, Any]:
        return {
            **self.summary,
            "tables": {name: _records(frame) for name, frame in self.tables.items()},
        }


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return json.loads(frame.to_json(orient="records"))


def load_final(session: Session) -> pd.DataFrame:
    """One row per final label, with the issue's source and framework. An issue holds
    several labels of one type when it reports several faults (`part` 1, 2, ...)."""
    import pandas as pd
    from sqlalchemy import select

    from issueminer.store import FinalLabel, Issue

    query = select(
        FinalLabel.issue_uid,
        FinalLabel.issue_type,
        FinalLabel.part,
        FinalLabel.specific,
        FinalLabel.stage,
        FinalLabel.inner_category,
        FinalLabel.leaf_symptom,
        FinalLabel.fix_patterns,
        FinalLabel.howto_topic,
        FinalLabel.howto_subtopic,
        Issue.source,
        Issue.framework,
        Issue.flags,
    ).join(Issue, Issue.uid == FinalLabel.issue_uid)
    rows = [dict(r._mapping) for r in session.execute(query)]
    return pd.DataFrame(rows, columns=[c.key for c in query.selected_columns])


def compute_stats(session: Session, taxonomy: Taxonomy) -> StudyStats:

    final = load_final(session)
    faults = final[final.issue_type == FAULT]
    howto = final[final.issue_type == HOWTO]
    n_faults, n_howto = len(faults), len(howto)

    stages = Counter(faults.stage.fillna("(unlabelled)"))
    inners = Counter(
        _path(s, i)
        for s, i in zip(faults.stage, faults.inner_category, strict=True)
        if isinstance(i, str)
    )
    leaves = Counter(
        _path(s, i if isinstance(i, str) else None, leaf)
        for s, i, leaf in zip(faults.stage, faults.inner_category, faults.leaf_symptom, strict=True)
        if isinstance(leaf, str)
    )
    fixes = Counter(p for patterns in faults.fix_patterns for p in (patterns or []))
    topics = Counter(howto.howto_topic.fillna("(unlabelled)"))
    subtopics = Counter(
        _path(t, s)
        for t, s in zip(howto.howto_topic, howto.howto_subtopic, strict=True)
        if isinstance(s, str)
    )
    specific = faults.specific
    n_specific = int((specific == True).sum())  # noqa: E712 - pandas element-wise comparison
    n_general = int((specific == False).sum())  # noqa: E712
    labels_per_issue = final.groupby("issue_uid").size()

    summary = {
        "study": taxonomy.study,
        "totals": {
            "issues": n_faults + n_howto,
            "faults": n_faults,
            "howto": n_howto,
            "final_labels": len(final),
            "distinct_issues": int(final.issue_uid.nunique()),
            # an issue with several faults (or a fault and a question) counts once here
            "issues_with_several_labels": int((labels_per_issue > 1).sum()),
            "fault_issues": int(faults.issue_uid.nunique()),
            "howto_issues": int(howto.issue_uid.nunique()),
            "label_only": int(final["flags"].map(lambda f: "label-only" in (f or [])).sum()),
            "not_relevant": int((final.issue_type == "not relevant").sum()),
        },
        "specific": {
            "label": taxonomy.label("specific"),
            "yes": n_specific,
            "no": n_general,
            "unknown": n_faults - n_specific - n_general,
            "share": round(n_specific / n_faults, 4) if n_faults else None,
        },
        "stages": _ordered(stages, taxonomy.tree),
        "inner_categories": dict(inners.most_common()),
        "leaf_symptoms": dict(leaves.most_common()),
        "fix_patterns": dict(fixes.most_common()),
        # the fix-pattern table's two bases: a fault may carry several patterns
        "fix_pattern_mentions": sum(fixes.values()),
        "howto_topics": dict(topics.most_common()),
        "howto_subtopics": dict(subtopics.most_common()),
        "sources": dict(Counter(final.source).most_common()),
        "proposed_categories": _proposed(faults, howto, taxonomy),
    }
    tables = {
        "overview": _overview(final),
        "fault_taxonomy": _fault_tree(faults, taxonomy),
        "specific": _specific_by_stage(faults, taxonomy),
        "fix_patterns": _fix_patterns(fixes, n_faults),
        "symptom_fix": _symptom_fix(faults),
        "howto_topics": _howto(howto),
    }
    titles = table_titles(taxonomy)
    titles["fix_patterns"] += (
        f" (percent of the {n_faults} faults; a fault may have several patterns, so the "
        f"shares sum past 100%: {sum(fixes.values())} mentions; percent_of_mentions uses "
        "the mentions as base)"
    )
    return StudyStats(summary, tables, titles, labels=final)


def _fix_patterns(fixes: Counter[str], n_faults: int) -> pd.DataFrame:
    """Each pattern's count over both bases: the faults (a fault counts in every pattern it
    has, so these shares sum past 100%) and the mentions (these sum to 100%)."""
    import pandas as pd

    mentions = sum(fixes.values())
    return pd.DataFrame(
        [
            {
                "fix_pattern": k,
                "faults": v,
                "percent": _pct(v, n_faults),
                "percent_of_mentions": _pct(v, mentions),
            }
            for k, v in fixes.most_common()
        ],
        columns=["fix_pattern", "faults", "percent", "percent_of_mentions"],
    )


def _specific_by_stage(faults: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """Specific / not / unknown faults per stage, then all faults; percent is the share of
    the row's faults that are specific."""
    import pandas as pd

    label = taxonomy.label("specific")
    stages = _ordered(Counter(faults.stage.fillna("(unlabelled)")), taxonomy.tree)
    frame = faults.assign(stage=faults.stage.fillna("(unlabelled)"))
    groups = [(stage, frame[frame.stage == stage]) for stage in stages]
    rows = [_specific_row(stage, group, label) for stage, group in groups]
    rows.append(_specific_row("all faults", frame, label))
    return pd.DataFrame(rows, columns=["stage", "faults", label, "not", "unknown", "percent"])


def _specific_row(stage: str, faults: pd.DataFrame, label: str) -> dict[str, Any]:
    yes = int((faults.specific == True).sum())  # noqa: E712 - element-wise
    no = int((faults.specific == False).sum())  # noqa: E712
    n = len(faults)
    return {
        "stage": stage,
        "faults": n,
        label: yes,
        "not": no,
        "unknown": n - yes - no,
        "percent": _pct(yes, n),
    }


def _proposed(
    faults: pd.DataFrame, howto: pd.DataFrame, taxonomy: Taxonomy
) -> dict[str, list[str]]:
    """Categories in final labels that the study file does not list (open coding)."""
    used = {
        "stage": set(faults.stage.dropna()),
        "inner_category": set(faults.inner_category.dropna()),
        "symptom": set(faults.leaf_symptom.dropna()),
        "fix_pattern": {p for patterns in faults.fix_patterns for p in (patterns or [])},
        "howto_topic": set(howto.howto_topic.dropna()),
    }
    found = {
        dimension: sorted(n for n in names if not taxonomy.is_known(dimension, n))
        for dimension, names in used.items()
    }
    return {dimension: names for dimension, names in found.items() if names}


def _ordered(counts: Counter[str], tree: dict[str, Any]) -> dict[str, int]:
    """Stages in the taxonomy's order, then anything else found."""
    ordered = {name: counts[name] for name in tree if counts.get(name)}
    ordered.update({k: v for k, v in counts.most_common() if k not in ordered})
    return ordered


def _overview(final: pd.DataFrame) -> pd.DataFrame:
    """Labels per source and framework and issue type (total: labels), and the distinct
    issues that carry them."""
    import pandas as pd

    frame = final.assign(
        source=final.source.fillna("unknown"), framework=final.framework.fillna("unknown")
    )
    table = pd.crosstab([frame.source, frame.framework], frame.issue_type)
    for column in (FAULT, HOWTO):
        if column not in table.columns:
            table[column] = 0
    table["total"] = table.sum(axis=1)
    # labels above, issues here: an issue with several faults is one issue
    table["issues"] = frame.groupby(["source", "framework"]).issue_uid.nunique()
    table = table.reset_index().rename(columns={FAULT: "faults", HOWTO: "howto"})
    table.columns.name = None
    total = {
        "source": "total",
        "framework": "",
        **{c: int(table[c].sum()) for c in table.columns if c not in ("source", "framework")},
        "issues": int(frame.issue_uid.nunique()),
    }
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def _fault_tree(faults: pd.DataFrame, taxonomy: Taxonomy) -> pd.DataFrame:
    """stage -> inner category -> leaf, each with count and percent of all faults."""
    import pandas as pd

    n = len(faults)
    rows = []
    frame = faults.assign(
        stage=faults.stage.fillna("(unlabelled)"),
        inner_category=faults.inner_category.fillna(NO_INNER),
        leaf_symptom=faults.leaf_symptom.fillna("(unlabelled)"),
    )
    stage_order = {name: i for i, name in enumerate(taxonomy.tree)}
    for stage, by_stage in sorted(
        frame.groupby("stage"), key=lambda kv: (stage_order.get(kv[0], 99), kv[0])
    ):
        rows.append(_tree_row("stage", stage, "", "", len(by_stage), n))
        for inner, by_inner in by_stage.groupby("inner_category"):
            if inner != NO_INNER:
                rows.append(_tree_row("inner", stage, inner, "", len(by_inner), n))
            for leaf, count in by_inner.leaf_symptom.value_counts().items():
                rows.append(_tree_row("leaf", stage, inner, leaf, int(count), n))
    return pd.DataFrame(
        rows, columns=["level", "stage", "inner_category", "leaf_symptom", "faults", "percent"]
    )


def _tree_row(level: str, stage: str, inner: str, leaf: str, count: int, n: int) -> dict[str, Any]:
    return {
        "level": level,
        "stage": stage,
        "inner_category": inner,
        "leaf_symptom": leaf,
        "faults": count,
        "percent": _pct(count, n),
    }


def _symptom_fix(faults: pd.DataFrame) -> pd.DataFrame:
    """Faults per leaf symptom, named by its path (stage, inner category), and fix pattern:
    one name can sit under two stages ("device error") or two inner categories ("others"),
    and those are different symptoms."""
    import pandas as pd

    pairs = [
        (
            stage if isinstance(stage, str) else "(unlabelled)",
            inner if isinstance(inner, str) else NO_INNER,
            leaf,
            pattern,
        )
        for stage, inner, leaf, patterns in zip(
            faults.stage,
            faults.inner_category,
            faults.leaf_symptom,
            faults.fix_patterns,
            strict=True,
        )
        if isinstance(leaf, str)
        for pattern in (patterns or [])
    ]
    names = ["stage", "inner_category", "leaf_symptom"]
    if not pairs:
        return pd.DataFrame(columns=names)
    frame = pd.DataFrame(pairs, columns=[*names, "fix_pattern"])
    table = pd.crosstab([frame[n] for n in names], frame.fix_pattern)
    table = table[table.sum().sort_values(ascending=False).index]
    table = table.loc[table.sum(axis=1).sort_values(ascending=False, kind="stable").index]
    table.columns.name = None
    return table.reset_index()


def _howto(howto: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    n = len(howto)
    rows = []
    frame = howto.assign(
        howto_topic=howto.howto_topic.fillna("(unlabelled)"),
        howto_subtopic=howto.howto_subtopic.fillna(NO_SUBTOPIC),
    )
    for topic, by_topic in sorted(frame.groupby("howto_topic"), key=lambda kv: -len(kv[1])):
        rows.append(
            {
                "level": "topic",
                "topic": topic,
                "subtopic": "",
                "questions": len(by_topic),
                "percent": _pct(len(by_topic), n),
            }
        )
        for sub, count in by_topic.howto_subtopic.value_counts().items():
            if sub == NO_SUBTOPIC and len(by_topic) == count:
                continue  # a topic without sub-topics needs no "(none)" line
            rows.append(
                {
                    "level": "subtopic",
                    "topic": topic,
                    "subtopic": sub,
                    "questions": int(count),
                    "percent": _pct(int(count), n),
                }
            )
    return pd.DataFrame(rows, columns=["level", "topic", "subtopic", "questions", "percent"])


# ---- rendering -----------------------------------------------------------------------
def render_table(frame: pd.DataFrame, fmt: str, caption: str = "", decimals: int = 1) -> str:
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "latex":
        return to_latex(frame, caption, decimals)
    if fmt == "json":
        return json.dumps(_records(frame), indent=2)
    return to_markdown(frame, decimals)


def _cell(value: Any, decimals: int = 1) -> str:
    if isinstance(value, float):
        return f"{value:.{decimals}f}" if value == value else ""
    return "" if value is None else str(value)


def to_markdown(frame: pd.DataFrame, decimals: int = 1) -> str:
    import pandas as pd

    header = [str(c) for c in frame.columns]
    body = [[_cell(v, decimals) for v in row] for row in frame.itertuples(index=False)]
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---:" if num else "---" for num in numeric) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in body]
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(frame: pd.DataFrame, caption: str = "", decimals: int = 1) -> str:
    """A booktabs table ready for a paper (needs \\usepackage{booktabs})."""
    import pandas as pd

    align = "".join("r" if pd.api.types.is_numeric_dtype(frame[c]) else "l" for c in frame.columns)
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{_latex_escape(caption)}}}")
    lines += [
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(_latex_escape(str(c)) for c in frame.columns) + r" \\",
        r"\midrule",
    ]
    for row in frame.itertuples(index=False):
        lines.append(" & ".join(_latex_escape(_cell(v, decimals)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


TABLE_NAMES = (
    "overview",
    "fault_taxonomy",
    "specific",
    "fix_patterns",
    "symptom_fix",
    "howto_topics",
)


def table_titles(taxonomy: Taxonomy) -> dict[str, str]:
    """Each table's caption in the study's own words (its file's `labels:`)."""

    def label(dimension: str) -> str:
        return taxonomy.label(dimension)

    def capital(text: str) -> str:
        return text[:1].upper() + text[1:]

    return {
        "overview": "Dataset overview: source x framework x issue type",
        "fault_taxonomy": f"Fault taxonomy: {label('stage')}, {label('inner_category')} and "
        f"{label('symptom')}",
        "specific": f"{capital(label('specific'))} faults per {label('stage')} (percent: "
        f"share of the row's faults)",
        "fix_patterns": capital(taxonomy.plural("fix_pattern")),
        "symptom_fix": f"{capital(label('symptom'))} x {label('fix_pattern')}",
        "howto_topics": f"{capital(taxonomy.plural('howto_topic'))} and "
        f"{taxonomy.plural('howto_subtopic')}",
    }


EXTENSIONS = {"md": "md", "csv": "csv", "latex": "tex", "json": "json"}


def write_tables(stats: StudyStats, out_dir: Path, fmt: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, frame in stats.tables.items():
        path = out_dir / f"{name}.{EXTENSIONS[fmt]}"
        path.write_text(render_table(frame, fmt, stats.title(name)), encoding="utf-8")
        written.append(path)
    if fmt == "json":
        path = out_dir / "summary.json"
        path.write_text(json.dumps(stats.summary, indent=2), encoding="utf-8")
        written.append(path)
    return written
