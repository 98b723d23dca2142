"""Reliability statistics against textbook examples with published values, formulas written
out here, and (for the intervals) the libraries run on each explicit resample."""

from collections import Counter
from itertools import combinations

import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score

from issueminer.label import reliability as rel


# ---- independent references ----------------------------------------------------------------
def alpha_by_hand(units, distance):
    """Krippendorff's alpha for any distance, from its definition: 1 - D_o / D_e over the
    pairable values (units with two or more values), ordered pairs within a unit weighted
    1/(m_u - 1)."""
    pairable = [[v for v in unit if v is not None] for unit in units]
    pairable = [unit for unit in pairable if len(unit) >= 2]
    values = [v for unit in pairable for v in unit]
    n = len(values)
    observed = sum(
        distance(unit[i], unit[j]) / (len(unit) - 1)
        for unit in pairable
        for i in range(len(unit))
        for j in range(len(unit))
        if i != j
    )
    expected = sum(distance(a, b) for a in values for b in values) / (n - 1)
    return 1 - observed / expected


def nominal_distance(a, b):
    return 0.0 if a == b else 1.0


def fleiss_by_hand(table):
    """Fleiss (1971): items x categories counts, the same number of raters per item."""
    table = np.asarray(table, dtype=float)
    raters = table[0].sum()
    per_item = ((table**2).sum(axis=1) - raters) / (raters * (raters - 1))
    shares = table.sum(axis=0) / table.sum()
    chance = (shares**2).sum()
    return (per_item.mean() - chance) / (1 - chance)


def units_from_counts(table):
    """An items x raters code matrix that gives each item the counts of `table`."""
    rows = []
    for counts in table:
        rows.append([category for category, n in enumerate(counts) for _ in range(n)])
    return rel.Units.from_rows(rows)


# ---- Cohen's kappa ---------------------------------------------------------------------------
def test_cohen_kappa_textbook_two_by_two():
    """50 proposals, two readers: yes/yes 20, yes/no 5, no/yes 10, no/no 15. Observed 0.70,
    chance 0.5 x 0.6 + 0.5 x 0.4 = 0.50, kappa = 0.40 (the textbook's worked example)."""
    first = ["yes"] * 25 + ["no"] * 25
    second = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    assert rel.cohen(first, second) == pytest.approx(0.4)
    units = rel.Units.from_rows(list(zip(first, second, strict=True)))
    n, observed, kappa = rel.weighted_pair(units, 0, 1, np.ones((1, 50)))
    assert (n[0], observed[0], kappa[0]) == (50, pytest.approx(0.7), pytest.approx(0.4))


def test_cohen_kappa_undefined_and_signs():
    assert rel.cohen(["a"] * 5, ["a"] * 5) is None
    assert rel.cohen([], []) is None
    assert rel.cohen(["a", "b"] * 4, ["b", "a"] * 4) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        rel.cohen(["a"], ["a", "b"])


# ---- Krippendorff's alpha --------------------------------------------------------------------
KRIPPENDORFF_2011 = [  # his reliability data: 4 observers, 12 units, "." = missing
    [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
]


def test_alpha_krippendorffs_own_example_is_0743():
    units = rel.Units.from_rows(list(zip(*KRIPPENDORFF_2011, strict=True)))
    value = rel.alpha(units)
    assert round(value, 3) == 0.743  # published: nominal alpha = 0.743
    by_hand = alpha_by_hand(list(zip(*KRIPPENDORFF_2011, strict=True)), nominal_distance)
    assert value == pytest.approx(by_hand)
    weighted = rel.weighted_alpha(units.value_counts(), rel.nominal(units.values), np.ones((1, 12)))
    assert weighted[0] == pytest.approx(value)


def test_alpha_undefined_cases():
    assert rel.alpha(rel.Units.from_rows([["a", "a"], ["a", "a"]])) is None
    assert rel.alpha(rel.Units.from_rows([["a", None], [None, "b"]])) is None


# ---- MASI --------------------------------------------------------------------------------------
def test_masi_distance_passonneau_cases():
    """Passonneau (2006): 1 - J x M with M 1 (equal), 2/3 (subset), 1/3 (overlap), 0."""
    a, ab, bc, c = frozenset("a"), frozenset("ab"), frozenset("bc"), frozenset("c")
    assert rel.masi_distance(ab, ab) == 0
    assert rel.masi_distance(ab, a) == pytest.approx(1 - (1 / 2) * (2 / 3))
    assert rel.masi_distance(ab, bc) == pytest.approx(1 - (1 / 3) * (1 / 3))
    assert rel.masi_distance(ab, c) == 1
    assert rel.masi_distance(frozenset(), a) == 1


def test_masi_alpha_equals_the_definition_and_credits_overlap():
    sets = [
        (("a", "b"), ("a",)),
        (("a",), ("a",)),
        (("b", "c"), ("c",)),
        (("c",), ("a", "b")),
        (("b",), ("b",)),
        (("a", "c"), ("a", "c")),
        (("b",), ("b", "c")),
    ]
    units = rel.Units.from_rows(sets)
    masi = rel.distance_matrix(
        units.values, lambda x, y: rel.masi_distance(frozenset(x), frozenset(y))
    )
    value = rel.alpha(units, masi)
    by_hand = alpha_by_hand(sets, lambda x, y: rel.masi_distance(frozenset(x), frozenset(y)))
    assert value == pytest.approx(by_hand)
    weighted = rel.weighted_alpha(units.value_counts(), masi, np.ones((1, len(sets))))
    assert weighted[0] == pytest.approx(value)
    # partial overlaps count as partial agreement: MASI alpha above exact-match alpha
    assert value > rel.alpha(units)


# ---- Fleiss' kappa -----------------------------------------------------------------------------
# The worked example of Fleiss' kappa (14 raters, 10 items, 5 categories): P = 0.378,
# P_e = 0.213, kappa = 0.210.
FLEISS_EXAMPLE = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]


def test_fleiss_kappa_worked_example_is_0210():
    units = units_from_counts(FLEISS_EXAMPLE)
    value, items = rel.fleiss(units)
    assert items == 10
    assert round(value, 3) == 0.210
    assert value == pytest.approx(fleiss_by_hand(FLEISS_EXAMPLE))
    assert rel.weighted_fleiss(units, np.ones((1, 10)))[0] == pytest.approx(value)


def test_fleiss_uses_only_items_every_annotator_rated():
    rows = [["a", "a", "a"], ["a", "b", "b"], ["b", "b", None], ["b", "b", "b"]]
    value, items = rel.fleiss(rel.Units.from_rows(rows))
    assert items == 3
    assert value == pytest.approx(fleiss_by_hand([[3, 0], [1, 2], [0, 3]]))


# ---- specific agreement and confusion ----------------------------------------------------
def test_specific_agreement_two_annotators_is_2ncc_over_margins():
    first = ["x", "x", "x", "y", "y", "z", "z", "z"]
    second = ["x", "x", "y", "y", "z", "z", "z", "x"]
    units = rel.Units.from_rows(list(zip(first, second, strict=True)))
    found = {r["category"]: r for r in rel.specific_agreement(units)}
    for value in "xyz":
        both = sum(a == b == value for a, b in zip(first, second, strict=True))
        margins = first.count(value) + second.count(value)
        assert found[value]["specific_agreement"] == pytest.approx(2 * both / margins)
        assert found[value]["uses"] == margins
    table = rel.confusion(units, 0, 1)
    expected = Counter(zip(first, second, strict=True))
    labels = table["labels"]
    for i, a in enumerate(labels):
        for j, b in enumerate(labels):
            assert table["counts"][i][j] == expected[(a, b)]


# ---- intervals -----------------------------------------------------------------------------
def test_bootstrap_weights_equal_the_libraries_on_each_explicit_resample():
    """Each weight row is a resample: the weighted kappa/alpha equal sklearn's and the
    krippendorff package's on the items drawn, repeated as often as drawn."""
    rng = np.random.default_rng(7)
    first = rng.choice(list("abcd"), 40)
    second = np.where(rng.random(40) < 0.7, first, rng.choice(list("abcd"), 40))
    rows = list(zip(first, second, strict=True))
    units = rel.Units.from_rows(rows)
    weights = rel.resample_weights(40, 30, 11, "round", "dimension")
    assert (weights.sum(axis=1) == 40).all()
    _, _, kappas = rel.weighted_pair(units, 0, 1, weights)
    alphas = rel.weighted_alpha(units.value_counts(), rel.nominal(units.values), weights)
    for b in range(30):
        drawn = [rows[i] for i in range(40) for _ in range(int(weights[b, i]))]
        a, c = [x for x, _ in drawn], [y for _, y in drawn]
        assert kappas[b] == pytest.approx(cohen_kappa_score(a, c))
        assert alphas[b] == pytest.approx(rel.alpha(rel.Units.from_rows(drawn)))


def test_bootstrap_is_seeded_and_the_interval_is_the_percentiles():
    one = rel.resample_weights(25, 200, 5, "round1", "stage")
    assert (one == rel.resample_weights(25, 200, 5, "round1", "stage")).all()
    assert not (one == rel.resample_weights(25, 200, 6, "round1", "stage")).all()
    assert not (one == rel.resample_weights(25, 200, 5, "round1", "leaf")).all()
    samples = np.linspace(0, 1, 201)
    assert rel.interval(samples) == [pytest.approx(0.025), pytest.approx(0.975)]
    mostly_undefined = np.array([np.nan] * 150 + [0.5] * 50)
    assert rel.interval(mostly_undefined) is None


@pytest.mark.parametrize(
    ("kappa", "word"),
    [
        (-0.1, "poor"),
        (0.0, "slight"),
        (0.2, "slight"),
        (0.21, "fair"),
        (0.4, "fair"),
        (0.55, "moderate"),
        (0.61, "substantial"),
        (0.8, "substantial"),
        (0.81, "almost perfect"),
        (1.0, "almost perfect"),
        (None, None),
    ],
)
def test_landis_koch_bands(kappa, word):
    assert rel.landis_koch(kappa) == word


def test_pairs_are_every_combination():
    assert rel.pairs_of(["a", "b", "c"]) == list(combinations(range(3), 2))
