"""A fake of the Stack Exchange API v2.3, served over real HTTP on 127.0.0.1.

The Stack Overflow crawler is tested against this server instead of api.stackexchange.com so
that paging, quota, backoff and broken transports can be reproduced exactly and offline, while
the real ``stackapi`` and ``requests`` clients still do the talking.

Only the methods the crawler uses are implemented: ``/sites``, ``/questions``,
``/questions/{ids}``, ``/questions/{ids}/answers``, ``/questions/{ids}/comments``,
``/answers/{ids}`` and ``/answers/{ids}/comments``. Responses use the default wrapper
(``items``, ``has_more``, ``quota_max``, ``quota_remaining`` and, when asked for, ``backoff``);
errors use the error wrapper (``error_id``, ``error_name``, ``error_message``) with HTTP 400
whatever the error (the API's error-handling docs: "The HTTP code will be 400 (Bad Request)
for all errors"). Every response is gzip-compressed, as the API's compression docs guarantee
("all responses are compressed"), with ``Content-Encoding: gzip`` unless
``announce_encoding`` is False (the docs: assume GZIP when the header is missing). Bodies
are always included, whatever ``filter`` says.
"""

from __future__ import annotations

import copy
import gzip
import html
import json
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

API_PREFIX = "/2.3/"
MAX_PAGE_SIZE = 100
MAX_IDS = 100
DEFAULT_PAGE_SIZE = 30
DEFAULT_CREATED = 1_700_000_000
SITE = "stackoverflow"
SITES: list[dict[str, Any]] = [
    {
        "api_site_parameter": "stackoverflow",
        "name": "Stack Overflow",
        "site_url": "https://stackoverflow.com",
        "site_type": "main_site",
    },
    {
        "api_site_parameter": "superuser",
        "name": "Super User",
        "site_url": "https://superuser.com",
        "site_type": "main_site",
    },
]
FAULTS = frozenset(
    {
        "http429",
        "http503",
        "backoff",
        "backoff_violation",
        "quota_exhausted",
        "reset",
        "truncated",
        "error",
    }
)
# Faults that stand in for a failure in front of the API, so the quota is not charged.
_UNCHARGED_FAULTS = frozenset({"http429", "http503", "error", "backoff_violation"})
THROTTLE_MESSAGE = "too many requests from this IP, more requests available in 86400 seconds"
# What the API answers (HTTP 400, error_id 502) to a call made before an earlier response's
# `backoff` had passed.
BACKOFF_VIOLATION_MESSAGE = "Violation of backoff parameter"

Item = dict[str, Any]
SortKeys = dict[str, Callable[[Item], int]]


def _slug(title: str) -> str:
    """Mimic Stack Overflow's URL slug so links look like the real ones."""
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return slug[:80].rstrip("-") or "question"


def make_question(
    qid: int,
    title: str,
    body: str,
    tags: Iterable[str],
    created: int,
    accepted: bool | int = True,
    **extra: Any,
) -> Item:
    """Build an API-shaped question so tests state only what they care about.

    ``accepted=True`` sets ``accepted_answer_id`` to ``qid * 10 + 1``; an int (not a bool) is
    used as the accepted answer's id; ``False`` leaves it out. ``extra`` overrides any field.
    """
    question: Item = {
        "question_id": qid,
        "title": title,
        "body": body,
        "tags": list(tags),
        "creation_date": created,
        "last_activity_date": created,
        "score": 0,
        "is_answered": bool(accepted),
        "answer_count": 1 if accepted else 0,
        "link": f"https://stackoverflow.com/questions/{qid}/{_slug(title)}",
        "owner": {"display_name": f"user{qid}"},
    }
    if accepted is True:
        question["accepted_answer_id"] = qid * 10 + 1
    elif accepted is not False:
        question["accepted_answer_id"] = int(accepted)
    question.update(extra)
    return question


def make_answer(
    aid: int, qid: int, body: str, accepted: bool = False, created: int = DEFAULT_CREATED
) -> Item:
    """Build an API-shaped answer."""
    return {
        "answer_id": aid,
        "question_id": qid,
        "body": body,
        "is_accepted": accepted,
        "score": 0,
        "creation_date": created,
        "last_activity_date": created,
        "owner": {"display_name": f"user{aid}"},
    }


def make_comment(cid: int, post_id: int, body: str, created: int = DEFAULT_CREATED) -> Item:
    """Build an API-shaped comment."""
    return {
        "comment_id": cid,
        "post_id": post_id,
        "body": body,
        "creation_date": created,
        "score": 0,
        "owner": {"display_name": f"user{cid}"},
    }


class ApiError(Exception):
    """An error the fake answers with, in the API's error wrapper."""

    def __init__(self, error_id: int, error_name: str, error_message: str, status: int = 400):
        super().__init__(error_message)
        self.status = status
        self.error_id = error_id
        self.error_name = error_name
        self.error_message = error_message

    def wrapper(self) -> Item:
        return {
            "error_id": self.error_id,
            "error_name": self.error_name,
            "error_message": self.error_message,
        }


def _bad_parameter(message: str) -> ApiError:
    return ApiError(400, "bad_parameter", message)


def _throttle() -> ApiError:
    return ApiError(502, "throttle_violation", THROTTLE_MESSAGE)


@dataclass
class _Fault:
    name: str
    path_contains: str
    remaining: int
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Reply:
    status: int
    body: bytes
    content_type: str = "application/json; charset=utf-8"
    fault: str | None = None


def _int_param(params: dict[str, str], name: str, default: int | None = None) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise _bad_parameter(f"{name} must be an integer") from None


def _ids(raw: str) -> list[int]:
    """Parse a ``;``-separated id vector, refusing what the real API refuses."""
    parts = [p for p in raw.split(";") if p != ""]
    if len(parts) > MAX_IDS:
        raise _bad_parameter(f"ids: too many ids (at most {MAX_IDS} are allowed)")
    try:
        return list(dict.fromkeys(int(p) for p in parts))
    except ValueError:
        raise _bad_parameter("ids must be a ';'-separated list of integers") from None


def _paginate(items: list[Item], params: dict[str, str], max_size: int = MAX_PAGE_SIZE) -> Item:
    page = _int_param(params, "page", 1)
    pagesize = _int_param(params, "pagesize", DEFAULT_PAGE_SIZE)
    assert page is not None and pagesize is not None
    if page < 1:
        raise _bad_parameter("page must be at least 1")
    if not 0 <= pagesize <= max_size:
        raise _bad_parameter(f"pagesize must be between 0 and {max_size}")
    start = (page - 1) * pagesize
    return {
        "items": copy.deepcopy(items[start : start + pagesize]),
        "has_more": start + pagesize < len(items),
    }


def _filter_and_sort(
    items: Iterable[Item], params: dict[str, str], keys: SortKeys, default_sort: str, id_key: str
) -> list[Item]:
    """Apply sort/order, min/max (on the sort field) and fromdate/todate (on creation)."""
    sort = params.get("sort") or default_sort
    if sort not in keys:
        raise _bad_parameter(f"sort must be one of {', '.join(sorted(keys))}")
    order = params.get("order") or "desc"
    if order not in ("asc", "desc"):
        raise _bad_parameter("order must be asc or desc")
    key = keys[sort]
    low, high = _int_param(params, "min"), _int_param(params, "max")
    fromdate, todate = _int_param(params, "fromdate"), _int_param(params, "todate")
    kept = [
        item
        for item in items
        if (low is None or key(item) >= low)
        and (high is None or key(item) <= high)
        and (fromdate is None or item["creation_date"] >= fromdate)
        and (todate is None or item["creation_date"] <= todate)
    ]
    return sorted(kept, key=lambda i: (key(i), i[id_key]), reverse=order == "desc")


def _activity(item: Item) -> int:
    return item.get("last_activity_date", item["creation_date"])


POST_SORTS: SortKeys = {
    "activity": _activity,
    "creation": lambda i: i["creation_date"],
    "votes": lambda i: i.get("score", 0),
}
COMMENT_SORTS: SortKeys = {
    "creation": lambda i: i["creation_date"],
    "votes": lambda i: i.get("score", 0),
}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeStackExchange

    def do_GET(self) -> None:
        self.fake._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class FakeStackExchange:
    """A Stack Exchange API v2.3 server holding test data, with injectable faults."""

    def __init__(
        self,
        questions: Iterable[Item],
        answers: Iterable[Item] = (),
        comments: Iterable[Item] = (),
        quota: int = 10000,
    ) -> None:
        self._questions: dict[int, Item] = {q["question_id"]: copy.deepcopy(q) for q in questions}
        self._answers: list[Item] = [copy.deepcopy(a) for a in answers]
        self._comments: list[Item] = [copy.deepcopy(c) for c in comments]
        self.quota_max = quota
        self.quota_remaining = quota
        # the API gzips every body; False leaves out the header that says so
        self.announce_encoding = True
        # True: answer as a replay of recorded responses may, the same first page whatever
        # `page`, `min` and `max` say (has_more as that page had it)
        self.ignore_paging = False
        self.requests: list[dict[str, Any]] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL without version, as ``StackAPI(base_url=...)`` wants it."""
        if self._server is None:
            raise RuntimeError("FakeStackExchange is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeStackExchange:
        """Serve on an ephemeral port in a daemon thread."""
        if self._server is not None:
            return self
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-stackexchange",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self) -> FakeStackExchange:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- test controls ---------------------------------------------------------------------

    def inject(self, fault: str, path_contains: str = "", times: int = 1, **options: Any) -> None:
        """Make the next ``times`` requests whose path contains ``path_contains`` fail.

        Faults are matched in injection order and each request consumes at most one.
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {sorted(FAULTS)}")
        with self._lock:
            self._faults.append(_Fault(fault, path_contains, times, dict(options)))

    def add_question(self, question: Item) -> None:
        """Add or replace a question, as if it was posted or edited between two calls."""
        with self._lock:
            self._questions[question["question_id"]] = copy.deepcopy(question)

    def add_answer(self, answer: Item) -> None:
        """Post an answer between two calls: like the real site, it moves its question's
        last activity to the answer's creation date."""
        with self._lock:
            self._answers.append(copy.deepcopy(answer))
            self._touch(answer["question_id"], answer["creation_date"])

    def add_comment(self, comment: Item) -> None:
        """Post a comment between two calls. A comment does not move a post's last activity
        on the real sites, so it does not here either."""
        with self._lock:
            self._comments.append(copy.deepcopy(comment))

    def accept_answer(
        self, question_id: int, answer_id: int, when: int, moves_activity: bool = False
    ) -> None:
        """The asker accepts an answer at `when`. As on the real sites, acceptance (like a
        vote) does not move the question's last activity, so a crawl that follows activity
        does not see it; `moves_activity=True` pretends it does."""
        with self._lock:
            for answer in self._answers:
                if answer["question_id"] == question_id:
                    answer["is_accepted"] = answer["answer_id"] == answer_id
            question = self._questions[question_id]
            question["accepted_answer_id"] = answer_id
            question["is_answered"] = True
            if moves_activity:
                self._touch(question_id, when)

    def edit_question(self, question_id: int, when: int, **fields: Any) -> None:
        """Edit a question's fields at `when`, which becomes its last activity. A field given
        as None is removed: the API leaves out the fields that have no value (a reopened
        question has no `closed_date`)."""
        with self._lock:
            question = self._questions[question_id]
            for name, value in fields.items():
                if value is None:
                    question.pop(name, None)
                else:
                    question[name] = copy.deepcopy(value)
            question["last_edit_date"] = when
            self._touch(question_id, when)

    def withdraw_acceptance(
        self, question_id: int, when: int, moves_activity: bool = False
    ) -> None:
        """The asker unaccepts the accepted answer at `when`; like acceptance, it does not
        move the question's last activity (unless `moves_activity`)."""
        with self._lock:
            for answer in self._answers:
                if answer["question_id"] == question_id:
                    answer["is_accepted"] = False
            self._questions[question_id].pop("accepted_answer_id", None)
            if moves_activity:
                self._touch(question_id, when)

    def _touch(self, question_id: int, when: int) -> None:
        question = self._questions[question_id]
        question["last_activity_date"] = max(when, question.get("last_activity_date", 0))

    def remove_question(self, question_id: int) -> None:
        """Delete a question, as if it was deleted between two calls."""
        with self._lock:
            self._questions.pop(question_id, None)

    def requests_for(self, fragment: str) -> list[dict[str, Any]]:
        """The recorded requests whose path contains ``fragment``."""
        with self._lock:
            return [r for r in self.requests if fragment in r["path"]]

    # -- serving ---------------------------------------------------------------------------

    def _take_fault(self, path: str) -> _Fault | None:
        for fault in self._faults:
            if fault.remaining > 0 and fault.path_contains in path:
                fault.remaining -= 1
                return fault
        return None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        split = urlsplit(handler.path)
        path = unquote(split.path)
        params = dict(parse_qsl(split.query, keep_blank_values=True))
        with self._lock:
            record: dict[str, Any] = {"path": path, "params": params}
            fault = self._take_fault(path)
            if fault is not None:
                record["fault"] = fault.name
            self.requests.append(record)
            if self.ignore_paging:
                params = {k: v for k, v in params.items() if k not in ("page", "min", "max")}
            reply = self._reply(path, params, fault)
        self._send(handler, reply, self.announce_encoding)

    def _reply(self, path: str, params: dict[str, str], fault: _Fault | None) -> _Reply:
        name = fault.name if fault else None
        options = fault.options if fault else {}
        if name == "http429":
            body = {
                "error_id": 502,
                "error_name": "throttle_violation",
                "error_message": "too many requests from this IP, more requests available "
                f"in {options.get('seconds', 1)} seconds",
            }
            return _Reply(429, _dump(body))
        if name == "backoff_violation":
            error = ApiError(502, "throttle_violation", BACKOFF_VIOLATION_MESSAGE)
            return _Reply(error.status, _dump(error.wrapper()))
        if name == "http503":
            return _Reply(503, b"<html>Service Unavailable</html>", "text/html; charset=utf-8")
        if name == "error":
            error = ApiError(
                int(options.get("error_id", 400)),
                str(options.get("error_name", "bad_parameter")),
                str(options.get("error_message", "injected error")),
                int(options.get("status", 400)),
            )
            return _Reply(error.status, _dump(error.wrapper()))
        if name == "quota_exhausted":
            self.quota_remaining = 0
        try:
            payload = self._charge_and_answer(path, params)
        except ApiError as error:
            return _Reply(error.status, _dump(error.wrapper()))
        if name == "backoff":
            payload["backoff"] = options.get("seconds", 1)
        return _Reply(200, _dump(payload), fault=name)

    def _charge_and_answer(self, path: str, params: dict[str, str]) -> Item:
        if self.quota_remaining <= 0:
            raise _throttle()
        self.quota_remaining -= 1
        payload = self._answer(path, params)
        payload["quota_max"] = self.quota_max
        payload["quota_remaining"] = self.quota_remaining
        return payload

    def _answer(self, path: str, params: dict[str, str]) -> Item:
        if not path.startswith(API_PREFIX):
            raise _no_method()
        route = path[len(API_PREFIX) :].strip("/").split("/")
        if route == ["sites"]:
            return _paginate(SITES, params, max_size=10_000)
        if not _is_known(route):
            raise _no_method()
        questions, answers, comments = self._site_data(params)
        match route:
            case ["questions"]:
                tags = [t.lower() for t in params.get("tagged", "").split(";") if t]
                chosen = [q for q in questions if _has_tags(q, tags)]
                return self._posts(chosen, params, "question_id")
            case ["questions", ids]:
                wanted = set(_ids(ids))
                return self._posts(
                    [q for q in questions if q["question_id"] in wanted], params, "question_id"
                )
            case ["questions", ids, "answers"]:
                wanted = set(_ids(ids))
                chosen = [a for a in answers if a["question_id"] in wanted]
                return self._posts(chosen, params, "answer_id")
            case ["answers", ids]:
                wanted = set(_ids(ids))
                return self._posts(
                    [a for a in answers if a["answer_id"] in wanted], params, "answer_id"
                )
            case ["questions" | "answers", ids, "comments"]:
                wanted = set(_ids(ids))
                chosen = [c for c in comments if c["post_id"] in wanted]
                ordered = _filter_and_sort(chosen, params, COMMENT_SORTS, "creation", "comment_id")
                return _paginate(ordered, params)
        raise _no_method()

    def _site_data(self, params: dict[str, str]) -> tuple[list[Item], list[Item], list[Item]]:
        """All data belongs to Stack Overflow; other known sites are empty."""
        site = params.get("site")
        if not site:
            raise _bad_parameter("site is required")
        if site not in {s["api_site_parameter"] for s in SITES}:
            raise _bad_parameter(f"No site found for name `{site}`")
        if site != SITE:
            return [], [], []
        return list(self._questions.values()), self._answers, self._comments

    @staticmethod
    def _posts(items: list[Item], params: dict[str, str], id_key: str) -> Item:
        return _paginate(_filter_and_sort(items, params, POST_SORTS, "activity", id_key), params)

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, reply: _Reply, announce: bool = True) -> None:
        body = gzip.compress(reply.body)
        if reply.fault == "truncated":
            body = body[: len(body) // 2]
        handler.send_response(reply.status)
        handler.send_header("Content-Type", reply.content_type)
        if announce:
            handler.send_header("Content-Encoding", "gzip")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        if reply.fault == "reset":
            # Promise the whole body, deliver half, then hang up.
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            handler.close_connection = True
            return
        handler.wfile.write(body)


def _no_method() -> ApiError:
    return ApiError(404, "no_method", "no method found with this name")


def _is_known(route: list[str]) -> bool:
    match route:
        case ["questions"] | ["questions" | "answers", _]:
            return True
        case ["questions", _, "answers" | "comments"] | ["answers", _, "comments"]:
            return True
    return False


def _has_tags(question: Item, tags: list[str]) -> bool:
    # items hold tags HTML-encoded, as the API sends them; `tagged` names the tag itself
    have = {html.unescape(t).lower() for t in question.get("tags", [])}
    return all(t in have for t in tags)


def _dump(payload: Item) -> bytes:
    return json.dumps(payload).encode("utf-8")
