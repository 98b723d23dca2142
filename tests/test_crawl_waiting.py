"""Questions refused only for want of an accepted answer wait, and are asked for again by
id at a bounded cadence (`collect.sources.unaccepted`), against the fake Stack Exchange API,
whose `accept_answer` does not move a question's last activity (as on the real sites)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from issueminer.collect.checkpoints import Checkpointer
from issueminer.collect.selection import Selection
from issueminer.collect.sources.stackexchange import StackExchangeClient, StackOverflowCrawler
from issueminer.collect.sources.unaccepted import RecheckPolicy, policy_from
from issueminer.store import Issue, Store
from tests.fakes.stackexchange import FakeStackExchange, make_answer, make_question
from tests.test_crawl_stackoverflow import START, corpus, stored_ids

DAY = 86400
FIRST = START + 10**6  # the first crawl's clock: the corpus was asked a few days before
EXTRA = 9_100_001  # tagged tensorflow, with a keyword, no accepted answer: it waits too
NO_KEYWORD = 9_100_002  # tagged tensorflow, no keyword, no accepted answer: never waits


def _extra_questions() -> list[dict]:
    return [
        make_question(
            EXTRA, "Distributed training hangs", "<p>x</p>", ["tensorflow"], START, False
        ),
        make_question(NO_KEYWORD, "Shapes do not match", "<p>y</p>", ["tensorflow"], START, False),
    ]


@pytest.fixture
def fake():
    questions, answers, comments, expected = corpus(n_per_tag=40)
    questions += _extra_questions()
    with FakeStackExchange(questions, answers, comments) as server:
        server.expected = expected
        # waits: no accepted answer, and nothing else missing (horovod is kept by its tag)
        server.waiting = {
            q["question_id"]
            for q in questions
            if "accepted_answer_id" not in q and "horovod" in q["tags"]
        } | {EXTRA}
        yield server


def crawl_at(
    store: Store, fake, taxonomy, when: int, policy: RecheckPolicy | None = None, on_page=None
):
    selection = Selection.from_taxonomy(taxonomy)
    checkpointer = Checkpointer(store, "stackoverflow", StackOverflowCrawler.query(selection))
    client = StackExchangeClient(fake.url, key="k3y", sleep=lambda _s: None)
    crawler = StackOverflowCrawler(
        client, selection, taxonomy, on_page, policy, lambda: datetime.fromtimestamp(when, UTC)
    )
    crawler.run(checkpointer)
    checkpointer.finish("done")
    return checkpointer


def _paths(requests: list[dict]) -> list[str]:
    return [r["path"].rstrip("/") for r in requests]


def _by_id(requests: list[dict]) -> list[dict]:
    """The /questions/{ids} calls (not their answers or comments)."""
    return [r for r in requests if r["path"].rstrip("/").count("/") == 3]


def test_questions_lacking_only_an_accepted_answer_wait(store, fake, taxonomy) -> None:
    checkpointer = crawl_at(store, fake, taxonomy, FIRST)
    assert stored_ids(store) == fake.expected
    waiting = checkpointer.checkpoint["waiting"]
    assert {int(q) for q in waiting} == fake.waiting and NO_KEYWORD not in fake.waiting
    created = {q["question_id"]: q["creation_date"] for q in fake._questions.values()}
    assert all(waiting[str(q)] == [created[q], FIRST] for q in fake.waiting)


def test_a_question_accepted_later_is_kept_when_its_recheck_is_due(store, fake, taxonomy) -> None:
    """Accepted after the first crawl, which moves nothing: the listing does not show it
    again; the recheck a week later does, and it is stored with its answers; a rerun with
    nothing new and nothing due costs one /questions call per tag."""
    crawl_at(store, fake, taxonomy, FIRST)
    accepted = min(q for q in fake.waiting if q != EXTRA)
    fake.add_answer(make_answer(accepted * 10 + 1, accepted, "<p>Try x</p>", created=START + 60))
    crawl_at(store, fake, taxonomy, FIRST + 1)  # the answer moved it: read, still waiting
    fake.accept_answer(accepted, accepted * 10 + 1, when=FIRST + DAY)
    tags = Selection.from_taxonomy(taxonomy).stackoverflow_tags

    before = len(fake.requests)
    checkpointer = crawl_at(store, fake, taxonomy, FIRST + 2 * DAY)  # read 2 days ago: not due
    assert _paths(fake.requests[before:]) == ["/2.3/sites"] + ["/2.3/questions"] * len(tags)
    assert accepted not in stored_ids(store)
    assert checkpointer.checkpoint["recheck"].get("rechecked", 0) == 0

    before = len(fake.requests)
    checkpointer = crawl_at(store, fake, taxonomy, FIRST + 8 * DAY)  # a week after: due
    again = fake.requests[before:]
    by_id = _by_id(again)
    asked = [int(i) for r in by_id for i in r["path"].split("/")[3].split(";")]
    assert sorted(asked) == sorted(fake.waiting) and len(by_id) == 1
    assert all(r["params"]["filter"] == "withbody" for r in by_id)  # the listing's filter
    assert stored_ids(store) == fake.expected | {accepted}
    with store.session() as session:
        issue = session.scalar(select(Issue).where(Issue.native_id == str(accepted)))
        assert issue.accepted_answer_id == str(accepted * 10 + 1)
    figures = checkpointer.checkpoint["recheck"]
    assert (figures["rechecked"], figures["kept"]) == (len(fake.waiting), 1)
    assert {int(q) for q in checkpointer.checkpoint["waiting"]} == fake.waiting - {accepted}

    before = len(fake.requests)
    crawl_at(store, fake, taxonomy, FIRST + 9 * DAY)  # all read yesterday: nothing due
    assert _paths(fake.requests[before:]) == ["/2.3/sites"] + ["/2.3/questions"] * len(tags)


def test_recheck_pending_asks_at_once_and_an_interval_of_0_once_a_run(
    store, fake, taxonomy
) -> None:
    crawl_at(store, fake, taxonomy, FIRST)
    before = len(fake.requests)
    checkpointer = crawl_at(store, fake, taxonomy, FIRST + 60, RecheckPolicy(force=True))
    asked = _by_id(fake.requests[before:])
    assert len(asked) == 1 and checkpointer.checkpoint["recheck"]["rechecked"] == len(fake.waiting)
    before = len(fake.requests)
    crawl_at(store, fake, taxonomy, FIRST + 120, RecheckPolicy(recheck_days=0))
    # an interval of 0 rechecks every waiting question once a run, not again and again
    assert len(_by_id(fake.requests[before:])) == 1


def test_a_hundred_ids_a_call(store, taxonomy) -> None:
    """150 waiting questions are asked for in two calls, 100 and 50 ids (the API's limit)."""
    questions = [
        make_question(50_000 + i, f"Question {i}", "<p>x</p>", ["horovod"], START + i, False)
        for i in range(150)
    ]
    with FakeStackExchange(questions) as fake:
        crawl_at(store, fake, taxonomy, FIRST)
        before = len(fake.requests)
        checkpointer = crawl_at(store, fake, taxonomy, FIRST + 8 * DAY)
        asked = [r["path"] for r in _by_id(fake.requests[before:])]
    sizes = sorted(len(path.split("/")[3].split(";")) for path in asked)
    assert sizes == [50, 100]
    assert checkpointer.checkpoint["recheck"]["rechecked"] == 150
    assert len(checkpointer.checkpoint["waiting"]) == 150


def test_an_interrupted_recheck_resumes_after_the_last_committed_call(store, taxonomy) -> None:
    questions = [
        make_question(50_000 + i, f"Question {i}", "<p>x</p>", ["horovod"], START + i, False)
        for i in range(150)
    ]

    def stop_after_the_first_call(stats) -> None:
        if stats["tag"] == "waiting questions":
            raise KeyboardInterrupt

    with FakeStackExchange(questions) as fake:
        crawl_at(store, fake, taxonomy, FIRST)
        before = len(fake.requests)
        with pytest.raises(KeyboardInterrupt):
            crawl_at(store, fake, taxonomy, FIRST + 8 * DAY, on_page=stop_after_the_first_call)
        first = [r["path"] for r in _by_id(fake.requests[before:])]
        before = len(fake.requests)
        checkpointer = crawl_at(store, fake, taxonomy, FIRST + 8 * DAY + 60)
        second = [r["path"] for r in _by_id(fake.requests[before:])]
    assert checkpointer.resumed
    ids = [set(path.split("/")[3].split(";")) for path in (*first, *second)]
    assert [len(i) for i in ids] == [100, 50] and not ids[0] & ids[1]  # none asked twice
    assert checkpointer.checkpoint["recheck"]["rechecked"] == 150


def test_questions_waiting_too_long_are_given_up(store, fake, taxonomy, tmp_path) -> None:
    crawl_at(store, fake, taxonomy, FIRST)
    before = len(fake.requests)
    newest = max(fake._questions[q]["creation_date"] for q in fake.waiting)
    checkpointer = crawl_at(store, fake, taxonomy, newest + 181 * DAY)
    assert not _by_id(fake.requests[before:])
    assert checkpointer.checkpoint["waiting"] == {}
    assert checkpointer.checkpoint["recheck"]["given_up"] == len(fake.waiting)
    # and a question asked that long ago does not start waiting at all
    later = crawl_at(Store(f"sqlite:///{tmp_path / 'late.db'}"), fake, taxonomy, newest + 181 * DAY)
    assert later.checkpoint["waiting"] == {}


def test_the_study_file_and_the_command_line_set_the_intervals() -> None:
    assert policy_from({}) == RecheckPolicy(7.0, 180.0, False)
    study = {"recheck_after_days": 2, "give_up_after_days": 30}
    assert policy_from(study) == RecheckPolicy(2.0, 30.0, False)
    assert policy_from(study, recheck_after=0.5, force=True) == RecheckPolicy(0.5, 30.0, True)
    with pytest.raises(ValueError, match="selection.stackoverflow.give_up_after_days"):
        policy_from({"give_up_after_days": "soon"})


def test_cli_recheck_pending_summary_and_status(tmp_path, runner) -> None:
    """The command with the real clock: a question asked three days ago, accepted after the
    first crawl; --recheck-pending keeps it; the summary and `crawl status` say so."""
    from issueminer.cli.main import app

    asked = int(time.time()) - 3 * DAY
    qid = 123_456
    question = make_question(qid, "Horovod hangs", "<p>x</p>", ["horovod"], asked, False)
    answer = make_answer(qid * 10 + 1, qid, "<p>Set y</p>", created=asked + 60)
    db = str(tmp_path / "w.db")
    command = [sys.executable, "-m", "issueminer.cli", "crawl", "stackoverflow", "--db", db]
    with FakeStackExchange([question], [answer]) as fake:
        command += ["--api-url", fake.url, "--format", "json"]
        first = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["waiting_for_acceptance"] == 1
        fake.accept_answer(qid, qid * 10 + 1, when=int(time.time()))
        plain = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert json.loads(plain.stdout)["rechecked"] == 0  # read minutes ago: not due
        forced = subprocess.run(
            [*command, "--recheck-pending"], capture_output=True, text=True, timeout=120
        )
    assert forced.returncode == 0, forced.stderr
    summary = json.loads(forced.stdout)
    assert (summary["rechecked"], summary["kept_on_recheck"], summary["stored"]) == (1, 1, 1)
    assert summary["waiting_for_acceptance"] == 0
    assert stored_ids(Store(f"sqlite:///{db}")) == {qid}
    text = runner.invoke(app, ["crawl", "status", "--db", db]).output
    assert "waiting for an accepted answer: 1 (this run rechecked 0, kept 0" in text
    assert "waiting for an accepted answer: 0 (this run rechecked 1, kept 1, gave up on 0)" in text
    bad = runner.invoke(app, ["crawl", "stackoverflow", "--db", db, "--recheck-after", "-1"])
    words = " ".join(bad.output.replace("│", " ").split())
    assert (
        bad.exit_code == 2 and "--recheck-after" in words and "greater than or equal to 0" in words
    )
