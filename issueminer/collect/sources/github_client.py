"""The GitHub REST API client (PyGithub underneath): every call goes through
`GitHubClient.call`, which waits out primary rate limits (until the reset time, with a
visible countdown), secondary limits (Retry-After) and transient failures, and retries a
200 whose body is not the endpoint's shape; it follows the redirects PyGithub refuses.
The backend that uses it is `sources.github`.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import requests
from github import Auth, Github, GithubException
from github.Requester import Requester

DEFAULT_API_URL = "https://api.github.com"
PER_PAGE = 100  # the API's largest page
TRANSIENT_RETRIES = 5
SECONDARY_DEFAULT_WAIT = 60  # seconds, when a secondary limit names no Retry-After
HTTP_TIMEOUT = 30  # seconds
_NEXT_LINK = re.compile(r'<[^>]*>\s*;\s*rel="next"')
# Secondary limits as GitHub has worded them: "You have exceeded a secondary rate limit...",
# and before 2022 "You have triggered an abuse detection mechanism. Please wait a few
# minutes before you try again." (PyGithub's own test covers the endings it knows).
_SECONDARY_WORDS = ("secondary rate limit", "abuse detection")


class GitHubError(Exception):
    pass


class NotTheExpectedShape(ValueError):
    """A 200 whose body is not what the endpoint returns (an HTML page from a proxy, an
    empty body): retried like a broken response, never read as an empty result."""


class GitHubClient:
    def __init__(
        self,
        api_url: str | None = None,
        token: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        on_wait: Callable[[str, float], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.sleep = sleep
        self.on_wait = on_wait
        self.clock = clock
        self.requests = 0
        self.rate_remaining: int | None = None
        self.rate_reset: int | None = None
        # what is left of each rate limit, by the resource GitHub names in a response's
        # X-RateLimit-Resource: the search API's own (30 a minute) is not the core one
        self.limits: dict[str, int] = {}
        self.base_url = (api_url or DEFAULT_API_URL).rstrip("/")
        # retries are ours (visible waits, checkpoints between them), not urllib3's
        self.github = Github(
            base_url=self.base_url,
            auth=Auth.Token(token) if token else None,
            per_page=PER_PAGE,
            retry=None,
            seconds_between_requests=None,
            timeout=HTTP_TIMEOUT,
        )

    def call(self, what: str, function: Callable[[], Any]) -> Any:
        """Run one API call, waiting out rate limits and retrying transient failures."""
        delay = 1.0
        for attempt in range(TRANSIENT_RETRIES + 1):
            self.requests += 1
            try:
                result = function()
                self._note_rate(result)
                return result
            except GithubException as exc:
                headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
                # GitHub's order: Retry-After if given, else the reset time when nothing is
                # left, else a minute for a secondary limit
                if exc.status in (403, 429) and _number(headers.get("retry-after")) is not None:
                    self._wait("secondary rate limit", _number(headers["retry-after"]) or 1.0)
                    continue
                if exc.status in (403, 429) and _number(headers.get("x-ratelimit-remaining")) == 0:
                    reset = int(_number(headers.get("x-ratelimit-reset")) or self.clock() + 60)
                    self.rate_remaining, self.rate_reset = 0, reset
                    self.limits[str(headers.get("x-ratelimit-resource") or "core")] = 0
                    self._wait("rate limit, resets", max(1.0, reset - self.clock() + 1))
                    continue
                if exc.status in (403, 429) and _is_secondary_limit(exc):
                    self._wait("secondary rate limit", SECONDARY_DEFAULT_WAIT)
                    continue
                if exc.status >= 500 and attempt < TRANSIENT_RETRIES:
                    self._wait(f"HTTP {exc.status}, retrying", delay)
                    delay *= 2
                    continue
                raise
            except (
                requests.exceptions.RequestException,
                json.JSONDecodeError,
                NotTheExpectedShape,
                OSError,
            ) as exc:
                if attempt == TRANSIENT_RETRIES:
                    raise GitHubError(f"{what}: {type(exc).__name__} after retries") from None
                self._wait(f"{type(exc).__name__}, retrying", delay)
                delay *= 2
        raise GitHubError(f"{what}: too many failed attempts")

    def _note_rate(self, result: Any) -> None:
        # the requester's record of the last response's headers: `Github.rate_limiting`
        # asks GET /rate_limit whenever a response had none (GitHub Enterprise without rate
        # limits answers that 404, which stopped the crawl after its first call)
        requester = self.github.requester
        remaining, _limit = requester.rate_limiting
        if remaining >= 0:
            self.rate_remaining = remaining
        self.rate_reset = requester.rate_limiting_resettime or self.rate_reset
        headers = result[0] if isinstance(result, tuple) and result else None
        if isinstance(headers, dict):
            lowered = {str(k).lower(): v for k, v in headers.items()}
            resource = lowered.get("x-ratelimit-resource")
            left = _number(lowered.get("x-ratelimit-remaining"))
            if resource and left is not None:
                self.limits[str(resource)] = int(left)

    def wait(self, why: str, seconds: float) -> None:
        """Sleep, saying why first (on_wait)."""
        self._wait(why, seconds)

    def _wait(self, why: str, seconds: float) -> None:
        if self.on_wait:
            self.on_wait(why, seconds)
        self.sleep(seconds)

    # ---- calls the crawler needs ----
    def search(self, query: str, page: int) -> dict[str, Any]:
        parameters = {
            "q": query,
            "sort": "created",
            "order": "asc",
            "per_page": PER_PAGE,
            "page": page,
        }
        _, data = self._get(
            f"search {query!r} page {page}", "/search/issues", parameters, _search_shaped
        )
        return data

    def issue(self, repo: str, number: int) -> dict[str, Any]:
        _, data = self._get(
            f"{repo}#{number}",
            f"/repos/{repo}/issues/{number}",
            shaped=lambda d: isinstance(d, dict) and "number" in d and "html_url" in d,
        )
        return data

    def comments(self, repo: str, number: int) -> list[dict[str, Any]]:
        """Every comment of an issue, page by page while GitHub's Link header names a next
        page. `repo` is where the issue is now (`repository_of` its item): a transferred
        issue's old address answers 301, and PyGithub follows a 301 without its query
        string, which served page 1 of 30 again and again in place of the pages asked for."""
        comments: list[dict[str, Any]] = []
        seen: set[Any] = set()
        page = 1
        while True:
            headers, data = self._get(
                f"{repo}#{number} comments",
                f"/repos/{repo}/issues/{number}/comments",
                {"per_page": PER_PAGE, "page": page},
                lambda d: isinstance(d, list),
            )
            fresh = [c for c in data or [] if c.get("id") not in seen]
            seen.update(c.get("id") for c in fresh)
            comments.extend(fresh)
            if not fresh or not _has_next(headers, len(data or [])):
                return comments
            page += 1

    def _get(
        self,
        what: str,
        path: str,
        parameters: dict[str, Any] | None = None,
        shaped: Callable[[Any], bool] = lambda _data: True,
    ) -> tuple[dict[str, Any], Any]:
        """GET `path`; a 200 whose body fails `shaped` is retried as a broken response."""

        def request() -> tuple[dict[str, Any], Any]:
            try:
                answer = self.github.requester.requestJsonAndCheck(
                    "GET", path, parameters=parameters
                )
            except RuntimeError as exc:
                # PyGithub refuses a 301 to another scheme or host (or an empty Location,
                # as GitHub sends for some transferred issues) with a RuntimeError
                if "redirected" not in str(exc):
                    raise
                answer = self._follow_redirect(path, parameters)
            if not shaped(answer[1]):
                raise NotTheExpectedShape(f"{what}: the answer is not {path}'s shape")
            return answer

        return self.call(what, request)

    def _follow_redirect(
        self, path: str, parameters: dict[str, Any] | None
    ) -> tuple[dict[str, Any], Any]:
        """Ask for `path` without following redirects and go where its Location points, on
        this client's own API (the same path and query, the host replaced)."""
        response = requests.get(
            self.base_url + path,
            params=parameters,
            headers={"Authorization": f"token {self.token}"} if self.token else {},
            allow_redirects=False,
            timeout=HTTP_TIMEOUT,
        )
        headers = {k.lower(): v for k, v in response.headers.items()}
        target = urllib.parse.urlsplit(headers.get("location") or "")
        if response.status_code not in (301, 302, 307, 308) or not target.path:
            body = _json_or_text(response)
            if response.status_code < 300:
                return headers, body
            message = "Moved Permanently, with no new location" if response.is_redirect else ""
            if isinstance(body, dict) and message:
                body = {**body, "message": message}
            raise GithubException(response.status_code, body, headers, message or None)
        prefix = urllib.parse.urlsplit(self.base_url).path.rstrip("/")
        moved_to = target.path.removeprefix(prefix) if prefix else target.path
        if target.query:
            moved_to += "?" + target.query
        try:
            return self.github.requester.requestJsonAndCheck("GET", moved_to)
        except RuntimeError:  # redirected once more: not followed further
            message = f"Moved Permanently, and again from {moved_to}"
            raise GithubException(301, {"message": message}, headers, message) from None


def _number(value: Any) -> float | None:
    """A header's number; GitHub has sent rate-limit values as floats ("4999.0")."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _is_secondary_limit(exc: GithubException) -> bool:
    message = str((exc.data or {}).get("message", "")) if isinstance(exc.data, dict) else ""
    lowered = message.lower()
    return Requester.isSecondaryRateLimitError(message) or any(
        words in lowered for words in _SECONDARY_WORDS
    )


def _has_next(headers: dict[str, Any], count: int) -> bool:
    """Whether a list has a page after this one: GitHub's Link header says so (rel="next");
    without a Link header at all, a full page may have one."""
    link = {str(k).lower(): v for k, v in (headers or {}).items()}.get("link")
    if link is not None:
        return bool(_NEXT_LINK.search(str(link)))
    return count >= PER_PAGE


def _search_shaped(data: Any) -> bool:
    return isinstance(data, dict) and isinstance(data.get("items"), list) and "total_count" in data


def _json_or_text(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return {"data": response.text}
