"""The keyword gate: a cheap check, run before the selection's full keyword match, that
turns away the questions whose title and prose cannot contain any of the study's terms.

The full match parses the body's HTML and tokenizes it with spaCy; the gate reads the
body's prose with a few regular expressions (`_marked_prose`) and looks for the terms'
tokens in one native search. It only ever rejects: whatever it lets through, the selection
decides.
"""

from __future__ import annotations

import html
import re
from typing import Any

from issueminer.collect.selection import Selection, tokenizer, tokens
from issueminer.text import URL_PLACEHOLDER

_MARKUP_TAG = re.compile(
    r"""</?[A-Za-z][^\s/>]*(?:\s+[^\s/>"'=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*\s*/?>"""
)
_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]*|#[0-9]+|#[xX][0-9A-Fa-f]+);")
_QUOTED = r"""(?:[^>"']|"[^"]*"|'[^']*')*"""  # the rest of a tag, quoted values whole
_PRE_BLOCK = re.compile(
    rf"<pre(?=[\s/>]){_QUOTED}>.*?</pre(?=[\s/>]){_QUOTED}>", re.IGNORECASE | re.DOTALL
)
# what HTMLParser reads its own way (raw text, comments, declarations, an empty <pre/>)
_UNUSUAL_MARKUP = re.compile(r"<(?:script|style)\b|<[!?]|<pre(?=[\s/>])[^>]*/>", re.I)
_PRE_LEFT = re.compile(r"</?pre", re.I)
_BREAK = "\x00"  # where a tag was; XML forbids this character, so text never has it
_LINK = re.compile(r"https?://[^\s\x00]+")


def _marked_prose(body: str) -> str | None:
    """The body's prose as `text.plain_text` reads it, give or take, with a _BREAK where
    each tag or <pre> block was. Without the breaks it never lacks a word the prose has,
    though it may join words the prose keeps apart; between breaks it is the prose itself:
    a run of text without a break and with whitespace (or an end) on both sides is,
    character for character, a whitespace-separated piece of the prose.

    Only for markup whose tags and entities both readers see alike (plain tags with quoted
    attributes, complete entities, unnested <pre>); None for anything else.
    """
    if "<" in body:
        if _UNUSUAL_MARKUP.search(body):
            return None
        if len(_MARKUP_TAG.findall(body)) != body.count("<"):  # a "<" that starts no tag
            return None
        body = _PRE_BLOCK.sub(_BREAK, body)
        if _PRE_LEFT.search(body):  # nested or unclosed <pre>
            return None
        body = _MARKUP_TAG.sub(_BREAK, body)
    if "&" in body:
        unescaped, entities = _ENTITY.subn(_unescape_entity, body)
        if entities != body.count("&"):  # a bare or unfinished "&"
            return None
        body = unescaped
    # Links become a placeholder in the prose. A link here ends at the first tag, at or
    # before where it ends in the prose, so this never removes more than the prose does.
    return _LINK.sub(URL_PLACEHOLDER, body)


def _unescape_entity(match: re.Match[str]) -> str:
    return html.unescape(match[0])


class KeywordGate:
    """Rejects questions whose title and prose cannot contain any of the study's terms.

    A term matches as a sequence of tokens, and a token is a piece of the text, so a term
    can only match if each of its tokens occurs in the (lowercased) text. This check costs
    one native search; the full match (HTML parsing and spaCy) runs only when it passes,
    and it decides.

    Where a term's tokens all occur, a second check asks whether each occurs as a token:
    spaCy splits a text at whitespace and tokenizes each piece on its own, so the pieces of
    the text that hold a term token are tokenized alone (a few words instead of the whole
    text). `pkg.distributed` holds "distributed" but is a single token, for example.
    """

    def __init__(self, selection: Selection) -> None:
        self.terms = [tuple(dict.fromkeys(tokens(term))) for term in selection.terms]
        self.terms = [t for t in self.terms if t]
        # lowercasing a substring equals a substring of the lowercased text for ASCII only
        self.usable = all(tok.isascii() for t in self.terms for tok in t)
        self._finder: Any = None  # all term tokens in one native automaton, built on use
        if self.usable:
            self.places = {tok: _token_place(tok) for t in self.terms for tok in t}
            self.token_list = list(self.places)
            # Special cases ("can't", ":-)") are the one rule spaCy applies across pieces:
            # a token a special case can take apart or make is not checked piece by piece.
            specials = [key.lower() for key in tokenizer().rules]
            self.whole = {tok for tok in self.places if any(tok in key for key in specials)}

    def could_match(self, title: str, body: str) -> bool:
        if not self.usable:
            return True
        marked = _marked_prose(body)
        if marked is None:
            return True
        present = self._present(f"{title}\n{marked.replace(_BREAK, '')}".lower())
        terms = [term for term in self.terms if present.issuperset(term)]
        # the title too is tokenized as a text of its own
        return bool(terms) and self._any_as_tokens(terms, f"{title}\n{marked}")

    def _any_as_tokens(self, terms: list[tuple[str, ...]], text: str) -> bool:
        """Whether each token of some term may be a token of the text."""
        lowered = text.lower()
        if len(lowered) != len(text):  # a character lowercases to two: no second check
            return True
        known: dict[str, bool] = {}

        def is_token(tok: str) -> bool:
            if tok not in known:
                known[tok] = self._is_token(tok, text, lowered)
            return known[tok]

        return any(all(is_token(tok) for tok in term) for term in terms)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_finder": None}  # native, not picklable: rebuilt on use

    def _present(self, text: str) -> set[str]:
        """The term tokens that occur in text, found in one pass."""
        if self._finder is None:
            import ahocorasick_rs

            self._finder = ahocorasick_rs.AhoCorasick(self.token_list)
        found = self._finder.find_matches_as_indexes(text, overlapping=True)
        return {self.token_list[i] for i, _, _ in found}

    def _is_token(self, tok: str, text: str, lowered: str) -> bool:
        """Whether tok may be a token of the text: some piece of it where it occurs either
        had markup inside (the prose may join it differently) or tokenizes to hold it.

        Markup at either end of a piece does not count: a tag adds nothing or a line
        break to the prose, so the prose's piece ends there all the same.
        """
        if tok in self.whole:
            return True
        place = self.places[tok].search(lowered)
        while place is not None:
            start, end = _piece_around(text, place.start(), place.end())
            piece = text[start:end].strip(_BREAK)
            if _BREAK in piece or tok in tokens(piece):
                return True
            place = self.places[tok].search(lowered, end)
        return False


def _token_place(tok: str) -> re.Pattern[str]:
    # the token's letters, with any breaks between them: a tag may split a word
    return re.compile(f"{_BREAK}*".join(re.escape(char) for char in tok))


def _piece_around(text: str, start: int, end: int) -> tuple[int, int]:
    """The whitespace-separated piece of text that holds text[start:end]."""
    while start > 0 and not text[start - 1].isspace():
        start -= 1
    while end < len(text) and not text[end].isspace():
        end += 1
    return start, end
