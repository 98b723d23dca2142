"""A re-crawl stores the source's newest payload (nulls and shorter lists included) and
keeps every earlier one (issue 17, point 4), against the fake Stack Exchange API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from issueminer.collect.checkpoints import Checkpointer, Envelope
from issueminer.collect.hydrate import HydrateResult, hydrate_stackoverflow, pending
from issueminer.collect.ingest import import_issues
from issueminer.collect.payload_history import payload_history
from issueminer.collect.payloads import MISSING_FLAG, apply_payloads
from issueminer.collect.selection import Selection
from issueminer.collect.sources.github import issue_envelope
from issueminer.collect.sources.stackexchange import (
    StackExchangeClient,
    StackOverflowCrawler,
    question_envelope,
)
from issueminer.store import Issue, Reply, Store
from issueminer.store.schema import IssuePayload
from tests.fakes.github import make_issue
from tests.fakes.stackexchange import FakeStackExchange, make_answer, make_question
from tests.test_crawl_stackoverflow import START, corpus, crawl

LATE = START + 10**7


@pytest.fixture
def fake():
    questions, answers, comments, expected = corpus(n_per_tag=20)
    with FakeStackExchange(questions, answers, comments) as server:
        server.expected = expected
        yield server


def _issues(store: Store) -> dict[str, Issue]:
    with store.session() as session:
        return {i.native_id: i for i in session.scalars(select(Issue))}


def _iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def test_recrawl_stores_the_newest_payload_nulls_and_all(store, fake, taxonomy) -> None:
    """Reopened: closed_at goes. A tag removed: it goes. An accepted answer withdrawn (the
    question no longer passes require_accepted_answer): it goes, and the question stays
    stored as it now is. Each earlier payload is kept with what changed."""
    horovod = sorted(q for q in fake.expected if "horovod" in fake._questions[q]["tags"])
    reopened, retagged, unaccepted = horovod[:3]
    fake.edit_question(reopened, START + 10**6, closed_date=START + 10**6)
    crawl(store, fake, taxonomy)
    first = _issues(store)
    assert first[str(reopened)].closed_at == datetime.fromtimestamp(START + 10**6, UTC)
    assert first[str(unaccepted)].accepted_answer_id == str(unaccepted * 10 + 1)
    earlier_raw = dict(first[str(reopened)].raw)

    fake.edit_question(reopened, LATE, closed_date=None)
    fake.edit_question(retagged, LATE + 1, tags=["horovod"])  # "python" removed
    fake.withdraw_acceptance(unaccepted, LATE + 2)  # moves nothing, as on the real sites
    fake.add_answer(make_answer(unaccepted * 10 + 5, unaccepted, "<p>Or y</p>", created=LATE + 2))
    crawl(store, fake, taxonomy)

    now = _issues(store)
    assert set(now) == set(first)  # nothing added, nothing dropped
    assert now[str(reopened)].closed_at is None and now[str(reopened)].state == "open"
    assert now[str(retagged)].tags == ["horovod"]
    assert now[str(unaccepted)].accepted_answer_id is None
    with store.session() as session:
        answer = session.scalar(
            select(Reply).where(Reply.native_id == f"answer:{unaccepted * 10 + 1}")
        )
        assert answer.accepted is False
        history = payload_history(session, now[str(reopened)].uid)
        kept = session.scalars(select(IssuePayload)).all()
    assert len(history) == 1 and history[0]["applied"]
    changes = history[0]["changes"]
    assert changes["closed_at"] == [_iso(START + 10**6), None]
    assert changes["state"] == ["closed", "open"]
    assert changes["updated_on"] == [_iso(START + 10**6), _iso(LATE)]
    assert history[0]["found_by"].startswith("crawl:stackoverflow#")
    by_uid = {row.issue_uid: row for row in kept}
    assert by_uid[now[str(reopened)].uid].raw == earlier_raw  # the payload it replaced
    assert by_uid[now[str(retagged)].uid].changes["tags"] == [["horovod", "python"], ["horovod"]]
    assert len(kept) == 3  # one per question that changed, none for the rest


def _envelope(question_id: int, activity: int, **fields) -> Envelope:
    question = make_question(question_id, "Horovod hangs", "<p>x</p>", ["horovod"], START)
    question.update(last_activity_date=activity, **fields)
    return question_envelope(question, [], [])


def test_an_older_payload_fills_gaps_only_and_is_kept(store) -> None:
    """A dump older than the API crawl does not turn the stored question back."""
    with store.session() as session:
        apply_payloads(session, [_envelope(7, START + 50, score=9).issue])
        counts = apply_payloads(session, [_envelope(7, START + 10, score=2).issue])
        issue = session.scalar(select(Issue))
        assert (issue.score, counts["unchanged"]) == (9, 1)
        history = payload_history(session, issue.uid)
        row = session.scalar(select(IssuePayload))
    assert [h["applied"] for h in history] == [False]
    assert row.raw["score"] == 2 and row.raw_updated_on == datetime.fromtimestamp(START + 10, UTC)


@pytest.mark.parametrize("order", [1, -1])
def test_an_issue_twice_in_a_batch_is_stored_as_its_newest_copy(store, order) -> None:
    copies = [
        _envelope(8, START + 5, score=1).issue,
        _envelope(8, START + 6, score=3, tags=["horovod", "gpu"]).issue,
    ]
    with store.session() as session:
        counts = apply_payloads(session, copies[::order])
        issue = session.scalar(select(Issue))
        assert counts["added"] == 1
        assert (issue.score, issue.tags) == (3, ["horovod", "gpu"])


def test_hydrate_replaces_imported_tags_and_lifts_missing(store, taxonomy, tmp_path) -> None:
    """Hydrate stores the live tags, not the union with the imported ones; an issue reported
    missing that the API returns again loses the mark."""
    qid = 4242
    issues = tmp_path / "issues.jsonl"
    issues.write_text(
        json.dumps({"url": f"https://stackoverflow.com/questions/{qid}", "tags": ["my-own-tag"]})
        + "\n"
    )
    import_issues(store, issues, taxonomy)
    live = make_question(qid, "Horovod hangs", "<p>x</p>", ["horovod", "mpi"], START)

    def hydrate(fake: FakeStackExchange, retry: bool) -> HydrateResult:
        selection = Selection.from_taxonomy(taxonomy)
        checkpointer = Checkpointer(store, "hydrate", {"retry": retry, "at": fake.url})
        client = StackExchangeClient(fake.url, sleep=lambda _s: None)
        crawler = StackOverflowCrawler(client, selection, taxonomy)
        result = HydrateResult()
        work = pending(store, "stackoverflow", retry)
        hydrate_stackoverflow(store, crawler, checkpointer, result, lambda _n: None, work)
        checkpointer.finish("done")
        return result

    with FakeStackExchange([]) as gone:
        assert len(hydrate(gone, False).missing) == 1
    assert MISSING_FLAG in _issues(store)[str(qid)].flags
    with FakeStackExchange([live], [make_answer(qid * 10 + 1, qid, "<p>a</p>", True)]) as back:
        assert hydrate(back, True).filled == 1
    issue = _issues(store)[str(qid)]
    assert issue.tags == ["horovod", "mpi"]
    assert not [f for f in issue.flags if f.startswith(MISSING_FLAG)]
    assert issue.author == f"user{qid}"
    with store.session() as session:
        changes = payload_history(session, issue.uid)[0]["changes"]
    assert changes["tags"] == [["my-own-tag"], ["horovod", "mpi"]]


def test_issues_show_tells_what_changed_and_when(tmp_path, fake, taxonomy) -> None:
    db = tmp_path / "show.db"
    store = Store(f"sqlite:///{db}")
    qid = min(q for q in fake.expected if "horovod" in fake._questions[q]["tags"])
    crawl(store, fake, taxonomy)
    before = fake._questions[qid]["last_activity_date"]
    fake.edit_question(qid, LATE, title="Horovod hangs at allreduce", score=4)
    crawl(store, fake, taxonomy)
    url = f"https://stackoverflow.com/questions/{qid}"
    env = {**os.environ, "COLUMNS": "200"}
    shown = subprocess.run(
        [sys.executable, "-m", "issueminer.cli", "issues", "show", url, "--db", str(db)],
        capture_output=True,
        text=True,
        env=env,
    )
    assert shown.returncode == 0, shown.stderr
    history = shown.stdout[shown.stdout.index("changes from the source") :]
    when = (datetime.fromtimestamp(LATE, UTC)).strftime("%Y-%m-%d %H:%M")
    assert when in history and "crawl:stackoverflow#2" in history
    assert "title: " in history and "Horovod hangs at allreduce" in history
    assert "score: 0 -> 4" in history
    as_json = subprocess.run(
        [sys.executable, "-m", "issueminer.cli", "issues", "show", url, "--db", str(db)]
        + ["--format", "json"],
        capture_output=True,
        text=True,
    )
    data = json.loads(as_json.stdout)
    assert data["author"] == f"user{qid}"
    assert data["history"][0]["changes"]["score"] == [0, 4]
    assert data["history"][0]["raw_updated_on"][:19] == _iso(before)[:19].replace("T", " ")


def test_a_reopened_github_issue_and_a_removed_label(store) -> None:
    """GitHub's issue shape: reopened (state open, closed_at null, state_reason
    "reopened") and a label removed; the newest payload stands, the first is kept."""
    closed = make_issue(
        "horovod/horovod",
        7,
        "Allreduce hangs",
        "It hangs.",
        "2023-01-02T03:04:05Z",
        labels=["bug", "wontfix"],
        closed="2023-02-01T00:00:00Z",
        user="alice",
    )
    closed["updated_at"] = "2023-02-01T00:00:00Z"
    reopened = {
        **closed,
        "state": "open",
        "closed_at": None,
        "state_reason": "reopened",
        "labels": [closed["labels"][0]],
        "updated_at": "2023-03-01T00:00:00Z",
    }
    with store.session() as session:
        apply_payloads(session, [issue_envelope("horovod/horovod", closed, []).issue])
        apply_payloads(session, [issue_envelope("horovod/horovod", reopened, []).issue])
        issue = session.scalar(select(Issue))
        assert (issue.state, issue.closed_at, issue.tags) == ("open", None, ["bug"])
        assert issue.author == "alice"
        (kept,) = session.scalars(select(IssuePayload)).all()
    assert kept.raw["state"] == "closed" and kept.raw["closed_at"] == "2023-02-01T00:00:00Z"
    assert kept.changes["closed_at"] == ["2023-02-01T00:00:00+00:00", None]
    assert kept.changes["tags"] == [["bug", "wontfix"], ["bug"]]
