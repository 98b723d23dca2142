"""What decides a question in a dump scan: the study's `Selection` behind the keyword gate,
or with --only-known the ids of the questions the store has; and the byte patterns that
find the candidate rows for either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import select

from issueminer.collect.large_text import LargeText
from issueminer.collect.selection import Decision, Reason, Selection
from issueminer.collect.sodump.byte_patterns import IdMatcher, TagFinder
from issueminer.collect.sodump.keyword_gate import KeywordGate
from issueminer.collect.sodump.large_rows import TEXT_LIMIT
from issueminer.collect.sodump.rows import ROW_ID, TAG_CLOSE, TAG_OPEN, TAGS_ATTR
from issueminer.ids import STACKOVERFLOW_ORIGIN
from issueminer.store import Issue, Store
from issueminer.taxonomy import Taxonomy
from issueminer.text import prose_prefix

# what --only-known decides of every question it finds: the store asked for it
ALREADY_STORED = Decision(True, Reason.ALREADY_STORED, "already in the store")


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

    def decide(self, question: dict[str, Any]) -> Decision:
        """The selection's decision, the keyword gate sparing it most keyword matches (it
        turns away only what the keyword match would); with --only-known, kept."""
        if self.known is not None:
            return ALREADY_STORED
        body = question.get("body")
        # a giant body's prose is read as far as `issue.text` keeps it (TEXT_LIMIT), so the
        # decision rests on what is stored; the keyword gate would read it all
        if isinstance(body, LargeText):
            return self.selection.stackoverflow({**question, "body": ""}, prose=body.prose)
        if body and len(body) > TEXT_LIMIT:
            prose = prose_prefix(body, TEXT_LIMIT)[0]
            return self.selection.stackoverflow(question, prose=prose)
        return self.selection.stackoverflow(question, self.gate.could_match)

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
