"""Compare the label distributions of two studies, or two snapshots of one study.

Which test fits depends on how the two populations relate, and the result says which was
used and why:

- **They share issues** (two snapshots of one study, a study and its relabelling): each
  shared issue's label in A is paired with its label in B, and the pairs form a transition
  table per dimension (A's category in rows, B's in columns). The tables are tested with
  Stuart-Maxwell (did the shares change: marginal homogeneity) and Bowker (are the moves
  symmetric), and each category that moved with McNemar's test (exact binomial when fewer
  than `MCNEMAR_EXACT_BELOW` units moved in or out of it). All from statsmodels. Issues
  that only one side holds are compared with the independent-samples test below, the
  only-A issues against the only-B ones, which are disjoint.
- **They share none**: Pearson's chi-square test of homogeneity on the 2 x k table of
  counts (scipy), flagged when its expected counts are small (Cochran's rule, or any
  expected count below 1).

Units. An issue can hold several labels of one type (several faults): its k-th fault in A
is paired with its k-th in B, and each label is one unit of a count, so the labels of one
issue are counted as if independent. The result says how many issues carry several labels
on each side; the issue-type dimension has one unit per issue (its set of types).

p-values are Holm-adjusted over every test of one comparison. The categories whose share
moved most are listed in percentage points; categories whose share did not move are left
out. `chi_square`, `paired_tests` and `share_movers` take plain counts or a transition
table, so other tables (an estimate's, say) can be compared the same way.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Hashable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from scipy.stats import chi2, chi2_contingency

from issueminer.analyse.stats import PATH_SEPARATOR, StudyStats
from issueminer.taxonomy import FAULT, HOWTO

if TYPE_CHECKING:
    import pandas as pd

# Cochran's rule: the chi-square approximation is doubtful when more than a fifth of the
# expected counts are below five, or when any is below one; such tests are flagged, not
# hidden.
COCHRAN_MIN_EXPECTED = 5.0
COCHRAN_MAX_SHARE_LOW = 0.2
COCHRAN_FLOOR = 1.0
# McNemar's chi-square approximation needs enough discordant pairs; below this the exact
# binomial test is used (the usual threshold).
MCNEMAR_EXACT_BELOW = 25
TOP_MOVERS = 10

INDEPENDENT = "chi-square (independent samples)"
STUART_MAXWELL = "Stuart-Maxwell (paired: marginal homogeneity)"
BOWKER = "Bowker (paired: symmetry)"
MCNEMAR = "McNemar (paired, one category)"
MCNEMAR_EXACT = "McNemar exact (paired, one category)"


@dataclass
class DistributionTest:
    """An independent-samples chi-square test of two count distributions."""

    dimension: str  # issue type | stage | leaf symptom | how-to topic
    scope: str  # "all faults", or the stage whose leaf symptoms are compared
    categories: int
    n_a: int
    n_b: int
    chi2: float | None  # None when untestable (fewer than two categories, or an empty side)
    dof: int | None
    p_value: float | None
    p_holm: float | None = None
    low_expected: bool = False  # Cochran's rule fails or an expected count < 1: read with care
    min_expected: float | None = None
    test: str = INDEPENDENT
    population: str = "all labels"  # which labels were counted


@dataclass
class PairedTest:
    """A paired test on the units both sides label (a transition table or one category)."""

    dimension: str
    test: str
    category: str | None  # McNemar: the category tested; None for the whole table
    n: int  # paired units
    moved: int  # units whose category differs between A and B (for McNemar: in or out)
    statistic: float | None  # None when nothing moved: there is nothing to test
    dof: int | None
    p_value: float | None
    p_holm: float | None = None
    note: str = ""


@dataclass
class Transition:
    """A's category (rows) against B's (columns) for every unit both sides label."""

    dimension: str
    categories: list[str]
    counts: list[list[int]]
    only_a: int = 0  # units A labels in this dimension and B does not
    only_b: int = 0

    @property
    def n(self) -> int:
        return sum(map(sum, self.counts))

    def frame(self) -> pd.DataFrame:
        import pandas as pd

        frame = pd.DataFrame(self.counts, columns=self.categories)
        frame.insert(0, "A \\ B", self.categories)
        return frame


@dataclass
class Mover:
    dimension: str
    category: str
    count_a: int
    share_a: float  # percent of the side's population (faults, or how-to questions)
    count_b: int
    share_b: float
    delta: float  # share_b - share_a, in percentage points


@dataclass
class Design:
    """How the populations relate, and so which tests were run."""

    shared_issues: int
    only_a: int
    only_b: int
    several_labels_a: int  # issues carrying more than one label, on each side
    several_labels_b: int
    paired: bool
    why: str
    units: str


@dataclass
class StudyDiff:
    a: str
    b: str
    tests: list[DistributionTest]
    movers: list[Mover]
    design: Design | None = None
    paired: list[PairedTest] = field(default_factory=list)
    transitions: list[Transition] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- the comparison -----------------------------------------------------------------------
def diff_studies(
    a: StudyStats, b: StudyStats, *, names: tuple[str, str] = ("A", "B"), top: int = TOP_MOVERS
) -> StudyDiff:
    """Paired tests where the two populations share issues, independent tests where they
    do not, and the `top` categories whose share moved most."""
    movers = _all_movers(a.summary, b.summary)[:top]
    if a.labels is None or b.labels is None:
        tests = _independent_tests(a.summary, b.summary, "all labels")
        holm(tests)
        return StudyDiff(names[0], names[1], tests, movers)
    shared = set(a.labels.issue_uid) & set(b.labels.issue_uid)
    design = _design(a.labels, b.labels, shared)
    if not design.paired:
        tests = _independent_tests(a.summary, b.summary, "all labels")
        holm(tests)
        return StudyDiff(names[0], names[1], tests, movers, design)
    in_a, in_b = a.labels.issue_uid.isin(shared), b.labels.issue_uid.isin(shared)
    transitions = [_transition(d, a.labels[in_a], b.labels[in_b]) for d in PAIRED_DIMENSIONS]
    paired = [test for t in transitions for test in paired_tests(t)]
    tests: list[DistributionTest] = []
    if design.only_a and design.only_b:
        only_a = a.labels[~in_a]
        only_b = b.labels[~in_b]
        population = "issues only A holds vs issues only B holds"
        tests = _independent_tests(_summary(only_a), _summary(only_b), population)
    holm([*tests, *paired])
    return StudyDiff(names[0], names[1], tests, movers, design, paired, transitions)


def _design(labels_a: pd.DataFrame, labels_b: pd.DataFrame, shared: set[str]) -> Design:
    issues_a, issues_b = set(labels_a.issue_uid), set(labels_b.issue_uid)
    several_a = int((labels_a.groupby("issue_uid").size() > 1).sum())
    several_b = int((labels_b.groupby("issue_uid").size() > 1).sum())
    several = (
        f"{several_a} issues in A and {several_b} in B carry several labels; their labels "
        "are counted as if independent"
    )
    units = (
        f"units are labels: an issue's k-th fault (or question) in A is paired with its k-th "
        f"in B, each label one unit ({several}); the issue-type table has one unit per "
        "issue, its set of types"
    )
    if not shared:
        units = f"counts are labels: an issue with several faults counts once per fault ({several})"
        why = (
            "A and B share no issue: their labels are independent samples, so Pearson's "
            "chi-square test of homogeneity applies"
        )
        return Design(0, len(issues_a), len(issues_b), several_a, several_b, False, why, units)
    why = (
        f"A and B share {len(shared)} issues: their labels are paired, not independent "
        "samples, so the shared issues are compared with paired tests (Stuart-Maxwell and "
        "Bowker on each transition table, McNemar per category)"
    )
    only_a, only_b = len(issues_a - shared), len(issues_b - shared)
    if only_a and only_b:
        why += (
            f"; the {only_a} issues only A holds and the {only_b} only B holds are disjoint "
            "and compared with the chi-square test of independent samples"
        )
    elif only_a or only_b:
        why += f"; {only_a or only_b} issues only {'A' if only_a else 'B'} holds are not tested"
    return Design(len(shared), only_a, only_b, several_a, several_b, True, why, units)


# ---- paired units -------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _leaf_path(row: Any) -> str | None:
    leaf = _text(row.leaf_symptom)
    if leaf is None:
        return None
    parts = (_text(row.stage), _text(row.inner_category), leaf)
    return PATH_SEPARATOR.join(p for p in parts if p)


# dimension -> (issue type of the labels it reads, the value of one label)
LABEL_DIMENSIONS: dict[str, tuple[str, Callable[[Any], str | None]]] = {
    "stage": (FAULT, lambda row: _text(row.stage)),
    "leaf symptom": (FAULT, _leaf_path),
    "how-to topic": (HOWTO, lambda row: _text(row.howto_topic)),
}
PAIRED_DIMENSIONS = ("issue type", *LABEL_DIMENSIONS)


def _values(labels: pd.DataFrame, dimension: str) -> dict[Hashable, str]:
    """unit -> category for the labels: (issue, part) for a label dimension, the issue
    itself (with its set of types) for the issue type."""
    if dimension == "issue type":
        types = labels.groupby("issue_uid").issue_type.agg(
            lambda kinds: " & ".join(sorted({k for k in kinds if _text(k)})) or None
        )
        return {uid: kind for uid, kind in types.items() if kind}
    issue_type, value_of = LABEL_DIMENSIONS[dimension]
    rows = labels[labels.issue_type == issue_type]
    found = {(row.issue_uid, int(row.part)): value_of(row) for row in rows.itertuples()}
    return {unit: value for unit, value in found.items() if value}


def _transition(dimension: str, shared_a: pd.DataFrame, shared_b: pd.DataFrame) -> Transition:
    """A's and B's labels of the issues both hold, paired unit by unit."""
    values_a = _values(shared_a, dimension)
    values_b = _values(shared_b, dimension)
    pairs = [(values_a[unit], values_b[unit]) for unit in values_a if unit in values_b]
    return transition_table(
        dimension,
        pairs,
        only_a=len(values_a.keys() - values_b.keys()),
        only_b=len(values_b.keys() - values_a.keys()),
    )


def transition_table(
    dimension: str, pairs: list[tuple[str, str]], only_a: int = 0, only_b: int = 0
) -> Transition:
    """The square table of (A's category, B's category) pairs, categories by frequency."""
    totals = Counter(category for pair in pairs for category in pair)
    categories = sorted(totals, key=lambda c: (-totals[c], c))
    index = {category: i for i, category in enumerate(categories)}
    counts = [[0] * len(categories) for _ in categories]
    for first, second in pairs:
        counts[index[first]][index[second]] += 1
    return Transition(dimension, categories, counts, only_a, only_b)


# ---- paired tests -------------------------------------------------------------------------
def paired_tests(transition: Transition) -> list[PairedTest]:
    """Stuart-Maxwell and Bowker on the table, then McNemar for each category that moved.

    Categories no unit left or entered carry no information on a change and make the
    Stuart-Maxwell covariance singular: both table tests run on the categories that moved
    (their degrees of freedom count those only).
    """
    import numpy as np
    from statsmodels.stats.contingency_tables import SquareTable

    table = np.array(transition.counts, dtype=float).reshape(len(transition.categories), -1)
    off_diagonal = table - np.diag(np.diag(table))
    moved = off_diagonal.sum(axis=0) + off_diagonal.sum(axis=1) > 0
    n, changed = int(table.sum()), int(off_diagonal.sum())
    name = transition.dimension
    if moved.sum() < 2:
        note = "no unit changed category" if n else "no unit labelled on both sides"
        return [
            PairedTest(name, test, None, n, changed, None, None, None, note=note)
            for test in (STUART_MAXWELL, BOWKER)
        ]
    reduced = table[np.ix_(moved, moved)]
    square = SquareTable(reduced, shift_zeros=False)
    kept = f"on the {int(moved.sum())} categories that moved"
    results = []
    for test, (statistic, dof, how) in (
        (STUART_MAXWELL, _stuart_maxwell(square, reduced)),
        (BOWKER, _bowker(square, reduced)),
    ):
        # the survival function keeps small p-values that 1 - cdf rounds to zero
        p_value = float(chi2.sf(statistic, dof))
        note = f"{kept}{how}"
        results.append(PairedTest(name, test, None, n, changed, statistic, dof, p_value, note=note))
    for index in np.flatnonzero(moved):
        results.append(_mcnemar(name, transition.categories[index], table, index))
    return results


def _stuart_maxwell(square: Any, table: Any) -> tuple[float, int, str]:
    """statsmodels' Stuart-Maxwell statistic, unless its covariance matrix is singular (the
    moves form separate groups of categories, e.g. a -> b and c -> d only): then the same
    Wald statistic with a generalized inverse, its degrees of freedom the matrix's rank.
    statsmodels does not always notice the singularity in floating point, so the rank is
    checked here first."""
    import numpy as np

    n = table.sum()
    shares = table / n
    rows, columns = shares.sum(axis=1), shares.sum(axis=0)
    covariance = -(shares + shares.T)
    np.fill_diagonal(covariance, rows + columns - 2 * np.diag(shares))
    rank = int(np.linalg.matrix_rank(covariance))
    if rank == len(table) - 1:
        result = square.homogeneity(method="stuart_maxwell")
        return float(result.statistic), int(result.df), ""
    difference = columns - rows
    statistic = float(n * difference @ np.linalg.pinv(covariance) @ difference)
    return statistic, rank, "; moves in separate groups: generalized inverse, dof its rank"


def _bowker(square: Any, table: Any) -> tuple[float, int, str]:
    """statsmodels' Bowker statistic. Its degrees of freedom count every pair of categories
    (k(k - 1) / 2), which in a sparse table drowns the pairs that moved among the many that
    never could: here they count the pairs with any move, the terms the statistic sums."""
    import numpy as np

    pairs = table + table.T
    moved_pairs = int((pairs[np.triu_indices(len(table), 1)] > 0).sum())
    note = "" if moved_pairs == square.symmetry().df else "; dof: the pairs with any move"
    return float(square.symmetry().statistic), moved_pairs, note


def _mcnemar(dimension: str, category: str, table: Any, index: int) -> PairedTest:
    """McNemar on 'this category or not' in A against the same in B."""
    from statsmodels.stats.contingency_tables import mcnemar

    both = table[index, index]
    left = table[index].sum() - both  # A said this category, B another
    joined = table[:, index].sum() - both  # B says this category, A said another
    rest = table.sum() - both - left - joined
    exact = left + joined < MCNEMAR_EXACT_BELOW
    result = mcnemar([[both, left], [joined, rest]], exact=exact, correction=True)
    statistic = float(result.statistic)
    return PairedTest(
        dimension,
        MCNEMAR_EXACT if exact else MCNEMAR,
        category,
        int(table.sum()),
        int(left + joined),
        statistic,
        None if exact else 1,
        float(result.pvalue),
        note=f"{int(left)} left it, {int(joined)} joined it"
        + ("; statistic: the smaller count (binomial test)" if exact else ""),
    )


# ---- independent samples ------------------------------------------------------------------
def _summary(labels: pd.DataFrame) -> dict[str, Any]:
    """The counts `_independent_tests` reads, from label rows (as `compute_stats` counts)."""
    faults = labels[labels.issue_type == FAULT]
    howto = labels[labels.issue_type == HOWTO]
    return {
        "totals": {
            "faults": len(faults),
            "howto": len(howto),
            "not_relevant": int((labels.issue_type == "not relevant").sum()),
        },
        "stages": dict(Counter(v for v in faults.stage if _text(v))),
        "leaf_symptoms": dict(Counter(p for p in map(_leaf_path, faults.itertuples()) if p)),
        "howto_topics": dict(Counter(v for v in howto.howto_topic if _text(v))),
    }


def _independent_tests(
    sa: dict[str, Any], sb: dict[str, Any], population: str
) -> list[DistributionTest]:
    distributions = {
        ("issue type", "all issues"): (_issue_types(sa), _issue_types(sb)),
        ("stage", "all faults"): (sa["stages"], sb["stages"]),
        ("how-to topic", "all how-to questions"): (sa["howto_topics"], sb["howto_topics"]),
    }
    for stage in dict.fromkeys([*sa["stages"], *sb["stages"]]):
        distributions[("leaf symptom", stage)] = (
            _within(sa["leaf_symptoms"], stage),
            _within(sb["leaf_symptoms"], stage),
        )
    tests = [
        chi_square(dimension, scope, counts_a, counts_b)
        for (dimension, scope), (counts_a, counts_b) in distributions.items()
    ]
    for test in tests:
        test.population = population
    return tests


def _issue_types(summary: dict[str, Any]) -> dict[str, int]:
    totals = summary["totals"]
    return {
        "fault": totals["faults"],
        "how-to question": totals["howto"],
        "not relevant": totals["not_relevant"],
    }


def _within(leaves: dict[str, int], stage: str) -> dict[str, int]:
    """The leaf paths under one stage, named without the stage."""
    prefix = f"{stage}{PATH_SEPARATOR}"
    return {path.removeprefix(prefix): n for path, n in leaves.items() if path.startswith(prefix)}


def chi_square(
    dimension: str, scope: str, counts_a: dict[str, float], counts_b: dict[str, float]
) -> DistributionTest:
    """Pearson's chi-square test of homogeneity of two count distributions of disjoint
    populations (independent samples)."""
    categories = [
        c for c in dict.fromkeys([*counts_a, *counts_b]) if counts_a.get(c) or counts_b.get(c)
    ]
    row_a = [counts_a.get(c, 0) for c in categories]
    row_b = [counts_b.get(c, 0) for c in categories]
    n_a, n_b = sum(row_a), sum(row_b)
    if len(categories) < 2 or not n_a or not n_b:
        return DistributionTest(dimension, scope, len(categories), n_a, n_b, None, None, None)
    # no continuity correction: it only applies to 2 x 2 tables and would make those
    # tests inconsistent with the rest
    result = chi2_contingency([row_a, row_b], correction=False)
    expected = result.expected_freq.ravel()
    share_low = (expected < COCHRAN_MIN_EXPECTED).sum() / expected.size
    low = share_low > COCHRAN_MAX_SHARE_LOW or bool((expected < COCHRAN_FLOOR).any())
    return DistributionTest(
        dimension,
        scope,
        len(categories),
        n_a,
        n_b,
        float(result.statistic),
        int(result.dof),
        float(result.pvalue),
        low_expected=bool(low),
        min_expected=round(float(expected.min()), 3),
    )


def holm(tests: Sequence[Any]) -> None:
    """Holm-Bonferroni adjusted p-values over the tests that could be run: each test's
    `p_holm` from the `p_value` of every test that has one (any object with both)."""
    done = sorted((t for t in tests if t.p_value is not None), key=lambda t: t.p_value)
    running = 0.0
    for rank, test in enumerate(done):
        running = max(running, min(1.0, (len(done) - rank) * test.p_value))
        test.p_holm = running


# ---- movers -------------------------------------------------------------------------------
def _all_movers(sa: dict[str, Any], sb: dict[str, Any]) -> list[Mover]:
    faults = (sa["totals"]["faults"], sb["totals"]["faults"])
    howto = (sa["totals"]["howto"], sb["totals"]["howto"])
    movers = [
        *share_movers("stage", sa["stages"], sb["stages"], faults),
        *share_movers("leaf symptom", sa["leaf_symptoms"], sb["leaf_symptoms"], faults),
        *share_movers("fix pattern", sa["fix_patterns"], sb["fix_patterns"], faults),
        *share_movers("how-to topic", sa["howto_topics"], sb["howto_topics"], howto),
    ]
    return sorted(movers, key=lambda m: (-abs(m.delta), m.dimension, m.category))


def share_movers(
    dimension: str,
    counts_a: dict[str, float],
    counts_b: dict[str, float],
    totals: tuple[float, float],
) -> list[Mover]:
    """Each category whose share of its side's total changed (unchanged ones left out)."""
    movers = []
    for category in dict.fromkeys([*counts_a, *counts_b]):
        count_a, count_b = counts_a.get(category, 0), counts_b.get(category, 0)
        share_a = 100.0 * count_a / totals[0] if totals[0] else 0.0
        share_b = 100.0 * count_b / totals[1] if totals[1] else 0.0
        if share_a == share_b:
            continue
        movers.append(
            Mover(
                dimension,
                category,
                count_a,
                round(share_a, 1),
                count_b,
                round(share_b, 1),
                round(share_b - share_a, 1),
            )
        )
    return movers
