"""Stack Overflow through the Stack Exchange API (client: `stackapi`).

Client: retries, quota and backoff. Backend: what to fetch (the study's tags, in order of
last activity from a cursor, so a rerun fetches the older questions that changed), how to
batch (100 ids per call) and how an item becomes an Envelope.
"""

from __future__ import annotations

import contextvars
import html
import re
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import stackapi.stackapi as _stackapi_module
from stackapi import StackAPI, StackAPIError

from issueminer.collect.checkpoints import Checkpointer, Envelope, QuotaExhausted
from issueminer.collect.selection import Selection
from issueminer.ids import stackoverflow_question
from issueminer.taxonomy import Taxonomy
from issueminer.text import plain_text

DEFAULT_API_URL = "https://api.stackexchange.com"
API_VERSION = "2.3"
PAGE_SIZE = 100  # the API's largest page
IDS_PER_CALL = 100  # the API accepts at most 100 ids in one {ids} vector
WITH_BODY = "withbody"  # built-in filter: the default fields plus `body`
THROTTLE_ERROR_ID = 502  # throttle_violation: the error of all three throttles below
# The API says "throttle_violation" (error_id 502) for three different things, which want
# three different waits:
# - "too many requests from this IP, more requests available in N seconds": wait N. When the
#   daily quota is spent, N is the rest of the day (e.g. 84371): anything longer than
#   MAX_THROTTLE_WAIT stops the crawl cleanly, resumable at the time the API names.
# - "Violation of backoff parameter": a method was called again before the `backoff` seconds
#   of an earlier response had passed. Not a quota: wait the backoff and go on.
# - any other throttle message names no time: taken for a spent quota, resumable after a day.
MAX_THROTTLE_WAIT = 120  # seconds: a throttle lifting sooner is waited out, not a stop
THROTTLE_MARGIN = 1  # second added to every wait the API names: its clock ticks in seconds
# The violation error does not repeat the backoff asked for; the API's backoffs are a few
# seconds (the docs' examples say 10), so without one seen yet this many seconds are waited.
DEFAULT_BACKOFF = 10
QUOTA_DAY = 86400  # seconds: the daily quota refills within a day of running out
TRANSIENT_RETRIES = 5  # connection resets, truncated JSON, HTTP 429/503 pages
_AVAILABLE_IN = re.compile(r"available in (\d+) seconds")
_BACKOFF_VIOLATION = re.compile(r"violation of backoff", re.IGNORECASE)
# stackapi sleeps a response's `backoff` itself (time.sleep, imported into its module);
# its sleep is routed through the client that made the call, so waits stay injectable
# and visible. Outside one of our calls it is time.sleep as before.
_BACKOFF_SLEEP: contextvars.ContextVar[Callable[[float], None]] = contextvars.ContextVar(
    "stackapi_backoff_sleep", default=time.sleep
)


def _routed_sleep(seconds: float) -> None:
    _BACKOFF_SLEEP.get()(seconds)


_stackapi_module.sleep = _routed_sleep  # type: ignore[attr-defined]


def scrub(text: str, *secrets: str | None) -> str:
    """A message with every secret (and any key= query parameter) blanked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return re.sub(r"([?&](?:key|access_token)=)[^&\s'\"]+", r"\1***", text)


class StackExchangeError(Exception):
    pass


class StackExchangeClient:
    """Calls the API one page at a time, so the crawler can checkpoint after every page."""

    def __init__(
        self,
        api_url: str | None = None,
        key: str | None = None,
        site: str = "stackoverflow",
        sleep: Callable[[float], None] = time.sleep,
        on_wait: Callable[[str, float], None] | None = None,
    ) -> None:
        self.key = key
        self.sleep = sleep
        self.on_wait = on_wait
        self.requests = 0
        self.quota_remaining: int | None = None
        self.quota_max: int | None = None
        self.backoff: int | None = None  # the last `backoff` the API asked for
        base_url = (api_url or DEFAULT_API_URL).rstrip("/")
        self.api = self._with_retries(
            lambda: StackAPI(
                site,
                version=API_VERSION,
                base_url=base_url,
                key=key,
                max_pages=1,
                page_size=PAGE_SIZE,
            )
        )

    def get(self, endpoint: str, **params: Any) -> dict[str, Any]:
        """One page of `endpoint`, its items decoded (`decoded`); stackapi honours the
        response's `backoff` by sleeping, through this client's `sleep`."""
        params.setdefault("filter", WITH_BODY)
        token = _BACKOFF_SLEEP.set(self._backoff_sleep)
        try:
            response = self._with_retries(lambda: self.api.fetch(endpoint, **params))
        finally:
            _BACKOFF_SLEEP.reset(token)
        if response.get("quota_remaining", -1) >= 0:
            self.quota_remaining = response["quota_remaining"]
            self.quota_max = response.get("quota_max")
        if response.get("backoff"):
            self.backoff = int(response["backoff"])
        response["items"] = [decoded(item) for item in response.get("items") or []]
        return response

    def _backoff_sleep(self, seconds: float) -> None:
        self._wait("backoff asked by the API", seconds)

    def _with_retries(self, call: Callable[[], Any]) -> Any:
        delay = 1.0
        for attempt in range(TRANSIENT_RETRIES + 1):
            self.requests += 1
            try:
                return call()
            except requests.exceptions.RequestException as exc:
                # stackapi wraps only ConnectionError; a body cut mid-read arrives as is
                if attempt == TRANSIENT_RETRIES:
                    raise StackExchangeError(
                        f"Stack Exchange API: {type(exc).__name__} after retries"
                    ) from None
                self._wait("retrying after a broken response", delay)
                delay *= 2
            except StackAPIError as exc:
                message = scrub(f"{exc.message}", self.key)
                if str(exc.error) == str(THROTTLE_ERROR_ID):
                    self._throttled(message)
                    continue
                if not _is_transient(exc) or attempt == TRANSIENT_RETRIES:
                    raise StackExchangeError(f"Stack Exchange API error: {message}") from None
                self._wait("retrying after a failed request", delay)
                delay *= 2
        raise StackExchangeError("Stack Exchange API: too many failed attempts")

    def _throttled(self, message: str) -> None:
        """Waits out a throttle_violation, or raises QuotaExhausted for a spent quota."""
        if _BACKOFF_VIOLATION.search(message):
            backoff = self.backoff or DEFAULT_BACKOFF
            self._wait(f"backoff violated ({message})", backoff + THROTTLE_MARGIN)
            return
        wait = _seconds_until_available(message)
        if wait is not None and wait <= MAX_THROTTLE_WAIT:
            self._wait("throttled", wait + THROTTLE_MARGIN)
            return
        self.quota_remaining = 0
        resume = datetime.now(UTC) + timedelta(seconds=(wait or QUOTA_DAY) + THROTTLE_MARGIN)
        raise QuotaExhausted(f"Stack Exchange quota spent: {message}", resume) from None

    def _wait(self, why: str, seconds: float) -> None:
        if self.on_wait:
            self.on_wait(why, seconds)
        self.sleep(seconds)


def _seconds_until_available(message: str) -> int | None:
    match = _AVAILABLE_IN.search(message)
    return int(match.group(1)) if match else None


def _is_transient(exc: StackAPIError) -> bool:
    # stackapi reports connection failures and unparsable bodies (an HTML 503 page, a
    # truncated response) with the exception text as error id; API errors have a number
    return not str(exc.error).isdigit() or int(exc.error) >= 500


# ---- items as they arrive ---------------------------------------------------------------
# The API sends these fields HTML-encoded ("par&#226;metros", "Andr&#233; Caron"). Titles
# are encoded too but are decoded where they are read (the selection's keyword match and
# `question_envelope`), once each: decoding them here as well would decode them twice.
# Bodies are HTML and stay HTML (`plain_text` decodes their text).
_USERS = ("owner", "reply_to_user", "last_editor")


class Decoded(dict):  # type: ignore[type-arg]
    """An API item with its encoded fields decoded; `sent` is the item as the API sent it."""

    sent: dict[str, Any]


def decoded(item: dict[str, Any]) -> Decoded:
    """The item with tags and users' display names HTML-decoded, the one place they are."""
    out = Decoded(item)
    out.sent = item
    if isinstance(item.get("tags"), list):
        out["tags"] = [html.unescape(t) if isinstance(t, str) else t for t in item["tags"]]
    for key in _USERS:
        user = item.get(key)
        if isinstance(user, dict) and isinstance(user.get("display_name"), str):
            out[key] = {**user, "display_name": html.unescape(user["display_name"])}
    return out


def as_sent(item: dict[str, Any]) -> dict[str, Any]:
    """The item as the API sent it (what is stored as `raw`)."""
    return getattr(item, "sent", item)


# ---- backend ---------------------------------------------------------------------------
def _date(timestamp: Any) -> datetime | None:
    return datetime.fromtimestamp(int(timestamp), UTC) if timestamp else None


def question_envelope(
    question: dict[str, Any],
    answers: list[dict[str, Any]],
    comments: list[dict[str, Any]],
    taxonomy: Taxonomy | None = None,
) -> Envelope:
    qid = str(question["question_id"])
    tags = list(question.get("tags") or [])
    body = question.get("body")
    issue = {
        **stackoverflow_question(qid).identity(),
        "title": html.unescape(question.get("title") or ""),
        "body": body,
        "text": plain_text(body or "", "stackoverflow"),
        "tags": tags,
        "state": "closed" if question.get("closed_date") else "open",
        "created_at": _date(question.get("creation_date")),
        "closed_at": _date(question.get("closed_date")),
        "updated_on": _date(question.get("last_activity_date")),
        "accepted_answer_id": (
            str(question["accepted_answer_id"]) if question.get("accepted_answer_id") else None
        ),
        "score": question.get("score"),
        "author": (question.get("owner") or {}).get("display_name"),
        "framework": taxonomy.framework_of(None, tags) if taxonomy else None,
        "raw": as_sent(question),
    }
    replies = [
        {
            "native_id": f"answer:{a['answer_id']}",
            "kind": "answer",
            "author": (a.get("owner") or {}).get("display_name"),
            "body": a.get("body"),
            "accepted": bool(a.get("is_accepted")),
            "score": a.get("score"),
            "created_at": _date(a.get("creation_date")),
            "raw": as_sent(a),
        }
        for a in answers
    ] + [
        {
            "native_id": f"comment:{c['comment_id']}",
            "kind": "comment",
            "author": (c.get("owner") or {}).get("display_name"),
            "body": c.get("body"),
            "accepted": False,
            "score": c.get("score"),
            "created_at": _date(c.get("creation_date")),
            "raw": as_sent(c),
        }
        for c in comments
    ]
    return Envelope(issue, replies)


class StackOverflowCrawler:
    """The study's questions, their answers and comments, a page at a time."""

    def __init__(
        self,
        client: StackExchangeClient,
        selection: Selection,
        taxonomy: Taxonomy,
        on_page: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.client = client
        self.selection = selection
        self.taxonomy = taxonomy
        self.on_page = on_page or (lambda _stats: None)

    @staticmethod
    def query(selection: Selection) -> dict[str, Any]:
        return {
            "site": selection.site,
            "tags": selection.stackoverflow_tags,
            "terms": selection.terms,
            "accepted_answer": selection.require_accepted_answer,
        }

    def run(self, checkpointer: Checkpointer, since: datetime | None = None) -> None:
        """Crawl every tag from its checkpoint; `since` overrides where a fresh run starts
        (questions with activity since then)."""
        for tag in self.selection.stackoverflow_tags:
            state = checkpointer.checkpoint.get("tags", {}).get(tag)
            if state is None:
                state = _fresh_state(checkpointer, tag, since)
            while not state["done"]:
                state = self._page(checkpointer, tag, state)

    def _page(self, checkpointer: Checkpointer, tag: str, state: dict[str, Any]) -> dict[str, Any]:
        # Ordered by last activity, not creation: a new answer, an edit or an accepted answer
        # moves an older question past the cursor, so the next run fetches it again.
        params: dict[str, Any] = {
            "tagged": tag,
            "sort": "activity",
            "order": "asc",
            "page": state["page"],
            "pagesize": PAGE_SIZE,
        }
        cursor = state["cursor"]
        if cursor is not None:
            params["min"] = cursor  # `min` bounds the sort field: the last activity date
        response = self.client.get("questions", **params)
        questions = response.get("items", [])
        # `min` is inclusive: the questions read at the cursor's second come back, unchanged
        # (a change would have moved them past it); they are not read again
        boundary = set(state.get("boundary") or [])
        fresh = [
            q for q in questions if not (_activity(q) == cursor and q["question_id"] in boundary)
        ]
        kept = [q for q in fresh if self.selection.stackoverflow(q).kept]
        # a stored question that no longer passes (its accepted answer withdrawn, a tag
        # removed) is stored as its source has it now, not left as it was
        kept_ids = {q["question_id"] for q in kept}
        rejected = {
            stackoverflow_question(q["question_id"]).uid: q
            for q in fresh
            if q["question_id"] not in kept_ids
        }
        kept += [rejected[uid] for uid in sorted(checkpointer.stored(list(rejected)))]
        envelopes = list(self._with_replies(kept))
        next_state = _next_state(state, questions)
        next_state["done"] = not response.get("has_more")
        tags = {**checkpointer.checkpoint.get("tags", {}), tag: next_state}
        high_water = max(
            filter(None, [checkpointer.checkpoint.get("high_water"), next_state["cursor"]]),
            default=None,
        )
        checkpoint = {
            **checkpointer.checkpoint,
            "tags": tags,
            "high_water": high_water,
            "quota_remaining": self.client.quota_remaining,
        }
        stored = checkpointer.commit_page(envelopes, checkpoint, seen=len(fresh))
        self.on_page(
            {
                "tag": tag,
                "seen": len(fresh),
                "stored": stored,
                "requests": self.client.requests,
                "quota_remaining": self.client.quota_remaining,
            }
        )
        return next_state

    def _with_replies(self, questions: list[dict[str, Any]]) -> Iterator[Envelope]:
        if not questions:
            return
        ids = [q["question_id"] for q in questions]
        answers = self.fetch_all("questions/{ids}/answers", ids)
        comments = self.fetch_all("questions/{ids}/comments", ids)
        answer_ids = [a["answer_id"] for a in answers]
        answer_comments = self.fetch_all("answers/{ids}/comments", answer_ids)
        by_question: dict[int, list[dict[str, Any]]] = {}
        for answer in answers:
            by_question.setdefault(answer["question_id"], []).append(answer)
        answer_to_question = {a["answer_id"]: a["question_id"] for a in answers}
        comments_of: dict[int, list[dict[str, Any]]] = {}
        for comment in comments:
            comments_of.setdefault(comment["post_id"], []).append(comment)
        for comment in answer_comments:
            question_id = answer_to_question.get(comment["post_id"])
            if question_id is not None:
                comments_of.setdefault(question_id, []).append(comment)
        for question in questions:
            qid = question["question_id"]
            yield question_envelope(
                question, by_question.get(qid, []), comments_of.get(qid, []), self.taxonomy
            )

    def hydrate(self, question_ids: list[str]) -> tuple[list[Envelope], list[str]]:
        """Text, answers and comments for known question ids; (found, ids the API lacks)."""
        questions = self.fetch_all("questions/{ids}", [int(q) for q in question_ids])
        found = {str(q["question_id"]) for q in questions}
        return list(self._with_replies(questions)), [q for q in question_ids if q not in found]

    def fetch_all(self, endpoint: str, ids: list[int]) -> list[dict[str, Any]]:
        """Every item of a `{ids}` endpoint, 100 ids per call, following has_more."""
        items: list[dict[str, Any]] = []
        for start in range(0, len(ids), IDS_PER_CALL):
            batch = ids[start : start + IDS_PER_CALL]
            page = 1
            while True:
                response = self.client.get(endpoint, ids=batch, page=page, pagesize=PAGE_SIZE)
                items.extend(response.get("items", []))
                if not response.get("has_more"):
                    break
                page += 1
        return items


def _activity(question: dict[str, Any]) -> int:
    # the API always sends last_activity_date; creation_date stands in for a bare item
    return int(question.get("last_activity_date") or question["creation_date"])


def _next_state(state: dict[str, Any], questions: list[dict[str, Any]]) -> dict[str, Any]:
    """Keyset paging on the last activity date: it survives questions added, deleted or
    active between calls; page numbers are used only while one second fills whole pages.
    `boundary` holds the ids already read at the cursor's second."""
    cursor = state["cursor"]
    newest = max((_activity(q) for q in questions), default=cursor)
    at_newest = {q["question_id"] for q in questions if _activity(q) == newest}
    if newest is not None and newest != cursor:
        return {"cursor": newest, "page": 1, "boundary": sorted(at_newest)}
    boundary = set(state.get("boundary") or []) | at_newest
    return {"cursor": cursor, "page": state["page"] + 1, "boundary": sorted(boundary)}


def _fresh_state(checkpointer: Checkpointer, tag: str, since: datetime | None) -> dict[str, Any]:
    """Where a new run of a tag starts: at `since`, else where the last finished run of the
    same query stopped (its cursor and the questions it read at that second), else at the
    beginning."""
    if since is not None:
        return {"cursor": int(since.timestamp()), "page": 1, "boundary": [], "done": False}
    previous = ((checkpointer.previous or {}).get("tags") or {}).get(tag) or {}
    return {
        "cursor": previous.get("cursor"),
        "page": 1,
        "boundary": list(previous.get("boundary") or []),
        "done": False,
    }
