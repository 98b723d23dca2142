"""Labelling sessions as library functions, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from issueminer.analyse.report import collect
from issueminer.label import adjudication, rounds
from issueminer.label.agreement import agreement_table
from issueminer.label.rounds import LabelingError
from issueminer.store import Annotation, FinalLabel, Issue, Prediction
from tests.labeling_fixtures import FAULT, HOWTO, add_issues


@pytest.fixture
def world(store):
    uids = add_issues(store, 12)
    with store.session() as session:
        chosen = rounds.create_round(session, "r1", 6, ["alice", "bob"], stratify="source", seed=3)
    return store, uids, chosen


def test_round_draw_is_stratified_reproducible_and_disjoint(store) -> None:
    add_issues(store, 12)
    with store.session() as session:
        first = rounds.create_round(session, "r1", 6, ["a", "b"], stratify="source", seed=5)
        sources = Counter(session.get(Issue, uid).source for uid in first)
        assert sources == {"stackoverflow": 3, "github": 3}
        second = rounds.create_round(session, "r2", 6, ["a", "b"], seed=5)
        assert not set(first) & set(second)  # a later round draws other issues
        with pytest.raises(LabelingError, match="only 0 unlabelled issues"):
            rounds.create_round(session, "r3", 1, ["a"])
        with pytest.raises(LabelingError, match="already exists"):
            rounds.create_round(session, "r1", 1, ["a"])


def test_same_seed_same_draw(tmp_path) -> None:
    from issueminer.store import Store

    draws = []
    for name in ("x", "y"):
        store = Store(f"sqlite:///{tmp_path / name}.db")
        add_issues(store, 12)
        with store.session() as session:
            draws.append(rounds.create_round(session, "r", 5, ["a"], seed=42))
    assert draws[0] == draws[1]


def test_queue_order_pending_last_and_progress(world) -> None:
    store, _, chosen = world
    taxonomy = _taxonomy()
    with store.session() as session:
        assert rounds.next_issue(session, "alice", "r1") == chosen[0]
        rounds.save_label(session, taxonomy, chosen[0], "alice", "r1", FAULT)
        rounds.save_label(session, taxonomy, chosen[1], "alice", "r1", {}, "pending")
        assert rounds.next_issue(session, "alice", "r1") == chosen[2]
        assert rounds.next_issue(session, "bob", "r1") == chosen[0]  # bob's queue is his own
        for uid in chosen[2:]:
            rounds.save_label(session, taxonomy, uid, "alice", "r1", HOWTO)
        # only the pending issue is left, and it comes back
        assert rounds.next_issue(session, "alice", "r1") == chosen[1]
        assert rounds.progress(session, "alice", "r1") == {
            "done": 5,
            "pending": 1,
            "skipped": 0,
            "left": 0,
            "total": 6,
        }


def test_saves_are_appended_and_undo_restores(world) -> None:
    store, _, chosen = world
    taxonomy = _taxonomy()
    with store.session() as session:
        rounds.save_label(session, taxonomy, chosen[0], "alice", "r1", FAULT)
        rounds.save_label(session, taxonomy, chosen[0], "alice", "r1", HOWTO)
        assert rounds.undo_last(session, "alice", "r1") == chosen[0]
        assert rounds.current_label(session, chosen[0], "alice", "r1").issue_type == "fault"
        assert rounds.undo_last(session, "alice", "r1") == chosen[0]
        assert rounds.current_label(session, chosen[0], "alice", "r1") is None
        assert rounds.next_issue(session, "alice", "r1") == chosen[0]
        # four rows: two saves and two undos; nothing was deleted or rewritten
        assert session.scalar(select(func.count()).select_from(Annotation)) == 4
        assert rounds.progress(session, "alice", "r1")["done"] == 0
        # the report's rounds table counts no undone save as labelled
        assert collect(session, taxonomy).rounds == []


def test_invalid_labels_are_refused_with_a_reason(world) -> None:
    store, uids, chosen = world
    taxonomy = _taxonomy()
    with store.session() as session:
        with pytest.raises(LabelingError, match="leaf_symptom: 'banana' is not in the taxonomy"):
            rounds.save_label(
                session, taxonomy, chosen[0], "alice", "r1", {**FAULT, "leaf_symptom": "banana"}
            )
        with pytest.raises(LabelingError, match="choose an issue type"):
            rounds.save_label(session, taxonomy, chosen[0], "alice", "r1", {})
        outside = next(u for u in uids if u not in chosen)
        with pytest.raises(LabelingError, match="not in round"):
            rounds.save_label(session, taxonomy, outside, "alice", "r1", FAULT)
        # pending keeps whatever was typed, even if incomplete
        rounds.save_label(
            session, taxonomy, chosen[0], "alice", "r1", {"issue_type": "fault"}, "pending"
        )
        pending = rounds.current_label(session, chosen[0], "alice", "r1")
        assert (pending.status, pending.issue_type, pending.leaf_symptom) == (
            "pending",
            "fault",
            None,
        )


def test_disagreements_resolution_and_agreement(world) -> None:
    store, _, chosen = world
    taxonomy = _taxonomy()
    with store.session() as session:
        for uid in chosen:
            rounds.save_label(session, taxonomy, uid, "alice", "r1", FAULT)
        bob = {chosen[0]: HOWTO, chosen[1]: {**FAULT, "leaf_symptom": "memory issue"}}
        for uid in chosen:
            rounds.save_label(session, taxonomy, uid, "bob", "r1", bob.get(uid, FAULT))
        found = adjudication.disagreements(session, "r1")
        assert [d.issue_uid for d in found] == chosen[:2]
        assert "issue_type" in found[0].dimensions and found[1].dimensions == ["leaf_symptom"]
        before = [r.as_dict() for r in agreement_table(session, "r1")]
        adjudication.resolve(session, taxonomy, "r1", chosen[0], "carol", HOWTO)
        assert [d.issue_uid for d in adjudication.disagreements(session, "r1")] == [chosen[1]]
        final = session.scalars(select(FinalLabel)).one()
        assert (final.issue_type, final.resolved_by) == ("how-to question", "carol")
        # agreement keeps using the independent labels
        assert [r.as_dict() for r in agreement_table(session, "r1")] == before
        issue_type = next(r for r in before if r["dimension"] == "issue_type")
        assert issue_type["n"] == 6 and issue_type["agreement"] == pytest.approx(5 / 6)


def test_adjudication_and_finalize_share_one_rule_for_agreement(world) -> None:
    """Labels differing only in a field agreement tables ignore still need adjudication."""
    store, _, chosen = world
    taxonomy = _taxonomy()
    with store.session() as session:
        for uid in chosen:
            rounds.save_label(session, taxonomy, uid, "alice", "r1", FAULT)
        flipped = {**FAULT, "specific": not FAULT["specific"]}
        rounds.save_label(session, taxonomy, chosen[0], "bob", "r1", flipped)
        for uid in chosen[1:]:
            rounds.save_label(session, taxonomy, uid, "bob", "r1", FAULT)
        found = adjudication.disagreements(session, "r1")
        assert [(d.issue_uid, d.dimensions) for d in found] == [(chosen[0], ["specific"])]
        counts = adjudication.finalize_agreed(session, "r1")
        assert counts == {"disagreeing (adjudicate)": 1, "finalized": len(chosen) - 1}
        finals = session.scalars(select(FinalLabel.issue_uid)).all()
        assert sorted(finals) == sorted(chosen[1:])


def test_suggestions_come_from_predictions_only_when_present(world) -> None:
    store, _, chosen = world
    with store.session() as session:
        assert rounds.suggestions(session, chosen[0]) == []
        session.add(
            Prediction(
                issue_uid=chosen[0],
                model_id="m1",
                target="leaf_symptom",
                label="hang",
                probability=0.6,
                probabilities={"hang": 0.6, "out of memory": 0.3, "others": 0.1, "path error": 0.0},
            )
        )
        session.flush()
        top = rounds.suggestions(session, chosen[0])
        assert [s["label"] for s in top] == ["hang", "out of memory", "others"]


def _taxonomy():
    from issueminer.taxonomy import load_taxonomy

    return load_taxonomy()


# ---- complete labels: the study file's `required:` ---------------------------------------
INCOMPLETE_FAULT = {"issue_type": "fault", "stage": "training & evaluation"}


def test_done_is_refused_until_the_required_fields_are_filled(world) -> None:
    store, _, chosen = world
    taxonomy = _taxonomy()
    with store.session() as session:
        with pytest.raises(LabelingError) as refused:
            rounds.save_label(session, taxonomy, chosen[0], "alice", "r1", INCOMPLETE_FAULT)
        assert str(refused.value) == (
            "a fault needs its inner category, symptom and fix pattern before it can be done "
            "(or mark the issue pending)"
        )
        no_fix = {**FAULT, "fix_patterns": []}
        with pytest.raises(LabelingError, match="a fault needs its fix pattern before"):
            rounds.save_label(session, taxonomy, chosen[0], "alice", "r1", no_fix)
        with pytest.raises(LabelingError, match="a how-to question needs its how-to topic"):
            rounds.save_label(
                session, taxonomy, chosen[0], "alice", "r1", {"issue_type": "how-to question"}
            )
        assert session.scalar(select(func.count()).select_from(Annotation)) == 0
        # pending and skipped always save, however little they hold
        for status in ("pending", "skipped"):
            kept = rounds.save_label(
                session, taxonomy, chosen[0], "alice", "r1", INCOMPLETE_FAULT, status
            )
            assert kept.status == status and kept.leaf_symptom is None
        # a stage without inner categories asks for none; a complete label saves as done
        build = {
            "issue_type": "fault",
            "stage": "package build & import",
            "leaf_symptom": "import error",
            "fix_patterns": ["fix batch size"],
        }
        assert rounds.save_label(session, taxonomy, chosen[1], "alice", "r1", build).status == (
            "done"
        )
        assert rounds.save_label(session, taxonomy, chosen[2], "alice", "r1", HOWTO).status == (
            "done"
        )
        assert rounds.save_label(session, taxonomy, chosen[3], "alice", "r1", {**FAULT}).status == (
            "done"
        )


def test_an_adjudicated_label_must_be_complete_too(world) -> None:
    store, _, chosen = world
    taxonomy = _taxonomy()
    with store.session() as session:
        rounds.save_label(session, taxonomy, chosen[0], "alice", "r1", FAULT)
        rounds.save_label(session, taxonomy, chosen[0], "bob", "r1", HOWTO)
        with pytest.raises(LabelingError, match="a fault needs its inner category, symptom"):
            adjudication.resolve(session, taxonomy, "r1", chosen[0], "carol", INCOMPLETE_FAULT)
        assert session.scalars(select(FinalLabel)).all() == []
        assert adjudication.resolve(session, taxonomy, "r1", chosen[0], "carol", FAULT).leaf_symptom


def test_the_study_files_words_name_the_missing_fields(world) -> None:
    """Serverless calls a stage 'dimension' and a leaf 'category'; an aspect (inner
    category) is needed only under a dimension that has aspects, a sub-topic likewise."""
    from issueminer.taxonomy import load_taxonomy

    store, _, chosen = world
    serverless = load_taxonomy("serverless")
    with store.session() as session:
        with pytest.raises(LabelingError) as refused:
            rounds.save_label(session, serverless, chosen[0], "alice", "r1", {"issue_type": "bug"})
        assert str(refused.value).startswith("a fault needs its dimension and category before")
        with pytest.raises(LabelingError, match="a fault needs its aspect before"):
            rounds.save_label(
                session,
                serverless,
                chosen[0],
                "alice",
                "r1",
                {"issue_type": "fault", "stage": "runtime", "leaf_symptom": "cold start"},
            )
        deployed = {
            "issue_type": "fault",
            "stage": "deployment",
            "leaf_symptom": "permission denied",
        }  # no fix pattern: this study does not require one
        rounds.save_label(session, serverless, chosen[0], "alice", "r1", deployed)
        topic = {"issue_type": "how-to question", "howto_topic": "function development"}
        with pytest.raises(LabelingError, match="a how-to question needs its sub-topic"):
            rounds.save_label(session, serverless, chosen[1], "alice", "r1", topic)
        with_sub = {**topic, "howto_subtopic": "dependencies & packaging"}
        rounds.save_label(session, serverless, chosen[1], "alice", "r1", with_sub)


def test_the_api_refuses_an_incomplete_done_label_and_saves_it_pending(world) -> None:
    from issueminer.label.webapp.app import Settings
    from tests.labeling_fixtures import app_client

    store, _, chosen = world
    app = app_client(Settings(store, _taxonomy(), round="r1", annotator="alice"))
    refused = app.post("/api/save", json={"issue": chosen[0], "fields": INCOMPLETE_FAULT})
    assert refused.status_code == 422
    assert refused.json() == {
        "ok": False,
        "error": "a fault needs its inner category, symptom and fix pattern before it can be "
        "done (or mark the issue pending)",
    }
    pending = app.post(
        "/api/save",
        json={"issue": chosen[0], "fields": INCOMPLETE_FAULT, "status": "pending"},
    )
    assert pending.status_code == 200 and pending.json()["ok"], pending.text
    with store.session() as session:
        assert [a.status for a in session.scalars(select(Annotation))] == ["pending"]
    done = app.post("/api/save", json={"issue": chosen[1], "fields": FAULT})
    assert done.status_code == 200 and done.json()["ok"], done.text


# ---- rounds draw issues that have text ----------------------------------------------------
def _add_links_only(store, n: int) -> list[str]:
    """n issues known by their link alone, as a replication package lists them."""
    from issueminer.collect.ingest import upsert_issues
    from issueminer.ids import parse_issue_url

    records = []
    for i in range(n):
        ref = parse_issue_url(f"https://github.com/horovod/horovod/issues/{70_000 + i}")
        records.append({**ref.identity(), "source": "github", "title": None, "body": None})
    with store.session() as session:
        upsert_issues(session, records)
    return [r["uid"] for r in records]


def test_a_round_draws_only_issues_with_text_unless_allowed(store) -> None:
    from issueminer.label.draw import Candidates, round_candidates

    with_text = add_issues(store, 6)
    empty = _add_links_only(store, 9)
    with store.session() as session:
        assert round_candidates(session) == Candidates(total=15, without_text=9)
        drawn = rounds.create_round(session, "r1", 6, ["a", "b"], seed=7)
        assert sorted(drawn) == sorted(with_text)
        with pytest.raises(LabelingError) as refused:
            rounds.create_round(session, "r2", 3, ["a"], seed=7)
        assert str(refused.value) == (
            "only 0 unlabelled issues with text are not in a round yet (3 asked for); 9 more "
            "have no text yet: fill them with `issueminer crawl hydrate` (or draw them as they "
            "are with --allow-empty)"
        )
        allowed = rounds.create_round(session, "r2", 3, ["a"], seed=7, allow_empty=True)
        assert set(allowed) <= set(empty)
        assert round_candidates(session) == Candidates(total=6, without_text=6)


def test_leaving_out_empty_issues_does_not_change_a_seeds_draw(tmp_path) -> None:
    """Issues without text are out of the population: the draw among the others is the one
    a database without them gives."""
    from issueminer.store import Store

    draws = []
    for name, links in (("plain", 0), ("with-links", 20)):
        store = Store(f"sqlite:///{tmp_path / name}.db")
        add_issues(store, 12)
        _add_links_only(store, links)
        with store.session() as session:
            draws.append(rounds.create_round(session, "r", 5, ["a"], seed=42, stratify="source"))
    assert draws[0] == draws[1]
