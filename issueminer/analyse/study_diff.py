"""Compare the label distributions of two studies, or two snapshots of one study.

Both sides are summarised by `compute_stats`, so the counts compared are the ones
`issueminer stats` prints. Each distribution is tested for homogeneity with Pearson's
chi-square on the 2 x k table of counts (issue types, stages, how-to topics, and the leaf
symptoms within each stage); p-values are also given Holm-adjusted over all the tests of
one comparison. The categories whose share moved most are listed in percentage points.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from scipy.stats import chi2_contingency

from issueminer.analyse.stats import PATH_SEPARATOR, StudyStats

# Cochran's rule: the chi-square approximation is doubtful when more than a fifth of the
# expected counts are below five; such tests are flagged, not hidden.
COCHRAN_MIN_EXPECTED = 5.0
COCHRAN_MAX_SHARE_LOW = 0.2
TOP_MOVERS = 10


@dataclass
class DistributionTest:
    dimension: str  # issue type | stage | leaf symptom | how-to topic
    scope: str  # "all faults", or the stage whose leaf symptoms are compared
    categories: int
    n_a: int
    n_b: int
    chi2: float | None  # None when untestable (fewer than two categories, or an empty side)
    dof: int | None
    p_value: float | None
    p_holm: float | None = None
    low_expected: bool = False  # Cochran's rule fails: read the p-value with care


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
class StudyDiff:
    a: str
    b: str
    tests: list[DistributionTest]
    movers: list[Mover]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def diff_studies(
    a: StudyStats, b: StudyStats, *, names: tuple[str, str] = ("A", "B"), top: int = TOP_MOVERS
) -> StudyDiff:
    """Chi-square tests per distribution and the `top` categories whose share moved most."""
    sa, sb = a.summary, b.summary
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
    _holm(tests)
    faults = (sa["totals"]["faults"], sb["totals"]["faults"])
    howto = (sa["totals"]["howto"], sb["totals"]["howto"])
    movers = [
        *_movers("stage", sa["stages"], sb["stages"], faults),
        *_movers("leaf symptom", sa["leaf_symptoms"], sb["leaf_symptoms"], faults),
        *_movers("fix pattern", sa["fix_patterns"], sb["fix_patterns"], faults),
        *_movers("how-to topic", sa["howto_topics"], sb["howto_topics"], howto),
    ]
    movers.sort(key=lambda m: (-abs(m.delta), m.dimension, m.category))
    return StudyDiff(names[0], names[1], tests, movers[:top])


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
    dimension: str, scope: str, counts_a: dict[str, int], counts_b: dict[str, int]
) -> DistributionTest:
    """Pearson's chi-square test of homogeneity of two count distributions."""
    categories = [
        c for c in dict.fromkeys([*counts_a, *counts_b]) if counts_a.get(c) or counts_b.get(c)
    ]
    row_a = [int(counts_a.get(c, 0)) for c in categories]
    row_b = [int(counts_b.get(c, 0)) for c in categories]
    n_a, n_b = sum(row_a), sum(row_b)
    if len(categories) < 2 or not n_a or not n_b:
        return DistributionTest(dimension, scope, len(categories), n_a, n_b, None, None, None)
    # no continuity correction: it only applies to 2 x 2 tables and would make those
    # tests inconsistent with the rest
    result = chi2_contingency([row_a, row_b], correction=False)
    expected = result.expected_freq.ravel()
    low = (expected < COCHRAN_MIN_EXPECTED).sum() / expected.size > COCHRAN_MAX_SHARE_LOW
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
    )


def _holm(tests: list[DistributionTest]) -> None:
    """Holm-Bonferroni adjusted p-values over the tests that could be run."""
    done = sorted((t for t in tests if t.p_value is not None), key=lambda t: t.p_value)
    running = 0.0
    for rank, test in enumerate(done):
        running = max(running, min(1.0, (len(done) - rank) * test.p_value))
        test.p_holm = running


def _movers(
    dimension: str, counts_a: dict[str, int], counts_b: dict[str, int], totals: tuple[int, int]
) -> list[Mover]:
    movers = []
    for category in dict.fromkeys([*counts_a, *counts_b]):
        count_a, count_b = int(counts_a.get(category, 0)), int(counts_b.get(category, 0))
        share_a = 100.0 * count_a / totals[0] if totals[0] else 0.0
        share_b = 100.0 * count_b / totals[1] if totals[1] else 0.0
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
