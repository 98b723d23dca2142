"""The study's relevance filter, shared by every source."""

from __future__ import annotations

import pytest

from issueminer.collect.selection import Reason, Selection, label_name, tokens
from issueminer.collect.sources.github import issue_envelope


@pytest.fixture(scope="module")
def selection(taxonomy) -> Selection:
    return Selection.from_taxonomy(taxonomy)


def question(
    title="Training question", body="<p>It fails.</p>", tags=("tensorflow",), accepted=True
) -> dict:
    q = {"title": title, "body": body, "tags": list(tags)}
    if accepted:
        q["accepted_answer_id"] = 1
    return q


def test_criteria_come_from_the_study_file(selection, taxonomy) -> None:
    raw = taxonomy.selection
    assert selection.keywords == raw["keywords"]
    assert selection.tags_alone == ["horovod"]
    assert selection.tags_with_keyword == ["tensorflow", "pytorch", "keras"]
    assert [r.repo for r in selection.repositories_in(["study"])] == [
        "horovod/horovod",
        "tensorflow/tensorflow",
        "pytorch/pytorch",
        "keras-team/keras",
    ]
    assert "microsoft/DeepSpeed" in [r.repo for r in selection.repositories_in(["current"])]


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("Distributed training hangs", ["distributed"]),
        ("MULTI-GPU run", ["multi-gpu"]),
        ("using multiple GPUs", ["multiple gpus"]),
        ("on multiple GPU", ["multiple gpu"]),  # a phrase matches in the singular too
        ("DataParallel wraps the model", ["dataparallel"]),
        ("I have four workers", ["workers"]),
        ("undistributed thoughts", []),  # whole tokens only, not substrings
        ("parallelization of the loop", []),
    ],
)
def test_keywords_and_phrases_match_tokens(selection, text, found) -> None:
    assert selection.matched_terms(text) == found


def test_tokeniser_is_spacy(selection) -> None:
    assert tokens("multi-gpu, multi_gpu") == ["multi", "-", "gpu", ",", "multi_gpu"]


def test_stack_overflow_rules(selection) -> None:
    alone = selection.stackoverflow(question(tags=["horovod"]))
    assert alone.kept and alone.code == Reason.TAG_ALONE  # the tag alone selects
    assert alone.counted_as == alone.reason == "tag horovod"
    no_keyword = selection.stackoverflow(question())
    assert not no_keyword.kept  # tensorflow needs a keyword
    assert no_keyword.code == Reason.TAG_WITHOUT_KEYWORD == "tag-without-keyword"
    assert no_keyword.reason == "tag tensorflow without a keyword"
    assert no_keyword.counted_as == "tag without a keyword"  # one count whatever the tag
    titled = selection.stackoverflow(question(title="Distributed strategy error"))
    assert titled.kept and titled.code == Reason.TAG_AND_KEYWORD
    assert selection.stackoverflow(question(body="<p>with several workers</p>")).kept
    no_answer = selection.stackoverflow(question(title="Distributed strategy", accepted=False))
    assert no_answer.code == Reason.NO_ACCEPTED_ANSWER
    assert no_answer.counted_as == "no accepted answer"
    no_tag = selection.stackoverflow(question(title="Distributed", tags=["numpy"]))
    assert not no_tag.kept and no_tag.code == Reason.NO_STUDY_TAG
    assert no_tag.counted_as == "no study tag"


def test_a_keyword_pretest_is_asked_only_where_the_keyword_match_would_run(selection) -> None:
    asked = []

    def nothing_can_match(title: str, body: str) -> bool:
        asked.append(title)
        return False

    spared = selection.stackoverflow(question(title="Distributed &amp; slow"), nothing_can_match)
    assert not spared.kept and spared.code == Reason.TAG_WITHOUT_KEYWORD
    assert asked == ["Distributed & slow"]  # the title as the keyword match reads it
    for case in (question(tags=["horovod"]), question(accepted=False), question(tags=["r"])):
        assert selection.stackoverflow(case, nothing_can_match).code != Reason.TAG_AND_KEYWORD
    assert len(asked) == 1  # decided before the keywords: not asked
    assert selection.stackoverflow(question(title="Distributed"), lambda *_: True).kept


def test_code_and_urls_do_not_count(selection) -> None:
    in_code = question(
        body="<p>see</p><pre><code>tf.distribute.MirroredStrategy()\n# distributed</code></pre>"
    )
    assert not selection.stackoverflow(in_code).kept
    in_url = question(body="<p>read https://example.org/distributed/guide</p>")
    assert not selection.stackoverflow(in_url).kept
    escaped = question(title="Distributed &amp; slow")
    assert selection.stackoverflow(escaped).matched == ("distributed",)


def test_github_rules(selection) -> None:
    issue = {
        "title": "Hang with multiple machines",
        "body": "details",
        "state": "closed",
        "labels": [{"name": "bug"}],
    }

    def code(repo: str, **changed: object) -> Reason:
        return selection.github(repo, {**issue, **changed}).code

    assert selection.github("pytorch/pytorch", issue).kept
    assert code("pytorch/pytorch") == Reason.KEYWORD
    assert not selection.github("pytorch/pytorch", {**issue, "state": "open"}).kept
    assert code("pytorch/pytorch", state="open") == Reason.WRONG_STATE
    assert not selection.github("pytorch/pytorch", {**issue, "pull_request": {"url": "x"}}).kept
    assert code("pytorch/pytorch", pull_request={"url": "x"}) == Reason.PULL_REQUEST
    excluded = {**issue, "labels": [{"name": "module: docs"}]}
    assert selection.github("pytorch/pytorch", excluded).reason == "label module: docs"
    assert selection.github("pytorch/pytorch", excluded).code == Reason.EXCLUDED_LABEL
    plain = {**issue, "title": "Crash", "body": "```\nimport torch.distributed\n```"}
    assert not selection.github("pytorch/pytorch", plain).kept  # keyword only in code
    assert selection.github("pytorch/pytorch", plain).code == Reason.NO_KEYWORD
    assert selection.github("horovod/horovod", plain).kept  # every horovod issue counts
    assert selection.github("horovod/horovod", plain).code == Reason.NO_KEYWORD_NEEDED
    assert not selection.github("someone/else", issue).kept
    assert code("someone/else") == Reason.REPOSITORY_NOT_IN_STUDY


def test_github_items_in_older_shapes(selection) -> None:
    """Old search items: a `pull_request` object whose fields are all null is an issue, and
    labels may be plain strings (older payloads, files) rather than objects."""
    issue = {"title": "Hang with multiple machines", "body": "details", "state": "closed"}
    nulls = {"url": None, "html_url": None, "diff_url": None, "patch_url": None}
    assert selection.github("pytorch/pytorch", {**issue, "pull_request": nulls}).kept
    linked = {**nulls, "html_url": "https://github.com/pytorch/pytorch/pull/1"}
    assert selection.github("pytorch/pytorch", {**issue, "pull_request": linked}).code == (
        Reason.PULL_REQUEST
    )
    as_strings = {**issue, "labels": ["module: docs", "bug"]}
    assert selection.github("pytorch/pytorch", as_strings).code == Reason.EXCLUDED_LABEL
    assert [label_name(x) for x in ["bug", {"name": "bug"}, {"name": None}]] == ["bug", "bug", ""]
    envelope = issue_envelope(
        "pytorch/pytorch", {**as_strings, "number": 7, "html_url": "https://github.com/x/y/1"}, []
    )
    assert envelope.issue["tags"] == ["module: docs", "bug"]  # stored, not a crash


def test_github_search_queries_respect_the_operator_limit(selection) -> None:
    groups = selection.github_search_terms()
    assert all(len(group) <= 6 for group in groups)  # at most five OR operators
    assert sum(len(g) for g in groups) == len(selection.keywords) + len(selection.phrases)
