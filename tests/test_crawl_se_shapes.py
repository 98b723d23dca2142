"""The Stack Overflow crawler on responses shaped as the real Stack Exchange API sends them.

The shapes come from the API's own documentation: every error is HTTP 400 with the error
wrapper (error-handling docs), every body is compressed and GZIP is to be assumed when no
Content-Encoding says so (compression docs), and the three throttle_violation messages
(throttle docs; the backoff one as quoted in Py-StackExchange's issue 48).
"""

from __future__ import annotations

import gzip
import json

import pytest
import requests

from issueminer.collect.selection import Selection
from issueminer.collect.sources.stackexchange import (
    DEFAULT_BACKOFF,
    THROTTLE_MARGIN,
    TRANSIENT_RETRIES,
    StackExchangeClient,
    StackExchangeError,
    StackOverflowCrawler,
    undeclared_gzip,
)
from issueminer.store import Store
from tests.fakes.stackexchange import FakeStackExchange, make_answer, make_question
from tests.test_crawl_stackoverflow import corpus, crawl, stored_ids


@pytest.fixture
def store(sqlite_only_store: Store) -> Store:
    return sqlite_only_store


@pytest.fixture
def fake():
    questions, answers, comments, expected = corpus(n_per_tag=40)
    with FakeStackExchange(questions, answers, comments) as server:
        server.expected = expected
        yield server


def test_a_gzip_body_without_its_header_is_read(store, fake, taxonomy) -> None:
    """The compression docs: "If it is missing, assume GZIP". requests alone would hand
    stackapi the compressed bytes, which it cannot parse: every call failed."""
    fake.announce_encoding = False
    crawl(store, fake, taxonomy)
    assert stored_ids(store) == fake.expected
    assert all(r.get("fault") is None for r in fake.requests)  # read first time, no retries


def test_a_gzip_body_cut_short_is_retried_not_stored(store, fake, taxonomy) -> None:
    fake.announce_encoding = False
    fake.inject("truncated", "/questions", times=2)
    sleeps: list[float] = []
    crawl(store, fake, taxonomy, sleeps=sleeps)
    assert stored_ids(store) == fake.expected
    assert sleeps[:2] == [1.0, 2.0]  # the two broken bodies were retried


def test_undeclared_gzip_leaves_plain_and_declared_bodies_alone() -> None:
    payload = {"items": [{"title": "caf\u00e9"}], "has_more": False}
    plain = requests.Response()
    plain._content = json.dumps(payload).encode()
    assert undeclared_gzip(plain).json() == payload
    hidden = requests.Response()
    hidden._content = gzip.compress(json.dumps(payload).encode())
    assert undeclared_gzip(hidden).json() == payload
    cut = requests.Response()
    cut._content = gzip.compress(json.dumps(payload).encode())[:-12]
    with pytest.raises(requests.exceptions.ContentDecodingError):
        undeclared_gzip(cut)


# ---- the error wrapper: HTTP 400 whatever the error, error_id tells them apart ----------


@pytest.mark.parametrize(
    ("error_id", "name", "message"),
    [
        (400, "bad_parameter", "tagged is not a valid tag list"),
        (403, "access_denied", "This method requires an access_token with the read_inbox scope"),
        (404, "no_method", "no method found with this name"),
        (405, "key_required", "a key is required for this method"),
    ],
)
def test_request_errors_stop_at_once_with_the_api_s_message(
    store, fake, taxonomy, error_id, name, message
) -> None:
    fake.inject("error", "/questions", error_id=error_id, error_name=name, error_message=message)
    sleeps: list[float] = []
    with pytest.raises(StackExchangeError) as stopped:
        crawl(store, fake, taxonomy, sleeps=sleeps)
    assert message in str(stopped.value)
    assert sleeps == []  # not retried: asking again gets the same answer
    assert sum(1 for r in fake.requests if r.get("fault") == "error") == 1


@pytest.mark.parametrize(
    ("error_id", "name"), [(500, "internal_error"), (503, "temporarily_unavailable")]
)
def test_server_side_errors_are_retried(store, fake, taxonomy, error_id, name) -> None:
    fake.inject(
        "error", "/questions", times=2, error_id=error_id, error_name=name, error_message="x"
    )
    sleeps: list[float] = []
    crawl(store, fake, taxonomy, sleeps=sleeps)
    assert stored_ids(store) == fake.expected
    assert sleeps == [1.0, 2.0]


def test_a_lasting_internal_error_stops_after_the_retries(store, fake, taxonomy) -> None:
    fake.inject(
        "error",
        "/questions",
        times=TRANSIENT_RETRIES + 1,
        error_id=500,
        error_name="internal_error",
        error_message="An internal error occurred",
    )
    with pytest.raises(StackExchangeError, match="An internal error occurred"):
        crawl(store, fake, taxonomy)
    assert sum(1 for r in fake.requests if r.get("fault") == "error") == TRANSIENT_RETRIES + 1


def test_the_client_reuses_one_connection(fake) -> None:
    """stackapi opens a connection per call; the client's session keeps one open."""
    client = StackExchangeClient(fake.url, key="k", sleep=lambda _s: None)
    for _ in range(3):
        client.get("questions", tagged="horovod", page=1, pagesize=5)
    adapter = client.session.get_adapter(fake.url)
    pools = list(adapter.poolmanager.pools.keys())
    assert len(pools) == 1
    pool = adapter.poolmanager.pools[pools[0]]
    assert pool.num_connections == 1 and pool.num_requests == 4  # /sites and 3 pages


@pytest.mark.parametrize("status", [400, 502])
@pytest.mark.parametrize(
    ("message", "waited"),
    [
        ("Violation of backoff parameter", DEFAULT_BACKOFF + THROTTLE_MARGIN),
        ("too many requests from this IP, more requests available in 12 seconds", 13),
    ],
)
def test_throttles_are_told_apart_by_message_whatever_the_status(
    store, fake, taxonomy, status, message, waited
) -> None:
    """The docs give 400 for every error; a throttle recorded behind a proxy may carry 502.
    stackapi reads the body either way, and so does the client: the wait comes from the
    message, and neither is a spent daily quota."""
    fake.inject(
        "error",
        "/questions",
        error_id=502,
        error_name="throttle_violation",
        error_message=message,
        status=status,
    )
    sleeps: list[float] = []
    crawl(store, fake, taxonomy, sleeps=sleeps)
    assert sleeps == [waited]
    assert stored_ids(store) == fake.expected


# ---- a server that ignores paging (a replay of recorded pages) -------------------------


def test_a_listing_that_ignores_page_and_min_ends(store, taxonomy) -> None:
    """A replay that answers every call with the same recorded page and has_more: true
    was asked for ever (page 2, 3, ... of the same second). A page that brings nothing
    past the cursor ends the tag: two listing calls a tag."""
    questions, answers, comments, expected = corpus(n_per_tag=130)
    with FakeStackExchange(questions, answers, comments) as fake:
        fake.ignore_paging = True
        crawl(store, fake, taxonomy)
        listing = [r for r in fake.requests if r["path"].rstrip("/").endswith("/questions")]
    tags = {r["params"]["tagged"] for r in listing}
    assert len(listing) == 2 * len(tags)
    assert stored_ids(store) and stored_ids(store) < expected  # the first page's, no more


def test_fetch_all_stops_on_a_page_with_nothing_new(taxonomy) -> None:
    question = make_question(5, "q", "<p>b</p>", ["horovod"], 1_600_000_000)
    many = [make_answer(5000 + k, 5, f"<p>{k}</p>", created=1_600_000_000 + k) for k in range(150)]
    with FakeStackExchange([question], many) as fake:
        client = StackExchangeClient(fake.url, sleep=lambda _s: None)
        crawler = StackOverflowCrawler(client, Selection.from_taxonomy(taxonomy), taxonomy)
        whole = crawler.fetch_all("questions/{ids}/answers", [5])
        fake.ignore_paging = True
        replayed = crawler.fetch_all("questions/{ids}/answers", [5])
        calls = len(fake.requests_for("/answers"))
    assert sorted(a["answer_id"] for a in whole) == [5000 + k for k in range(150)]
    assert len(replayed) == 100 and len({a["answer_id"] for a in replayed}) == 100
    assert calls == 2 + 2  # two pages, then the first page twice
