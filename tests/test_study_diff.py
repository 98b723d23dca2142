"""`issueminer diff-study`: paired tests when two populations share issues, independent
ones when they do not (issue 22, item 5).

Expected statistics come from statsmodels and scipy called here on tables the tests build,
or from the closed forms of the tests (McNemar's (b - c)^2 / (b + c)).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binomtest, chi2, chi2_contingency
from statsmodels.stats.contingency_tables import SquareTable, mcnemar
from typer.testing import CliRunner

from issueminer.analyse.stats import compute_stats
from issueminer.analyse.study_diff import (
    BOWKER,
    MCNEMAR,
    MCNEMAR_EXACT,
    STUART_MAXWELL,
    chi_square,
    diff_studies,
    paired_tests,
    share_movers,
    transition_table,
)
from issueminer.cli.main import app
from issueminer.collect.ingest import import_replication
from issueminer.store import Store


def _pairs(table: list[list[int]], names: list[str]) -> list[tuple[str, str]]:
    return [
        (names[i], names[j])
        for i, row in enumerate(table)
        for j, count in enumerate(row)
        for _ in range(count)
    ]


def _by_test(tests, test: str, category: str | None = None):
    return next(t for t in tests if t.test == test and t.category == category)


# ---- constructed tables with known answers -------------------------------------------------
def test_paired_tests_match_statsmodels_on_a_three_by_three_table() -> None:
    table = [[30, 8, 2], [3, 25, 9], [1, 4, 18]]
    names = ["a", "b", "c"]
    transition = transition_table("stage", _pairs(table, names))
    assert transition.n == 100
    tests = paired_tests(transition)
    square = SquareTable(np.array(transition.counts, dtype=float), shift_zeros=False)
    expected = square.homogeneity(method="stuart_maxwell")
    stuart = _by_test(tests, STUART_MAXWELL)
    assert stuart.statistic == pytest.approx(expected.statistic)
    assert (stuart.dof, stuart.p_value) == (2, pytest.approx(expected.pvalue))
    bowker = _by_test(tests, BOWKER)
    assert bowker.statistic == pytest.approx(square.symmetry().statistic)
    assert bowker.dof == square.symmetry().df == 3  # every pair moved
    assert bowker.statistic == pytest.approx(
        (8 - 3) ** 2 / 11 + (2 - 1) ** 2 / 3 + (9 - 4) ** 2 / 13
    )
    # McNemar on "b or not": 25 stayed, 12 left b, 12 joined it
    b = _by_test(tests, MCNEMAR_EXACT, "b")
    assert b.moved == 24 and b.p_value == pytest.approx(1.0)
    a = _by_test(tests, MCNEMAR_EXACT, "a")
    left, joined = 10, 4
    assert a.p_value == pytest.approx(binomtest(min(left, joined), left + joined).pvalue)
    assert a.p_value == pytest.approx(mcnemar([[30, left], [joined, 56]], exact=True).pvalue)


def test_two_categories_reduce_to_mcnemar_and_large_moves_use_its_chi_square() -> None:
    names = ["x", "y"]
    table = [[50, 40], [10, 60]]
    tests = paired_tests(transition_table("stage", _pairs(table, names)))
    stuart = _by_test(tests, STUART_MAXWELL)
    assert stuart.statistic == pytest.approx((40 - 10) ** 2 / (40 + 10))  # 18
    assert stuart.p_value == pytest.approx(chi2.sf(18, 1))
    x = _by_test(tests, MCNEMAR, "x")  # 50 moved: the chi-square form, corrected
    expected = mcnemar(np.array(table), exact=False, correction=True)
    assert (x.statistic, x.p_value) == (
        pytest.approx(expected.statistic),
        pytest.approx(expected.pvalue),
    )
    assert x.statistic == pytest.approx((abs(40 - 10) - 1) ** 2 / 50)


def test_moves_in_separate_groups_add_up() -> None:
    """a -> b and c -> d only: statsmodels' covariance is singular; the generalized inverse
    gives the sum of the two groups' McNemar statistics (24 + 14) on 2 degrees of freedom."""
    names = ["a", "b", "c", "d", "e"]
    table = [
        [10, 24, 0, 0, 0],
        [0, 30, 0, 0, 0],
        [0, 0, 5, 14, 0],
        [0, 0, 0, 9, 0],
        [0, 0, 0, 0, 7],
    ]
    stuart = _by_test(paired_tests(transition_table("leaf", _pairs(table, names))), STUART_MAXWELL)
    assert stuart.statistic == pytest.approx(24 + 14)
    assert stuart.dof == 2 and stuart.p_value == pytest.approx(chi2.sf(38, 2))
    assert "4 categories that moved" in stuart.note  # e stayed put and is left out
    bowker = _by_test(paired_tests(transition_table("leaf", _pairs(table, names))), BOWKER)
    assert bowker.statistic == pytest.approx(24 + 14)
    assert bowker.dof == 2  # the two pairs that moved, not all six pairs of four categories


def test_nothing_moved_is_said_not_tested() -> None:
    tests = paired_tests(transition_table("stage", [("a", "a")] * 5 + [("b", "b")] * 3))
    assert {t.test for t in tests} == {STUART_MAXWELL, BOWKER}
    assert all(t.statistic is None and t.note == "no unit changed category" for t in tests)


def test_chi_square_matches_scipy_and_flags_an_expected_count_below_one() -> None:
    a = {"p": 100, "q": 100, "r": 100, "s": 100, "t": 1}
    b = {"p": 100, "q": 100, "r": 100, "s": 100, "t": 0}
    test = chi_square("stage", "all faults", a, b)
    expected = chi2_contingency([list(a.values()), list(b.values())], correction=False)
    assert test.chi2 == pytest.approx(expected.statistic)
    assert test.p_value == pytest.approx(expected.pvalue)
    # only 2 of 10 expected counts are below 5 (not more than a fifth), but they are 0.5
    low = expected.expected_freq < 5
    assert low.sum() / low.size <= 0.2 and expected.expected_freq.min() < 1
    assert test.low_expected and test.min_expected == pytest.approx(0.5, abs=0.01)
    fine = chi_square("stage", "all faults", {"p": 50, "q": 50}, {"p": 40, "q": 60})
    assert not fine.low_expected


def test_movers_leave_out_categories_whose_share_did_not_move() -> None:
    movers = share_movers(
        "stage", {"a": 10, "b": 10, "c": 20}, {"a": 5, "b": 15, "c": 20}, (40, 40)
    )
    assert [m.category for m in movers] == ["a", "b"]
    assert [m.delta for m in movers] == [-12.5, 12.5]


# ---- snapshots of the TOSEM study ------------------------------------------------------------
@pytest.fixture(scope="module")
def tosem(tosem_dir, taxonomy, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("diff") / "study.db"
    store = Store(f"sqlite:///{path}")
    import_replication(store, tosem_dir, taxonomy)
    store.close()
    return path


def _snapshot(source: Path, target: Path, *statements: str) -> str:
    # SQLite's backup, not a file copy: the store runs in WAL mode
    with sqlite3.connect(source) as a, sqlite3.connect(target) as b:
        a.backup(b)
        for statement in statements:
            b.execute(statement)
    return f"sqlite:///{target}"


MOVED = 40
# the issue's example: 40 faults from training & evaluation to communication setup (a
# stage without inner categories)
MOVE_FAULTS = (
    "UPDATE final_label SET stage = 'communication setup', inner_category = NULL "
    "WHERE id IN (SELECT id FROM final_label WHERE stage = 'training & evaluation' "
    f"ORDER BY id LIMIT {MOVED})"
)


def test_moving_faults_between_snapshots_is_found_by_the_paired_test(
    tosem, taxonomy, tmp_path
) -> None:
    """Issue 22: 40 faults moved from one stage to another. The independent-samples test on
    the same counts misses it; Stuart-Maxwell on the shared issues does not."""
    moved = _snapshot(tosem, tmp_path / "moved.db", MOVE_FAULTS)
    result = CliRunner().invoke(
        app, ["diff-study", str(tosem), moved, "--format", "json", "--top", "4"]
    )
    assert result.exit_code == 0, result.output
    diff = json.loads(result.output)
    design = diff["design"]
    assert design["paired"] and design["shared_issues"] == 1070
    assert "share 1070 issues" in design["why"] and "several labels" in design["units"]
    assert diff["tests"] == []  # no issue is only on one side: nothing independent to test
    stage = next(
        t for t in diff["paired"] if t["dimension"] == "stage" and t["test"] == STUART_MAXWELL
    )
    assert stage["moved"] == MOVED and stage["statistic"] == pytest.approx(MOVED**2 / MOVED)
    assert stage["dof"] == 1 and stage["p_value"] == pytest.approx(chi2.sf(40, 1))
    assert stage["p_holm"] < 1e-8
    transition = next(t for t in diff["transitions"] if t["dimension"] == "stage")
    names = transition["categories"]
    cells = transition["counts"]
    assert cells[names.index("training & evaluation")][names.index("communication setup")] == 40
    # the same counts as independent samples: chi-square (scipy) finds nothing significant
    with Store(f"sqlite:///{tosem}").session() as a, Store(moved).session() as b:
        before = compute_stats(a, taxonomy).summary["stages"]
        after = compute_stats(b, taxonomy).summary["stages"]
    table = [[before[n] for n in before], [after.get(n, 0) for n in before]]
    independent = chi2_contingency(table, correction=False)
    assert independent.pvalue > 0.05  # chi-square 7.55, p 0.056 in the issue
    issue_type = [t for t in diff["paired"] if t["dimension"] == "issue type"]
    assert all(t["statistic"] is None for t in issue_type)  # no issue changed type
    assert [m["category"] for m in diff["movers"][:2]] == [
        "communication setup",
        "training & evaluation",
    ]
    assert len(diff["movers"]) == 4


def test_a_study_against_itself_moves_nothing(tosem, taxonomy) -> None:
    with Store(f"sqlite:///{tosem}").session() as session:
        stats = compute_stats(session, taxonomy)
    diff = diff_studies(stats, stats)
    assert diff.design.paired and diff.movers == []
    assert diff.paired and all(t.statistic is None for t in diff.paired)


def test_disjoint_populations_get_the_independent_test_and_say_why(
    tosem, taxonomy, tmp_path
) -> None:
    # the issues split in two by their uid: no issue is on both sides
    evens = _snapshot(
        tosem, tmp_path / "a.db", "DELETE FROM final_label WHERE substr(issue_uid, 1, 1) < '8'"
    )
    odds = _snapshot(
        tosem, tmp_path / "b.db", "DELETE FROM final_label WHERE substr(issue_uid, 1, 1) >= '8'"
    )
    with Store(evens).session() as a, Store(odds).session() as b:
        first, second = compute_stats(a, taxonomy), compute_stats(b, taxonomy)
    diff = diff_studies(first, second)
    assert not diff.design.paired and diff.paired == [] and diff.transitions == []
    assert "share no issue" in diff.design.why and "independent samples" in diff.design.why
    stage = next(t for t in diff.tests if t.dimension == "stage")
    before, after = first.summary["stages"], second.summary["stages"]
    names = list(dict.fromkeys([*before, *after]))
    expected = chi2_contingency(
        [[before.get(n, 0) for n in names], [after.get(n, 0) for n in names]], correction=False
    )
    assert stage.chi2 == pytest.approx(expected.statistic)
    assert stage.p_value == pytest.approx(expected.pvalue)
    assert stage.test.startswith("chi-square (independent")


def test_partly_shared_populations_pair_the_shared_and_test_the_rest_apart(
    tosem, taxonomy, tmp_path
) -> None:
    a = _snapshot(
        tosem, tmp_path / "a.db", "DELETE FROM final_label WHERE substr(issue_uid, 1, 1) < '4'"
    )
    b = _snapshot(
        tosem, tmp_path / "b.db", "DELETE FROM final_label WHERE substr(issue_uid, 1, 1) >= 'c'"
    )
    with Store(a).session() as first, Store(b).session() as second:
        diff = diff_studies(compute_stats(first, taxonomy), compute_stats(second, taxonomy))
    design = diff.design
    assert design.paired and design.shared_issues and design.only_a and design.only_b
    assert "compared with the chi-square test of independent samples" in design.why
    assert diff.tests and all(
        t.population == "issues only A holds vs issues only B holds" for t in diff.tests
    )
    types = next(t for t in diff.tests if t.dimension == "issue type")
    assert types.n_a + types.n_b < 1131  # the shared issues are not in it


def test_markdown_names_the_design_and_shows_the_moved_table(tosem, tmp_path) -> None:
    moved = _snapshot(tosem, tmp_path / "moved.db", MOVE_FAULTS)
    result = CliRunner().invoke(app, ["diff-study", str(tosem), moved])
    assert result.exit_code == 0, result.output
    text = result.output
    assert "Design: A and B share 1070 issues" in text
    assert "## Paired tests on the shared issues" in text
    assert "## Transitions: stage" in text
    assert "## Transitions: how-to topic" not in text  # nothing moved there
    assert (
        "| stage | Stuart-Maxwell (paired: marginal homogeneity) |  | 637 | 40 | 40.00 | 1 |"
        in text
    )
