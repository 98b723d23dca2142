"""A small fake of the GitHub REST API v3, served over real HTTP on 127.0.0.1.

Why: the crawler talks to GitHub through PyGithub (requests + urllib3 retries), so its tests need
a server that speaks the same wire protocol -- Link-header pagination, the 1000-result search cap,
rate-limit headers, 301/404/410 answers and broken connections -- without touching the network.
All content served is the test data passed in.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import re
import socket
import struct
import threading
import time
import urllib.parse
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

API = "https://api.github.com"
WEB = "https://github.com"
DOCS = "https://docs.github.com/rest"
FAULTS = frozenset(
    {
        *("rate_limited", "secondary", "http503", "http500", "reset", "truncated"),
        *("incomplete", "html200"),
    }
)
# Faults applied to the answer after it is made, rather than standing in for it.
_AFTER_FAULTS = ("reset", "truncated", "incomplete")
PRIMARY_MESSAGE = "API rate limit exceeded for user ID 1."
SECONDARY_MESSAGE = (
    "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
)
CAP_MESSAGE = "Only the first 1000 search results are available"
DELETED_MESSAGE = "This issue was deleted"
ISSUES_DISABLED_MESSAGE = "Issues are disabled for this repo"
UNSEARCHABLE = (
    "The listed users and repositories cannot be searched either because the resources do not "
    "exist or you do not have permission to view them."
)
WINDOWS = {"core": 3600, "search": 60}  # seconds until a resource's quota refills, as on GitHub


# --------------------------------------------------------------------------- test data builders


def _stable_id(text: str) -> int:
    """Deterministic positive ids, so repeated runs serve identical payloads."""
    return zlib.crc32(text.encode()) + 1


def _user(login: str) -> dict[str, Any]:
    uid = _stable_id(f"user:{login}")
    return {
        "login": login,
        "id": uid,
        "node_id": f"U_fake{uid}",
        "url": f"{API}/users/{login}",
        "html_url": f"{WEB}/{login}",
        "type": "User",
        "site_admin": False,
    }


def _label(repo: str, name: str) -> dict[str, Any]:
    lid = _stable_id(f"label:{repo}:{name}")
    return {
        "id": lid,
        "node_id": f"LA_fake{lid}",
        "url": f"{API}/repos/{repo}/labels/{urllib.parse.quote(name)}",
        "name": name,
        "color": f"{lid & 0xFFFFFF:06x}",
        "default": False,
        "description": None,
    }


def make_issue(
    repo: str,
    number: int,
    title: str,
    body: str,
    created: str,
    state: str = "closed",
    labels: Iterable[str] = (),
    pull_request: bool = False,
    closed: str | None = None,
    user: str = "someone",
    comments: int = 0,
) -> dict[str, Any]:
    """An issue (or pull request) shaped like GitHub's `GET /repos/{o}/{r}/issues/{n}` answer.

    API URLs use https://api.github.com; the fake rewrites them to its own base when serving,
    so PyGithub's lazy completion and `get_comments()` come back to the fake.
    """
    if state not in ("open", "closed"):
        raise ValueError(f"state must be 'open' or 'closed', not {state!r}")
    _parse_instant(created)  # fail early on malformed test data
    closed_at = (closed or created) if state == "closed" else None
    url = f"{API}/repos/{repo}/issues/{number}"
    iid = _stable_id(f"issue:{repo}#{number}")
    issue: dict[str, Any] = {
        "url": url,
        "repository_url": f"{API}/repos/{repo}",
        "labels_url": url + "/labels{/name}",
        "comments_url": url + "/comments",
        "events_url": url + "/events",
        "timeline_url": url + "/timeline",
        "html_url": f"{WEB}/{repo}/{'pull' if pull_request else 'issues'}/{number}",
        "id": iid,
        "node_id": f"{'PR' if pull_request else 'I'}_fake{iid}",
        "number": number,
        "title": title,
        "user": _user(user),
        "labels": [_label(repo, name) for name in labels],
        "state": state,
        "state_reason": "completed" if state == "closed" and not pull_request else None,
        "locked": False,
        "assignee": None,
        "assignees": [],
        "milestone": None,
        "comments": comments,
        "created_at": created,
        "updated_at": max([created, closed_at or created], key=_parse_instant),
        "closed_at": closed_at,
        "author_association": "NONE",
        "active_lock_reason": None,
        "body": body,
        "reactions": _reactions(url),
        "performed_via_github_app": None,
    }
    if pull_request:
        issue["draft"] = False
        issue["pull_request"] = {
            "url": f"{API}/repos/{repo}/pulls/{number}",
            "html_url": f"{WEB}/{repo}/pull/{number}",
            "diff_url": f"{WEB}/{repo}/pull/{number}.diff",
            "patch_url": f"{WEB}/{repo}/pull/{number}.patch",
            "merged_at": None,
        }
    return issue


def _reactions(url: str) -> dict[str, Any]:
    """The reaction rollup GitHub puts on issues and comments (no reactions yet)."""
    counts = ("+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes")
    return {"url": url + "/reactions", "total_count": 0, **dict.fromkeys(counts, 0)}


def make_comment(
    repo: str, number: int, comment_id: int, body: str, created: str, user: str = "someone"
) -> dict[str, Any]:
    """An issue comment shaped like an item of `GET .../issues/{n}/comments`."""
    _parse_instant(created)
    return {
        "url": f"{API}/repos/{repo}/issues/comments/{comment_id}",
        "html_url": f"{WEB}/{repo}/issues/{number}#issuecomment-{comment_id}",
        "issue_url": f"{API}/repos/{repo}/issues/{number}",
        "id": comment_id,
        "node_id": f"IC_fake{comment_id}",
        "user": _user(user),
        "created_at": created,
        "updated_at": created,
        "author_association": "NONE",
        "body": body,
        "reactions": _reactions(f"{API}/repos/{repo}/issues/comments/{comment_id}"),
        "performed_via_github_app": None,
    }


# --------------------------------------------------------------------------- search query language


def _parse_instant(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _bound(text: str) -> tuple[datetime, datetime]:
    """The first and last instant a date (a whole UTC day) or a datetime stands for."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        start = datetime.fromisoformat(text).replace(tzinfo=UTC)
        return start, start + timedelta(days=1) - timedelta(microseconds=1)
    instant = _parse_instant(text)
    return instant, instant


def _time_predicate(value: str) -> Callable[[datetime], bool]:
    """GitHub's date-range syntax: A..B, A..*, *..B, >=A, >A, <=A, <A, or a bare A."""
    m = re.match(r"(>=|<=|>|<)(.*)", value)
    if m:
        op, (lo, hi) = m[1], _bound(m[2])
        return {
            ">=": lambda t: t >= lo,
            "<=": lambda t: t <= hi,
            ">": lambda t: t > hi,
            "<": lambda t: t < lo,
        }[op]
    if ".." in value:
        left, right = value.split("..", 1)
        lo = _bound(left)[0] if left != "*" else datetime.min.replace(tzinfo=UTC)
        hi = _bound(right)[1] if right != "*" else datetime.max.replace(tzinfo=UTC)
        return lambda t: lo <= t <= hi
    lo, hi = _bound(value)
    return lambda t: lo <= t <= hi


_TOKEN = re.compile(r'(-?)([A-Za-z_]+):("[^"]*"|\S+)|"([^"]*)"|(\S+)')
_QUALIFIERS = {
    *("repo", "is", "type", "state", "label", "author", "in"),
    *("created", "updated", "closed"),
}


@dataclass
class _Query:
    """A parsed `q`: repos (ORed), other qualifiers (ANDed) and keyword groups (DNF)."""

    repos: list[str] = field(default_factory=list)
    filters: list[tuple[bool, Callable[[dict[str, Any]], bool]]] = field(default_factory=list)
    groups: list[list[tuple[bool, str]]] = field(default_factory=lambda: [[]])
    fields: tuple[str, ...] = ("title", "body")

    def matches(self, issue: dict[str, Any], repo: str, comments: list[dict[str, Any]]) -> bool:
        if self.repos and repo.lower() not in self.repos:
            return False
        if not all(pred(issue) != negated for negated, pred in self.filters):
            return False
        groups = [g for g in self.groups if g]
        if not groups:
            return True
        texts = [str(issue.get(f) or "") for f in self.fields if f in ("title", "body")]
        if "comments" in self.fields:
            texts += [str(c.get("body") or "") for c in comments]
        text = "\n".join(texts).lower()
        return any(all((word in text) != negated for negated, word in g) for g in groups)


def _filter(name: str, value: str) -> Callable[[dict[str, Any]], bool]:
    value_l = value.lower()
    if name in ("is", "type", "state"):
        if value_l == "issue":
            return lambda i: "pull_request" not in i
        if value_l in ("pr", "pull-request"):
            return lambda i: "pull_request" in i
        if value_l in ("open", "closed"):
            return lambda i: i["state"] == value_l
        raise _SearchError(f"unsupported qualifier {name}:{value}")
    if name == "repo":  # only reached for -repo:, as positive repos are ORed separately
        return lambda i: i["repository_url"].lower().endswith(f"/repos/{value_l}")
    if name == "label":
        return lambda i: any(lab["name"].lower() == value_l for lab in i["labels"])
    if name == "author":
        return lambda i: i["user"]["login"].lower() == value_l
    if name in ("created", "updated", "closed"):
        test = _time_predicate(value)
        key = f"{name}_at"
        return lambda i: bool(i.get(key)) and test(_parse_instant(i[key]))
    raise _SearchError(f"unsupported qualifier {name}:{value}")


def parse_query(q: str) -> _Query:
    """Parse GitHub issue-search syntax; juxtaposed keywords are ANDed, OR separates groups."""
    query = _Query()
    negate_next = False
    for match in _TOKEN.finditer(q):
        minus, name, value, phrase, word = match.groups()
        if name is not None and name.lower() in _QUALIFIERS:
            name, value = name.lower(), value.strip('"')
            if name == "repo" and not minus:
                query.repos.append(value.lower())
            elif name == "in":
                query.fields = tuple(f for f in value.lower().split(",") if f)
            else:
                query.filters.append((bool(minus), _filter(name, value)))
            continue
        if phrase is None and word is None:  # an unknown qualifier: search it as a keyword
            word = match.group(0)
        if word == "OR":
            query.groups.append([])
        elif word == "AND":
            pass
        elif word == "NOT":
            negate_next = True
        else:
            query.groups[-1].append((negate_next, (phrase if phrase is not None else word).lower()))
            negate_next = False
    return query


class _SearchError(ValueError):
    """A query GitHub would answer with 422 Validation Failed."""


# --------------------------------------------------------------------------- the server


@dataclass
class _Fault:
    name: str
    path_contains: str
    times: int
    options: dict[str, Any]


@dataclass
class _Bucket:
    """One rate-limit resource (core or search) with GitHub's fixed-window refill."""

    limit: int
    window: int
    remaining: int = 0
    reset: int = 0

    def refresh(self, now: float) -> None:
        if now >= self.reset:
            self.remaining = self.limit
            self.reset = int(now) + self.window

    def snapshot(self, resource: str) -> dict[str, Any]:
        used = self.limit - self.remaining
        return {
            "limit": self.limit,
            "remaining": self.remaining,
            "reset": self.reset,
            "used": used,
            "resource": resource,
        }


@dataclass
class _Reply:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)


def _error(status: int, message: str, **extra: Any) -> _Reply:
    """GitHub's error body: message, documentation_url and the status as a string."""
    body = {"message": message, **extra, "documentation_url": DOCS, "status": str(status)}
    return _Reply(status, body)


def _incomplete(reply: _Reply, keep: float) -> None:
    """A search that timed out: 200, `incomplete_results: true`, only the results found in
    time (the first `keep` share of the page), the total as far as it got."""
    body = reply.body
    if reply.status != 200 or not isinstance(body, dict) or "incomplete_results" not in body:
        return
    body["items"] = body["items"][: int(len(body["items"]) * keep)]
    body["incomplete_results"] = True


def _invalid(message: str, code: str = "invalid") -> _Reply:
    """GitHub's 422 for a search it cannot run (missing q, unknown repo, bad qualifier)."""
    problem = {"message": message, "resource": "Search", "field": "q", "code": code}
    return _error(422, "Validation Failed", errors=[problem])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeGitHub
    connections: set[socket.socket]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, like api.github.com; requests pools connections
    timeout = 30
    server: _Server

    def setup(self) -> None:
        super().setup()
        # headers and body go out in separate writes: without this, Nagle + delayed ACK
        # would add ~40 ms to every response
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.connections.discard(self.connection)

    def _any(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)  # drain the body so the connection stays usable
        self.server.fake._serve(self)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _any

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr lines; tests inspect `FakeGitHub.requests` instead."""


class FakeGitHub:
    """Serves issues, comments and search over HTTP the way api.github.com does."""

    def __init__(
        self,
        issues: Mapping[str, list[dict[str, Any]]],
        comments: Mapping[tuple[str, int], list[dict[str, Any]]] | None = None,
        rate_limit: int = 5000,
        search_cap: int = 1000,
    ) -> None:
        self._lock = threading.RLock()
        self._repos: dict[str, str] = {}  # lower-case full name -> canonical full name
        self._issues: dict[str, dict[int, dict[str, Any]]] = {}
        for repo, items in issues.items():
            self._ensure_repo(repo)
            for issue in items:
                self.add_issue(repo, issue)
        self._comments: dict[tuple[str, int], list[dict[str, Any]]] = {}
        for (repo, number), items in (comments or {}).items():
            for comment in items:
                self.add_comment(repo, number, comment)
        self.search_cap = search_cap
        self._buckets = {name: _Bucket(rate_limit, window) for name, window in WINDOWS.items()}
        self._gone: dict[tuple[str, int], str] = {}  # -> the 410's message
        self._blocked: dict[str, str] = {}  # repository -> the block's reason
        # False: no x-ratelimit-* headers and /rate_limit answers 404, as on a GitHub
        # Enterprise server whose rate limiting is turned off
        self.rate_limits_enabled = True
        # True: searches ignore their created:/updated:/closed: windows
        self.ignore_windows = False
        self._moved: dict[tuple[str, int], tuple[str, int, str]] = {}
        self._faults: list[_Fault] = []
        self.requests: list[dict[str, Any]] = []
        self.url = ""
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ---- test-facing controls

    def add_issue(self, repo: str, issue: dict[str, Any]) -> None:
        """Add (or replace, by number) an issue, e.g. to simulate one created mid-crawl."""
        with self._lock:
            repo = self._ensure_repo(repo)
            self._issues[repo][int(issue["number"])] = copy.deepcopy(issue)

    def reopen_issue(self, repo: str, number: int, when: str) -> None:
        """Reopen a closed issue at `when`, as GitHub records it: state open, state_reason
        "reopened", closed_at null, updated_at moved to `when`."""
        with self._lock:
            issue = self._issues[self._canonical(repo) or repo][number]
            issue.update(state="open", state_reason="reopened", closed_at=None, updated_at=when)

    def close_issue(self, repo: str, number: int, when: str, reason: str = "completed") -> None:
        """Close an issue at `when` (state_reason completed or not_planned)."""
        with self._lock:
            issue = self._issues[self._canonical(repo) or repo][number]
            issue.update(state="closed", state_reason=reason, closed_at=when, updated_at=when)

    def remove_issue(self, repo: str, number: int) -> None:
        """Drop an issue so it 404s and vanishes from search; KeyError if it was not there."""
        with self._lock:
            del self._issues[self._canonical(repo) or repo][number]

    def add_comment(self, repo: str, number: int, comment: dict[str, Any]) -> None:
        """Append a comment to an issue's thread (served in creation order)."""
        with self._lock:
            repo = self._ensure_repo(repo)
            thread = self._comments.setdefault((repo, number), [])
            thread.append(copy.deepcopy(comment))
            thread.sort(key=lambda c: (_parse_instant(c["created_at"]), c["id"]))

    def gone(self, repo: str, number: int, message: str = DELETED_MESSAGE) -> None:
        """Make an issue answer 410 Gone (deleted) and drop out of search."""
        with self._lock:
            self._gone[(self._canonical(repo) or repo, number)] = message

    def disable_issues(self, repo: str) -> None:
        """Turn a repository's issues off: each answers 410 "Issues are disabled for this
        repo" and leaves search."""
        with self._lock:
            canonical = self._ensure_repo(repo)
            for number in self._issues[canonical]:
                self._gone[(canonical, number)] = ISSUES_DISABLED_MESSAGE

    def block(self, repo: str, reason: str = "tos") -> None:
        """Take a repository down as GitHub does: 451 for a DMCA notice, 403 otherwise, with
        {"message": "Repository access blocked", "block": {...}} and no documentation_url."""
        with self._lock:
            self._blocked[self._ensure_repo(repo)] = reason

    def moved(
        self, repo: str, number: int, new_repo: str, new_number: int, location: str = "fake"
    ) -> None:
        """Make an issue answer 301 to its new home (transferred); the old one leaves search.

        `location` is what the 301 names: "fake" (this server's /repos/{new}/... path),
        "github" (GitHub's form, https://api.github.com/repositories/{id}/issues/{n} with
        the query kept, as recorded responses have it) or "none" (an empty Location, as
        GitHub answers for some transferred issues)."""
        if location not in ("fake", "github", "none"):
            raise ValueError(f"location must be fake, github or none, not {location!r}")
        with self._lock:
            self._ensure_repo(new_repo)
            self._moved[(self._canonical(repo) or repo, number)] = (
                self._canonical(new_repo) or new_repo,
                new_number,
                location,
            )

    def inject(self, fault: str, path_contains: str = "", times: int = 1, **options: Any) -> None:
        """Make the next `times` requests whose path+query contains `path_contains` fail.

        Faults: rate_limited (reset_in=2, status=403 or 429), secondary (retry_after=1 or
        None for no header, status=403, message=GitHub's current wording), http503
        (text=False, retry_after=None), http500, reset (hard=False: RST instead of FIN),
        truncated, incomplete (keep=0.5), html200 (a 200 with an HTML page).
        """
        if fault not in FAULTS:
            raise ValueError(f"unknown fault {fault!r}; expected one of {sorted(FAULTS)}")
        with self._lock:
            self._faults.append(_Fault(fault, path_contains, times, dict(options)))

    def requests_for(self, fragment: str) -> list[dict[str, Any]]:
        """The recorded requests whose path contains `fragment`."""
        with self._lock:
            return [r for r in self.requests if fragment in r["path"]]

    def remaining(self, resource: str = "core") -> int:
        """What X-RateLimit-Remaining would say now for `resource` (core or search)."""
        with self._lock:
            bucket = self._buckets[resource]
            bucket.refresh(time.time())
            return bucket.remaining

    # ---- lifecycle

    def start(self) -> FakeGitHub:
        """Bind an ephemeral port on 127.0.0.1 and serve from a daemon thread."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        server.connections = set()
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-github"
        )
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and cut idle keep-alive connections so no handler thread lingers."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        for conn in list(server.connections):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeGitHub:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # ---- request handling

    def _canonical(self, repo: str) -> str | None:
        return self._repos.get(repo.lower())

    def _ensure_repo(self, repo: str) -> str:
        canonical = self._repos.setdefault(repo.lower(), repo)
        self._issues.setdefault(canonical, {})
        return canonical

    def _take_fault(self, target: str) -> _Fault | None:
        for fault in self._faults:
            if fault.times > 0 and fault.path_contains in target:
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
                return fault
        return None

    def _serve(self, handler: _Handler) -> None:
        target = handler.path
        parts = urllib.parse.urlsplit(target)
        path = parts.path
        params = {k: v[-1] for k, v in urllib.parse.parse_qs(parts.query).items()}
        resource = "search" if path.startswith("/search/") else "core"
        with self._lock:
            fault = self._take_fault(target)
            entry: dict[str, Any] = {
                "method": handler.command,
                "path": path,
                "params": params,
                "headers": dict(handler.headers.items()),
                "fault": fault.name if fault else None,
                "status": None,
            }
            self.requests.append(entry)
            bucket = self._buckets[resource]
            now = time.time()
            bucket.refresh(now)
            rate = bucket.snapshot(resource)
            reply: _Reply | None = None
            if fault is not None and fault.name not in _AFTER_FAULTS:
                reply = self._fault_reply(fault, rate, now)
            elif path != "/rate_limit" and bucket.remaining <= 0:
                entry["fault"] = "exhausted"  # the real quota ran out, not an injected fault
                reply = _error(403, PRIMARY_MESSAGE)
            else:
                if path != "/rate_limit":  # GitHub does not charge for reading the quota
                    bucket.remaining -= 1
                rate = bucket.snapshot(resource)
                try:
                    reply = self._route(handler.command, path, params)
                except ValueError as exc:  # a malformed query or date: GitHub says 422
                    reply = _invalid(str(exc))
                if fault is not None and fault.name == "incomplete":
                    _incomplete(reply, fault.options.get("keep", 0.5))
            entry["status"] = reply.status
            if isinstance(reply.body, str):
                payload = reply.body.encode()
            else:
                payload = json.dumps(self._rebase(reply.body)).encode()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "X-GitHub-Media-Type": "github.v3; format=json",
            "X-GitHub-Request-Id": f"FAKE:{len(self.requests):08X}",
            # lower-case, as api.github.com sends them (HTTP/2 allows no other case)
            "x-ratelimit-limit": str(rate["limit"]),
            "x-ratelimit-remaining": str(rate["remaining"]),
            "x-ratelimit-reset": str(rate["reset"]),
            "x-ratelimit-used": str(rate["used"]),
            "x-ratelimit-resource": resource,
            **reply.headers,
        }
        if not self.rate_limits_enabled:  # GitHub Enterprise with rate limiting off
            headers = {k: v for k, v in headers.items() if not k.startswith("x-ratelimit-")}
        if fault is not None and fault.name == "truncated":
            payload = payload[: len(payload) // 2]
        if fault is not None and fault.name == "reset":
            self._send(handler, reply.status, headers, payload, cut=True)
            if fault.options.get("hard"):
                handler.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
            handler.close_connection = True
            return
        self._send(handler, reply.status, headers, payload)

    @staticmethod
    def _send(
        handler: _Handler, status: int, headers: dict[str, str], payload: bytes, cut: bool = False
    ) -> None:
        handler.send_response(status)
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload[: len(payload) // 2] if cut else payload)
        handler.wfile.flush()

    def _fault_reply(self, fault: _Fault, rate: dict[str, Any], now: float) -> _Reply:
        opts = fault.options
        if fault.name == "rate_limited":
            rate.update(remaining=0, used=rate["limit"], reset=int(now + opts.get("reset_in", 2)))
            return _error(int(opts.get("status", 403)), PRIMARY_MESSAGE)
        if fault.name == "secondary":
            message = str(opts.get("message", SECONDARY_MESSAGE))
            reply = _error(int(opts.get("status", 403)), message)
            if opts.get("retry_after", 1) is not None:  # GitHub does not always send it
                reply.headers["retry-after"] = str(opts.get("retry_after", 1))
            return reply
        if fault.name == "http500":
            return _Reply(500, {"message": "Server Error"})
        if fault.name == "html200":  # a page from something between us and GitHub
            reply = _Reply(200, "<html><body>Please sign in to the network</body></html>")
            reply.headers["Content-Type"] = "text/html; charset=utf-8"
            return reply
        # http503
        if opts.get("text"):
            reply = _Reply(503, "<html><body>503 Service Unavailable</body></html>")
            reply.headers["Content-Type"] = "text/html; charset=utf-8"
        else:
            reply = _Reply(503, {"message": "Service Unavailable"})
        if opts.get("retry_after") is not None:
            reply.headers["Retry-After"] = str(opts["retry_after"])
        return reply

    def _rebase(self, value: Any) -> Any:
        """Point API URLs at this server, as GitHub Enterprise's URLs point at itself."""
        if isinstance(value, dict):
            return {
                k: (self.url + v[len(API) :])
                if k.endswith("url") and isinstance(v, str) and v.startswith(API)
                else self._rebase(v)
                for k, v in value.items()
            }
        if isinstance(value, list):
            return [self._rebase(v) for v in value]
        return value

    # ---- endpoints

    def _route(self, method: str, path: str, params: dict[str, str]) -> _Reply:
        if method != "GET":
            return _error(404, "Not Found")
        if path == "/rate_limit":
            if not self.rate_limits_enabled:
                return _error(404, "Rate limiting is not enabled.")
            return self._rate_limit()
        if path == "/search/issues":
            return self._search(path, params)
        by_id = re.fullmatch(r"/repositories/(\d+)(/.*)?", path)
        if by_id:  # GitHub's address of a repository by its id, whatever its name now
            named = {_stable_id(f"repo:{r}"): r for r in self._issues}.get(int(by_id[1]))
            if named is None:
                return _error(404, "Not Found")
            path = f"/repos/{named}{by_id[2] or ''}"
        m = re.fullmatch(r"/repos/([^/]+)/([^/]+)(?:/issues/(\d+)(/comments)?)?", path)
        if not m:
            return _error(404, "Not Found")
        repo = self._canonical(f"{m[1]}/{m[2]}")
        if repo is None:
            return _error(404, "Not Found")
        if repo in self._blocked:
            reason = self._blocked[repo]
            block = {"reason": reason, "created_at": "2021-06-08T01:02:15Z"}
            block["html_url"] = f"{WEB}/tos" if reason != "dmca" else f"{WEB}/github/dmca"
            body = {"message": "Repository access blocked", "block": block}
            return _Reply(451 if reason == "dmca" else 403, body)
        if m[3] is None:
            return _Reply(200, self._repository(repo))
        number = int(m[3])
        if (repo, number) in self._moved:
            return self._moved_reply(repo, number, m[4] or "", params)
        if (repo, number) in self._gone:
            return _error(410, self._gone[(repo, number)])
        issue = self._issues[repo].get(number)
        if issue is None:
            return _error(404, "Not Found")
        if m[4] is None:
            return _Reply(200, issue)
        return self._page(path, params, self._comments.get((repo, number), []))

    def _moved_reply(self, repo: str, number: int, rest: str, params: dict[str, str]) -> _Reply:
        new_repo, new_number, style = self._moved[(repo, number)]
        if style == "none":
            location = ""
        elif style == "github":
            query = f"?{urllib.parse.urlencode(params)}" if params else ""
            rid = _stable_id(f"repo:{new_repo}")
            location = f"{API}/repositories/{rid}/issues/{new_number}{rest}{query}"
        else:
            location = f"{self.url}/repos/{new_repo}/issues/{new_number}{rest}"
        reply = _error(301, "Moved Permanently", url=location)
        reply.headers["Location"] = location
        return reply

    def _repository(self, repo: str) -> dict[str, Any]:
        owner, name = repo.split("/", 1)
        rid = _stable_id(f"repo:{repo}")
        return {
            "id": rid,
            "node_id": f"R_fake{rid}",
            "name": name,
            "full_name": repo,
            "owner": {**_user(owner), "type": "Organization"},
            "private": False,
            "html_url": f"{WEB}/{repo}",
            "url": f"{API}/repos/{repo}",
            "issues_url": f"{API}/repos/{repo}/issues{{/number}}",
            "has_issues": True,
        }

    def _rate_limit(self) -> _Reply:
        core = self._buckets["core"].snapshot("core")
        search = self._buckets["search"].snapshot("search")
        graphql = {"limit": 5000, "remaining": 5000, "reset": core["reset"], "used": 0}
        resources = {"core": core, "search": search, "graphql": {**graphql, "resource": "graphql"}}
        return _Reply(200, {"resources": resources, "rate": core})

    @staticmethod
    def _paging(params: dict[str, str]) -> tuple[int, int]:
        try:
            per_page = min(max(int(params.get("per_page", 30)), 1), 100)
        except ValueError:
            per_page = 30
        try:
            page = max(int(params.get("page", 1)), 1)
        except ValueError:
            page = 1
        return page, per_page

    def _link(self, path: str, params: dict[str, str], page: int, last: int) -> str:
        """GitHub's Link header: prev, next, last, first -- same query, another page."""

        def url(p: int) -> str:
            return f"<{self.url}{path}?{urllib.parse.urlencode({**params, 'page': str(p)})}>"

        links = []
        if page > 1:
            links.append(f'{url(min(page - 1, max(last, 1)))}; rel="prev"')
        if page < last:
            links += [f'{url(page + 1)}; rel="next"', f'{url(last)}; rel="last"']
        if page > 1:
            links.append(f'{url(1)}; rel="first"')
        return ", ".join(links)

    def _page(self, path: str, params: dict[str, str], items: list[dict[str, Any]]) -> _Reply:
        page, per_page = self._paging(params)
        start = (page - 1) * per_page
        reply = _Reply(200, items[start : start + per_page])
        link = self._link(path, params, page, math.ceil(len(items) / per_page))
        if link:
            reply.headers["Link"] = link
        return reply

    def _search(self, path: str, params: dict[str, str]) -> _Reply:
        q = params.get("q", "").strip()
        if self.ignore_windows:  # as a replay of one recorded search would answer
            q = re.sub(r"\b(?:created|updated|closed):\S+", "", q).strip()
        if not q:
            return _invalid("q is missing", "missing")
        query = parse_query(q)
        unknown = [r for r in query.repos if r not in self._repos]
        if unknown:
            raise _SearchError(UNSEARCHABLE)
        hits = [
            issue
            for repo, issues in self._issues.items()
            for number, issue in issues.items()
            if (repo, number) not in self._gone
            and (repo, number) not in self._moved
            and query.matches(issue, repo, self._comments.get((repo, number), []))
        ]
        sort = params.get("sort")
        key: Callable[[dict[str, Any]], Any] = {
            "updated": lambda i: (_parse_instant(i["updated_at"]), i["id"]),
            "comments": lambda i: (i["comments"], i["id"]),
        }.get(sort or "", lambda i: (_parse_instant(i["created_at"]), i["id"]))
        hits.sort(key=key, reverse=params.get("order", "desc") != "asc")
        page, per_page = self._paging(params)
        start = (page - 1) * per_page
        if start >= self.search_cap:
            return _error(422, CAP_MESSAGE)
        reachable = min(len(hits), self.search_cap)
        items = [{**i, "score": 1.0} for i in hits[start : min(start + per_page, reachable)]]
        reply = _Reply(200, {"total_count": len(hits), "incomplete_results": False, "items": items})
        link = self._link(path, params, page, math.ceil(reachable / per_page))
        if link:
            reply.headers["Link"] = link
        return reply
