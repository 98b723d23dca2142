"""The Stack Overflow crawler against a fake Stack Exchange API on 127.0.0.1.

The corpus is built so that which questions the study's criteria admit is known by
construction (`expected`), independently of the selection module.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from issueminer.collect.checkpoints import Checkpointer, QuotaExhausted
from issueminer.collect.selection import Selection
from issueminer.collect.sources.stackexchange import (
    DEFAULT_BACKOFF,
    THROTTLE_MARGIN,
    StackExchangeClient,
    StackOverflowCrawler,
    as_sent,
    decoded,
)
from issueminer.store import CrawlRun, Issue, Reply, Store
from tests.fakes.stackexchange import (
    FakeStackExchange,
    make_answer,
    make_comment,
    make_question,
)
from tests.helpers import crawled_content, kill_after_requests

START = 1_600_000_000


def corpus(n_per_tag: int = 130, seed: int = 7):
    """Questions for every study tag plus a foreign tag; returns (questions, answers,
    comments, ids the criteria admit)."""
    rng = random.Random(seed)
    questions, answers, comments, expected = [], [], [], set()
    qid = 1000
    kinds = [
        "title-keyword",
        "body-keyword",
        "phrase",
        "code-only",
        "url-only",
        "no-keyword",
        "no-accepted",
    ]
    for tag in ["horovod", "tensorflow", "pytorch", "keras", "numpy"]:
        for i in range(n_per_tag):
            qid += 1
            kind = rng.choice(kinds)
            title, body = f"Question {qid} about {tag}", "<p>My model does not train.</p>"
            if kind == "title-keyword":
                title = f"Distributed training with {tag} fails ({qid})"
            elif kind == "body-keyword":
                body = "<p>I train on several <b>workers</b> and it stops.</p>"
            elif kind == "phrase":
                body = "<p>Running on multiple GPUs gives a wrong loss.</p>"
            elif kind == "code-only":
                body = "<p>See below.</p><pre><code>strategy = distributed()</code></pre>"
            elif kind == "url-only":
                body = '<p>I read <a href="https://x.org/distributed">https://x.org/distributed</a></p>'
            accepted = kind != "no-accepted"
            # several questions share a creation second, as real ones do
            created = START + (qid - 1000) * 30 + (i % 3 == 0)
            questions.append(
                make_question(qid, title, body, [tag, "python"], created, accepted=accepted)
            )
            keyword = kind in ("title-keyword", "body-keyword", "phrase")
            if accepted and (tag == "horovod" or (tag != "numpy" and keyword)):
                expected.add(qid)
            if accepted:
                answers.append(
                    make_answer(
                        qid * 10 + 1, qid, "<p>Use this.</p>", accepted=True, created=created + 5
                    )
                )
                comments.append(make_comment(qid * 10 + 2, qid, "Which version?", created + 1))
                comments.append(make_comment(qid * 10 + 3, qid * 10 + 1, "Thanks!", created + 9))
    return questions, answers, comments, expected


@pytest.fixture
def fake():
    questions, answers, comments, expected = corpus()
    with FakeStackExchange(questions, answers, comments) as server:
        server.expected = expected
        yield server


def crawl(store: Store, fake, taxonomy, since=None, on_page=None, sleeps=None, selection=None):
    selection = selection or Selection.from_taxonomy(taxonomy)
    checkpointer = Checkpointer(store, "stackoverflow", StackOverflowCrawler.query(selection))
    sleep = sleeps.append if sleeps is not None else (lambda _s: None)
    client = StackExchangeClient(fake.url, key="k3y", sleep=sleep)
    crawler = StackOverflowCrawler(client, selection, taxonomy, on_page)
    try:
        crawler.run(checkpointer, since)
    except QuotaExhausted:
        checkpointer.finish("quota")
        raise
    checkpointer.finish("done")
    return client, checkpointer


def stored_ids(store: Store) -> set[int]:
    with store.session() as session:
        return {int(n) for n in session.scalars(select(Issue.native_id))}


def test_crawl_stores_exactly_what_the_criteria_admit(store, fake, taxonomy) -> None:
    client, _ = crawl(store, fake, taxonomy)
    assert stored_ids(store) == fake.expected
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == len(fake.expected)
        kinds = dict(session.execute(select(Reply.kind, func.count()).group_by(Reply.kind)).all())
        assert kinds == {"answer": len(fake.expected), "comment": 2 * len(fake.expected)}
        one = session.scalar(select(Issue).where(Issue.native_id == str(min(fake.expected))))
        assert one.raw["question_id"] == min(fake.expected)  # the raw item is kept untouched
        assert one.url == f"https://stackoverflow.com/questions/{min(fake.expected)}"
        assert "<pre>" not in (one.text or "")


def test_request_count_stays_near_the_minimum(store, fake, taxonomy) -> None:
    client, _ = crawl(store, fake, taxonomy)
    question_pages = fake.requests_for("/questions/")
    listing = [r for r in question_pages if r["path"].rstrip("/").endswith("/questions")]
    # 130 questions per tag, 100 per page; keyset paging repeats the boundary second once
    assert len(listing) == 4 * math.ceil(130 / 99)
    reply_calls = len(fake.requests) - len(listing) - 1  # minus the client's /sites call
    assert reply_calls == 3 * len(listing)  # answers, question comments, answer comments
    assert all(r["params"].get("key") == "k3y" for r in fake.requests)
    assert client.requests == len(fake.requests)


@pytest.mark.parametrize("fault", ["http429", "http503", "reset", "truncated", "backoff"])
def test_transient_faults_are_survived(store, fake, taxonomy, fault) -> None:
    options = {"seconds": 1} if fault in ("backoff", "http429") else {}
    fake.inject(fault, "/questions", times=2, **options)
    crawl(store, fake, taxonomy)
    assert stored_ids(store) == fake.expected
    assert sum(1 for r in fake.requests if r.get("fault") == fault) == 2


def test_quota_exhausted_stops_cleanly_and_resumes(store, fake, taxonomy) -> None:
    fake.quota_remaining = 12
    with pytest.raises(QuotaExhausted) as stopped:
        crawl(store, fake, taxonomy)
    assert stopped.value.resume_at is not None
    partial = stored_ids(store)
    assert partial < fake.expected
    with store.session() as session:
        run = session.scalars(select(CrawlRun)).one()
        assert run.status == "quota" and run.checkpoint["tags"]
    fake.quota_remaining = 10_000  # the next day
    _, checkpointer = crawl(store, fake, taxonomy)
    assert checkpointer.resumed
    assert stored_ids(store) == fake.expected


def test_pages_that_change_between_calls(store, fake, taxonomy) -> None:
    """Questions added or deleted mid-crawl: nothing that stays is missed, nothing doubles."""
    added = make_question(
        9_000_001, "Distributed strategy hangs", "<p>x</p>", ["tensorflow"], START + 10**7
    )
    gone = min(q for q in fake.expected if q > 1200)
    calls = {"n": 0}

    def on_page(_stats) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            fake.add_question(added)
            fake.remove_question(gone)

    crawl(store, fake, taxonomy, on_page=on_page)
    assert stored_ids(store) == (fake.expected - {gone}) | {added["question_id"]}


def test_incremental_run_fetches_only_what_is_new(store, fake, taxonomy) -> None:
    crawl(store, fake, taxonomy)
    before = len(fake.requests)
    fake.add_question(
        make_question(
            9_000_002, "Data-parallel training diverges", "<p>x</p>", ["pytorch"], START + 10**7
        )
    )
    crawl(store, fake, taxonomy)
    assert stored_ids(store) == fake.expected | {9_000_002}
    new_requests = fake.requests[before:]
    listing = [r for r in new_requests if r["path"].rstrip("/").endswith("/questions")]
    assert len(listing) == 4  # one page per tag, starting where the last run stopped
    assert all("min" in r["params"] for r in listing)


def _listings(requests: list[dict]) -> list[dict]:
    return [r for r in requests if r["path"].rstrip("/").endswith("/questions")]


def _newest_activity(fake, tag: str) -> int:
    return max(
        q["last_activity_date"] for q in fake._questions.values() if tag in q.get("tags", [])
    )


def test_rerun_with_nothing_new_costs_one_request_per_tag(store, fake, taxonomy) -> None:
    """The questions read at the cursor's second come back (min is inclusive) but their
    answers and comments are not asked for again."""
    crawl(store, fake, taxonomy)
    before = len(fake.requests)
    _, checkpointer = crawl(store, fake, taxonomy)
    again = fake.requests[before:]
    tags = Selection.from_taxonomy(taxonomy).stackoverflow_tags
    paths = [r["path"].rstrip("/") for r in again]
    assert paths == ["/2.3/sites"] + ["/2.3/questions"] * len(tags)
    assert [int(r["params"]["min"]) for r in again[1:]] == [_newest_activity(fake, t) for t in tags]
    assert checkpointer.items_stored == 0 and checkpointer.items_seen == 0


def test_rerun_follows_activity_on_older_questions(store, fake, taxonomy) -> None:
    """A new answer and an edit after the first crawl each move an old question past the
    cursor: the rerun stores what changed, and a question rejected for want of an accepted
    answer, answered since and then accepted, is kept (the answer moved it)."""
    crawl(store, fake, taxonomy)
    tags = Selection.from_taxonomy(taxonomy).stackoverflow_tags
    cursors = {t: _newest_activity(fake, t) for t in tags}
    late = START + 10**7
    answered, edited = sorted(fake.expected)[:2]
    unaccepted = min(
        qid
        for qid, q in fake._questions.items()
        if q["tags"][0] == "horovod" and "accepted_answer_id" not in q
    )
    assert unaccepted not in stored_ids(store)
    fake.add_answer(make_answer(answered * 10 + 7, answered, "<p>Another way</p>", created=late))
    fake.add_comment(make_comment(answered * 10 + 8, answered, "Also works", late + 1))
    fake.edit_question(edited, late + 2, title="Distributed training hangs (edited)")
    fake.add_answer(make_answer(unaccepted * 10 + 1, unaccepted, "<p>Try x</p>", created=late + 3))
    fake.accept_answer(unaccepted, unaccepted * 10 + 1, when=late + 4)
    before = len(fake.requests)
    _, checkpointer = crawl(store, fake, taxonomy)

    assert stored_ids(store) == fake.expected | {unaccepted}
    with store.session() as session:
        issue = {i.native_id: i for i in session.scalars(select(Issue))}
        replies = {
            r.native_id
            for r in session.scalars(
                select(Reply).where(Reply.issue_uid == issue[str(answered)].uid)
            )
        }
        assert {f"answer:{answered * 10 + 7}", f"comment:{answered * 10 + 8}"} <= replies
        assert issue[str(edited)].title == "Distributed training hangs (edited)"
        assert issue[str(unaccepted)].accepted_answer_id == str(unaccepted * 10 + 1)
    listings = _listings(fake.requests[before:])
    assert all(r["params"]["sort"] == "activity" for r in listings)
    firsts = {}
    for r in listings:
        firsts.setdefault(r["params"]["tagged"], int(r["params"]["min"]))
    assert firsts == cursors
    assert checkpointer.items_seen == 3  # the three questions that moved, nothing else


def test_a_question_active_in_the_cursors_second_is_not_skipped(store, fake, taxonomy) -> None:
    """Only the questions already read at the cursor's second are skipped, by id."""
    crawl(store, fake, taxonomy)
    second = _newest_activity(fake, "pytorch")
    fake.add_question(
        make_question(9_000_003, "Distributed data parallel hangs", "<p>x</p>", ["pytorch"], second)
    )
    crawl(store, fake, taxonomy)
    assert stored_ids(store) == fake.expected | {9_000_003}


def _cli(db: str, url: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "issueminer.cli",
            "crawl",
            "stackoverflow",
            "--db",
            db,
            "--api-url",
            url,
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("share", [0.1, 0.5, 0.9])
def test_sigkill_and_resume_equals_a_straight_run(tmp_path, fake, taxonomy, share) -> None:
    """Killed after a share of the requests a straight run makes, then run again."""
    env = {**os.environ, "STACKEXCHANGE_KEY": "s3cret-key-value"}
    straight = Store(f"sqlite:///{tmp_path / 'straight.db'}")
    crawl(straight, fake, taxonomy)
    kill_after = max(1, int(len(fake.requests) * share))
    db = str(tmp_path / "killed.db")
    kill_after_requests(lambda: _cli(db, fake.url, env), fake, kill_after)
    resumed = _cli(db, fake.url, env)
    output, errors = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, errors
    killed = Store(f"sqlite:///{db}")
    assert crawled_content(killed) == crawled_content(straight)
    assert "s3cret-key-value" not in output + errors


def test_secret_never_reaches_output_or_database(tmp_path, fake) -> None:
    secret = "s3cret-key-value"
    env = {**os.environ, "STACKEXCHANGE_KEY": secret}
    db = str(tmp_path / "s.db")
    fake.inject(
        "error",
        "/questions",
        error_id=400,
        error_name="bad_parameter",
        error_message=f"bad key {secret}",
    )
    failed = subprocess.run(
        [
            sys.executable,
            "-m",
            "issueminer.cli",
            "crawl",
            "stackoverflow",
            "--db",
            db,
            "--api-url",
            fake.url,
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert failed.returncode == 1
    assert "crawl stopped" in failed.stderr and secret not in failed.stdout + failed.stderr
    assert any(r["params"].get("key") == secret for r in fake.requests)  # it was used
    ok = subprocess.run(
        [
            sys.executable,
            "-m",
            "issueminer.cli",
            "crawl",
            "stackoverflow",
            "--db",
            db,
            "--api-url",
            fake.url,
            "--format",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert secret not in ok.stdout + ok.stderr
    with open(db, "rb") as handle:
        assert secret.encode() not in handle.read()


def test_crawl_status_says_where_each_run_resumes(tmp_path, fake, taxonomy, runner) -> None:
    import json

    from issueminer.cli.main import app

    db = str(tmp_path / "status.db")
    store = Store(f"sqlite:///{db}")
    fake.quota_remaining = 12
    with pytest.raises(QuotaExhausted):
        crawl(store, fake, taxonomy)
    result = runner.invoke(app, ["crawl", "status", "--db", db, "--format", "json"])
    runs = json.loads(result.stdout)
    assert [r["status"] for r in runs] == ["quota"]
    assert runs[0]["items_stored"] == len(stored_ids(store))
    assert runs[0]["checkpoint"]["quota_remaining"] is not None
    text = runner.invoke(app, ["crawl", "status", "--db", db]).output
    assert "stackoverflow [quota]" in text and "tag horovod: " in text


def test_cli_quota_stop_says_when_to_resume(tmp_path, fake) -> None:
    fake.quota_remaining = 8
    db = str(tmp_path / "q.db")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "issueminer.cli",
            "crawl",
            "stackoverflow",
            "--db",
            db,
            "--api-url",
            fake.url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "quota spent" in result.stderr and "stopped cleanly" in result.stderr
    assert "UTC to resume where it stopped" in result.stderr


def test_since_starts_from_a_date(store, fake, taxonomy) -> None:
    cutoff = START + 60 * 30 * 130 // 2
    crawl(store, fake, taxonomy, since=datetime.fromtimestamp(cutoff, UTC))
    created = {q["question_id"]: q["creation_date"] for q in fake._questions.values()}
    assert stored_ids(store) == {q for q in fake.expected if created[q] >= cutoff}


# ---- the three throttle_violations (error_id 502) the real API sends -------------------


def test_backoff_violation_waits_the_backoff_and_goes_on(store, fake, taxonomy) -> None:
    """A call made too soon after a `backoff` is refused with "Violation of backoff
    parameter": the crawl waits the backoff it was asked for and goes on; not a quota stop."""
    fake.inject("backoff", "/questions", seconds=7)
    fake.inject("backoff_violation", "/questions")
    sleeps: list[float] = []
    crawl(store, fake, taxonomy, sleeps=sleeps)
    assert stored_ids(store) == fake.expected
    # the backoff (stackapi's own sleep, routed to the injected one: stackapi adds 1), then
    # the wait after the violation; nothing slept for real
    assert sleeps == [7 + 1, 7 + 1]
    with store.session() as session:
        assert session.scalars(select(CrawlRun)).one().status == "done"


def test_backoff_violation_without_a_backoff_seen_waits_the_default(store, fake, taxonomy) -> None:
    fake.inject("backoff_violation", "/questions")
    sleeps: list[float] = []
    crawl(store, fake, taxonomy, sleeps=sleeps)
    assert sleeps == [DEFAULT_BACKOFF + THROTTLE_MARGIN]
    assert stored_ids(store) == fake.expected


def test_short_throttle_is_waited_out_exactly(store, fake, taxonomy) -> None:
    fake.inject(
        "error",
        "/questions",
        error_id=502,
        error_name="throttle_violation",
        error_message="too many requests from this IP, more requests available in 37 seconds",
    )
    sleeps: list[float] = []
    crawl(store, fake, taxonomy, sleeps=sleeps)
    assert sleeps == [37 + THROTTLE_MARGIN]
    assert stored_ids(store) == fake.expected


def test_spent_daily_quota_stops_with_the_time_the_api_names(store, fake, taxonomy) -> None:
    message = "too many requests from this IP, more requests available in 84371 seconds"
    fake.inject(
        "error", "/questions", error_id=502, error_name="throttle_violation", error_message=message
    )
    sleeps: list[float] = []
    before = datetime.now(UTC)
    with pytest.raises(QuotaExhausted) as stopped:
        crawl(store, fake, taxonomy, sleeps=sleeps)
    assert sleeps == []  # a day is not slept through: the crawl stops, resumable
    assert message in str(stopped.value) and "quota spent" in str(stopped.value)
    wait = (stopped.value.resume_at - before).total_seconds()
    assert 84371 <= wait < 84371 + 60
    _, checkpointer = crawl(store, fake, taxonomy)  # the fault is spent: resume
    assert checkpointer.resumed and stored_ids(store) == fake.expected


# ---- HTML-encoded fields ------------------------------------------------------------------


def test_encoded_tags_and_names_are_decoded_once_raw_kept(store, taxonomy) -> None:
    qid = 77
    question = make_question(
        qid,
        "Distributed &amp;lt;b&amp;gt; &quot;par&#226;metros&quot; hang",
        "<p>x &amp; y</p>",
        ["par&#226;metros", "python"],
        START,
        owner={"display_name": "Andr&#233; Caron"},
    )
    answer = {
        **make_answer(qid * 10 + 1, qid, "<p>a</p>", True),
        "owner": {"display_name": "Jos&#233;"},
    }
    comment = {
        **make_comment(qid * 10 + 2, qid, "see @Andr&#233;"),
        "owner": {"display_name": "Zo&#235; &amp; co"},
        "reply_to_user": {"display_name": "Andr&#233; Caron"},
    }
    selection = dataclasses.replace(
        Selection.from_taxonomy(taxonomy), tags_alone=["parâmetros"], tags_with_keyword=[]
    )
    with FakeStackExchange([question], [answer], [comment]) as fake:
        crawl(store, fake, taxonomy, selection=selection)
    with store.session() as session:
        issue = session.scalars(select(Issue)).one()  # the study's tag matched, decoded
        assert issue.tags == ["parâmetros", "python"]
        assert issue.title == 'Distributed &lt;b&gt; "parâmetros" hang'  # decoded once only
        assert issue.body == "<p>x &amp; y</p>"  # HTML stays HTML
        assert issue.raw["tags"] == ["par&#226;metros", "python"]  # as the API sent it
        assert issue.raw["owner"]["display_name"] == "Andr&#233; Caron"
        replies = {r.kind: r for r in session.scalars(select(Reply))}
        assert replies["answer"].author == "José"
        assert replies["comment"].author == "Zoë & co"
        assert replies["comment"].raw["reply_to_user"]["display_name"] == "Andr&#233; Caron"


def test_decoded_items_keep_what_was_sent() -> None:
    sent = {
        "tags": ["c&#35;"],
        "owner": {"display_name": "Andr&#233;"},
        "reply_to_user": {"display_name": "Zo&#235;"},
        "title": "a &amp;amp; b",
        "body": "<p>&amp;</p>",
    }
    item = decoded(sent)
    assert item["tags"] == ["c#"] and item["owner"]["display_name"] == "André"
    assert item["reply_to_user"]["display_name"] == "Zoë"
    assert item["title"] == sent["title"] and item["body"] == sent["body"]  # read elsewhere
    assert as_sent(item) is sent and sent["tags"] == ["c&#35;"]
