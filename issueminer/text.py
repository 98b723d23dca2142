"""Issue bodies to plain text: HTML (Stack Overflow) or Markdown (GitHub), code kept apart."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from functools import lru_cache
from html.parser import HTMLParser

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.M | re.S)
_INDENTED_CODE = re.compile(r"(?:^(?: {4}|\t).*(?:\n|$))+", re.M)
_URL = re.compile(r"https?://\S+")
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


def split_html(body: str) -> SplitText:
    parser = _HTMLSplitter()
    parser.feed(body or "")
    parser.close()
    return SplitText(_tidy("".join(parser.prose)), parser.code)


def split_markdown(body: str) -> SplitText:
    code: list[str] = []

    def keep(match: re.Match[str]) -> str:
        code.append(match.group(0))
        return "\n"

    prose = _FENCE.sub(keep, body or "")
    prose = _INDENTED_CODE.sub(keep, prose)
    prose = re.sub(r"<[^>]+>", " ", prose)  # inline HTML in Markdown
    return SplitText(_tidy(html.unescape(prose)), code)


# Bodies remembered by plain_text: a crawl page or a dump piece first judges its issues
# (selection reads their prose), then stores the kept ones with the same prose as `text`.
PLAIN_TEXT_CACHE = 1024


@lru_cache(maxsize=PLAIN_TEXT_CACHE)
def plain_text(body: str | None, source: str) -> str:
    """The prose of a body with code removed and URLs replaced: what selection matches on."""
    if not body:
        return ""
    split = split_html(body) if source == "stackoverflow" else split_markdown(body)
    return split.prose


def _tidy(text: str) -> str:
    text = _URL.sub(URL_PLACEHOLDER, text)
    text = re.sub(r"[ \t]+", " ", text)
    return re.sub(r"\n\s*\n+", "\n\n", text).strip()
