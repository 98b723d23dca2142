"""Issue bodies to plain text: HTML (Stack Overflow) or Markdown (GitHub), code kept apart.

Two readings of a body: `plain_text` / `split_*` (the prose, code apart: what selection
and the classifier read) and `render_body` (the whole body for a person at a terminal:
code blocks and logs kept verbatim, links with their targets, HTML turned to Markdown).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
_INDENTED_CODE = re.compile(r"(?:^(?: {4}|\t).*(?:\n|$))+", re.M)
_URL = re.compile(r"https?://\S+")
# A Markdown link or image: its target ends at the first ")" (the URL pattern above would
# take the ")" and any text glued to it with the address).
_MARKDOWN_LINK = re.compile(r"(!?\[[^\]\n]*\])\((https?://[^\s)]+)(\s+\"[^\"\n]*\")?\)")
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
# The tags inline HTML in Markdown uses. Other "<word>" texts are not markup: MPI's
# "[1,0]<stderr>:" prefix, "<module>" in tracebacks, "<PATH>" placeholders.
_HTML_TAG_NAMES = (
    "a|abbr|b|blockquote|br|code|dd|del|details|div|dl|dt|em|h[1-6]|hr|i|img|ins|kbd|li|ol"
    "|p|picture|pre|q|s|samp|source|span|strike|strong|sub|summary|sup|table|tbody|td|tfoot"
    "|th|thead|tr|tt|u|ul|var|video"
)
_HTML_TAG = re.compile(rf"</?(?:{_HTML_TAG_NAMES})(?:\s[^<>]*)?/?>", re.I)
# Runs of spaces and tabs become one space. A lone space is left as it is (the same text,
# and a list of one piece per word less while tidying).
_SPACE_RUN = re.compile(r"\t[ \t]*| [ \t]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
URL_PLACEHOLDER = "URL"  # keeps sentence shape while hiding hosts that would match keywords


@dataclass
class SplitText:
    prose: str
    code: list[str] = field(default_factory=list)


class _HTMLSplitter(HTMLParser):
    """Collects prose and <pre>/<code> blocks separately; scripts and styles are dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.prose: list[str] = []
        self.code: list[str] = []
        self._pre = 0
        self._skip = 0
        self._block: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "pre":
            self._pre += 1
            self._block = []
        elif tag in ("p", "br", "li", "div", "h1", "h2", "h3", "blockquote"):
            self.prose.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag == "pre" and self._pre:
            self._pre -= 1
            self.code.append("".join(self._block))

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        (self._block if self._pre else self.prose).append(data)


def not_utf8(data: bytes, error: UnicodeDecodeError) -> tuple[int, str]:
    """The line of a file's first byte that is not UTF-8, and what to say of it."""
    line = data[: error.start].count(b"\n") + 1
    return line, f"byte {data[error.start]:#04x} is not UTF-8 (save as UTF-8)"


# A long body is fed to the HTML parser this many characters at a time, and its prose
# tidied as it comes: a 50 MB body fed whole made the parser copy it, joined its prose into
# one more copy, and tidying that built a list of every word (about 12 times the body).
FEED_CHARS = 1 << 16
HELD_BACK_CHARS = 1 << 20  # see `_fed`
LONG_RUN_CHARS = 1 << 16  # see `_TidiedProse.add`


def split_html(body: str) -> SplitText:
    parser = _HTMLSplitter()
    if len(body or "") <= FEED_CHARS:  # most bodies: fed whole, as pieces would give
        parser.feed(body or "")
        parser.close()
        return SplitText(tidy("".join(parser.prose)), parser.code)
    prose = _TidiedProse()
    for _ in _fed(parser, _pieces(body), prose):
        pass
    return SplitText(prose.text(), parser.code)


def prose_prefix(body: str, limit: int) -> tuple[str, bool]:
    """The first `limit` characters of a Stack Overflow body's prose, exactly
    `plain_text(body, "stackoverflow")[:limit]`, and whether the prose goes on past them;
    read only as far as it needs, and never holding more prose than that."""
    return pieces_prose_prefix(_pieces(body or ""), limit)


def pieces_prose_prefix(pieces: Iterable[str], limit: int) -> tuple[str, bool]:
    """`prose_prefix` of the body these pieces make, cut anywhere: pieces are consumed only
    as far as the prefix needs (a caller may go on with the rest of its iterator)."""
    parser = _HTMLSplitter()
    prose = _TidiedProse()
    for _ in _fed(parser, pieces, prose):
        if prose.length > limit:
            return prose.text()[:limit], True
    text = prose.text()
    return text[:limit], len(text) > limit


def _pieces(body: str) -> Iterator[str]:
    """A long body in pieces of about FEED_CHARS, each cut before a "<" where one is near
    (the parser holds back whatever it cannot finish yet, so any cut gives the same)."""
    start = 0
    while start < len(body):
        end = start + FEED_CHARS
        if end < len(body):
            cut = body.rfind("<", start + 1, end)
            end = cut if cut > start else end
        yield body[start:end]
        start = end


def _fed(parser: _HTMLSplitter, pieces: Iterable[str], prose: _TidiedProse) -> Iterator[None]:
    """Feeds the pieces one by one, moving the prose to `prose` after each and yielding,
    then closes the parser (a caller that stops early leaves the rest of `pieces` unread).

    A parser that holds back a long stretch it cannot finish yet (a tag megabytes long,
    text full of "&" it cannot tell from a reference) would read it again with every
    piece: then the rest of the body is fed at once, as the whole body used to be."""
    pieces = iter(pieces)
    for piece in pieces:
        parser.feed(piece)
        if len(parser.rawdata) > HELD_BACK_CHARS:
            parser.feed("".join(pieces))
        prose.add(parser.prose)
        parser.prose = []
        yield
    parser.close()
    prose.add(parser.prose, last=True)
    parser.prose = []
    yield


class _TidiedProse:
    """Prose tidied piece by piece, as `tidy` tidies it whole. A piece is cut where a
    non-space meets a space: no match of tidy's patterns spans such a place (a URL ends at
    the space; the space runs have no non-space), so tidying the pieces one by one and
    joining them gives what tidying the joined text gives, stripped at both ends."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pending = ""
        self.length = 0  # characters in `parts`
        # prose after a long run of spaces (never cut inside): kept as it comes and tidied
        # at the end, in one go, rather than joined to the run again with every piece
        self.uncut: list[str] | None = None

    def add(self, pieces: list[str], last: bool = False) -> None:
        if self.uncut is not None:
            self.uncut += pieces
            if not last:
                return
            pieces, self.uncut = self.uncut, None
        text = self.pending + "".join(pieces)
        cut = len(text) if last else _last_cut(text)
        if len(text) - cut > LONG_RUN_CHARS:  # no space for long: cut inside the run
            text, cut = _inside_run(text, cut)
            if len(text) - cut > LONG_RUN_CHARS:  # spaces: wait for the end
                self.uncut = []
        self.pending = text[cut:]
        if cut:
            part = tidy_piece(text[:cut])
            if not self.parts:
                part = part.lstrip()
            if last:
                part = part.rstrip()
            if part:
                self.parts.append(part)
                self.length += len(part)

    def text(self) -> str:
        return "".join(self.parts)


_SPACE_AFTER_NON_SPACE = re.compile(r"\S(?=\s)")


_URL_START = re.compile(r"https?://")
_URL_STAND_IN = "http://x"  # tidied as any URL is: the placeholder


def _inside_run(text: str, cut: int) -> tuple[str, int]:
    """(text, cut) for text that ends in a long run of non-spaces after `cut`, cut inside
    that run where tidying cannot tell: only a URL can span the cut there, so the cut is
    made before the first URL in the run, or 8 characters from the end (a URL may be
    beginning); a run that is a URL from its start is one URL to its end, which tidying
    replaces whatever it holds, so it is kept as a short stand-in."""
    run = len(text) - len(text[cut:].lstrip())
    if len(text) - run <= len(_URL_STAND_IN):  # a long run of spaces: no cut inside it
        return text, cut
    url = _URL_START.search(text, run)
    if url is None:
        return text, len(text) - len(_URL_STAND_IN)
    if url.start() > run:
        return text, url.start()
    return text[:run] + _URL_STAND_IN, cut


def _last_cut(text: str) -> int:
    """A place near the end of text where a non-space meets a space (0: none)."""
    trimmed = len(text.rstrip())
    if 0 < trimmed < len(text):
        return trimmed
    window = 1 << 12
    while True:
        ends = [m.end() for m in _SPACE_AFTER_NON_SPACE.finditer(text, max(0, len(text) - window))]
        if ends:
            return ends[-1]
        if window >= len(text):
            return 0
        window <<= 4


def split_markdown(body: str) -> SplitText:
    code: list[str] = []

    def keep(match: re.Match[str]) -> str:
        code.append(match.group(0))
        return "\n"

    prose = _FENCE.sub(keep, body or "")
    prose = _INDENTED_CODE.sub(keep, prose)
    prose = _HTML_COMMENT.sub(" ", prose)  # a template's instructions, hidden on GitHub
    prose = _HTML_TAG.sub(" ", prose)  # inline HTML in Markdown
    prose = _MARKDOWN_LINK.sub(lambda m: f"{m.group(1)}({URL_PLACEHOLDER})", prose)
    return SplitText(tidy(html.unescape(prose)), code)


# Bodies remembered by plain_text: a crawl page or a dump piece first judges its issues
# (selection reads their prose), then stores the kept ones with the same prose as `text`.
PLAIN_TEXT_CACHE = 1024
# Longer bodies are not remembered: the cache would keep a giant body and its prose alive
# long after their issue is stored (a dump row of 50 MB held 100 MB to the end of the scan).
CACHED_BODY_CHARS = 1 << 20


def plain_text(body: str | None, source: str) -> str:
    """The prose of a body with code removed and URLs replaced: what selection matches on."""
    if not body:
        return ""
    if len(body) > CACHED_BODY_CHARS:
        return _plain_text(body, source)
    return _cached_plain_text(body, source)


def _plain_text(body: str, source: str) -> str:
    split = split_html(body) if source == "stackoverflow" else split_markdown(body)
    return split.prose


_cached_plain_text = lru_cache(maxsize=PLAIN_TEXT_CACHE)(_plain_text)


def tidy(text: str) -> str:
    """Whitespace runs made one space, blank-line runs one blank line, URLs replaced."""
    return tidy_piece(text).strip()


def tidy_piece(text: str) -> str:
    """`tidy` without the strip at both ends (see `_TidiedProse`)."""
    text = _URL.sub(URL_PLACEHOLDER, text)
    text = _SPACE_RUN.sub(" ", text)
    return _BLANK_LINES.sub("\n\n", text)


# ---- bodies for a person at a terminal -------------------------------------------------------
_BLOCK_TAGS = ("p", "div", "blockquote", "ul", "ol", "table", "details", "hr")
_HEADINGS = {f"h{n}": "#" * n for n in range(1, 7)}
_MANY_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


class _HTMLRenderer(HTMLParser):
    """HTML (a Stack Overflow body) as Markdown: <pre> verbatim in a fence, <code> in
    backticks, links as [text](href), lists as "- ", quotes as "> "."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._pre = 0
        self._skip = 0
        self._quote = 0
        self._links: list[str | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("script", "style"):
            self._skip += 1
        elif tag == "pre":
            self._pre += 1
            if self._pre == 1:
                self.parts.append("\n\n```\n")
        elif self._pre:
            return  # markup inside a code block (<code>, <span>) adds nothing to show
        elif tag == "code":
            self.parts.append("`")
        elif tag == "a":
            self._links.append(values.get("href"))
            self.parts.append("[")
        elif tag == "img":
            self.parts.append(f"![{values.get('alt') or ''}]({values.get('src') or ''})")
        elif tag == "br":
            self.parts.append("\n")
        elif tag == "li":
            self.parts.append("\n- ")
        elif tag in _HEADINGS:
            self.parts.append(f"\n\n{_HEADINGS[tag]} ")
        elif tag in ("strong", "b"):
            self.parts.append("**")
        elif tag in ("em", "i"):
            self.parts.append("*")
        elif tag == "blockquote":
            self._quote += 1
            self.parts.append("\n\n")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)
        elif tag == "pre" and self._pre:
            self._pre -= 1
            if not self._pre:
                ending = "" if "".join(self.parts[-1:]).endswith("\n") else "\n"
                self.parts.append(f"{ending}```\n\n")
        elif self._pre:
            return
        elif tag == "code":
            self.parts.append("`")
        elif tag == "a" and self._links:
            href = self._links.pop()
            self.parts.append(f"]({href})" if href else "]")
        elif tag in ("strong", "b"):
            self.parts.append("**")
        elif tag in ("em", "i"):
            self.parts.append("*")
        elif tag == "blockquote":
            self._quote = max(0, self._quote - 1)
            self.parts.append("\n\n")
        elif tag in _BLOCK_TAGS or tag in _HEADINGS:
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._skip:
            return
        if self._pre:
            self.parts.append(data)  # whitespace and line breaks of code are its meaning
            return
        text = re.sub(r"\s+", " ", data)
        if self._quote:
            text = text.replace("\n", "\n> ")
            if not self.parts or self.parts[-1].endswith("\n"):
                text = "> " + text.lstrip()
        self.parts.append(text)


def render_html(body: str | None) -> str:
    """An HTML body as Markdown text, code blocks verbatim (for `issues show`)."""
    renderer = _HTMLRenderer()
    renderer.feed(body or "")
    renderer.close()
    lines = [
        line.rstrip() if not line.startswith("```") else line
        for line in "".join(renderer.parts).split("\n")
    ]
    return _MANY_BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")


def render_markdown(body: str | None) -> str:
    """A Markdown body as written, minus what GitHub never shows (HTML comments, which
    issue templates fill with instructions); code blocks and logs stay byte for byte."""
    text = (body or "").replace("\r\n", "\n").replace("\r", "\n")
    kept: list[str] = []
    position = 0
    for block in _FENCE.finditer(text):
        kept += [_outside_code(text[position : block.start()]), block.group(0)]
        position = block.end()
    kept.append(_outside_code(text[position:]))
    return "".join(kept).strip("\n")


def _outside_code(text: str) -> str:
    return _MANY_BLANK_LINES.sub("\n\n", _HTML_COMMENT.sub("", text))


def render_body(body: str | None, source: str) -> str:
    """The body for reading: Stack Overflow's HTML as Markdown, other sources' Markdown."""
    return render_html(body) if source == "stackoverflow" else render_markdown(body)
