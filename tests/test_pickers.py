"""What the label pickers get besides the study file: codebook entries and fix-pattern order."""

from __future__ import annotations

from collections import Counter

from issueminer.label import rounds
from issueminer.label.webapp.app import Settings, _picker_data
from issueminer.label.webapp.pickers import (
    codebook_entries,
    fix_pattern_counts,
    load_codebook,
)
from issueminer.store import FinalLabel
from issueminer.study import codebook_skeleton
from tests.labeling_fixtures import add_issues, app_client

TABLES = """\
# Codebook

## How to label an issue

1. **Relevant?** Not a rule: `out of memory` is named outside the rules.

## Dimension: leaf symptom

| Name | Definition | Allowed in | Typical example |
|---|---|---|---|
| `out of memory` | Allocation fails. | training | GPU 0 runs out of memory. |
| `memory issue` | Memory grows. | training | TODO |

## Dimension: how-to topic and sub-topic

### Sub-topics of `communication`

| Sub-topic | Definition | Typical example |
|---|---|---|
| `configuration` | Settings. | Which interface does the backend use? |

### Sub-topics of `device usage`

| Sub-topic | Definition | Typical example |
|---|---|---|
| `configuration` | Devices. | How do I pick GPUs per rank? |

## Decision rules for confusable pairs

Each rule names the pair.

1. **`out of memory` vs `memory issue`.** A hard allocation failure is
   `out of memory`; growth without one is `memory issue`.
2. **`communication` / `configuration` vs `environment configuration`.** Settings only
   the communication layer reads.
3. A rule with no title about `hang`.
"""


def test_codebook_tables_give_examples_and_the_rules_that_name_a_category(taxonomy) -> None:
    book = codebook_entries(TABLES, taxonomy)
    assert [r["title"] for r in book["rules"]] == [
        "`out of memory` vs `memory issue`.",
        "`communication` / `configuration` vs `environment configuration`.",
        "",
    ]
    assert book["rules"][0]["text"] == (
        "A hard allocation failure is `out of memory`; growth without one is `memory issue`."
    )
    assert book["rules"][2]["text"] == "A rule with no title about `hang`."
    entries = book["entries"]
    assert entries["symptom:out of memory"] == {
        "examples": ["GPU 0 runs out of memory."],
        "rules": [0],
    }
    # a TODO is no example; the rule still reaches the category
    assert entries["symptom:memory issue"] == {"examples": [], "rules": [0]}
    assert entries["symptom:hang"] == {"examples": [], "rules": [2]}
    # the same sub-topic name under two topics: each keeps its own example, and a rule
    # reaches a sub-topic only together with its topic
    assert entries["howto_subtopic:communication/configuration"] == {
        "examples": ["Which interface does the backend use?"],
        "rules": [1],
    }
    assert entries["howto_subtopic:device usage/configuration"] == {
        "examples": ["How do I pick GPUs per rank?"],
        "rules": [],
    }
    assert "fix_pattern:fix learning rate" not in entries  # not in this codebook


def test_the_skeleton_layout_gives_examples_once_filled_in(taxonomy) -> None:
    text = codebook_skeleton(taxonomy)
    text = text.replace("Example: TODO.", "Example: an invented case.")
    text += "\n1. **`hang` vs `hang and timeout`.** Decided by stage.\n"
    entries = codebook_entries(text, taxonomy)["entries"]
    assert entries["issue_type:fault"]["examples"] == ["an invented case."]  # ### heading
    assert entries["fix_pattern:fix learning rate"]["examples"] == ["an invented case."]
    assert entries["howto_subtopic:communication/backend"]["examples"] == ["an invented case."]
    assert entries["symptom:hang"]["rules"] == [0]
    # an unfilled skeleton has no examples at all
    assert not any(
        e["examples"]
        for e in codebook_entries(codebook_skeleton(taxonomy), taxonomy)["entries"].values()
    )


def test_the_bundled_codebook_has_an_example_for_every_symptom_and_fix(taxonomy) -> None:
    book = load_codebook(taxonomy)
    entries = book["entries"]
    for dimension in ("symptom", "fix_pattern", "issue_type"):
        for name in taxonomy.names(dimension):
            assert entries[f"{dimension}:{name}"]["examples"], (dimension, name)
    rules = [book["rules"][i]["title"] for i in entries["symptom:out of memory"]["rules"]]
    assert rules == ["`out of memory` vs `memory issue`."]


def test_fix_pattern_counts_per_symptom_and_overall(store) -> None:
    uids = add_issues(store, 5, hostile=False)
    with store.session() as session:  # a round drawn before any final label existed
        rounds.create_round(session, "r1", 2, ["alice", "bob"], seed=0)
    labels = [
        ("out of memory", ["fix memory/core setting", "fix batch size"]),
        ("out of memory", ["fix memory/core setting", "fix memory/core setting"]),
        ("hang", ["fix dependency version"]),
        ("hang", ["fix dependency version", "fix batch size"]),
        (None, []),
    ]
    with store.session() as session:
        assert fix_pattern_counts(session) == {"overall": {}, "by_symptom": {}}
        for uid, (leaf, fixes) in zip(uids, labels, strict=True):
            session.add(
                FinalLabel(
                    issue_uid=uid,
                    issue_type="fault" if leaf else "not relevant",
                    leaf_symptom=leaf,
                    fix_patterns=fixes,
                )
            )
    with store.session() as session:
        counts = fix_pattern_counts(session)
    assert list(counts["overall"]) == [  # ties by name
        "fix batch size",
        "fix dependency version",
        "fix memory/core setting",
    ]
    assert counts == {
        "overall": {"fix memory/core setting": 2, "fix batch size": 2, "fix dependency version": 2},
        "by_symptom": {
            "hang": {"fix dependency version": 2, "fix batch size": 1},
            "out of memory": {"fix memory/core setting": 2, "fix batch size": 1},
        },
    }
    # a round's own issues do not count for its members: their finals came from its labels
    with store.session() as session:
        drawn = set(rounds.round_issue_uids(session, "r1"))
        within = fix_pattern_counts(session, "r1")
    kept = [labels[i] for i, uid in enumerate(uids) if uid not in drawn]
    assert within["overall"] != counts["overall"]  # the round's finals did count before
    expected_overall = Counter(f for _, fixes in kept for f in dict.fromkeys(fixes))
    assert within["overall"] == dict(
        sorted(expected_overall.items(), key=lambda item: (-item[1], item[0]))
    )


def test_picker_data_carries_aliases_and_only_the_order_of_fix_patterns(taxonomy) -> None:
    counts = {"overall": {"a": 5, "b": 2}, "by_symptom": {"hang": {"b": 2}}}
    data = _picker_data(taxonomy, counts)
    assert data["fix_order"] == {"overall": ["a", "b"], "by_symptom": {"hang": ["b"]}}
    oom = next(s for s in data["symptoms"] if s["leaf"] == "out of memory")
    assert oom["aliases"] == ["oom"]
    assert "aliases" not in next(
        f for f in data["fix_patterns"] if f["name"] == "fix learning rate"
    )
    assert _picker_data(taxonomy)["fix_order"] == {"overall": [], "by_symptom": {}}


def test_the_codebook_route_needs_the_secret(store, taxonomy) -> None:
    settings = Settings(store, taxonomy, annotator="alice")
    with app_client(settings) as client:
        answer = client.get("/api/codebook")
        assert answer.status_code == 200
        assert answer.headers["content-security-policy"]
        book = answer.json()
        assert book["entries"]["symptom:out of memory"]["rules"]
    with app_client(settings, sign_in=False) as stranger:
        assert stranger.get("/api/codebook").status_code == 403
