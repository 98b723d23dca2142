"""The study's relevance filter, shared by every source (API crawlers and the data dump).

Keywords and phrases come from the study file's `selection` section. They are matched as
spaCy token sequences, case-insensitively, in the title and in the body's prose: code
blocks are removed and URLs replaced first, so a keyword that occurs only in an import line
of a snippet or in a link does not make an issue relevant.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache, cached_property
from typing import Any

from issueminer.taxonomy import Taxonomy
from issueminer.text import plain_text


@cache
def tokenizer() -> Any:
    """spaCy's rule-based English tokenizer, the one every term match uses."""
    import spacy

    # a blank pipeline: the rule-based tokenizer only, no model to download
    return spacy.blank("en").tokenizer


def tokens(text: str) -> list[str]:
    return [t.lower_ for t in tokenizer()(text) if not t.is_space]


def _singular(phrase: str) -> str:
    words = phrase.split()
    last = words[-1]
    if len(last) > 3 and last.endswith("s") and not last.endswith("ss"):
        words[-1] = last[:-1]
    return " ".join(words)


class Reason(StrEnum):
    """Which check a decision rests on, for programs to tell decisions apart by: the same
    code whatever tag, label or repository the decision's words name."""

    # Stack Overflow, in the order `Selection.stackoverflow` checks
    NO_ACCEPTED_ANSWER = "no-accepted-answer"
    TAG_ALONE = "tag-alone"  # kept: a tag that selects by itself
    NO_STUDY_TAG = "no-study-tag"
    TAG_WITHOUT_KEYWORD = "tag-without-keyword"
    TAG_AND_KEYWORD = "tag-and-keyword"  # kept
    # GitHub, in the order `Selection.github` checks
    PULL_REQUEST = "pull-request"
    REPOSITORY_NOT_IN_STUDY = "repository-not-in-study"
    WRONG_STATE = "wrong-state"
    EXCLUDED_LABEL = "excluded-label"
    NO_INCLUDED_LABEL = "no-included-label"
    NO_KEYWORD_NEEDED = "no-keyword-needed"  # kept: every issue of the repository counts
    NO_KEYWORD = "no-keyword"
    KEYWORD = "keyword"  # kept
    # not the study's rules: asked for by id (the dump scan's --only-known)
    ALREADY_STORED = "already-stored"


NO_ACCEPTED_ANSWER = "no accepted answer"
TAG_WITHOUT_KEYWORD = "tag without a keyword"
# the words summaries count a decision under, where its reason names a tag: one count for
# the rule whatever the tag; any other decision is counted under its reason
_COUNTED_AS = {Reason.TAG_WITHOUT_KEYWORD: TAG_WITHOUT_KEYWORD}


@dataclass(frozen=True)
class Decision:
    kept: bool
    code: Reason  # which check it rests on
    reason: str  # in words, with the tag or label it names
    matched: tuple[str, ...] = ()

    @property
    def counted_as(self) -> str:
        return _COUNTED_AS.get(self.code, self.reason)


@dataclass(frozen=True)
class RepositoryCriteria:
    repo: str
    framework: str
    group: str = "study"
    keyword_required: bool = True
    include_labels: tuple[str, ...] = ()
    exclude_labels: tuple[str, ...] = ()


@dataclass
class Selection:
    keywords: list[str]
    phrases: list[str]
    tags_alone: list[str] = field(default_factory=list)
    tags_with_keyword: list[str] = field(default_factory=list)
    require_accepted_answer: bool = True
    site: str = "stackoverflow"
    github_state: str | None = "closed"
    repositories: list[RepositoryCriteria] = field(default_factory=list)

    # Tokenized on first match, not on construction: describing or listing the criteria
    # needs no tokenizer, and loading spaCy's takes seconds.
    @cached_property
    def _sequences(self) -> dict[str, tuple[str, ...]]:
        terms = [*self.keywords, *self.phrases, *(_singular(p) for p in self.phrases)]
        return {term: tuple(tokens(term)) for term in dict.fromkeys(terms)}

    @cached_property
    def _first(self) -> set[str]:
        return {seq[0] for seq in self._sequences.values() if seq}

    @classmethod
    def from_taxonomy(cls, taxonomy: Taxonomy) -> Selection:
        data = taxonomy.selection or {}
        stackoverflow = data.get("stackoverflow") or {}
        github = data.get("github") or {}
        repositories = [
            RepositoryCriteria(
                repo=str(entry["repo"]),
                framework=str(entry.get("framework") or entry["repo"].split("/")[-1]),
                group=str(entry.get("group", "study")),
                keyword_required=bool(entry.get("keyword_required", True)),
                include_labels=tuple(map(str, entry.get("include_labels") or [])),
                exclude_labels=tuple(map(str, entry.get("exclude_labels") or [])),
            )
            for entry in github.get("repositories") or []
        ]
        return cls(
            keywords=[str(k) for k in data.get("keywords") or []],
            phrases=[str(p) for p in data.get("phrases") or []],
            tags_alone=[str(t) for t in stackoverflow.get("tags_alone") or []],
            tags_with_keyword=[str(t) for t in stackoverflow.get("tags_with_keyword") or []],
            require_accepted_answer=bool(stackoverflow.get("require_accepted_answer", True)),
            site=str(stackoverflow.get("site", "stackoverflow")),
            github_state=github.get("state", "closed"),
            repositories=repositories,
        )

    # ---- text ----------------------------------------------------------------------------
    @property
    def stackoverflow_tags(self) -> list[str]:
        return list(dict.fromkeys([*self.tags_alone, *self.tags_with_keyword]))

    @property
    def terms(self) -> list[str]:
        return list(self._sequences)

    def matched_terms(self, *texts: str) -> list[str]:
        """The keywords and phrases that occur in any of the texts (already plain prose)."""
        found: list[str] = []
        for text in texts:
            words = tokens(text or "")
            positions = [i for i, word in enumerate(words) if word in self._first]
            for term, sequence in self._sequences.items():
                if term in found or not sequence:
                    continue
                n = len(sequence)
                if any(tuple(words[i : i + n]) == sequence for i in positions):
                    found.append(term)
        return found

    # ---- sources -------------------------------------------------------------------------
    def stackoverflow(
        self,
        question: dict[str, Any],
        could_match: Callable[[str, str], bool] | None = None,
        prose: str | None = None,
    ) -> Decision:
        """A Stack Overflow question (API shape: title, body HTML, tags, accepted_answer_id).

        `could_match(title, body)`, a cheap test that may say False only when no term can
        occur in the title or the body's prose (the dump scan's keyword gate), is asked
        before the keyword match, which it spares when it says so: the decision is the same.
        `prose`, the body's prose where the caller has read it already (the dump scan reads
        a giant body's only as far as it stores it), is matched instead of the body's.
        """
        tags = [str(t).lower() for t in question.get("tags") or []]
        if self.require_accepted_answer and not question.get("accepted_answer_id"):
            return Decision(False, Reason.NO_ACCEPTED_ANSWER, NO_ACCEPTED_ANSWER)
        alone = [t for t in self.tags_alone if t in tags]
        if alone:
            return Decision(True, Reason.TAG_ALONE, f"tag {alone[0]}")
        with_keyword = [t for t in self.tags_with_keyword if t in tags]
        if not with_keyword:
            return Decision(False, Reason.NO_STUDY_TAG, "no study tag")
        title = _unescape(question.get("title") or "")
        body = question.get("body") or ""
        matched: list[str] = []
        if prose is not None:
            matched = self.matched_terms(title, prose)
        elif could_match is None or could_match(title, body):
            matched = self.matched_terms(title, plain_text(body, "stackoverflow"))
        if not matched:
            reason = f"tag {with_keyword[0]} without a keyword"
            return Decision(False, Reason.TAG_WITHOUT_KEYWORD, reason)
        reason = f"tag {with_keyword[0]} + keyword"
        return Decision(True, Reason.TAG_AND_KEYWORD, reason, tuple(matched))

    def repository(self, repo: str) -> RepositoryCriteria | None:
        for criteria in self.repositories:
            if criteria.repo.lower() == repo.lower():
                return criteria
        return None

    def repositories_in(self, groups: Iterable[str] | None) -> list[RepositoryCriteria]:
        wanted = set(groups or ["study"])
        return [r for r in self.repositories if r.group in wanted or "all" in wanted]

    def github(self, repo: str, issue: dict[str, Any]) -> Decision:
        """A GitHub issue (REST shape: title, body Markdown, labels, state, pull_request)."""
        if is_pull_request(issue):
            return Decision(False, Reason.PULL_REQUEST, "pull request")
        criteria = self.repository(repo)
        if criteria is None:
            return Decision(
                False, Reason.REPOSITORY_NOT_IN_STUDY, f"repository {repo} is not in the study"
            )
        if self.github_state and issue.get("state") != self.github_state:
            return Decision(False, Reason.WRONG_STATE, f"state {issue.get('state')}")
        labels = {label_name(label).lower() for label in issue.get("labels") or []}
        excluded = [x for x in criteria.exclude_labels if x.lower() in labels]
        if excluded:
            return Decision(False, Reason.EXCLUDED_LABEL, f"label {excluded[0]}")
        if criteria.include_labels and not any(
            x.lower() in labels for x in criteria.include_labels
        ):
            return Decision(False, Reason.NO_INCLUDED_LABEL, "none of the included labels")
        if not criteria.keyword_required:
            return Decision(True, Reason.NO_KEYWORD_NEEDED, f"repository {criteria.repo}")
        matched = self.matched_terms(
            issue.get("title") or "", plain_text(issue.get("body") or "", "github")
        )
        if not matched:
            return Decision(False, Reason.NO_KEYWORD, "no keyword")
        return Decision(True, Reason.KEYWORD, "keyword", tuple(matched))

    def github_search_terms(self, max_terms: int = 6) -> list[list[str]]:
        """Keyword groups for GitHub's search, which allows five OR operators per query."""
        terms = [*self.keywords, *self.phrases]
        return [terms[i : i + max_terms] for i in range(0, len(terms), max_terms)]


def label_name(label: Any) -> str:
    """A GitHub label's name: the API sends objects, older payloads and files plain strings."""
    return str(label.get("name") or "") if isinstance(label, dict) else str(label)


def is_pull_request(issue: dict[str, Any]) -> bool:
    """Whether a GitHub item is a pull request: its `pull_request` object links one. Some old
    search items carry the object with every field null; those are issues."""
    link = issue.get("pull_request")
    if isinstance(link, dict):
        return any(value is not None for value in link.values())
    return bool(link)


def _unescape(text: str) -> str:
    import html

    return html.unescape(text)  # API titles arrive HTML-escaped


# ---- the criteria in words (report, replication package) -------------------------------
def _listing(items: Iterable[str], conjunction: str = "or") -> str:
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conjunction} {items[-1]}"


def selection_sentences(taxonomy: Taxonomy, repositories: Iterable[str] | None = None) -> list[str]:
    """The study file's selection criteria in words, one sentence per source.

    `repositories` (owner/name) narrows the GitHub sentence to the repositories the data
    comes from; without it the study group of the study file is described.
    """
    selection = Selection.from_taxonomy(taxonomy)  # no tokenizer needed to describe it
    sentences = []
    if selection.stackoverflow_tags:
        parts = []
        if selection.tags_alone:
            parts.append(f"carry the tag {_listing(selection.tags_alone)}")
        if selection.tags_with_keyword:
            parts.append(
                f"carry one of the tags {_listing(selection.tags_with_keyword)} and "
                "contain a keyword or phrase"
            )
        answered = " with an accepted answer" if selection.require_accepted_answer else ""
        sentences.append(
            f"Stack Overflow ({selection.site}): questions{answered} that "
            + ", or ".join(parts)
            + "."
        )
    wanted = {r.lower() for r in repositories or []}
    chosen = [r for r in selection.repositories if r.repo.lower() in wanted]
    if not chosen:
        chosen = selection.repositories_in(None)
    if chosen:
        described = []
        for criteria in chosen:
            conditions = ["every issue" if not criteria.keyword_required else "with a keyword"]
            if criteria.include_labels:
                conditions.append(f"labelled {_listing(criteria.include_labels)}")
            if criteria.exclude_labels:
                conditions.append(f"not labelled {_listing(criteria.exclude_labels)}")
            described.append(f"{criteria.repo} ({'; '.join(conditions)})")
        state = f"{selection.github_state} " if selection.github_state else ""
        sentences.append(
            f"GitHub: {state}issues, not pull requests, of {_listing(described, 'and')}."
        )
    if selection.keywords or selection.phrases:
        sentences.append(
            f"Keywords: {', '.join(selection.keywords)}; phrases: {', '.join(selection.phrases)}. "
            "They match whole words, case-insensitively, in the title and in the body with "
            "code blocks removed and links replaced; a phrase also matches in the singular."
        )
    return sentences
