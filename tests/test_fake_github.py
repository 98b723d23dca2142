"""Tests of the fake GitHub itself: the crawler's tests are only as good as this fake.

Everything goes through real HTTP, mostly via PyGithub, so these tests also pin down how
PyGithub reacts to each answer (what the crawler will actually see).
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator

import pytest
import requests
import urllib3.util.retry
from github import Auth, Github, GithubException, GithubRetry, RateLimitExceededException
from github.GithubException import UnknownObjectException

from tests.fakes.github import FakeGitHub, make_comment, make_issue

W, G = "acme/widgets", "acme/gadgets"
ISSUES = {
    W: [
        make_issue(
            W,
            1,
            "Crash on startup",
            "segfault when loading config",
            "2021-01-05T10:00:00Z",
            labels=["bug"],
            closed="2021-01-06T00:00:00Z",
        ),
        make_issue(
            W,
            2,
            "Add dark mode",
            "feature request for a theme",
            "2021-02-10T12:00:00Z",
            state="open",
            labels=["enhancement"],
        ),
        make_issue(
            W,
            3,
            "Fix crash in parser",
            "patch for the segfault",
            "2021-02-15T08:30:00Z",
            labels=["bug"],
            pull_request=True,
        ),
        make_issue(
            W,
            4,
            "Memory leak in cache",
            "RSS grows without bound",
            "2021-03-01T00:00:00Z",
            labels=["bug", "performance"],
            comments=3,
        ),
        make_issue(W, 5, "Docs typo", "Spelling mistake in the README", "2021-03-31T23:59:59Z"),
        make_issue(
            W,
            6,
            "Slow import",
            "import takes ten seconds; a crash sometimes",
            "2021-04-01T00:00:00Z",
            state="open",
            labels=["performance", "wontfix"],
        ),
    ],
    G: [
        make_issue(
            G, 1, "Gadget crash", "crash on button press", "2021-01-20T00:00:00Z", labels=["bug"]
        ),
        make_issue(
            G,
            7,
            "Transferred leak",
            "moved here from widgets",
            "2021-05-01T00:00:00Z",
            state="open",
        ),
    ],
}
COMMENTS = {
    (W, 4): [
        make_comment(W, 4, 400 + k, f"comment {k}", f"2021-03-0{k + 2}T00:00:00Z", user=f"u{k}")
        for k in range(5)
    ]
}
TOKEN = "t0ken"


@pytest.fixture
def fake() -> Iterator[FakeGitHub]:
    with FakeGitHub(ISSUES, COMMENTS) as server:
        yield server


def client(fake: FakeGitHub, per_page: int = 30, retry: object = None) -> Github:
    """PyGithub pointed at the fake, configured the way the crawler configures it."""
    return Github(
        base_url=fake.url,
        auth=Auth.Token(TOKEN),
        per_page=per_page,
        retry=retry,  # type: ignore[arg-type]
        seconds_between_requests=0,
    )


def keys(results: object) -> list[tuple[str, int]]:
    """(repo, number) of search results, without triggering lazy completion requests."""
    return [("/".join(i.html_url.split("/")[3:5]), i.number) for i in results]  # type: ignore


# ----------------------------------------------------------------------------- builders


def test_make_issue_and_comment_have_githubs_shape() -> None:
    pr = make_issue(W, 9, "t", "b", "2020-01-02T03:04:05Z", pull_request=True, user="ann")
    issue = make_issue(W, 8, "t", "b", "2020-01-02T03:04:05Z", state="open", labels=["x"])
    assert pr["pull_request"]["url"] == "https://api.github.com/repos/acme/widgets/pulls/9"
    assert pr["html_url"] == "https://github.com/acme/widgets/pull/9"
    assert pr["closed_at"] == "2020-01-02T03:04:05Z" and pr["user"]["login"] == "ann"
    assert "pull_request" not in issue and issue["closed_at"] is None
    assert issue["html_url"] == "https://github.com/acme/widgets/issues/8"
    assert issue["url"] == "https://api.github.com/repos/acme/widgets/issues/8"
    assert issue["repository_url"] == "https://api.github.com/repos/acme/widgets"
    assert issue["labels"][0]["name"] == "x" and {"id", "color"} <= set(issue["labels"][0])
    assert {"id", "node_id", "number", "title", "body", "state", "comments"} <= set(issue)
    assert issue["id"] == make_issue(W, 8, "u", "v", "2021-01-01T00:00:00Z")["id"]  # stable
    comment = make_comment(W, 8, 55, "hi", "2020-01-03T00:00:00Z")
    assert comment["html_url"].endswith("/acme/widgets/issues/8#issuecomment-55")
    assert json.loads(json.dumps([pr, issue, comment])) == [pr, issue, comment]
    with pytest.raises(ValueError):
        make_issue(W, 1, "t", "b", "yesterday")


# ----------------------------------------------------------------------------- search


def test_search_pages_through_paginated_list(fake: FakeGitHub) -> None:
    gh = client(fake, per_page=2)
    results = gh.search_issues(f"repo:{W}", sort="created", order="asc")
    assert results.totalCount == 6
    assert [i.number for i in results] == [1, 2, 3, 4, 5, 6]
    assert [i.number for i in results.get_page(1)] == [3, 4]
    assert [i.number for i in results.get_page(3)] == []
    first = results.get_page(0)[0]
    assert first.title == "Crash on startup" and first.score == 1.0
    assert first.labels[0].name == "bug" and first.user.login == "someone"
    assert first.url == f"{fake.url}/repos/{W}/issues/1"  # served on the fake's base
    assert [i.number for i in gh.search_issues(f"repo:{W}", sort="created")][:2] == [6, 5]
    pages = [r["params"].get("page") for r in fake.requests_for("/search/issues")[:4]]
    assert pages == [None, None, "2", "3"]  # totalCount probe, then the Link-followed pages


def test_search_link_header_is_githubs(fake: FakeGitHub) -> None:
    q = f"repo:{W} is:issue"
    resp = requests.get(f"{fake.url}/search/issues", params={"q": q, "per_page": 2, "page": 2})
    assert resp.status_code == 200
    assert resp.json()["total_count"] == 5 and resp.json()["incomplete_results"] is False
    links = requests.utils.parse_header_links(resp.headers["Link"])
    rels = {link["rel"]: urllib.parse.urlsplit(link["url"]) for link in links}
    assert [link["rel"] for link in links] == ["prev", "next", "last", "first"]
    for rel, page in {"prev": "1", "next": "3", "last": "3", "first": "1"}.items():
        query = dict(urllib.parse.parse_qsl(rels[rel].query))
        assert query == {"q": q, "per_page": "2", "page": page}
        assert f"{rels[rel].scheme}://{rels[rel].netloc}{rels[rel].path}" == (
            f"{fake.url}/search/issues"
        )
    last = requests.get(f"{fake.url}/search/issues", params={"q": q, "per_page": 2, "page": 3})
    assert [link["rel"] for link in requests.utils.parse_header_links(last.headers["Link"])] == [
        "prev",
        "first",
    ]
    one = requests.get(f"{fake.url}/search/issues", params={"q": f"repo:{W} is:pr"})
    assert "Link" not in one.headers and one.json()["total_count"] == 1


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        (f"repo:{W}", [(W, 1), (W, 2), (W, 3), (W, 4), (W, 5), (W, 6)]),
        (f"repo:{W} is:issue", [(W, 1), (W, 2), (W, 4), (W, 5), (W, 6)]),
        (f"repo:{W} is:pr", [(W, 3)]),
        (f"repo:{W} is:issue is:open", [(W, 2), (W, 6)]),
        (f"repo:{W} state:closed is:issue", [(W, 1), (W, 4), (W, 5)]),
        (f"repo:{W} created:2021-02-01..2021-03-31", [(W, 2), (W, 3), (W, 4), (W, 5)]),
        (f"repo:{W} created:>=2021-03-01", [(W, 4), (W, 5), (W, 6)]),
        (f"repo:{W} created:<2021-03-01", [(W, 1), (W, 2), (W, 3)]),
        (f"repo:{W} created:>2021-03-31", [(W, 6)]),
        (f"repo:{W} created:<=2021-01-05", [(W, 1)]),
        (f"repo:{W} created:2021-03-31", [(W, 5)]),
        (f"repo:{W} created:2021-03-15..*", [(W, 5), (W, 6)]),
        (f"repo:{W} created:2021-02-10T12:00:00Z..2021-03-01T00:00:00Z", [(W, 2), (W, 3), (W, 4)]),
        (f"repo:{W} label:bug", [(W, 1), (W, 3), (W, 4)]),
        (f"repo:{W} label:bug -label:performance", [(W, 1), (W, 3)]),
        (f'repo:{W} label:"performance" label:wontfix', [(W, 6)]),
        (f"repo:{W} crash", [(W, 1), (W, 3), (W, 6)]),
        (f"repo:{W} crash segfault", [(W, 1), (W, 3)]),
        (f"repo:{W} crash OR leak", [(W, 1), (W, 3), (W, 4), (W, 6)]),
        (f'repo:{W} "dark mode" OR typo', [(W, 2), (W, 5)]),
        (f'repo:{W} "mode add"', []),
        (f"repo:{W} CRASH is:issue NOT segfault", [(W, 6)]),
        (f"repo:{W} crash in:title", [(W, 1), (W, 3)]),
        (f"repo:{W} ready in:comments", []),
        (f"repo:{W} comment in:comments", [(W, 4)]),
        (f"crash repo:{W} repo:{G} is:issue", [(W, 1), (G, 1), (W, 6)]),
        ("crash", [(W, 1), (G, 1), (W, 3), (W, 6)]),
        (f"crash -repo:{W}", [(G, 1)]),
        (f"repo:{W} author:someone is:pr", [(W, 3)]),
        (f"repo:{W} closed:2021-01-06", [(W, 1)]),
        (f"repo:{G} leak is:open", [(G, 7)]),
    ],
)
def test_search_filters(fake: FakeGitHub, q: str, expected: list[tuple[str, int]]) -> None:
    results = client(fake).search_issues(q, sort="created", order="asc")
    assert keys(results) == expected


def test_search_rejects_unknown_repos_and_bad_queries(fake: FakeGitHub) -> None:
    gh = client(fake)
    for q in ["repo:acme/nothing crash", f"repo:{W} created:last-week", f"repo:{W} is:draft"]:
        with pytest.raises(GithubException) as err:
            list(gh.search_issues(q))
        assert err.value.status == 422 and err.value.data["message"] == "Validation Failed"


def test_search_cap_hides_results_beyond_the_first_1000() -> None:
    big = [
        make_issue("acme/big", n, f"i{n}", "", f"2020-01-01T00:{n // 60:02d}:{n % 60:02d}Z")
        for n in range(1, 1206)
    ]
    with FakeGitHub({"acme/big": big}) as fake:
        gh = client(fake, per_page=100)
        results = gh.search_issues("repo:acme/big", sort="created", order="asc")
        # PyGithub derives totalCount from the capped Link rel="last" before any page is read
        assert results.totalCount == 1000
        assert [i.number for i in results.get_page(9)][-1] == 1000
        assert results.totalCount == 1205  # a fetched page carries the true total_count
        with pytest.raises(GithubException) as err:
            results.get_page(10)
        assert err.value.status == 422
        assert err.value.data["message"] == "Only the first 1000 search results are available"
        numbers = [i.number for i in gh.search_issues("repo:acme/big", sort="created", order="asc")]
        assert numbers == list(range(1, 1001))  # iteration stops at the cap, without a 422
        edge = requests.get(
            f"{fake.url}/search/issues", params={"q": "repo:acme/big", "page": 34, "order": "asc"}
        )
        assert edge.json()["total_count"] == 1205 and len(edge.json()["items"]) == 10
        assert 'rel="next"' not in edge.headers["Link"]
    with FakeGitHub({"acme/big": big[:10]}, search_cap=4) as fake:
        with pytest.raises(GithubException) as err:
            client(fake, per_page=2).search_issues("repo:acme/big").get_page(2)
        assert err.value.status == 422


def test_added_and_removed_issues_show_in_search(fake: FakeGitHub) -> None:
    gh = client(fake)
    fake.add_issue(W, make_issue(W, 10, "New crash", "", "2021-06-01T00:00:00Z", state="open"))
    fake.remove_issue(W, 1)
    assert keys(gh.search_issues(f"repo:{W} crash", sort="created", order="asc")) == [
        (W, 3),
        (W, 6),
        (W, 10),
    ]
    with pytest.raises(UnknownObjectException):
        gh.get_repo(W).get_issue(1)
    with pytest.raises(KeyError):
        fake.remove_issue(W, 1)


def test_reopened_and_closed_again_as_github_records_them(fake: FakeGitHub) -> None:
    gh = client(fake)
    fake.reopen_issue(W, 1, "2021-07-01T00:00:00Z")
    issue = gh.get_repo(W).get_issue(1)
    assert (issue.state, issue.state_reason, issue.closed_at) == ("open", "reopened", None)
    assert issue.updated_at.isoformat() == "2021-07-01T00:00:00+00:00"
    assert keys(gh.search_issues(f"repo:{W} is:closed updated:>=2021-06-30")) == []
    assert keys(gh.search_issues(f"repo:{W} is:issue updated:>=2021-06-30")) == [(W, 1)]
    fake.close_issue(W, 1, "2021-08-01T00:00:00Z", reason="not_planned")
    issue = gh.get_repo(W).get_issue(1)
    assert (issue.state, issue.state_reason) == ("closed", "not_planned")
    closed = "2021-08-01T00:00:00+00:00"
    assert issue.closed_at.isoformat() == issue.updated_at.isoformat() == closed
    assert keys(gh.search_issues(f"repo:{W} is:closed updated:2021-08-01..2021-08-02")) == [(W, 1)]


# ----------------------------------------------------------------------------- issues and comments


def test_get_issue_and_paginated_comments(fake: FakeGitHub) -> None:
    gh = client(fake, per_page=2)
    repo = gh.get_repo(W)
    assert repo.full_name == W and repo.html_url == f"https://github.com/{W}"
    issue = repo.get_issue(4)
    assert (issue.title, issue.state, issue.comments) == ("Memory leak in cache", "closed", 3)
    assert [label.name for label in issue.labels] == ["bug", "performance"]
    assert issue.pull_request is None and repo.get_issue(3).pull_request is not None
    assert issue.created_at.isoformat() == "2021-03-01T00:00:00+00:00"
    comments = issue.get_comments()
    assert comments.totalCount == 5
    assert [(c.id, c.body, c.user.login) for c in comments] == [
        (400 + k, f"comment {k}", f"u{k}") for k in range(5)
    ]
    assert [c.id for c in comments.get_page(2)] == [404]
    assert list(repo.get_issue(2).get_comments()) == []
    pages = [r["params"].get("page") for r in fake.requests_for(f"/repos/{W}/issues/4/comments")]
    assert pages == [None, None, "2", "3", "3"]


def test_missing_deleted_and_transferred_issues(fake: FakeGitHub) -> None:
    gh = client(fake)
    repo = gh.get_repo(W)
    with pytest.raises(UnknownObjectException):
        repo.get_issue(99)
    with pytest.raises(UnknownObjectException):
        gh.get_repo("acme/nothing")
    fake.gone(W, 5)
    with pytest.raises(GithubException) as err:
        repo.get_issue(5)
    assert err.value.status == 410 and err.value.data["message"] == "This issue was deleted"
    fake.moved(W, 4, G, 7)
    moved = repo.get_issue(4)  # PyGithub follows the 301 itself
    assert (moved.number, moved.title) == (7, "Transferred leak")
    assert moved.repository_url == f"{fake.url}/repos/{G}"
    assert [r["status"] for r in fake.requests[-2:]] == [301, 200]
    assert fake.requests[-1]["path"] == f"/repos/{G}/issues/7"
    assert keys(gh.search_issues(f"repo:{W} leak OR typo")) == []  # both left the repo's search


# ----------------------------------------------------------------------------- rate limits


def test_rate_limit_headers_decrement_per_resource(fake: FakeGitHub) -> None:
    before = time.time()
    seen = [requests.get(f"{fake.url}/repos/{W}").headers for _ in range(2)]
    assert [h["X-RateLimit-Remaining"] for h in seen] == ["4999", "4998"]
    assert [h["X-RateLimit-Used"] for h in seen] == ["1", "2"]
    assert {h["X-RateLimit-Limit"] for h in seen} == {"5000"}
    assert {h["X-RateLimit-Resource"] for h in seen} == {"core"}
    assert 3590 <= int(seen[0]["X-RateLimit-Reset"]) - before <= 3601
    search = requests.get(f"{fake.url}/search/issues", params={"q": "crash"}).headers
    assert (search["X-RateLimit-Resource"], search["X-RateLimit-Remaining"]) == ("search", "4999")
    assert 50 <= int(search["X-RateLimit-Reset"]) - before <= 61
    missing = requests.get(f"{fake.url}/repos/{W}/issues/99")
    assert missing.status_code == 404 and missing.headers["X-RateLimit-Remaining"] == "4997"
    gh = client(fake)
    overview = gh.get_rate_limit()  # reading the quota is free, as on GitHub
    assert (overview.resources.core.remaining, overview.resources.search.remaining) == (4997, 4999)
    assert overview.rate.limit == 5000 and overview.resources.core.used == 3
    gh.get_repo(W)
    assert gh.rate_limiting == (4996, 5000) and fake.remaining("core") == 4996


def test_exhausted_quota_is_a_primary_rate_limit() -> None:
    with FakeGitHub(ISSUES, rate_limit=2) as fake:
        gh = client(fake)
        gh.get_repo(W).get_issue(1)
        with pytest.raises(RateLimitExceededException) as err:
            gh.get_repo(W)
        assert err.value.status == 403 and err.value.headers["x-ratelimit-remaining"] == "0"
        assert fake.requests[-1]["fault"] == "exhausted"
        assert keys(gh.search_issues(f"repo:{W} is:pr")) == [(W, 3)]  # search has its own quota


# ----------------------------------------------------------------------------- faults


def test_rate_limited_fault_raises_without_retry(fake: FakeGitHub) -> None:
    gh = client(fake)
    fake.inject("rate_limited", "/issues/1", reset_in=30)
    repo = gh.get_repo(W)
    with pytest.raises(RateLimitExceededException) as err:
        repo.get_issue(1)
    headers = err.value.headers
    assert headers["x-ratelimit-remaining"] == "0" and "retry-after" not in headers
    assert 28 <= int(headers["x-ratelimit-reset"]) - time.time() <= 31
    assert err.value.data["message"].startswith("API rate limit exceeded")
    assert repo.get_issue(1).number == 1  # times=1: the next request is served
    assert [r["fault"] for r in fake.requests_for("/issues/1")] == ["rate_limited", None]


@pytest.fixture
def retry_sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits urllib3 makes between retries (GithubRetry's included), recorded instead of
    slept: what is waited for is asserted, not how long a busy machine took."""
    sleeps: list[float] = []

    class RecordingTime:
        sleep = staticmethod(sleeps.append)

        def __getattr__(self, name: str) -> object:
            return getattr(time, name)

    monkeypatch.setattr(urllib3.util.retry, "time", RecordingTime())
    return sleeps


def test_rate_limited_fault_waits_for_reset_with_github_retry(
    fake: FakeGitHub, retry_sleeps: list[float]
) -> None:
    gh = client(fake, retry=GithubRetry(total=2))
    fake.inject("rate_limited", "/issues/2", reset_in=0)  # PyGithub waits reset - now + 1 s
    assert gh.get_repo(W).get_issue(2).number == 2
    assert len(retry_sleeps) == 1 and 0 < retry_sleeps[0] <= 1  # the reset is this second
    assert [r["fault"] for r in fake.requests_for("/issues/2")] == ["rate_limited", None]


def test_secondary_rate_limit_fault(fake: FakeGitHub, retry_sleeps: list[float]) -> None:
    gh = client(fake)
    fake.inject("secondary", "/search/", retry_after=1)
    with pytest.raises(RateLimitExceededException) as err:
        list(gh.search_issues("crash"))
    assert err.value.headers["retry-after"] == "1"
    assert "secondary rate limit" in err.value.data["message"]
    fake.inject("secondary", "/search/", retry_after=1)
    retrying = client(fake, retry=GithubRetry(total=2, secondary_rate_wait=1))
    assert len(keys(retrying.search_issues("crash"))) == 4
    assert retry_sleeps == [1]  # urllib3 honoured Retry-After
    assert [r["fault"] for r in fake.requests_for("/search/")] == ["secondary", "secondary", None]


@pytest.mark.parametrize(("fault", "status"), [("http500", 500), ("http503", 503)])
def test_server_errors_fail_or_are_retried(fake: FakeGitHub, fault: str, status: int) -> None:
    fake.inject(fault, "/issues/6")
    with pytest.raises(GithubException) as err:
        client(fake).get_repo(W).get_issue(6)
    assert err.value.status == status
    fake.inject(fault, "/issues/6", times=2)
    retrying = client(fake, retry=GithubRetry(total=3, backoff_factor=0))
    assert retrying.get_repo(W).get_issue(6).title == "Slow import"
    assert [r["fault"] for r in fake.requests_for("/issues/6")] == [fault, fault, fault, None]


def test_http503_can_answer_with_html(fake: FakeGitHub) -> None:
    fake.inject("http503", text=True)
    resp = requests.get(f"{fake.url}/repos/{W}")
    assert resp.status_code == 503 and resp.headers["Content-Type"].startswith("text/html")
    with pytest.raises(GithubException) as err:
        fake.inject("http503", text=True)
        client(fake).get_repo(W)
    assert err.value.status == 503 and "Service Unavailable" in err.value.data["data"]


@pytest.mark.parametrize("hard", [False, True])
def test_reset_fault_breaks_the_connection_mid_body(fake: FakeGitHub, hard: bool) -> None:
    repo = client(fake, retry=GithubRetry(total=2)).get_repo(W)
    fake.inject("reset", "/comments", hard=hard)
    with pytest.raises(requests.exceptions.RequestException):  # not retried by urllib3
        list(repo.get_issue(4).get_comments())
    assert len(list(repo.get_issue(4).get_comments())) == 5  # a fresh connection works
    assert [r["fault"] for r in fake.requests_for("/comments")] == ["reset", None]


def test_truncated_fault_serves_half_a_json_document(fake: FakeGitHub) -> None:
    fake.inject("truncated", "/search/issues")
    raw = requests.get(f"{fake.url}/search/issues", params={"q": "crash"})
    assert raw.status_code == 200 and len(raw.content) == int(raw.headers["Content-Length"])
    with pytest.raises(json.JSONDecodeError):
        raw.json()
    fake.inject("truncated", "/issues/1")
    with pytest.raises(ValueError):
        client(fake).get_repo(W).get_issue(1)


def test_unknown_repo_is_refused_with_githubs_422_body(fake: FakeGitHub) -> None:
    raw = requests.get(f"{fake.url}/search/issues", params={"q": "repo:acme/renamed is:issue"})
    assert raw.status_code == 422
    body = raw.json()
    assert body["message"] == "Validation Failed" and body["documentation_url"]
    (error,) = body["errors"]
    assert {k: error[k] for k in ("resource", "field", "code")} == {
        "resource": "Search",
        "field": "q",
        "code": "invalid",
    }
    assert "cannot be searched" in error["message"]


def test_incomplete_fault_answers_a_timed_out_search(fake: FakeGitHub) -> None:
    params = {"q": f"repo:{W}", "per_page": "100"}
    whole = requests.get(f"{fake.url}/search/issues", params=params).json()
    fake.inject("incomplete", "/search/issues")
    cut = requests.get(f"{fake.url}/search/issues", params=params)
    assert cut.status_code == 200 and cut.json()["incomplete_results"] is True
    assert cut.json()["items"] == whole["items"][: len(whole["items"]) // 2]
    assert requests.get(f"{fake.url}/search/issues", params=params).json() == whole
    assert fake.requests_for("/search/")[1]["fault"] == "incomplete"


def test_faults_match_path_and_count(fake: FakeGitHub) -> None:
    gh = client(fake)
    fake.inject("http500", "/issues/4/comments", times=2)
    issue = gh.get_repo(W).get_issue(4)  # other paths are unaffected
    for _ in range(2):
        with pytest.raises(GithubException):
            list(issue.get_comments())
    assert len(list(issue.get_comments())) == 5
    with pytest.raises(ValueError):
        fake.inject("teapot")


# ----------------------------------------------------------------------------- recording


def test_requests_are_recorded_with_the_token_only_in_authorization(fake: FakeGitHub) -> None:
    gh = client(fake, per_page=2)
    list(gh.search_issues(f"repo:{W} label:bug"))
    gh.get_repo(W).get_issue(4).get_comments().get_page(0)
    assert {r["method"] for r in fake.requests} == {"GET"}
    assert all(r["headers"]["Authorization"] == f"token {TOKEN}" for r in fake.requests)
    leaked = [r for r in fake.requests if TOKEN in r["path"] + json.dumps(r["params"])]
    assert leaked == []
    search = fake.requests_for("/search/issues")[0]
    assert search["params"] == {"q": f"repo:{W} label:bug", "per_page": "2"}
    assert search["fault"] is None and search["status"] == 200
    assert [r["path"] for r in fake.requests_for("/comments")] == [f"/repos/{W}/issues/4/comments"]
    assert fake.requests_for("/nowhere") == []


def test_wire_shapes_as_github_sends_them(fake: FakeGitHub) -> None:
    """Lower-case rate-limit header names (HTTP/2 has no other case), the status repeated
    as a string in error bodies, GitHub's 301 to /repositories/{id}/... with the query kept,
    an empty Location, and the two 410s."""
    raw = urllib3.PoolManager().request("GET", f"{fake.url}/repos/{W}/issues/1")
    names = [name for name, _ in raw.headers.iteritems()]
    assert [n for n in names if n.lower().startswith("x-ratelimit")] == [
        "x-ratelimit-limit",
        "x-ratelimit-remaining",
        "x-ratelimit-reset",
        "x-ratelimit-used",
        "x-ratelimit-resource",
    ]
    missing = requests.get(f"{fake.url}/repos/{W}/issues/999").json()
    assert missing["message"] == "Not Found" and missing["status"] == "404"
    fake.moved(W, 4, G, 7, location="github")
    moved = requests.get(
        f"{fake.url}/repos/{W}/issues/4/comments", params={"page": 2}, allow_redirects=False
    )
    location = moved.headers["Location"]
    assert moved.status_code == 301 and moved.json()["message"] == "Moved Permanently"
    assert location.startswith("https://api.github.com/repositories/")
    assert location.endswith("/issues/7/comments?page=2")
    local = location.replace("https://api.github.com", fake.url)
    assert requests.get(local).status_code == 200  # the id form reaches the same thread
    fake.moved(W, 5, G, 7, location="none")
    assert (
        requests.get(f"{fake.url}/repos/{W}/issues/5", allow_redirects=False).headers["Location"]
        == ""
    )
    fake.gone(W, 1)
    assert requests.get(f"{fake.url}/repos/{W}/issues/1").json()["message"] == (
        "This issue was deleted"
    )
    fake.disable_issues(G)
    gone = requests.get(f"{fake.url}/repos/{G}/issues/7")
    assert (gone.status_code, gone.json()["message"]) == (410, "Issues are disabled for this repo")
    with pytest.raises(ValueError):
        fake.moved(W, 6, G, 7, location="elsewhere")
