"""The GitHub crawler (PyGithub) against a fake GitHub API on 127.0.0.1.

Which issues the study's criteria admit is known by construction (`expected`).
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from issueminer.collect.checkpoints import Checkpointer
from issueminer.collect.payload_history import payload_history
from issueminer.collect.selection import Selection
from issueminer.collect.sources.github import INCOMPLETE_RETRIES, INCOMPLETE_WAIT, GitHubCrawler
from issueminer.collect.sources.github_client import GitHubClient
from issueminer.ids import github_issue
from issueminer.store import Issue, Reply, Store
from tests.fakes.github import FakeGitHub, make_comment, make_issue
from tests.helpers import crawled_content, kill_after_requests

REPOS = ["horovod/horovod", "pytorch/pytorch"]
T0 = datetime(2019, 1, 1, tzinfo=UTC)


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def corpus(n: int = 90, seed: int = 3):
    """Issues of two repositories; returns (issues by repo, comments, expected keys)."""
    rng = random.Random(seed)
    issues = {repo: [] for repo in REPOS}
    comments: dict[tuple[str, int], list[dict]] = {}
    expected = set()
    for repo in REPOS:
        for number in range(1, n + 1):
            kind = rng.choice(
                ["keyword", "phrase", "code-only", "plain", "open", "pr", "excluded-label"]
            )
            title, body = f"Problem {number}", "Training stops after a while."
            if kind == "keyword":
                title = f"Distributed run crashes ({number})"
            elif kind == "phrase":
                body = "It happens with multiple GPUs only."
            elif kind == "code-only":
                body = "Nothing special.\n```python\nimport torch.distributed\n```"
            labels = (
                ["enhancement" if repo.startswith("horovod") else "feature"]
                if (kind == "excluded-label")
                else ["bug"]
            )
            created = stamp(T0 + timedelta(days=3 * number, seconds=number))
            has_comments = number % 2 == 0
            issues[repo].append(
                make_issue(
                    repo,
                    number,
                    title,
                    body,
                    created,
                    state="open" if kind == "open" else "closed",
                    labels=labels,
                    pull_request=kind == "pr",
                    comments=2 if has_comments else 0,
                )
            )
            if has_comments:
                comments[(repo, number)] = [
                    make_comment(repo, number, number * 100 + k, f"comment {k}", created)
                    for k in (1, 2)
                ]
            admitted = kind not in ("open", "pr", "excluded-label") and (
                repo == "horovod/horovod" or kind in ("keyword", "phrase")
            )
            if admitted:
                expected.add((repo, number))
    return issues, comments, expected


@pytest.fixture
def fake():
    issues, comments, expected = corpus()
    with FakeGitHub(issues, comments, search_cap=40) as server:
        server.expected = expected
        yield server


def crawl(store, fake, taxonomy, sleeps=None, notes=None, since=None, on_page=None, now=None):
    selection = Selection.from_taxonomy(taxonomy)
    repositories = [r for r in selection.repositories if r.repo in REPOS]
    checkpointer = Checkpointer(store, "github", GitHubCrawler.query(selection, repositories))
    client = GitHubClient(
        fake.url,
        token="t0ken-secret",
        sleep=(sleeps.append if sleeps is not None else lambda _s: None),
    )
    crawler = GitHubCrawler(
        client,
        selection,
        taxonomy,
        search_cap=40,
        on_page=on_page,
        on_note=(notes.append if notes is not None else None),
        **({"now": now} if now else {}),
    )
    crawler.run(checkpointer, repositories, since)
    checkpointer.finish("done")
    return client, checkpointer


def stored(store: Store) -> set[tuple[str, int]]:
    with store.session() as session:
        rows = session.execute(select(Issue.origin, Issue.native_id)).all()
    return {(origin.removeprefix("https://github.com/"), int(n)) for origin, n in rows}


def test_crawl_stores_exactly_what_the_criteria_admit(store, fake, taxonomy) -> None:
    notes: list[str] = []
    crawl(store, fake, taxonomy, notes=notes)
    assert stored(store) == fake.expected
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == len(fake.expected)
        replies = session.scalar(select(func.count()).select_from(Reply))
        assert replies == 2 * sum(1 for _, n in fake.expected if n % 2 == 0)
        issue = session.scalars(select(Issue)).first()
        assert issue.raw["number"] == int(issue.native_id)
    # 90 horovod issues exceed the (test) cap of 40, so the windows were split and said so
    assert any("splitting" in note for note in notes)
    assert not [r for r in fake.requests if r["status"] == 422]
    # comments are fetched only for kept issues that have comments
    comment_calls = {r["path"] for r in fake.requests if r["path"].endswith("/comments")}
    assert comment_calls == {
        f"/repos/{repo}/issues/{n}/comments" for repo, n in fake.expected if n % 2 == 0
    }


def test_token_is_sent_and_never_stored(store, fake, taxonomy) -> None:
    crawl(store, fake, taxonomy)
    assert all("t0ken-secret" in (r["headers"].get("Authorization") or "") for r in fake.requests)
    assert not any(
        "t0ken-secret" in row for rows in crawled_content(store).values() for row in rows
    )


def test_primary_rate_limit_waits_for_the_reset(store, fake, taxonomy) -> None:
    fake.inject("rate_limited", "/search/issues", reset_in=30)
    sleeps: list[float] = []
    crawl(store, fake, taxonomy, sleeps=sleeps)
    assert stored(store) == fake.expected
    assert sleeps and 25 <= sleeps[0] <= 35  # until the reset time, not a fixed guess


def test_secondary_rate_limit_honours_retry_after(store, fake, taxonomy) -> None:
    fake.inject("secondary", "/comments", retry_after=7)
    sleeps: list[float] = []
    crawl(store, fake, taxonomy, sleeps=sleeps)
    assert stored(store) == fake.expected
    assert 7 in sleeps


@pytest.mark.parametrize("fault", ["http503", "http500", "reset", "truncated"])
def test_transient_faults_are_survived(store, fake, taxonomy, fault) -> None:
    fake.inject(fault, "/search/issues", times=2)
    fake.inject(fault, "/comments", times=1)
    crawl(store, fake, taxonomy)
    assert stored(store) == fake.expected
    assert sum(1 for r in fake.requests if r.get("fault") == fault) == 3


def test_incremental_run_looks_at_recent_changes_only(store, fake, taxonomy) -> None:
    crawl(store, fake, taxonomy)
    before = len(fake.requests)
    # opened long ago, closed just now: only an incremental run on `updated` can see it
    late = make_issue(
        "pytorch/pytorch",
        500,
        "Data-parallel job hangs",
        "x",
        stamp(T0 + timedelta(days=1)),
        closed=stamp(datetime.now(UTC)),
    )
    fake.add_issue("pytorch/pytorch", late)
    crawl(store, fake, taxonomy)
    assert stored(store) == fake.expected | {("pytorch/pytorch", 500)}
    searches = [r for r in fake.requests[before:] if r["path"] == "/search/issues"]
    assert searches and all("updated:" in r["params"]["q"] for r in searches)


def _cli(db: str, url: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "issueminer.cli",
            "crawl",
            "github",
            "--db",
            db,
            "--api-url",
            url,
            "--repo",
            "horovod/horovod",
            "--repo",
            "pytorch/pytorch",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize("share", [0.1, 0.5, 0.9])
def test_sigkill_and_resume_equals_a_straight_run(tmp_path, taxonomy, share) -> None:
    """Killed after a share of the requests a straight run makes, then run again."""
    issues, comments, expected = corpus(n=60, seed=11)
    env = {**os.environ, "GITHUB_TOKEN": "t0ken-secret"}
    with FakeGitHub(issues, comments) as fake:
        straight_db = str(tmp_path / "straight.db")
        straight = _cli(straight_db, fake.url, env)
        assert straight.wait(timeout=120) == 0
        kill_after = max(1, int(len(fake.requests) * share))
        db = str(tmp_path / "killed.db")
        kill_after_requests(lambda: _cli(db, fake.url, env), fake, kill_after)
        resumed = _cli(db, fake.url, env)
        output, errors = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, errors
    assert "t0ken-secret" not in output + errors
    assert crawled_content(Store(f"sqlite:///{db}")) == crawled_content(
        Store(f"sqlite:///{straight_db}")
    )
    assert stored(Store(f"sqlite:///{db}")) == expected


def test_issues_changing_between_pages(store, fake, taxonomy) -> None:
    """An issue opened and one deleted mid-crawl: no duplicates, nothing else missed."""
    added = make_issue(
        "horovod/horovod", 999, "Elastic run hangs", "x", stamp(T0 + timedelta(days=1, seconds=1))
    )
    gone = min(n for repo, n in fake.expected if repo == "horovod/horovod" and n > 30)
    pages = {"n": 0}

    def on_page(_stats) -> None:
        pages["n"] += 1
        if pages["n"] == 2:
            fake.add_issue("horovod/horovod", added)
            fake.remove_issue("horovod/horovod", gone)

    crawl(store, fake, taxonomy, on_page=on_page)
    assert pages["n"] > 2, "the corpus changed while pages were still to come"
    got = stored(store)
    assert ("horovod/horovod", 999) in got  # newest, so on a page still to come
    # the deleted issue may or may not have been read before it went; all others must be there
    assert got - {("horovod/horovod", gone)} >= fake.expected - {("horovod/horovod", gone)}
    assert got <= fake.expected | {("horovod/horovod", 999)}
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == len(got)


def _unboxed(output: str) -> str:
    """A usage error's text without the box rich draws round it and wraps it in."""
    return " ".join(output.replace("│", " ").split())


def test_cli_refuses_an_unknown_group_a_bad_api_url_and_a_future_since(
    tmp_path, fake, runner
) -> None:
    from issueminer.cli.main import app

    db = str(tmp_path / "g.db")
    group = runner.invoke(
        app, ["crawl", "github", "--group", "bogus", "--api-url", fake.url, "--db", db]
    )
    assert group.exit_code == 1
    assert "--group bogus: the study's groups are all, current, study" in group.output
    url = runner.invoke(app, ["crawl", "github", "--api-url", "notaurl", "--db", db])
    assert url.exit_code == 2 and "'notaurl' is not an http(s) URL" in _unboxed(url.output)
    future = runner.invoke(app, ["crawl", "github", "--api-url", fake.url, "--since", "2999-01-01"])
    assert future.exit_code == 2 and "2999-01-01 is in the future" in _unboxed(future.output)
    assert fake.requests == []


def test_cli_waits_for_the_rate_limit_reset_visibly(tmp_path, fake) -> None:
    fake.inject("rate_limited", "/search/issues", reset_in=2)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "issueminer.cli",
            "crawl",
            "github",
            "--db",
            str(tmp_path / "r.db"),
            "--api-url",
            fake.url,
            "--repo",
            "horovod/horovod",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "rate limit, resets" in result.stderr


# ---- what the real Search API refuses or leaves incomplete ------------------------------


def _crawler(fake, taxonomy, repos, sleeps=None, notes=None, on_page=None):
    selection = Selection.from_taxonomy(taxonomy)
    repositories = [r for name in repos for r in selection.repositories if r.repo == name]
    sleep = sleeps.append if sleeps is not None else (lambda _s: None)
    client = GitHubClient(fake.url, token="t0ken-secret", sleep=sleep)
    crawler = GitHubCrawler(
        client,
        selection,
        taxonomy,
        search_cap=40,
        on_page=on_page,
        on_note=(notes.append if notes is not None else None),
    )
    return crawler, repositories, GitHubCrawler.query(selection, repositories)


def test_unsearchable_repository_is_a_finding_and_the_others_are_crawled(
    store, fake, taxonomy
) -> None:
    """tensorflow/tensorflow is not on the fake: GitHub's real 422 "cannot be searched"."""
    notes: list[str] = []
    crawler, repositories, query = _crawler(
        fake, taxonomy, ["tensorflow/tensorflow", *REPOS], notes=notes
    )
    checkpointer = Checkpointer(store, "github", query)
    crawler.run(checkpointer, repositories)
    checkpointer.finish("done")
    assert stored(store) == fake.expected  # the repositories after it are crawled
    refused = [r for r in fake.requests if r["status"] == 422]
    assert len(refused) == 1  # its other queries are not asked: they would fail alike
    (finding,) = checkpointer.checkpoint["findings"]
    assert finding["kind"] == "unsearchable-repository"
    assert finding["repo"] == "tensorflow/tensorflow"
    assert "tensorflow/tensorflow: skipped, the GitHub Search API refuses it" in finding["message"]
    assert "cannot be searched" in finding["message"] and finding["message"] in notes
    skipped = [s for q, s in checkpointer.checkpoint["queries"].items() if "tensorflow" in q]
    assert skipped and all(s["windows"] == [] and s["skipped"] for s in skipped)
    # the next (incremental) run asks again from the beginning: it may be back by then
    before = len(fake.requests)
    checkpointer = Checkpointer(store, "github", query)
    crawler.run(checkpointer, repositories)
    (again,) = [r for r in fake.requests[before:] if r["status"] == 422]
    assert "tensorflow" in again["params"]["q"] and "created:2008-01-01" in again["params"]["q"]


def test_resumed_run_does_not_ask_the_refused_repository_again(store, fake, taxonomy) -> None:
    pages = {"n": 0}

    def stop_after_the_skip(_stats) -> None:
        pages["n"] += 1
        if pages["n"] == 1:
            raise KeyboardInterrupt

    crawler, repositories, query = _crawler(
        fake, taxonomy, ["tensorflow/tensorflow", *REPOS], on_page=stop_after_the_skip
    )
    checkpointer = Checkpointer(store, "github", query)
    with pytest.raises(KeyboardInterrupt):
        crawler.run(checkpointer, repositories)
    checkpointer.finish("interrupted")
    before = len(fake.requests)
    checkpointer = Checkpointer(store, "github", query)
    assert checkpointer.resumed
    crawler.run(checkpointer, repositories)
    assert not [r for r in fake.requests[before:] if r["status"] == 422]
    assert stored(store) == fake.expected
    assert len(checkpointer.checkpoint["findings"]) == 1


def test_incomplete_search_is_asked_again(store, fake, taxonomy) -> None:
    fake.inject("incomplete", "/search/issues", times=INCOMPLETE_RETRIES)
    sleeps: list[float] = []
    _, checkpointer = crawl(store, fake, taxonomy, sleeps=sleeps)
    assert sleeps == [INCOMPLETE_WAIT] * INCOMPLETE_RETRIES
    assert stored(store) == fake.expected
    assert checkpointer.checkpoint["findings"] == []


def test_search_that_stays_incomplete_is_a_finding(store, fake, taxonomy) -> None:
    # pytorch's searches are small enough (under the cap) to keep their first page
    fake.inject("incomplete", "pytorch", times=INCOMPLETE_RETRIES + 1)
    notes: list[str] = []
    sleeps: list[float] = []
    crawler, repositories, query = _crawler(
        fake, taxonomy, ["pytorch/pytorch"], sleeps=sleeps, notes=notes
    )
    checkpointer = Checkpointer(store, "github", query)
    crawler.run(checkpointer, repositories)
    assert sleeps == [INCOMPLETE_WAIT] * INCOMPLETE_RETRIES  # then it gives up, goes on
    (finding,) = checkpointer.checkpoint["findings"]
    assert finding["kind"] == "incomplete-results" and finding["repo"] == "pytorch/pytorch"
    start, end = finding["window"]
    assert finding["query"] in checkpointer.checkpoint["queries"] and start < end
    assert f"the search of {start}..{end} (created) page 1 stayed incomplete" in notes[0]
    assert finding["message"] == notes[0]
    assert stored(store) < {k for k in fake.expected if k[0] == "pytorch/pytorch"}


def test_cli_summary_and_status_show_findings(tmp_path, taxonomy, runner) -> None:
    import json

    from issueminer.cli.main import app

    issues, comments, _ = corpus(n=12)
    db = str(tmp_path / "f.db")
    with FakeGitHub(issues, comments) as server:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "issueminer.cli",
                "crawl",
                "github",
                "--db",
                db,
                "--api-url",
                server.url,
                "--repo",
                "tensorflow/tensorflow",
                "--repo",
                "horovod/horovod",
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["stored"] > 0
    assert [f["kind"] for f in summary["findings"]] == ["unsearchable-repository"]
    assert "tensorflow/tensorflow: skipped" in result.stderr  # said when it happens
    runs = json.loads(
        runner.invoke(app, ["crawl", "status", "--db", db, "--format", "json"]).stdout
    )
    assert runs[0]["status"] == "done" and runs[0]["findings"] == summary["findings"]
    text = runner.invoke(app, ["crawl", "status", "--db", db]).output
    assert "finding: tensorflow/tensorflow: skipped, the GitHub Search API refuses it" in text
    assert ": skipped (the search refuses the repository)" in text


# ---- an incremental run follows activity, whatever the state ------------------------------


def _searches(requests: list[dict]) -> list[str]:
    return [r["params"]["q"] for r in requests if r["path"] == "/search/issues"]


def test_rerun_with_nothing_new_costs_one_search_per_query(store, fake, taxonomy) -> None:
    _, first = crawl(store, fake, taxonomy)
    before = len(fake.requests)
    _, checkpointer = crawl(store, fake, taxonomy)
    again = fake.requests[before:]
    assert [r["path"] for r in again] == ["/search/issues"] * len(first.checkpoint["queries"])
    assert all("updated:" in q and "is:closed" not in q for q in _searches(again))
    assert checkpointer.items_seen == 0 and checkpointer.items_stored == 0


def test_a_reopened_issue_is_refreshed_and_a_new_open_one_is_not_stored(
    store, fake, taxonomy
) -> None:
    """Reopened after the first crawl (GitHub: state open, state_reason "reopened",
    closed_at null, updated_at moved): `is:closed` would never return it again. The
    incremental run searches by last activity in every state, stores the reopened issue as
    it is now (the closed payload kept in its history), and leaves out a new open issue
    the study does not admit; closed again later, it is stored closed again."""
    crawl(store, fake, taxonomy)
    repo = "pytorch/pytorch"
    number = min(n for r, n in fake.expected if r == repo and n % 2 == 0)  # has comments
    uid = github_issue(repo, number).uid
    with store.session() as session:
        closed_at = session.get(Issue, uid).closed_at
    assert closed_at is not None
    fake.reopen_issue(repo, number, stamp(datetime.now(UTC)))
    fake.add_comment(repo, number, make_comment(repo, number, 777, "still broken", stamp(T0)))
    opened = make_issue(repo, 900, "Distributed run crashes", "x", stamp(datetime.now(UTC)))
    fake.add_issue(repo, {**opened, "state": "open", "closed_at": None, "state_reason": None})
    before = len(fake.requests)
    _, checkpointer = crawl(store, fake, taxonomy)

    assert stored(store) == fake.expected  # the new open issue is not stored
    searches = _searches(fake.requests[before:])
    assert len(searches) == len(checkpointer.checkpoint["queries"])  # one page each
    assert all("is:closed" not in q and "updated:" in q for q in searches)
    with store.session() as session:
        issue = session.get(Issue, uid)
        assert (issue.state, issue.closed_at) == ("open", None)
        assert issue.raw["state_reason"] == "reopened"
        comments = session.scalars(select(Reply.native_id).where(Reply.issue_uid == uid)).all()
        assert "comment:777" in comments  # the thread is fetched again with it
        (history,) = payload_history(session, uid)
    assert history["changes"]["state"] == ["closed", "open"]
    assert history["changes"]["closed_at"] == [closed_at.replace(tzinfo=UTC).isoformat(), None]

    later = datetime.now(UTC) + timedelta(seconds=2)
    fake.close_issue(repo, number, stamp(later), reason="not_planned")
    crawl(store, fake, taxonomy, now=lambda: later)
    with store.session() as session:
        issue = session.get(Issue, uid)
        assert (issue.state, issue.raw["state_reason"]) == ("closed", "not_planned")
        assert issue.closed_at.replace(tzinfo=UTC) == later.replace(microsecond=0)
        assert len(payload_history(session, uid)) == 2
    assert stored(store) == fake.expected
