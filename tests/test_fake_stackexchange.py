"""Tests of the fake Stack Exchange API, through the real stackapi and requests clients.

The crawler's tests trust this fake, so its paging, filters, quota and faults are checked here
against the clients the crawler really uses.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from stackapi import StackAPI, StackAPIError

from tests.fakes.stackexchange import (
    FakeStackExchange,
    make_answer,
    make_comment,
    make_question,
)

DAY = 86_400
T0 = 1_600_000_000


def _questions() -> list[dict[str, Any]]:
    return [
        make_question(1, "Model fails to load", "<p>one</p>", ["pytorch"], T0),
        make_question(2, "CUDA out of memory", "<p>two</p>", ["pytorch", "cuda"], T0 + DAY),
        make_question(3, "Shape mismatch?", "<p>three</p>", ["tensorflow"], T0 + 2 * DAY),
        make_question(
            4,
            "Gradient is None",
            "<p>four</p>",
            ["pytorch", "autograd"],
            T0 + 3 * DAY,
            accepted=False,
            last_activity_date=T0 + 10 * DAY,
        ),
        make_question(5, "Slow data loader", "<p>five</p>", ["pytorch"], T0 + 4 * DAY),
    ]


def _answers() -> list[dict[str, Any]]:
    return [
        make_answer(11, 1, "<p>a11</p>", accepted=True, created=T0 + 100),
        make_answer(12, 1, "<p>a12</p>", created=T0 + 200),
        make_answer(13, 1, "<p>a13</p>", created=T0 + 300),
        make_answer(21, 2, "<p>a21</p>", accepted=True, created=T0 + DAY + 100),
    ]


def _comments() -> list[dict[str, Any]]:
    return [
        make_comment(101, 1, "c on q1", created=T0 + 10),
        make_comment(102, 1, "another c on q1", created=T0 + 20),
        make_comment(103, 11, "c on a11", created=T0 + 150),
        make_comment(104, 21, "c on a21", created=T0 + DAY + 150),
    ]


@pytest.fixture
def fake() -> Iterator[FakeStackExchange]:
    with FakeStackExchange(_questions(), _answers(), _comments()) as server:
        yield server


def _api(fake: FakeStackExchange, **kwargs: Any) -> StackAPI:
    options: dict[str, Any] = {"key": "test-key", "max_pages": 1, "page_size": 100}
    options.update(kwargs)
    return StackAPI(name="stackoverflow", base_url=fake.url, **options)


def _get(fake: FakeStackExchange, path: str, **params: Any) -> requests.Response:
    params.setdefault("site", "stackoverflow")
    return requests.get(f"{fake.url}/2.3/{path}", params=params, timeout=5)


def _ids(items: list[dict[str, Any]], key: str = "question_id") -> list[int]:
    return [item[key] for item in items]


def test_stackapi_constructor_finds_the_site(fake: FakeStackExchange) -> None:
    api = _api(fake)
    assert api._name == "Stack Overflow"
    (sites,) = fake.requests_for("/sites")
    assert sites["path"] == "/2.3/sites/"
    assert sites["params"]["pagesize"] == "1000"
    with pytest.raises(ValueError, match="Invalid Site Name"):
        StackAPI(name="nosuchsite", base_url=fake.url)


def test_paging_and_has_more(fake: FakeStackExchange) -> None:
    first = _api(fake, page_size=2).fetch("questions", sort="creation", order="asc")
    assert _ids(first["items"]) == [1, 2]
    assert first["has_more"] is True

    everything = _api(fake, page_size=2, max_pages=10).fetch(
        "questions", sort="creation", order="asc"
    )
    assert _ids(everything["items"]) == [1, 2, 3, 4, 5]
    assert everything["has_more"] is False
    pages = [r["params"]["page"] for r in fake.requests_for("/questions")]
    assert pages == ["1", "1", "2", "3"]

    last = _get(fake, "questions/", sort="creation", order="asc", page=3, pagesize=2).json()
    assert _ids(last["items"]) == [5]
    assert last["has_more"] is False
    exact = _get(fake, "questions/", pagesize=5).json()
    assert len(exact["items"]) == 5 and exact["has_more"] is False


def test_items_are_api_shaped(fake: FakeStackExchange) -> None:
    item = _api(fake).fetch("questions/{ids}", ids=[1], filter="withbody")["items"][0]
    assert item["body"] == "<p>one</p>"
    assert item["link"] == "https://stackoverflow.com/questions/1/model-fails-to-load"
    assert item["accepted_answer_id"] == 11 and item["is_answered"] is True
    assert item["owner"]["display_name"]
    unanswered = make_question(9, "x", "<p/>", [], T0, accepted=False)
    assert "accepted_answer_id" not in unanswered and unanswered["answer_count"] == 0
    assert make_question(9, "x", "<p/>", [], T0, accepted=77)["accepted_answer_id"] == 77


def test_tagged_requires_all_tags(fake: FakeStackExchange) -> None:
    api = _api(fake)
    assert sorted(_ids(api.fetch("questions", tagged="pytorch")["items"])) == [1, 2, 4, 5]
    assert _ids(api.fetch("questions", tagged="pytorch;cuda")["items"]) == [2]
    assert api.fetch("questions", tagged="cuda;tensorflow")["items"] == []


def test_sort_order_and_bounds(fake: FakeStackExchange) -> None:
    api = _api(fake)
    desc = api.fetch("questions", sort="creation", order="desc")
    assert _ids(desc["items"]) == [5, 4, 3, 2, 1]
    bounded = api.fetch("questions", sort="creation", order="asc", min=T0 + DAY, max=T0 + 3 * DAY)
    assert _ids(bounded["items"]) == [2, 3, 4]
    # min/max bound the sort field: question 4 was active long after it was created.
    active = api.fetch("questions", sort="activity", order="desc", min=T0 + 5 * DAY)
    assert _ids(active["items"]) == [4]
    created = api.fetch("questions", sort="activity", fromdate=T0 + 3 * DAY, todate=T0 + 4 * DAY)
    assert sorted(_ids(created["items"])) == [4, 5]
    assert fake.requests_for("/questions")[1]["params"]["min"] == str(T0 + DAY)


def test_ids_endpoint(fake: FakeStackExchange) -> None:
    api = _api(fake)
    result = api.fetch("questions/{ids}", ids=[3, 1, 999], sort="creation", order="asc")
    assert _ids(result["items"]) == [1, 3]
    assert fake.requests_for("/questions/")[-1]["path"] == "/2.3/questions/3;1;999/"
    with pytest.raises(StackAPIError) as raised:
        api.fetch("questions/{ids}", ids=list(range(1, 102)))
    assert raised.value.error == 400
    assert "too many ids" in raised.value.message


def test_answers_endpoint_paginates(fake: FakeStackExchange) -> None:
    api = _api(fake)
    answers = api.fetch("questions/{ids}/answers", ids=[1, 2], sort="creation", order="asc")
    assert _ids(answers["items"], "answer_id") == [11, 12, 13, 21]
    page = _get(fake, "questions/1;2/answers/", sort="creation", order="asc", pagesize=3)
    assert page.status_code == 200
    assert _ids(page.json()["items"], "answer_id") == [11, 12, 13]
    assert page.json()["has_more"] is True
    rest = _get(
        fake, "questions/1;2/answers", sort="creation", order="asc", pagesize=3, page=2
    ).json()
    assert _ids(rest["items"], "answer_id") == [21] and rest["has_more"] is False
    by_id = api.fetch("answers/{ids}", ids=[21])["items"]
    assert by_id[0]["is_accepted"] is True and by_id[0]["question_id"] == 2


def test_comments_endpoints(fake: FakeStackExchange) -> None:
    api = _api(fake)
    on_question = api.fetch("questions/{ids}/comments", ids=[1], sort="creation", order="asc")
    assert _ids(on_question["items"], "comment_id") == [101, 102]
    on_answers = api.fetch("answers/{ids}/comments", ids=[11, 21], sort="creation", order="asc")
    assert _ids(on_answers["items"], "comment_id") == [103, 104]
    page = _get(fake, "answers/11;21/comments/", sort="creation", order="asc", pagesize=1).json()
    assert _ids(page["items"], "comment_id") == [103] and page["has_more"] is True


def test_quota_decrements_then_throttles() -> None:
    with FakeStackExchange(_questions(), quota=3) as fake:
        api = _api(fake)  # the /sites call costs one
        assert api.fetch("questions")["quota_remaining"] == 1
        second = api.fetch("questions")
        assert second["quota_remaining"] == 0 and second["quota_max"] == 3
        with pytest.raises(StackAPIError) as raised:
            api.fetch("questions")
        assert raised.value.error == 502
        assert raised.value.code == "throttle_violation"
        response = _get(fake, "questions/")
        assert response.status_code == 400
        assert response.json()["error_message"].startswith("too many requests from this IP")


def test_data_can_change_between_calls(fake: FakeStackExchange) -> None:
    api = _api(fake)
    fake.remove_question(2)
    fake.add_question(make_question(6, "New one", "<p>six</p>", ["pytorch"], T0 + 5 * DAY))
    result = api.fetch("questions", tagged="pytorch", sort="creation", order="asc")
    assert _ids(result["items"]) == [1, 4, 5, 6]
    assert _ids(api.fetch("questions/{ids}", ids=[2, 6])["items"]) == [6]


def test_answers_and_edits_move_last_activity_acceptance_does_not(
    fake: FakeStackExchange,
) -> None:
    """Posting an answer and editing move a question's last activity (so it sorts and
    filters by it); a comment, accepting an answer and withdrawing it do not, as on the
    real sites."""
    api = _api(fake)
    fake.add_comment(make_comment(105, 3, "c on q3", created=T0 + 20 * DAY))
    fake.add_answer(make_answer(31, 3, "<p>a31</p>", created=T0 + 21 * DAY))
    fake.edit_question(5, T0 + 22 * DAY, title="Slow data loader with workers")
    fake.accept_answer(3, 31, T0 + 23 * DAY)
    fake.withdraw_acceptance(5, T0 + 24 * DAY)
    moved = api.fetch("questions", sort="activity", order="asc", min=T0 + 11 * DAY)["items"]
    assert [(q["question_id"], q["last_activity_date"]) for q in moved] == [
        (3, T0 + 21 * DAY),
        (5, T0 + 22 * DAY),
    ]
    assert moved[1]["title"] == "Slow data loader with workers"
    assert moved[0]["accepted_answer_id"] == 31
    fake.accept_answer(1, 11, T0 + 25 * DAY, moves_activity=True)  # the pretend kind
    assert api.fetch("questions/{ids}", ids=[1])["items"][0]["last_activity_date"] == T0 + 25 * DAY
    answers = api.fetch("questions/{ids}/answers", ids=[3])["items"]
    assert [(a["answer_id"], a["is_accepted"]) for a in answers] == [(31, True)]
    comments = api.fetch("questions/{ids}/comments", ids=[3])["items"]
    assert _ids(comments, "comment_id") == [105]


def test_request_errors(fake: FakeStackExchange) -> None:
    unknown = requests.get(f"{fake.url}/2.3/nothing/here/", timeout=5)
    # every error is HTTP 400; the error_id tells them apart
    assert unknown.status_code == 400 and unknown.json()["error_id"] == 404
    assert unknown.json()["error_name"] == "no_method"
    no_site = requests.get(f"{fake.url}/2.3/questions/", timeout=5)
    assert no_site.status_code == 400 and no_site.json()["error_name"] == "bad_parameter"
    too_big = _get(fake, "questions/", pagesize=101)
    assert too_big.status_code == 400 and too_big.json()["error_id"] == 400
    other_site = _get(fake, "questions/", site="superuser").json()
    assert other_site["items"] == [] and other_site["has_more"] is False


def test_fault_http429(fake: FakeStackExchange) -> None:
    api = _api(fake)
    fake.inject("http429", "/questions")
    with pytest.raises(StackAPIError) as raised:
        api.fetch("questions")
    assert raised.value.code == "throttle_violation"
    fake.inject("http429")
    response = _get(fake, "questions/")
    assert response.status_code == 429 and response.json()["error_id"] == 502
    assert api.fetch("questions")["items"], "the fault is used up"


def test_fault_http503(fake: FakeStackExchange) -> None:
    api = _api(fake)
    fake.inject("http503", times=2)
    response = _get(fake, "questions/")
    assert response.status_code == 503
    assert response.text == "<html>Service Unavailable</html>"
    with pytest.raises(StackAPIError):  # stackapi cannot decode the HTML
        api.fetch("questions")


def test_fault_backoff(fake: FakeStackExchange) -> None:
    fake.inject("backoff", "/questions", seconds=7)
    body = _get(fake, "questions/").json()
    assert body["backoff"] == 7 and len(body["items"]) == 5
    assert "backoff" not in _get(fake, "questions/").json()


def test_fault_backoff_violation(fake: FakeStackExchange) -> None:
    fake.inject("backoff_violation", "/questions")
    response = _get(fake, "questions/")
    assert response.status_code == 400
    assert response.json() == {
        "error_id": 502,
        "error_name": "throttle_violation",
        "error_message": "Violation of backoff parameter",
    }
    assert fake.quota_remaining == fake.quota_max  # refused before the quota is charged
    assert _get(fake, "questions/").status_code == 200


def test_tagged_matches_tags_the_api_sends_encoded(fake: FakeStackExchange) -> None:
    fake.add_question(
        {**fake._questions[1], "question_id": 99, "tags": ["par&#226;metros"]}  # as sent
    )
    found = _get(fake, "questions/", tagged="parâmetros").json()["items"]
    assert [q["question_id"] for q in found] == [99]
    assert found[0]["tags"] == ["par&#226;metros"]


def test_fault_quota_exhausted_stays(fake: FakeStackExchange) -> None:
    api = _api(fake)
    fake.inject("quota_exhausted")
    for _ in range(2):
        with pytest.raises(StackAPIError) as raised:
            api.fetch("questions")
        assert raised.value.code == "throttle_violation"
    assert fake.quota_remaining == 0


def test_fault_reset(fake: FakeStackExchange) -> None:
    fake.inject("reset", "/questions")
    with pytest.raises((requests.ConnectionError, requests.exceptions.ChunkedEncodingError)):
        _get(fake, "questions/")
    assert _get(fake, "questions/").status_code == 200
    # stackapi wraps only ConnectionError, so an incomplete body escapes it unwrapped.
    api = _api(fake)
    fake.inject("reset", "/questions")
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        api.fetch("questions")


def test_fault_truncated(fake: FakeStackExchange) -> None:
    api = _api(fake)
    fake.inject("truncated", times=2)
    response = _get(fake, "questions/")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Content-Encoding"] == "gzip"
    with pytest.raises(requests.exceptions.JSONDecodeError):
        response.json()
    with pytest.raises(StackAPIError):
        api.fetch("questions")


def test_fault_error(fake: FakeStackExchange) -> None:
    api = _api(fake)
    fake.inject(
        "error", "/answers", error_id=500, error_name="internal_error", error_message="boom"
    )
    with pytest.raises(StackAPIError) as raised:
        api.fetch("questions/{ids}/answers", ids=[1])
    assert (raised.value.error, raised.value.code, raised.value.message) == (
        500,
        "internal_error",
        "boom",
    )


def test_faults_match_in_order_and_are_recorded(fake: FakeStackExchange) -> None:
    api = _api(fake)
    fake.inject("http503", "/answers")
    fake.inject("backoff", "/questions", times=2, seconds=0)
    fake.inject("http429", "/questions")
    with pytest.raises(ValueError):
        fake.inject("nonsense")
    _get(fake, "questions/1/answers/")  # http503: injected first
    _get(fake, "questions/1/answers/")  # backoff: the path also contains /questions
    _get(fake, "questions/")  # backoff again
    _get(fake, "questions/")  # http429
    _get(fake, "questions/")  # clean
    faults = [r.get("fault") for r in fake.requests if r["path"] != "/2.3/sites/"]
    assert faults == ["http503", "backoff", "backoff", "http429", None]
    clean = fake.requests[-1]
    assert clean == {"path": "/2.3/questions/", "params": {"site": "stackoverflow"}}
    api.fetch("questions", tagged="pytorch")
    recorded = fake.requests[-1]["params"]
    assert recorded["key"] == "test-key" and recorded["tagged"] == "pytorch"
    assert recorded["site"] == "stackoverflow" and recorded["pagesize"] == "100"


def test_every_response_is_gzipped_errors_too(fake: FakeStackExchange) -> None:
    """The API's compression docs: every response compressed, GZIP when not told otherwise."""
    for params in ({}, {"pagesize": 101}):
        raw = requests.get(
            f"{fake.url}/2.3/questions/",
            params={"site": "stackoverflow", **params},
            stream=True,
            timeout=5,
        )
        assert raw.headers["Content-Encoding"] == "gzip"
        body = raw.raw.read(decode_content=False)
        assert body[:2] == b"\x1f\x8b"
        decoded = json.loads(gzip.decompress(body))
        assert ("items" in decoded) == (params == {})
    fake.announce_encoding = False
    bare = _get(fake, "questions/")
    assert "Content-Encoding" not in bare.headers and bare.content[:2] == b"\x1f\x8b"
