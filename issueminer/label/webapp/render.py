"""Issue text is untrusted: render it to HTML that cannot run anything.

Stack Overflow bodies are HTML, GitHub bodies Markdown. Both end in the same allow-list
sanitiser (ammonia, via nh3): no scripts, no event handlers, no `javascript:` URLs, no
images (they would call out to third parties). The page's Content-Security-Policy is a
second wall behind this one.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p",
    "br",
    "pre",
    "code",
    "kbd",
    "samp",
    "blockquote",
    "em",
    "strong",
    "b",
    "i",
    "s",
    "del",
    "sup",
    "sub",
    "ul",
    "ol",
    "li",
    "a",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "details",
    "summary",
    "span",
    "div",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "code": {"class"}, "pre": {"class"}}
URL_SCHEMES = {"http", "https", "mailto"}

# raw HTML inside Markdown is turned into text, not passed through
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def sanitise(html: str) -> str:
    return nh3.clean(
        html or "",
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def render_body(body: str | None, source: str) -> str:
    """Safe HTML for an issue or reply body from `source` (stackoverflow: HTML; else Markdown)."""
    if not body:
        return ""
    if source == "stackoverflow":
        return sanitise(body)
    return sanitise(_MARKDOWN.render(body))
