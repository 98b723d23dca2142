"""Stack Overflow through the Stack Exchange API (client: `stackapi`).

Client: retries, quota and backoff. Backend: what to fetch (the study's tags, in order of
last activity from a cursor, so a rerun fetches the older questions that changed), how to
batch (100 ids per call) and how an item becomes an Envelope.
"""

from __future__ import annotations

import contextvars
import gzip
import html
import re
import time
import types
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import stackapi.stackapi as _stackapi_module
from stackapi import StackAPI, StackAPIError

from issueminer.collect.checkpoints import Checkpointer, Envelope, QuotaExhausted
from issueminer.collect.selection import Selection
from issueminer.collect.sources.unaccepted import RecheckPolicy, Waiting
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

# stackapi calls `requests.get` with no timeout, a new connection each call, and reads the
# body as requests decoded it. The API compresses every response; its docs say to assume
# GZIP when Content-Encoding is missing (a proxy or an early error may drop the header), and
# requests decodes only what the header announces. So stackapi's `requests` is this
# namespace: the client's own session (set per call, like the sleep above), a timeout, and
# a gzip body that came without its header decoded.
HTTP_TIMEOUT = 60  # seconds to connect or to wait for the next bytes; then retried
_GZIP_MAGIC = b"\x1f\x8b"
_SESSION: contextvars.ContextVar[requests.Session | None] = contextvars.ContextVar(
    "stackapi_session", default=None
)


def _routed_get(url: str, params: Any = None, proxies: Any = None, **_: Any) -> requests.Response:
    session = _SESSION.get()
    getter = session.get if session is not None else requests.get
    response = getter(url, params=params, proxies=proxies, timeout=HTTP_TIMEOUT)
    return undeclared_gzip(response)


def undeclared_gzip(response: requests.Response) -> requests.Response:
    """The response with a gzip body decoded when no Content-Encoding announced it."""
    if response.headers.get("Content-Encoding"):
        return response  # announced: requests has decoded it already
    body = response.content
    if body[:2] == _GZIP_MAGIC:
        try:
            response._content = gzip.decompress(body)
        except (OSError, EOFError, zlib.error) as exc:  # cut short: retried as a broken body
            raise requests.exceptions.ContentDecodingError(f"bad gzip body: {exc}") from None
    return response


_stackapi_module.requests = types.SimpleNamespace(  # type: ignore[attr-defined]
    get=_routed_get, compat=requests.compat, exceptions=requests.exceptions
)


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
        self.session = requests.Session()  # one connection for the run, not one a call
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
            token = _SESSION.set(self.session)
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
            finally:
                _SESSION.reset(token)
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
        policy: RecheckPolicy | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.selection = selection
        self.taxonomy = taxonomy
        self.on_page = on_page or (lambda _stats: None)
        self.policy = policy or RecheckPolicy()
        self.now = now
        self.waiting = Waiting()

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
        (questions with activity since then). Then the questions waiting for an accepted
        answer that are due are asked for again (see `unaccepted`)."""
        self.waiting = Waiting.of(checkpointer.checkpoint, checkpointer.previous)
        self.waiting.counts.setdefault("started", self._now())
        for tag in self.selection.stackoverflow_tags:
            state = checkpointer.checkpoint.get("tags", {}).get(tag)
            if state is None:
                state = _fresh_state(checkpointer, tag, since)
            while not state["done"]:
                state = self._page(checkpointer, tag, state)
        self._recheck(checkpointer)

    def _now(self) -> int:
        return int(self.now().timestamp())

    def _recheck(self, checkpointer: Checkpointer) -> None:
        """The waiting questions that are due, by id, 100 a call, a commit after each call;
        nothing is asked when none is due. Kept ones are stored with their answers and
        comments; the others wait on or, refused for another reason or gone, are let go."""
        now = self._now()
        self.waiting.count("given_up", self.waiting.give_up(now, self.policy))
        due = self.waiting.due(now, self.policy, self.waiting.counts["started"])
        for start in range(0, len(due), IDS_PER_CALL):
            batch = due[start : start + IDS_PER_CALL]
            questions = self.fetch_all("questions/{ids}", batch)
            chosen, admitted = self._select(checkpointer, questions)
            for qid in set(map(str, batch)) - {str(q["question_id"]) for q in questions}:
                self.waiting.entries.pop(qid, None)  # deleted since
            self.waiting.count("rechecked", len(batch))
            self.waiting.count("kept", admitted)
            stored = self._commit(checkpointer, list(self._with_replies(chosen)), len(questions))
            self._report("waiting questions", len(questions), stored)
        if not due:  # the counts and any question given up, without a request
            self._commit(checkpointer, [], 0)

    def _select(
        self, checkpointer: Checkpointer, questions: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], int]:
        """The questions to store and how many of them the criteria admit: the others are
        stored ones they no longer admit (an accepted answer withdrawn, a tag removed),
        stored as their source has them now, not left as they were. Each question is noted
        as waiting for an accepted answer, or not."""
        now = self._now()
        decisions = {q["question_id"]: self.selection.stackoverflow(q).kept for q in questions}
        for question in questions:
            kept = decisions[question["question_id"]]
            self.waiting.read(self.selection, question, kept, now, self.policy)
        refused = {
            stackoverflow_question(q["question_id"]).uid: q
            for q in questions
            if not decisions[q["question_id"]]
        }
        known = checkpointer.stored(list(refused))
        chosen = [
            q
            for q in questions
            if decisions[q["question_id"]] or stackoverflow_question(q["question_id"]).uid in known
        ]
        return chosen, sum(decisions.values())

    def _commit(
        self,
        checkpointer: Checkpointer,
        envelopes: list[Envelope],
        seen: int,
        extra: dict[str, Any] | None = None,
    ) -> int:
        checkpoint = {
            **checkpointer.checkpoint,
            **(extra or {}),
            **self.waiting.checkpoint(),
            "quota_remaining": self.client.quota_remaining,
        }
        return checkpointer.commit_page(envelopes, checkpoint, seen=seen)

    def _page(self, checkpointer: Checkpointer, tag: str, state: dict[str, Any]) -> dict[str, Any]:
        # Ordered by last activity, not creation: a new answer or an edit moves an older
        # question past the cursor, so the next run fetches it again. Accepting an answer
        # does not move it on the real sites: `_recheck` covers that.
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
        envelopes = list(self._with_replies(self._select(checkpointer, fresh)[0]))
        next_state = _next_state(state, questions)
        next_state["done"] = not response.get("has_more") or _no_progress(questions, state)
        tags = {**checkpointer.checkpoint.get("tags", {}), tag: next_state}
        high_water = max(
            filter(None, [checkpointer.checkpoint.get("high_water"), next_state["cursor"]]),
            default=None,
        )
        stored = self._commit(
            checkpointer, envelopes, len(fresh), {"tags": tags, "high_water": high_water}
        )
        self._report(tag, len(fresh), stored)
        return next_state

    def _report(self, what: str, seen: int, stored: int) -> None:
        self.on_page(
            {
                "tag": what,
                "seen": seen,
                "stored": stored,
                "requests": self.client.requests,
                "quota_remaining": self.client.quota_remaining,
            }
        )

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
            seen: set[tuple[str, Any]] = set()
            while True:
                response = self.client.get(endpoint, ids=batch, page=page, pagesize=PAGE_SIZE)
                fresh = [i for i in response.get("items", []) if _item_key(i) not in seen]
                seen.update(_item_key(i) for i in fresh)
                items.extend(fresh)
                # a page of nothing new ends the loop, has_more or not: a server that
                # ignores `page` (a replay of recorded responses) would be asked for ever
                if not response.get("has_more") or not fresh:
                    break
                page += 1
        return items


_ID_KEYS = ("comment_id", "answer_id", "question_id")


def _item_key(item: dict[str, Any]) -> tuple[str, Any]:
    """An item's own id (a comment also names its post, an answer its question)."""
    for key in _ID_KEYS:
        if key in item:
            return key, item[key]
    return "item", repr(sorted(item.items()))


def _no_progress(questions: list[dict[str, Any]], state: dict[str, Any]) -> bool:
    """Whether a page of the listing brought nothing past what was read: every question
    older than the cursor or read at its second already. The API never sends such a page
    (`min` bounds it, the page number moves it on); a server that ignores `min` and `page`
    would send it for ever with has_more, so it ends the tag (the cursor is kept)."""
    cursor = state["cursor"]
    if cursor is None or not questions:
        return False
    boundary = set(state.get("boundary") or [])
    return all(
        _activity(q) < cursor or (_activity(q) == cursor and q["question_id"] in boundary)
        for q in questions
    )


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
