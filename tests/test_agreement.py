"""Inter-rater agreement: Cohen's kappa, Krippendorff's alpha and the per-round table,
checked against sklearn, a published example and formulas written out here."""

import json
import random
import sqlite3
from collections import Counter, defaultdict
from itertools import combinations

import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from issueminer.cli.main import app
from issueminer.collect.ingest import import_replication
from issueminer.label.agreement import agreement_table, cohen_kappa, krippendorff_alpha
from issueminer.store import Annotation, Issue, Store

LABELS = ["fault", "how-to question", "not relevant", "other"]


# ---- independent reference implementations -------------------------------------------


def textbook_alpha(units):
    """Nominal alpha from the disagreement form: 1 - D_o / D_e over pairable values.

    D_o = (1/n) sum_u (1/(m_u-1)) * #ordered pairs in u that differ,
    D_e = (1/(n(n-1))) * #ordered pairs of all pairable values that differ.
    """
    pairable = [[v for v in unit if v is not None] for unit in units]
    pairable = [unit for unit in pairable if len(unit) >= 2]
    values = [v for unit in pairable for v in unit]
    n = len(values)
    observed = 0.0
    for unit in pairable:
        m = len(unit)
        differing = sum(1 for i in range(m) for j in range(m) if i != j and unit[i] != unit[j])
        observed += differing / (m - 1)
    observed /= n
    counts = Counter(values)
    expected = sum(counts[c] * (n - counts[c]) for c in counts) / (n * (n - 1))
    return 1 - observed / expected


def two_coder_alpha(first, second):
    """Krippendorff's two-coder nominal alpha, no missing values (his 2011 paper, case A)."""
    n = 2 * len(first)
    disagreements = sum(a != b for a, b in zip(first, second, strict=True))
    counts = Counter([*first, *second])
    return 1 - (n - 1) * 2 * disagreements / sum(c * (n - c) for c in counts.values())


def sk_kappa(first, second):
    """sklearn's kappa, or None where it is undefined (both raters used one same label)."""
    if len(set(first) | set(second)) == 1:
        return None
    return float(cohen_kappa_score(first, second))


# ---- cohen_kappa ----------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 7, 42, 2024, 31337])
def test_cohen_kappa_matches_sklearn_on_random_lists(seed):
    """On seeded random label lists kappa equals sklearn's cohen_kappa_score."""
    rng = random.Random(seed)
    size = rng.randint(15, 80)
    first = [rng.choice(LABELS) for _ in range(size)]
    # correlated second rater: copies the first most of the time
    second = [a if rng.random() < 0.6 else rng.choice(LABELS) for a in first]
    assert cohen_kappa(first, second) == pytest.approx(cohen_kappa_score(first, second))
    assert cohen_kappa(second, first) == pytest.approx(cohen_kappa(first, second))


def test_cohen_kappa_hand_made_cases():
    """Perfect agreement is 1.0; one shared label is None; a hand-computed 2x2 case."""
    assert cohen_kappa(["a", "b", "c", "a"], ["a", "b", "c", "a"]) == 1.0
    assert cohen_kappa(["x"] * 6, ["x"] * 6) is None
    assert cohen_kappa([], []) is None
    # 10 items, p_o = 0.7, p_e = 0.5*0.6 + 0.5*0.4 = 0.5 -> kappa = 0.4
    first = ["y"] * 5 + ["n"] * 5
    second = ["y", "y", "y", "y", "n", "y", "y", "n", "n", "n"]
    assert cohen_kappa(first, second) == pytest.approx(0.4)
    assert cohen_kappa(first, second) == pytest.approx(cohen_kappa_score(first, second))
    # systematic disagreement is negative
    assert cohen_kappa(["a", "b"] * 5, ["b", "a"] * 5) == pytest.approx(-1.0)
    with pytest.raises(ValueError):
        cohen_kappa(["a"], ["a", "b"])


# ---- krippendorff_alpha ---------------------------------------------------------------


def test_alpha_classic_example_with_missing_values():
    """Krippendorff's 4-coder, 12-unit nominal example with missing values: alpha = 0.743."""
    coder_a = [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None]
    coder_b = [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3]
    coder_c = [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None]
    coder_d = [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None]
    units = list(zip(coder_a, coder_b, coder_c, coder_d, strict=True))
    alpha = krippendorff_alpha(units)
    assert round(alpha, 3) == 0.743
    assert alpha == pytest.approx(textbook_alpha(units))


def test_alpha_two_coders_published_binary_example():
    """Krippendorff's binary two-coder example (10 units): alpha = 0.095."""
    mary = [0, 1, 0, 0, 0, 0, 0, 0, 1, 0]
    dave = [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]
    alpha = krippendorff_alpha(list(zip(mary, dave, strict=True)))
    assert round(alpha, 3) == 0.095
    assert alpha == pytest.approx(two_coder_alpha(mary, dave))


@pytest.mark.parametrize("seed", [3, 11, 99])
def test_alpha_two_coders_matches_formula(seed):
    """For two coders without missing values alpha equals the textbook two-coder formula."""
    rng = random.Random(seed)
    first = [rng.choice(LABELS) for _ in range(40)]
    second = [a if rng.random() < 0.5 else rng.choice(LABELS) for a in first]
    alpha = krippendorff_alpha(list(zip(first, second, strict=True)))
    assert alpha == pytest.approx(two_coder_alpha(first, second))


@pytest.mark.parametrize("seed", [5, 17])
def test_alpha_many_coders_with_gaps_matches_textbook(seed):
    """Random units of 3-5 coders with missing values agree with the disagreement form."""
    rng = random.Random(seed)
    units = []
    for _ in range(30):
        truth = rng.choice(LABELS)
        units.append(
            [
                None
                if rng.random() < 0.25
                else (truth if rng.random() < 0.7 else rng.choice(LABELS))
                for _ in range(rng.randint(3, 5))
            ]
        )
    assert krippendorff_alpha(units) == pytest.approx(textbook_alpha(units))


def test_alpha_degenerate_cases():
    """Perfect agreement over two values is 1.0; no variation or no pairable values is None."""
    assert krippendorff_alpha([["a", "a"], ["b", "b"], ["a", "a", None]]) == pytest.approx(1.0)
    assert krippendorff_alpha([["a", "a"], ["a", "a"]]) is None
    assert krippendorff_alpha([["a", None], [None, "b"]]) is None
    assert krippendorff_alpha([]) is None


# ---- agreement_table on a real store ---------------------------------------------------

FAULT = "fault"
HOWTO = "how-to question"
IRRELEVANT = "not relevant"
COMM = "communication setup"
PREP = "data and model preparation"
TRAIN = "training & evaluation"


def _fault(stage, leaf, fixes):
    return {"issue_type": FAULT, "stage": stage, "leaf_symptom": leaf, "fix_patterns": fixes}


def _howto(topic):
    return {"issue_type": HOWTO, "howto_topic": topic}


# (issue, alice's labels, bob's labels); None means that annotator did not label the issue
ROUND_1 = [
    ("i1", _fault(COMM, "setup failure", ["fix network setting"]),
     _fault(COMM, "setup failure", ["fix network setting"])),
    ("i2", _fault(COMM, "hang and timeout", ["fix timeout setting"]),
     _fault(PREP, "hang and timeout", ["fix timeout setting", "fix network setting"])),
    ("i3", _fault(TRAIN, "out of memory", ["fix batch size", "fix memory/core setting"]),
     _fault(TRAIN, "out of memory", ["fix memory/core setting", "fix batch size"])),
    ("i4", _fault(PREP, "path error", ["fix data path"]),
     _fault(PREP, "data loading failure", ["fix data path"])),
    ("i5", _howto("communication"), _howto("communication")),
    ("i6", _howto("device usage"), _howto("communication")),
    ("i7", _howto("performance"),
     _fault(TRAIN, "low efficiency", ["fix communication optimization"])),
    ("i8", {"issue_type": IRRELEVANT}, {"issue_type": IRRELEVANT}),
    ("i9", _fault(TRAIN, "hang", []), _fault(TRAIN, "hang", ["fix behavior logic"])),
    ("i10", _howto("performance"), _howto("performance")),
    ("i11", _fault(COMM, "setup failure", ["fix command line"]), None),
]  # fmt: skip

VALUE_OF = {
    "issue_type": lambda labels: labels.get("issue_type"),
    "stage": lambda labels: labels.get("stage"),
    # a leaf is compared with its stage and inner category (issue 22): i2's "hang and
    # timeout" differs
    "leaf_symptom": lambda labels: (
        (labels.get("stage"), labels.get("inner_category"), labels["leaf_symptom"])
        if labels.get("leaf_symptom")
        else None
    ),
    "fix_pattern": lambda labels: tuple(sorted(labels.get("fix_patterns") or [])) or None,
    "howto_topic": lambda labels: labels.get("howto_topic"),
}


def _issues(session, uids):
    for uid in uids:
        if session.get(Issue, uid) is None:
            session.add(
                Issue(uid=uid, source="web", origin="https://example.org", native_id=uid, url=None)
            )
    session.flush()


def _annotate(store, round_name, by_annotator, role="annotator", status="done"):
    """by_annotator: {annotator: {issue: labels}}; one Annotation row per entry, in order."""
    with store.session() as session:
        _issues(session, {uid for labels in by_annotator.values() for uid in labels})
        for annotator, labelled in by_annotator.items():
            for uid, labels in labelled.items():
                session.add(
                    Annotation(
                        issue_uid=uid,
                        annotator=annotator,
                        round=round_name,
                        role=role,
                        status=status,
                        fix_patterns=list(labels.get("fix_patterns") or []),
                        **{k: v for k, v in labels.items() if k != "fix_patterns"},
                    )
                )


def _round_1_data():
    alice = {uid: a for uid, a, _b in ROUND_1 if a is not None}
    bob = {uid: b for uid, _a, b in ROUND_1 if b is not None}
    return {"alice": alice, "bob": bob}


def expected_rows(data):
    """{dimension: (n, agreement, mean pairwise kappa, alpha)} computed without the library."""
    annotators = sorted(data)
    uids = sorted({uid for labelled in data.values() for uid in labelled})
    result = {}
    for dimension, value_of in VALUE_OF.items():
        units = []
        for uid in uids:
            unit = [value_of(data[a][uid]) if uid in data[a] else None for a in annotators]
            if sum(v is not None for v in unit) >= 2:
                units.append(unit)
        agreements, kappas = [], []
        for i, j in combinations(range(len(annotators)), 2):
            pairs = [(u[i], u[j]) for u in units if u[i] is not None and u[j] is not None]
            if not pairs:
                continue
            first = [str(a) for a, _ in pairs]
            second = [str(b) for _, b in pairs]
            agreements.append(sum(a == b for a, b in zip(first, second, strict=True)) / len(pairs))
            kappa = sk_kappa(first, second)
            if kappa is not None:
                kappas.append(kappa)
        result[dimension] = (
            len(units),
            sum(agreements) / len(agreements) if agreements else None,
            sum(kappas) / len(kappas) if kappas else None,
            textbook_alpha(units) if units else None,
        )
    return result


def _table(store, round_name=None):
    with store.session() as session:
        return agreement_table(session, round_name)


def _assert_rows_match(rows, expected, round_name, annotators):
    assert [r.dimension for r in rows] == list(VALUE_OF)
    for row in rows:
        n, agreement, kappa, alpha = expected[row.dimension]
        assert row.round == round_name
        assert row.annotators == annotators
        assert row.n == n, row.dimension
        assert row.agreement == pytest.approx(agreement), row.dimension
        if kappa is None:
            assert row.kappa is None, row.dimension
        else:
            assert row.kappa == pytest.approx(kappa), row.dimension
        if alpha is None:
            assert row.alpha is None, row.dimension
        else:
            assert row.alpha == pytest.approx(alpha), row.dimension


def test_expected_rows_hand_check():
    """Spot-check of the reference computation on round 1 by counting by hand."""
    expected = expected_rows(_round_1_data())
    # issue_type: i1..i10 rated by both (i11 only by alice); i7 differs
    assert expected["issue_type"][:2] == (10, pytest.approx(9 / 10))
    # stage: both gave a stage on i1, i2, i3, i4, i9; i2 differs
    assert expected["stage"][:2] == (5, pytest.approx(4 / 5))
    # fix patterns as sets: i1, i2, i3, i4 (i9: alice gave none); i2 differs
    assert expected["fix_pattern"][:2] == (4, pytest.approx(3 / 4))
    # howto topic: i5, i6, i10; i6 differs
    assert expected["howto_topic"][:2] == (3, pytest.approx(2 / 3))


def test_agreement_table_two_annotators(store):
    """n, agreement, kappa and alpha per dimension match the independent computation."""
    data = _round_1_data()
    _annotate(store, "round 1", data)
    rows = _table(store)
    _assert_rows_match(rows, expected_rows(data), "round 1", ["alice", "bob"])
    # the same when the round is named
    assert [r.as_dict() for r in _table(store, "round 1")] == [r.as_dict() for r in rows]
    assert _table(store, "round 9") == []


def test_agreement_table_newest_annotation_counts(store):
    """Appending a corrected annotation replaces the earlier one, and the numbers change."""
    data = _round_1_data()
    _annotate(store, "round 1", data)
    before = {r.dimension: r for r in _table(store)}

    corrected = {"i7": _howto("performance"), "i2": _fault(COMM, "hang and timeout", ["x"])}
    _annotate(store, "round 1", {"bob": corrected})
    data["bob"].update(corrected)
    after = {r.dimension: r for r in _table(store)}
    _assert_rows_match(list(after.values()), expected_rows(data), "round 1", ["alice", "bob"])

    assert after["issue_type"].agreement == pytest.approx(1.0)
    assert before["issue_type"].agreement == pytest.approx(0.9)
    assert after["stage"].agreement == pytest.approx(1.0)
    assert after["howto_topic"].n == before["howto_topic"].n + 1
    with store.session() as session:
        assert session.query(Annotation).count() == 10 + 11 + 2  # history is kept


def test_agreement_table_ignores_adjudicators_and_skipped(store):
    """role='adjudicator' rows (even newer ones) and skipped annotations do not count."""
    data = _round_1_data()
    _annotate(store, "round 1", data)
    baseline = [r.as_dict() for r in _table(store)]

    everything_else = {uid: {"issue_type": IRRELEVANT} for uid, _a, _b in ROUND_1}
    _annotate(store, "round 1", {"carol": everything_else, "alice": everything_else},
              role="adjudicator")  # fmt: skip
    assert [r.as_dict() for r in _table(store)] == baseline

    # a skipped save becomes bob's current annotation of i1: i1 drops out everywhere
    _annotate(store, "round 1", {"bob": {"i1": {}}}, status="skipped")
    del data["bob"]["i1"]
    _assert_rows_match(_table(store), expected_rows(data), "round 1", ["alice", "bob"])


THREE = {
    "alice": {
        "u1": {"issue_type": FAULT}, "u2": {"issue_type": FAULT}, "u3": {"issue_type": HOWTO},
        "u4": {"issue_type": HOWTO}, "u5": {"issue_type": IRRELEVANT},
        "u6": {"issue_type": FAULT}, "u7": {"issue_type": FAULT},
    },
    "bob": {
        "u1": {"issue_type": FAULT}, "u2": {"issue_type": HOWTO}, "u3": {"issue_type": HOWTO},
        "u4": {"issue_type": HOWTO}, "u5": {"issue_type": FAULT},
        "u7": {"issue_type": FAULT},
    },
    "carol": {
        "u1": {"issue_type": FAULT}, "u2": {"issue_type": FAULT}, "u3": {"issue_type": IRRELEVANT},
        "u5": {"issue_type": IRRELEVANT}, "u6": {"issue_type": FAULT},
        "u8": {"issue_type": HOWTO},
    },
}  # fmt: skip


def test_agreement_table_three_annotators(store):
    """Three annotators: alpha over all, kappa as the mean of the three pairwise kappas."""
    _annotate(store, "round 2", THREE)
    rows = {r.dimension: r for r in _table(store, "round 2")}
    row = rows["issue_type"]
    assert row.annotators == ["alice", "bob", "carol"]
    # u8 has one rating only; u1..u7 have two or three
    assert row.n == 7

    pairwise = []
    for x, y in combinations(sorted(THREE), 2):
        shared = sorted(set(THREE[x]) & set(THREE[y]))
        first = [THREE[x][u]["issue_type"] for u in shared]
        second = [THREE[y][u]["issue_type"] for u in shared]
        pairwise.append(cohen_kappa_score(first, second))
    assert row.kappa == pytest.approx(sum(pairwise) / 3)
    units = [
        [THREE[a].get(u, {}).get("issue_type") for a in sorted(THREE)]
        for u in ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"]
    ]
    assert row.alpha == pytest.approx(textbook_alpha(units))
    _assert_rows_match(
        list(rows.values()), expected_rows(THREE), "round 2", ["alice", "bob", "carol"]
    )
    # no stage was given at all
    assert (rows["stage"].n, rows["stage"].kappa, rows["stage"].alpha) == (0, None, None)


def test_agreement_table_rounds_in_order_and_single_annotator_round(store):
    """Rounds come out in numeric order; a round with one annotator gives no rows."""
    _annotate(store, "round 10", THREE)
    _annotate(store, "round 2", _round_1_data())
    _annotate(store, "round 3", {"alice": {"i1": {"issue_type": FAULT}, "i2": _howto("model")}})
    rows = _table(store)
    assert list(dict.fromkeys(r.round for r in rows)) == ["round 2", "round 10"]
    assert _table(store, "round 3") == []
    assert len(rows) == 2 * len(VALUE_OF)


# ---- the missing-label rule, what was left out, three annotators --------------------------
def expected_as_category(data):
    """Rule as-category by hand: an item counts when both labelled it and one gave a value;
    the other's missing value is the category "(none)" (an empty set for fix patterns)."""
    result = {}
    for dimension, value_of in VALUE_OF.items():
        first, second = [], []
        for uid in sorted(set(data["alice"]) & set(data["bob"])):
            a, b = value_of(data["alice"][uid]), value_of(data["bob"][uid])
            if a is None and b is None:
                continue
            none = () if dimension == "fix_pattern" else "(none)"
            first.append(str(none if a is None else a))
            second.append(str(none if b is None else b))
        result[dimension] = (len(first), cohen_kappa_score(first, second), first, second)
    return result


def test_missing_as_category_gives_the_unconditional_figures(store):
    data = _round_1_data()
    _annotate(store, "round 1", data)
    with store.session() as session:
        skip = {r.dimension: r for r in agreement_table(session)}
        every = {r.dimension: r for r in agreement_table(session, missing="as-category")}
    expected = expected_as_category(data)
    for dimension, (n, kappa, first, second) in expected.items():
        row = every[dimension]
        assert row.missing == "as-category" and skip[dimension].missing == "skip"
        assert row.n == n, dimension
        assert row.kappa == pytest.approx(kappa), dimension
        assert row.agreement == pytest.approx(
            sum(a == b for a, b in zip(first, second, strict=True)) / n
        )
        assert row.alpha == pytest.approx(krippendorff_alpha(list(zip(first, second, strict=True))))
    # i7 (how-to against fault) joins the stage figure as "(none)" against a stage
    assert every["stage"].n == skip["stage"].n + 1
    # rule skip left i7 out of the stage figure because bob's how-to has no stage
    assert skip["stage"].left_out["no_value"] == 1 and every["stage"].left_out["no_value"] == 0
    # i11 was labelled by alice only: left out under both rules
    assert skip["issue_type"].left_out["unlabelled"] == 1
    assert every["issue_type"].left_out["unlabelled"] == 1
    with (
        pytest.raises(ValueError, match="missing must be one of skip, as-category"),
        store.session() as session,
    ):
        agreement_table(session, missing="both")


def _typed_row(session, uid, annotator, status="done", raw=None, **labels):
    session.add(
        Annotation(
            issue_uid=uid,
            annotator=annotator,
            round="r",
            status=status,
            raw_labels=raw or {},
            fix_patterns=list(labels.pop("fix_patterns", [])),
            **labels,
        )
    )


def test_pending_and_inferred_values_are_left_out_and_counted(store):
    """A PENDING cell and an issue type the importer inferred are no judgement: the item
    leaves that dimension's figure and the row says why."""
    with store.session() as session:
        _issues(session, ["p1", "p2", "p3", "p4", "p5"])
        for uid in ("p1", "p2", "p3"):
            _typed_row(session, uid, "ann", raw={"issue_type": "fault", "stage": TRAIN},
                       issue_type=FAULT, stage=TRAIN)  # fmt: skip
        _typed_row(session, "p4", "ann", raw={"issue_type": "fault"}, issue_type=FAULT,
                   stage=COMM)  # fmt: skip
        _typed_row(session, "p5", "ann", raw={"issue_type": "how-to"}, issue_type=HOWTO)
        _typed_row(session, "p1", "ben", raw={"issue_type": "fault", "stage": TRAIN},
                   issue_type=FAULT, stage=TRAIN)  # fmt: skip
        # p2: ben's stage cell says PENDING, so the stage is not decided
        _typed_row(session, "p2", "ben", status="pending",
                   raw={"issue_type": "fault", "stage": "PENDING"}, issue_type=FAULT)  # fmt: skip
        # p3: ben typed no issue type; the importer inferred "fault" from the stage
        _typed_row(session, "p3", "ben", raw={"issue_type": None, "stage": COMM},
                   issue_type=FAULT, stage=COMM)  # fmt: skip
        _typed_row(session, "p4", "ben", raw={"issue_type": "fault"}, issue_type=FAULT,
                   stage=COMM)  # fmt: skip
        _typed_row(session, "p5", "ben", raw={"issue_type": "how-to"}, issue_type=FAULT)
    with store.session() as session:
        rows = {r.dimension: r for r in agreement_table(session)}
    types, stages = rows["issue_type"], rows["stage"]
    assert types.n == 4 and types.left_out == {
        "pending": 0, "inferred": 1, "unlabelled": 0, "no_value": 0,
    }  # fmt: skip
    assert types.kappa == pytest.approx(
        cohen_kappa_score([FAULT, FAULT, FAULT, HOWTO], [FAULT, FAULT, FAULT, FAULT])
    )
    # p3's stage still counts: the inferred value was the issue type, not the stage
    assert stages.n == 3 and stages.left_out["pending"] == 1
    assert stages.agreement == pytest.approx(2 / 3)


def test_three_annotators_fleiss_pairs_and_confusions(store):
    _annotate(store, "round 2", THREE)
    with store.session() as session:
        row = next(r for r in agreement_table(session) if r.dimension == "issue_type")
    annotators = sorted(THREE)
    complete = [u for u in THREE["alice"] if all(u in THREE[a] for a in annotators)]
    ratings = [[THREE[a][u]["issue_type"] for a in annotators] for u in sorted(complete)]
    codes = {v: i for i, v in enumerate(sorted({v for r in ratings for v in r}))}
    table, _ = aggregate_raters([[codes[v] for v in r] for r in ratings])
    assert row.fleiss == pytest.approx(fleiss_kappa(table))
    assert row.fleiss_n == len(complete)
    assert row.fleiss_ci is not None and row.fleiss_ci[0] <= row.fleiss_ci[1]
    assert [p["annotators"] for p in row.pairs] == [list(p) for p in combinations(annotators, 2)]
    for pair, confusion in zip(row.pairs, row.confusions, strict=True):
        x, y = pair["annotators"]
        shared = sorted(set(THREE[x]) & set(THREE[y]))
        first = [THREE[x][u]["issue_type"] for u in shared]
        second = [THREE[y][u]["issue_type"] for u in shared]
        assert pair["n"] == len(shared)
        assert pair["kappa"] == pytest.approx(cohen_kappa_score(first, second))
        cells = Counter(zip(first, second, strict=True))
        labels = confusion["labels"]
        found = {
            (labels[i], labels[j]): n
            for i, line in enumerate(confusion["counts"])
            for j, n in enumerate(line)
            if n
        }
        assert found == dict(cells)


def test_intervals_hold_the_figure_and_are_reproducible(store):
    _annotate(store, "round 1", _round_1_data())
    with store.session() as session:
        first = agreement_table(session, resamples=300, seed=9)
        again = agreement_table(session, resamples=300, seed=9)
        other = agreement_table(session, resamples=300, seed=10)
    assert [r.as_dict() for r in first] == [r.as_dict() for r in again]
    assert [r.kappa_ci for r in first] != [r.kappa_ci for r in other]
    for row in first:
        for figure, ci in ((row.kappa, row.kappa_ci), (row.alpha, row.alpha_ci)):
            if ci is not None:
                assert ci[0] - 1e-9 <= figure <= ci[1] + 1e-9, row.dimension


# ---- the TOSEM 2023 rounds -------------------------------------------------------------------
@pytest.fixture(scope="module")
def tosem_db(tosem_dir, taxonomy, tmp_path_factory):
    path = tmp_path_factory.mktemp("tosem-agree") / "study.db"
    store = Store(f"sqlite:///{path}")
    import_replication(store, tosem_dir, taxonomy)
    store.close()
    return path


def _sheet_values(path):
    """Per (round, dimension): {(issue, part): {annotator: (state, value)}} read with plain
    SQL from the newest save of each annotator, the rules written out here."""
    connection = sqlite3.connect(path)
    rows = connection.execute(
        "SELECT issue_uid, part, annotator, round, status, issue_type, stage, inner_category, "
        "leaf_symptom, "
        "fix_patterns, howto_topic, raw_labels FROM annotation WHERE id IN (SELECT max(id) "
        "FROM annotation WHERE role = 'annotator' GROUP BY issue_uid, part, annotator, round)"
    ).fetchall()
    connection.close()
    found = defaultdict(lambda: defaultdict(dict))
    for uid, part, who, round_name, status, kind, stage, inner, leaf, fixes, topic, raw in rows:
        raw = json.loads(raw)
        fixes = json.loads(fixes)
        values = {
            "issue_type": kind,
            "stage": stage,
            "leaf_symptom": " > ".join(p for p in (stage, inner, leaf) if p) if leaf else None,
            "fix_pattern": " & ".join(sorted(fixes)) if fixes else None,
            "howto_topic": topic,
        }
        for dimension, value in values.items():
            if value is None and status == "pending":
                state = "pending"
            elif dimension == "issue_type" and value and not raw.get("issue_type"):
                state = "inferred"
            else:
                state = "value" if value is not None else "none"
            found[(round_name, dimension)][(uid, part)][who] = (state, value)
    return found


def test_tosem_rounds_match_an_independent_count(tosem_db, runner):
    """Every TOSEM 2023 round and dimension: n, kappa (sklearn) and the items each rule left
    out, recounted from the database with SQL; and the CLI's JSON says the same."""
    with Store(f"sqlite:///{tosem_db}").session() as session:
        rows = agreement_table(session)
    expected = _sheet_values(tosem_db)
    assert {(r.round, r.dimension) for r in rows} == {k for k in expected if k[0] != "pilot"}
    for row in rows:
        items = expected[(row.round, row.dimension)]
        pairs, left = [], Counter()
        for ratings in items.values():
            states = [ratings.get(a, (None, None))[0] for a in ("label1", "label2")]
            if not {"value", "inferred"} & set(states):
                continue
            if states == ["value", "value"]:
                pairs.append((ratings["label1"][1], ratings["label2"][1]))
            elif "pending" in states:
                left["pending"] += 1
            elif "inferred" in states:
                left["inferred"] += 1
            elif None in states:
                left["unlabelled"] += 1
            else:
                left["no_value"] += 1
        assert row.n == len(pairs), (row.round, row.dimension)
        assert {k: v for k, v in row.left_out.items() if v} == dict(left)
        first, second = zip(*pairs, strict=True)
        kappa = cohen_kappa_score(first, second) if len(set(first) | set(second)) > 1 else None
        assert row.kappa == pytest.approx(kappa), (row.round, row.dimension)
        assert row.kappa_ci[0] - 1e-9 <= row.kappa <= row.kappa_ci[1] + 1e-9
    by_key = {(r.round, r.dimension): r for r in rows}
    # round 4: the importer inferred four issue types per annotator; they are counted apart
    assert by_key[("round4", "issue_type")].left_out["inferred"] > 0
    assert by_key[("round1", "howto_topic")].left_out["pending"] > 0
    result = runner.invoke(app, ["agree", "--db", str(tosem_db), "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == json.loads(json.dumps([r.as_dict() for r in rows]))


def test_tosem_as_category_counts_every_item_one_annotator_gave_a_value(tosem_db):
    with Store(f"sqlite:///{tosem_db}").session() as session:
        rows = agreement_table(session, "round1", missing="as-category")
    expected = _sheet_values(tosem_db)
    for row in rows:
        first, second = [], []
        for ratings in expected[("round1", row.dimension)].values():
            states = [ratings.get(a, (None, None))[0] for a in ("label1", "label2")]
            if "value" not in states or not set(states) <= {"value", "none"}:
                continue
            values = [ratings[a][1] for a in ("label1", "label2")]
            first.append(str(values[0] if values[0] is not None else "(none)"))
            second.append(str(values[1] if values[1] is not None else "(none)"))
        assert row.n == len(first), row.dimension
        assert row.kappa == pytest.approx(cohen_kappa_score(first, second)), row.dimension


def test_agree_command_names_its_rule_and_prints_confusions(tosem_db, runner):
    db = str(tosem_db)
    md = runner.invoke(app, ["agree", "--db", db, "--round", "round1", "--confusions"])
    assert md.exit_code == 0, md.output
    assert "Missing-label rule 'skip'" in md.output
    assert "## Where annotators differ" in md.output and "## Specific agreement" in md.output
    assert "| round1 | issue_type |" in md.output
    other = runner.invoke(app, ["agree", "--db", db, "--round", "round1", "--missing",
                                "as-category", "--format", "csv"])  # fmt: skip
    assert other.exit_code == 0, other.output
    header, *lines = other.output.splitlines()
    assert "missing-label rule" in header and all(",as-category," in line for line in lines[:5])
    latex = runner.invoke(app, ["agree", "--db", db, "--format", "latex"])
    # the paper's form: each figure over its interval, in columns that fit a page
    assert "missing-label rule 'skip'" in latex.output and "95\\% CI" in latex.output
    assert "\\newline [" in latex.output and "p{1.8cm}" in latex.output
    wrong = runner.invoke(app, ["agree", "--db", db, "--missing", "ignore"])
    assert wrong.exit_code != 0 and "ignore" in wrong.output


def test_rounds_sort_by_each_number_in_their_names() -> None:
    from issueminer.label.agreement import round_order

    names = ["round10", "2024-round1", "pilot", "2023-round10", "round2", "2023-round2", None]
    assert sorted(names, key=round_order) == [
        "round2",
        "round10",
        "2023-round2",
        "2023-round10",
        "2024-round1",
        None,
        "pilot",
    ]
