"""Issue text is untrusted: render it to HTML that cannot run anything.

Stack Overflow bodies are HTML, GitHub bodies Markdown. Both end in the same allow-list
sanitiser (ammonia, via nh3): no scripts, no event handlers, no `javascript:` URLs. Images
are not loaded (they would call out to third parties) but stay visible as a placeholder
with their alt text and a link to the original, so a screenshot-only issue does not look
empty. The page's Content-Security-Policy is a second wall behind this one.
"""

from __future__ import annotations

import re

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
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "code": {"class"},
    "pre": {"class"},
    "img": {"src", "alt"},  # kept only to become a placeholder (`_IMAGE`)
}
URL_SCHEMES = {"http", "https", "mailto"}

# raw HTML inside Markdown is turned into text, not passed through
_MARKDOWN = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


# an image as the sanitiser writes it: attributes quoted and escaped, in any order
_IMAGE = re.compile(r"<img((?:\s+(?:src|alt)=\"[^\"]*\")*)\s*/?>")
_ATTRIBUTE = re.compile(r'(src|alt)="([^"]*)"')


def _placeholder(match: re.Match[str]) -> str:
    attributes = dict(_ATTRIBUTE.findall(match.group(1)))
    label = f"[image: {attributes['alt']}]" if attributes.get("alt") else "[image]"
    if not attributes.get("src"):
        return f'<span class="image">{label}</span>'
    link = f'<a href="{attributes["src"]}" rel="noopener noreferrer nofollow">open the image</a>'
    return f'<span class="image">{label} {link}</span>'


def sanitise(html: str) -> str:
    clean = nh3.clean(
        html or "",
        tags=ALLOWED_TAGS | {"img"},
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    # the values were escaped by the sanitiser, and the URL's scheme checked
    return _IMAGE.sub(_placeholder, clean)


def render_body(body: str | None, source: str) -> str:
    """Safe HTML for an issue or reply body from `source` (stackoverflow: HTML; else Markdown)."""
    if not body:
        return ""
    if source == "stackoverflow":
        return sanitise(body)
    return sanitise(_MARKDOWN.render(body))
