"""The GitHub crawler and hydrate on responses shaped as api.github.com sends them.

Shapes from GitHub's REST docs and from errors quoted in public issue threads: lower-case
x-ratelimit-* headers, a primary limit answered 403 or 429 with nothing remaining, a
secondary limit with or without retry-after (and its older "abuse detection" wording), a
301 whose Location is https://api.github.com/repositories/{id}/... or empty, 410 for a
deleted issue and for a repository whose issues are turned off, Link-header pagination.
"""

from __future__ import annotations

import pytest
from github.Requester import Requester
from sqlalchemy import select

from issueminer.collect.selection import Selection
from issueminer.collect.sources.github import GitHubCrawler
from issueminer.collect.sources.github_client import PER_PAGE, SECONDARY_DEFAULT_WAIT, GitHubClient
from issueminer.store import Issue, Store
from tests.fakes.github import FakeGitHub, make_comment, make_issue
from tests.test_crawl_github import corpus, crawl, stored

REPO = "horovod/horovod"
NEW = "horovod/elsewhere"
CREATED = "2020-01-01T00:00:00Z"


@pytest.fixture
def store(sqlite_only_store: Store) -> Store:
    return sqlite_only_store


@pytest.fixture
def fake():
    issues, comments, expected = corpus(n=30)
    with FakeGitHub(issues, comments, search_cap=40) as server:
        server.expected = expected
        yield server


def thread(repo: str, number: int, count: int) -> list[dict]:
    return [
        make_comment(repo, number, number * 1000 + k, f"comment {k}", CREATED, user=f"u{k}")
        for k in range(count)
    ]


def hydrator(fake: FakeGitHub, taxonomy, sleeps: list[float] | None = None) -> GitHubCrawler:
    sleep = sleeps.append if sleeps is not None else (lambda _s: None)
    client = GitHubClient(fake.url, token="t0ken", sleep=sleep)
    return GitHubCrawler(client, Selection.from_taxonomy(taxonomy), taxonomy)


# ---- moved, deleted and disabled issues (hydrate's single-issue endpoint) ----------------


@pytest.mark.parametrize("location", ["fake", "github"])
def test_a_transferred_issue_is_read_whole_where_it_is_now(taxonomy, location) -> None:
    """150 comments at the new place. PyGithub follows a 301 without its query string, so
    the comments asked at the old address came back as page 1 of 30, and 30 were kept; a
    Location on api.github.com (recorded responses) made PyGithub raise instead."""
    issues = {
        REPO: [],
        NEW: [make_issue(NEW, 9, "Moved here", "Body", CREATED, comments=150)],
    }
    with FakeGitHub(issues, {(NEW, 9): thread(NEW, 9, 150)}) as fake:
        fake.moved(REPO, 4, NEW, 9, location=location)
        envelope, reason = hydrator(fake, taxonomy).hydrate(REPO, 4)
    assert reason is None and envelope is not None
    assert envelope.issue["title"] == "Moved here"
    assert envelope.issue["native_id"] == "4"  # the identity the study used
    assert envelope.issue["flags"] == [f"moved-to:https://github.com/{NEW}/issues/9"]
    ids = [r["native_id"] for r in envelope.replies]
    assert ids == [f"comment:{9000 + k}" for k in range(150)]


def test_a_301_with_an_empty_location_is_a_reason_not_a_crash(taxonomy) -> None:
    with FakeGitHub({REPO: [], NEW: [make_issue(NEW, 9, "t", "b", CREATED)]}) as fake:
        fake.moved(REPO, 4, NEW, 9, location="none")
        envelope, reason = hydrator(fake, taxonomy).hydrate(REPO, 4)
    assert envelope is None and reason == "moved, and GitHub gives no new location"


def test_410_says_whether_the_issue_was_deleted_or_issues_are_disabled(taxonomy) -> None:
    issues = {
        REPO: [make_issue(REPO, n, f"Issue {n}", "Body", CREATED) for n in (1, 2)],
        "acme/quiet": [make_issue("acme/quiet", 3, "Issue 3", "Body", CREATED)],
    }
    with FakeGitHub(issues) as fake:
        fake.gone(REPO, 2)
        fake.disable_issues("acme/quiet")
        crawler = hydrator(fake, taxonomy)
        reasons = [crawler.hydrate(repo, n)[1] for repo, n in [(REPO, 1), (REPO, 2)]]
        reasons.append(crawler.hydrate("acme/quiet", 3)[1])
        bodies = [r for r in fake.requests if r["status"] == 410]
    assert reasons == [None, "deleted", "issues disabled (Issues are disabled for this repo)"]
    assert len(bodies) == 2


@pytest.mark.parametrize(
    ("reason", "said"),
    [("tos", "repository access blocked (tos)"), ("dmca", "unavailable for legal reasons (dmca)")],
)
def test_a_blocked_repository_is_a_reason_not_a_crash(taxonomy, reason, said) -> None:
    """403 (or 451 for DMCA) {"message": "Repository access blocked", "block": {...}}: it
    stopped the whole hydrate run with the exception."""
    issues = {
        "acme/taken": [make_issue("acme/taken", 1, "t", "b", CREATED)],
        REPO: [make_issue(REPO, 2, "t", "b", CREATED)],
    }
    with FakeGitHub(issues) as fake:
        fake.block("acme/taken", reason)
        sleeps: list[float] = []
        crawler = hydrator(fake, taxonomy, sleeps)
        assert crawler.hydrate("acme/taken", 1) == (None, said)
        assert crawler.hydrate(REPO, 2)[1] is None
    assert sleeps == []


# ---- comments: pages as the Link header says -------------------------------------------


@pytest.mark.parametrize(("count", "pages"), [(PER_PAGE, 2), (250, 3), (0, 1)])
def test_comment_pages_follow_the_link_header(taxonomy, count, pages) -> None:
    issues = {REPO: [make_issue(REPO, 5, "t", "b", CREATED, comments=max(count, 1))]}
    with FakeGitHub(issues, {(REPO, 5): thread(REPO, 5, count)}) as fake:
        client = GitHubClient(fake.url, sleep=lambda _s: None)
        comments = client.comments(REPO, 5)
        asked = fake.requests_for(f"/repos/{REPO}/issues/5/comments")
    assert [c["id"] for c in comments] == [5000 + k for k in range(count)]
    # pages while the Link header names a next one; a single page comes with no Link
    # header at all (GitHub's pagination docs), and only a full one is followed by a check
    assert len(asked) == pages


# ---- rate limits as GitHub answers them ------------------------------------------------


def test_primary_limit_answered_429_waits_for_the_reset(store, fake, taxonomy) -> None:
    fake.inject("rate_limited", "/search/issues", reset_in=30, status=429)
    sleeps: list[float] = []
    crawl(store, fake, taxonomy, sleeps=sleeps)
    assert stored(store) == fake.expected
    assert len(sleeps) == 1 and 25 <= sleeps[0] <= 35


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (
            403,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you "
            "try again. If you reach out to GitHub Support for help, please include the request "
            "ID 0000:1111:2222:3333:4444.",
        ),
        (
            429,
            "You have exceeded a secondary rate limit and have been temporarily blocked from "
            "content creation. Please retry your request again later.",
        ),
        (
            403,
            "You have triggered an abuse detection mechanism. Please wait a few minutes "
            "before you try again.",
        ),
    ],
)
def test_secondary_limit_without_retry_after_waits_a_minute(
    store, fake, taxonomy, status, message
) -> None:
    fake.inject("secondary", "/search/issues", retry_after=None, status=status, message=message)
    sleeps: list[float] = []
    crawl(store, fake, taxonomy, sleeps=sleeps)
    assert stored(store) == fake.expected
    assert sleeps == [SECONDARY_DEFAULT_WAIT]
    refused = [r for r in fake.requests if r["fault"] == "secondary"]
    assert [r["status"] for r in refused] == [status]


def test_a_403_that_is_no_limit_is_not_waited_on(store, fake, taxonomy) -> None:
    """A 403 with requests left and no limit wording (say, a blocked resource) is an error
    to report, not a limit to wait out for ever."""
    fake.inject("secondary", "/search/issues", retry_after=None, message="Resource not accessible")
    sleeps: list[float] = []
    with pytest.raises(Exception, match="Resource not accessible"):
        crawl(store, fake, taxonomy, sleeps=sleeps)
    assert sleeps == []


def test_limits_are_read_from_lower_case_headers(store, fake, taxonomy) -> None:
    client, _ = crawl(store, fake, taxonomy)
    assert set(client.limits) == {"core", "search"}
    assert client.limits["search"] == fake.remaining("search")
    assert client.limits["core"] == fake.remaining("core")


def test_items_are_stored_with_every_field_github_sent(store, fake, taxonomy) -> None:
    crawl(store, fake, taxonomy)
    with store.session() as session:
        issue = session.scalars(select(Issue).order_by(Issue.native_id)).first()
    for key in ("reactions", "performed_via_github_app", "timeline_url", "state_reason"):
        assert key in issue.raw
    assert issue.raw["reactions"]["total_count"] == 0 and issue.raw["score"] == 1.0


def test_a_200_that_is_not_json_is_retried_not_read_as_empty(store, fake, taxonomy) -> None:
    """PyGithub hands an HTML body over as {"data": ...}: read as a search page it had no
    items, and the window was closed as done with nothing stored."""
    fake.inject("html200", "/search/issues", times=2)
    fake.inject("html200", "/comments", times=1)
    sleeps: list[float] = []
    crawl(store, fake, taxonomy, sleeps=sleeps)
    assert stored(store) == fake.expected
    assert sum(1 for r in fake.requests if r["fault"] == "html200") == 3
    assert sleeps == [1.0, 2.0, 1.0]


def test_rate_limit_headers_sent_as_floats_are_read() -> None:
    """GitHub has sent x-ratelimit-* values as floats (PyGithub reads int(float(...)));
    int("1700000030.0") raised ValueError in the middle of a rate-limit wait."""
    now = 1_700_000_000.0
    headers = {
        "x-ratelimit-remaining": "0.0",
        "x-ratelimit-reset": f"{now + 30:.1f}",
        "x-ratelimit-resource": "search",
    }
    refusal = Requester.createException(403, headers, {"message": "API rate limit exceeded"})
    answers = iter(
        [refusal, ({"x-ratelimit-remaining": "29.0", "x-ratelimit-resource": "search"}, {})]
    )

    def answer():
        value = next(answers)
        if isinstance(value, Exception):
            raise value
        return value

    sleeps: list[float] = []
    client = GitHubClient("http://127.0.0.1:9", sleep=sleeps.append, clock=lambda: now)
    client.call("search", answer)
    assert sleeps == [31.0] and client.rate_reset == int(now + 30)
    assert client.limits == {"search": 29}


def test_a_server_without_rate_limits_is_crawled(store, fake, taxonomy) -> None:
    """No x-ratelimit-* headers (GitHub Enterprise with rate limiting off, whose
    /rate_limit answers 404 "Rate limiting is not enabled."): PyGithub's
    `Github.rate_limiting` asked /rate_limit after the first call and the 404 stopped the
    crawl."""
    fake.rate_limits_enabled = False
    client, _ = crawl(store, fake, taxonomy)
    assert stored(store) == fake.expected
    assert fake.requests_for("/rate_limit") == []
    assert client.limits == {} and client.rate_remaining is None


@pytest.fixture
def big():
    issues, comments, expected = corpus(n=90)  # past the cap of 40: windows are split
    with FakeGitHub(issues, comments, search_cap=40) as server:
        server.expected = expected
        yield server


def test_a_search_that_ignores_its_window_is_not_split_for_ever(store, big, taxonomy) -> None:
    """A server that answers every window with the same results (a replay of one recorded
    search) reached the cap in every half, down to one-second windows: 2^n searches.
    Results outside the window asked for show it; such a window is read, not split."""
    big.ignore_windows = True
    notes: list[str] = []
    _, checkpointer = crawl(store, big, taxonomy, notes=notes)
    searches = big.requests_for("/search/issues")
    assert len(searches) < 60  # one split a query, then each half read as it is
    ignored = [f for f in checkpointer.checkpoint["findings"] if f["kind"] == "window-ignored"]
    assert ignored and all(f["repo"] in ("horovod/horovod", "pytorch/pytorch") for f in ignored)
    assert any("ignores the window" in note for note in notes)


def test_a_real_search_never_looks_ignored(store, big, taxonomy) -> None:
    _, checkpointer = crawl(store, big, taxonomy)
    findings = checkpointer.checkpoint.get("findings", [])
    assert [f for f in findings if f["kind"] == "window-ignored"] == []
    assert stored(store) == big.expected
    assert len(big.requests_for("/search/issues")) > 4  # windows were split as needed
