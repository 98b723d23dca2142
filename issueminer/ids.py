"""Stable identities: an issue's uid is the SHA-1 of `origin:native id`, whoever finds it.

The Stack Exchange crawler, the data-dump scan, the GitHub crawler and the replication
importer all call `parse_issue_url` / `issue_uid`, so the same issue is one row.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

STACKOVERFLOW_ORIGIN = "https://stackoverflow.com"
GITHUB_HOST = "https://github.com"

_SO_URL = re.compile(
    r"^https?://(?:www\.)?stackoverflow\.com/(?:questions|q)/(?P<id>\d+)(?:[/?#].*)?$", re.I
)
_GITHUB_URL = re.compile(
    r"^https?://(?:www\.)?github\.com/(?P<repo>[\w.-]+/[\w.-]+)/(?P<kind>issues|pull)/(?P<id>\d+)"
    r"(?:[/?#].*)?$",
    re.I,
)


def issue_uid(origin: str, native_id: str | int) -> str:
    return hashlib.sha1(f"{origin}:{native_id}".encode()).hexdigest()


@dataclass(frozen=True)
class IssueRef:
    source: str  # stackoverflow | github
    origin: str  # the site, or the repository's URL
    native_id: str
    url: str  # canonical form
    repository: str | None = None

    @property
    def uid(self) -> str:
        return issue_uid(self.origin, self.native_id)

    def identity(self) -> dict[str, str]:
        """The fields of a stored issue that say which issue it is."""
        return {
            "uid": self.uid,
            "source": self.source,
            "origin": self.origin,
            "native_id": self.native_id,
            "url": self.url,
        }


def stackoverflow_question(question_id: str | int) -> IssueRef:
    qid = str(question_id)
    return IssueRef(
        "stackoverflow", STACKOVERFLOW_ORIGIN, qid, f"{STACKOVERFLOW_ORIGIN}/questions/{qid}"
    )


def github_issue(repo: str, number: str | int, kind: str = "issues") -> IssueRef:
    """An issue or pull request (`kind` "pull"): they share one number space per repository,
    so either URL names the same row."""
    repo = repo.lower()
    origin = f"{GITHUB_HOST}/{repo}"
    return IssueRef("github", origin, str(number), f"{origin}/{kind}/{number}", repo)


def parse_issue_url(url: str) -> IssueRef | None:
    """Canonical reference of a Stack Overflow question or GitHub issue URL; None if neither."""
    url = url.strip()
    if match := _SO_URL.match(url):
        return stackoverflow_question(match["id"])
    if match := _GITHUB_URL.match(url):
        return github_issue(match["repo"], match["id"], match["kind"].lower())
    return None
