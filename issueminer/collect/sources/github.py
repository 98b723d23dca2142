"""GitHub issues through the REST API.

Client (`github_client`): every call goes through `GitHubClient.call`, which waits out
primary rate limits (until the reset time, with a visible countdown), secondary limits
(Retry-After) and transient failures. Backend: the study's search queries per repository,
split into creation-date windows small enough for the Search API's 1,000-result cap.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from github import GithubException

from issueminer.collect.checkpoints import Checkpointer, Envelope
from issueminer.collect.selection import RepositoryCriteria, Selection, label_name
from issueminer.collect.sources.github_client import PER_PAGE, GitHubClient
from issueminer.ids import github_issue
from issueminer.taxonomy import Taxonomy
from issueminer.text import plain_text

SEARCH_CAP = 1000  # the Search API serves at most this many results per query
EARLIEST = datetime(2008, 1, 1, tzinfo=UTC)  # before GitHub existed: a window start for "all"
MIN_WINDOW = timedelta(seconds=1)  # a window this small is not split further
# A search that runs out of time answers 200 with `incomplete_results: true` and only what
# it found in time. The same search usually completes when asked again (GitHub's advice);
# one that times out this many times more is a lasting problem, reported, not retried on.
INCOMPLETE_RETRIES = 3
INCOMPLETE_WAIT = 2  # seconds before such a retry: the timeout means the search is busy
# GitHub's 422 for a repository the Search API cannot see: renamed, deleted or private.
UNSEARCHABLE = "cannot be searched"


# ---- backend ---------------------------------------------------------------------------
def _date(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def repository_of(item: dict[str, Any]) -> str:
    """owner/name of an issue item, from its html_url (present in every REST shape)."""
    parts = item["html_url"].split("/")
    return f"{parts[3]}/{parts[4]}".lower()


def issue_envelope(
    repo: str,
    item: dict[str, Any],
    comments: list[dict[str, Any]],
    taxonomy: Taxonomy | None = None,
) -> Envelope:
    body = item.get("body")
    issue = {
        **github_issue(repo, item["number"]).identity(),
        "title": item.get("title"),
        "body": body,
        "text": plain_text(body or "", "github"),
        "tags": [label_name(label) for label in item.get("labels") or []],
        "state": item.get("state"),
        "created_at": _date(item.get("created_at")),
        "closed_at": _date(item.get("closed_at")),
        "updated_on": _date(item.get("updated_at")),
        "author": (item.get("user") or {}).get("login"),
        "framework": taxonomy.framework_of(repo) if taxonomy else None,
        "raw": item,
    }
    replies = [
        {
            "native_id": f"comment:{c['id']}",
            "kind": "comment",
            "author": (c.get("user") or {}).get("login"),
            "body": c.get("body"),
            "accepted": False,
            "score": None,
            "created_at": _date(c.get("created_at")),
            "raw": c,
        }
        for c in comments
    ]
    return Envelope(issue, replies)


class GitHubCrawler:
    def __init__(
        self,
        client: GitHubClient,
        selection: Selection,
        taxonomy: Taxonomy,
        on_page: Callable[[dict[str, Any]], None] | None = None,
        on_note: Callable[[str], None] | None = None,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        search_cap: int = SEARCH_CAP,
    ) -> None:
        self.search_cap = search_cap
        self.client = client
        self.selection = selection
        self.taxonomy = taxonomy
        self.on_page = on_page or (lambda _stats: None)
        self.on_note = on_note or (lambda _message: None)
        self.now = now

    def queries(self, criteria: RepositoryCriteria) -> list[str]:
        """Search queries for one repository; the selection module re-checks every hit."""
        base = f"repo:{criteria.repo} is:issue"
        if self.selection.github_state:
            base += f" is:{self.selection.github_state}"
        base += "".join(f' -label:"{label}"' for label in criteria.exclude_labels)
        if not criteria.keyword_required:
            return [base]
        return [
            base + " " + " OR ".join(f'"{term}"' if " " in term else term for term in group)
            for group in self.selection.github_search_terms()
        ]

    def search_text(self, query: str, field: str) -> str:
        """What is searched for a query in a window of `field`. A window of last activity
        (`updated`, an incremental run) drops the study's state: an issue stored as closed
        and reopened since is open now, and `is:closed` would never return it again; the
        selection re-checks every hit, so an open issue the study never kept is not stored."""
        state = f" is:{self.selection.github_state}" if self.selection.github_state else ""
        if field != "updated" or not state:
            return query
        return query.replace(f"is:issue{state}", "is:issue", 1)

    @staticmethod
    def query(selection: Selection, repositories: list[RepositoryCriteria]) -> dict[str, Any]:
        return {
            "repositories": [r.repo for r in repositories],
            "terms": selection.terms,
            "state": selection.github_state,
        }

    def run(
        self,
        checkpointer: Checkpointer,
        repositories: list[RepositoryCriteria],
        since: datetime | None = None,
    ) -> None:
        end = _stamp(self.now())
        for criteria in repositories:
            try:
                self._repository(checkpointer, criteria, since, end)
            except GithubException as exc:
                refusal = unsearchable(exc)
                if refusal is None:
                    raise
                self._skip(checkpointer, criteria, refusal, end)

    def _repository(
        self,
        checkpointer: Checkpointer,
        criteria: RepositoryCriteria,
        since: datetime | None,
        end: str,
    ) -> None:
        for query in self.queries(criteria):
            state = checkpointer.checkpoint.get("queries", {}).get(query)
            if state is None:
                start = since or _previous_end(checkpointer, query) or EARLIEST
                # an incremental run looks at what changed, not only what was created
                field = "updated" if since is None and start != EARLIEST else "created"
                state = {
                    "field": field,
                    "windows": [[_stamp(start), end]],
                    "page": 1,
                    "end": end,
                }
            while state["windows"]:  # every page commits the query's state after it
                state = self._page(checkpointer, criteria, query, state)

    def _skip(
        self, checkpointer: Checkpointer, criteria: RepositoryCriteria, refusal: str, end: str
    ) -> None:
        """A repository the Search API refuses: a finding, its queries closed for this run
        (a resumed run does not ask again), and the crawl goes on with the others."""
        message = (
            f"{criteria.repo}: skipped, the GitHub Search API refuses it (422: {refusal}); "
            "it may be renamed, deleted or private: check its name in the study file"
        )
        self.on_note(message)
        queries = dict(checkpointer.checkpoint.get("queries", {}))
        for query in self.queries(criteria):
            state = queries.get(query) or {"field": "created", "page": 1, "end": end}
            queries[query] = {**state, "windows": [], "page": 1, "skipped": refusal}
        finding = {"kind": "unsearchable-repository", "repo": criteria.repo, "message": message}
        self._commit(checkpointer, None, queries, [], 0, [finding])

    def _page(
        self,
        checkpointer: Checkpointer,
        criteria: RepositoryCriteria,
        query: str,
        state: dict[str, Any],
    ) -> dict[str, Any]:
        start, end = state["windows"][0]
        text = self.search_text(query, state["field"])
        data = self._search(f"{text} {state['field']}:{start}..{end}", state["page"])
        total = int(data.get("total_count", 0))
        items = data.get("items") or []
        ignored = _outside_window(items, state["field"], start, end)
        if (
            state["page"] == 1
            and total >= self.search_cap
            and _splittable(start, end)
            and not ignored
        ):
            middle = _stamp(_date(start) + (_date(end) - _date(start)) / 2)
            self.on_note(
                f"{criteria.repo}: {total} results for {start}..{end} reach the "
                f"search cap of {self.search_cap}; splitting at {middle}"
            )
            windows = [[start, middle], [_next_second(middle), end], *state["windows"][1:]]
            next_state = {**state, "windows": windows, "page": 1}
            self._commit(checkpointer, query, next_state, [], 0)
            return next_state  # the halves are searched anew, complete or not
        envelopes = list(self._kept(checkpointer, criteria, items))
        last_page = max(1, math.ceil(min(total, self.search_cap) / PER_PAGE))
        if state["page"] >= last_page or not items:
            next_state = {**state, "windows": state["windows"][1:], "page": 1}
        else:
            next_state = {**state, "page": state["page"] + 1}
        findings = []
        if ignored and state["page"] == 1:
            message = (
                f"{criteria.repo}: the search for {start}..{end} ({state['field']}) answered "
                f"issues outside that window (#{ignored}); the server ignores the window, so "
                "it is read as it is, not split further"
            )
            self.on_note(message)
            findings.append(
                {
                    "kind": "window-ignored",
                    "repo": criteria.repo,
                    "query": query,
                    "window": [start, end],
                    "field": state["field"],
                    "message": message,
                }
            )
        if data.get("incomplete_results"):
            message = (
                f"{criteria.repo}: the search of {start}..{end} ({state['field']}) page "
                f"{state['page']} stayed incomplete (GitHub timed out) after "
                f"{INCOMPLETE_RETRIES} retries; kept the {len(items)} results it gave"
            )
            self.on_note(message)
            findings.append(
                {
                    "kind": "incomplete-results",
                    "repo": criteria.repo,
                    "query": query,
                    "window": [start, end],
                    "field": state["field"],
                    "page": state["page"],
                    "message": message,
                }
            )
        self._commit(checkpointer, query, next_state, envelopes, len(items), findings)
        return next_state

    def _search(self, query: str, page: int) -> dict[str, Any]:
        """One search page, asked again while GitHub says it is incomplete (bounded)."""
        data = self.client.search(query, page)
        for retry in range(1, INCOMPLETE_RETRIES + 1):
            if not data.get("incomplete_results"):
                break
            why = f"search timed out (incomplete_results), retry {retry} of {INCOMPLETE_RETRIES}"
            self.client.wait(why, INCOMPLETE_WAIT)
            data = self.client.search(query, page)
        return data

    def _commit(
        self,
        checkpointer: Checkpointer,
        query: str | None,
        state: dict[str, Any],
        envelopes: list[Envelope],
        seen: int,
        findings: list[dict[str, Any]] | None = None,
    ) -> None:
        """Commit a query's new state (with query None: `state` is every query's state)."""
        queries = {**checkpointer.checkpoint.get("queries", {}), query: state} if query else state
        checkpoint = {
            **checkpointer.checkpoint,
            "queries": queries,
            "findings": [*checkpointer.checkpoint.get("findings", []), *(findings or [])],
            "rate_remaining": self.client.rate_remaining,
            "rate_reset": self.client.rate_reset,
            "limits": {**checkpointer.checkpoint.get("limits", {}), **self.client.limits},
        }
        stored = checkpointer.commit_page(envelopes, checkpoint, seen=seen)
        self.on_page(
            {
                "query": query or "",
                "seen": seen,
                "stored": stored,
                "requests": self.client.requests,
                "rate_remaining": self.client.rate_remaining,
            }
        )

    def _kept(
        self, checkpointer: Checkpointer, criteria: RepositoryCriteria, items: list[dict[str, Any]]
    ) -> Iterator[Envelope]:
        """The items the criteria admit, and the stored ones they no longer admit (reopened,
        a label excluded since): those are stored as the source has them now, not left as
        they were. Anything else they refuse is not stored."""
        refused = {
            github_issue(criteria.repo, item["number"]).uid: item
            for item in items
            if not self.selection.github(criteria.repo, item).kept
        }
        known = checkpointer.stored(list(refused))
        for item in items:
            uid = github_issue(criteria.repo, item["number"]).uid
            if uid in refused and uid not in known:
                continue
            comments = (
                self.client.comments(repository_of(item), item["number"])
                if item.get("comments")
                else []
            )
            yield issue_envelope(criteria.repo, item, comments, self.taxonomy)

    def hydrate(self, repo: str, number: int) -> tuple[Envelope | None, str | None]:
        """Fetch one known issue; (envelope, None) or (None, why it is unavailable)."""
        try:
            item = self.client.issue(repo, number)
        except GithubException as exc:
            reason = unavailable(exc)
            if reason is None:
                raise
            return None, reason
        moved_to = repository_of(item)
        # the comments of a moved issue are asked for where it is now
        comments = self.client.comments(moved_to, item["number"]) if item.get("comments") else []
        envelope = issue_envelope(repo, item, comments, self.taxonomy)
        if moved_to != repo.lower() or str(item.get("number")) != str(number):
            envelope.issue["flags"] = [f"moved-to:{item.get('html_url')}"]
            # keep the identity the study used; the new place is in the raw item and flags
            envelope.issue.update(github_issue(repo, number).identity())
        return envelope, None


_UNAVAILABLE = {
    301: "moved, and GitHub gives no new location",
    404: "not found (deleted, private or moved)",
    410: "deleted",
    451: "unavailable for legal reasons",
}


def unavailable(exc: GithubException) -> str | None:
    """Why an issue cannot be had, from GitHub's answer (None: not such an answer). A 410
    is a deleted issue or a repository whose issues are turned off: GitHub's message tells
    which ("This issue was deleted", "Issues are disabled for this repo"). A blocked
    repository says why in `block.reason` (dmca, tos, unavailable)."""
    data = exc.data if isinstance(exc.data, dict) else {}
    message = str(data.get("message") or "")
    # a repository taken down: 451 for a DMCA notice, 403 for a breach of the terms, both
    # with {"message": "Repository access blocked", "block": {"reason": ...}}
    block = data.get("block") if isinstance(data.get("block"), dict) else None
    if exc.status in (403, 451) and (block or "access blocked" in message.lower()):
        why = f" ({block['reason']})" if block and block.get("reason") else ""
        what = "unavailable for legal reasons" if exc.status == 451 else "repository access blocked"
        return what + why
    reason = _UNAVAILABLE.get(exc.status)
    if reason is None:
        return None
    if exc.status == 410 and "disabled" in message.lower():
        return f"issues disabled ({message})"
    return reason


def unsearchable(exc: GithubException) -> str | None:
    """GitHub's reason when a 422 says the repository cannot be searched, else None."""
    if exc.status != 422 or not isinstance(exc.data, dict):
        return None
    for error in exc.data.get("errors") or []:
        message = str(error.get("message", "")) if isinstance(error, dict) else str(error)
        if UNSEARCHABLE in message:
            return message
    return None


def _outside_window(items: list[dict[str, Any]], field: str, start: str, end: str) -> int | None:
    """The number of an item GitHub could not have answered for this window, else None.
    GitHub never does: creation dates do not change, and last activity only moves later
    (an issue updated since the search indexed it may show a later `updated_at`). A server
    that ignores the window (a replay of recorded responses) would be split for ever."""
    low, high = _date(start), _date(end)
    for item in items:
        moment = _date(item.get(f"{field}_at"))
        if moment is None or low is None or high is None:
            continue
        if moment < low or (field == "created" and moment > high):
            return item.get("number")
    return None


def _splittable(start: str, end: str) -> bool:
    return _date(end) - _date(start) > MIN_WINDOW


def _next_second(stamp: str) -> str:
    return _stamp(_date(stamp) + timedelta(seconds=1))


def _previous_end(checkpointer: Checkpointer, query: str) -> datetime | None:
    previous = checkpointer.previous or {}
    state = (previous.get("queries") or {}).get(query)
    # a skipped query saw nothing up to its end: the next run starts it from the beginning
    return _date(state["end"]) if state and not state.get("skipped") else None
