"""What decides a question in a dump scan: the study's `Selection` behind the keyword gate,
or with --only-known the ids of the questions the store has; and the byte patterns that
find the candidate rows for either.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import select

from issueminer.collect.selection import TAG_WITHOUT_KEYWORD, Selection
from issueminer.collect.sodump.byte_patterns import IdMatcher, TagFinder
from issueminer.collect.sodump.keyword_gate import KeywordGate
from issueminer.collect.sodump.rows import ROW_ID, TAG_CLOSE, TAG_OPEN, TAGS_ATTR
from issueminer.ids import STACKOVERFLOW_ORIGIN
from issueminer.store import Issue, Store
from issueminer.taxonomy import Taxonomy


@dataclass
class Criteria:
    """What decides a question, and the byte patterns that find its candidates."""

    selection: Selection
    taxonomy: Taxonomy | None = None
    known: frozenset[bytes] | None = None  # --only-known: exactly these question ids

    @cached_property
    def tags_pattern(self) -> re.Pattern[bytes]:
        names = b"|".join(re.escape(t.encode()) for t in self.selection.stackoverflow_tags)
        # case-insensitive like the selection; [^"\n] keeps a match inside one attribute
        return re.compile(
            TAGS_ATTR + rb'[^"\n]*?' + TAG_OPEN + rb"(?i:" + names + rb")" + TAG_CLOSE
        )

    @cached_property
    def tag_finder(self) -> TagFinder:
        return TagFinder(self.tags_pattern, self.selection.stackoverflow_tags)

    @cached_property
    def known_rows(self) -> IdMatcher:
        return IdMatcher(ROW_ID, self.known or ())

    @cached_property
    def gate(self) -> KeywordGate:
        return KeywordGate(self.selection)

    @cached_property
    def tags_alone(self) -> set[str]:
        return {t.lower() for t in self.selection.tags_alone}

    def decide(self, question: dict[str, Any]) -> tuple[bool, str]:
        if self.known is not None:
            return True, "already in the store"
        tags = {str(t).lower() for t in question.get("tags") or []}
        # the selection's own first check, repeated so that the gate below (a shortcut for
        # its keyword check) only turns away what the selection would count the same way
        if self.selection.require_accepted_answer and not question.get("accepted_answer_id"):
            return False, "no accepted answer"
        if not tags & self.tags_alone and not self.gate.could_match(
            html.unescape(question.get("title") or ""), question.get("body") or ""
        ):
            return False, TAG_WITHOUT_KEYWORD
        decision = self.selection.stackoverflow(question)
        return decision.kept, "kept" if decision.kept else decision.counted_as

    def query(self) -> dict[str, Any]:
        selection = self.selection
        if self.known is not None:
            return {"only_known": True}
        return {
            "tags": selection.stackoverflow_tags,
            "terms": selection.terms,
            "accepted_answer": selection.require_accepted_answer,
        }


def known_questions(store: Store) -> frozenset[bytes]:
    """Ids of the Stack Overflow questions the store has, as the dump writes them."""
    with store.session() as session:
        ids = session.scalars(
            select(Issue.native_id).where(
                Issue.source == "stackoverflow", Issue.origin == STACKOVERFLOW_ORIGIN
            )
        ).all()
    return frozenset(i.encode() for i in ids if i and i.isdigit())
