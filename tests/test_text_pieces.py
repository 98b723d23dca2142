"""`text.split_html` feeds a body to the HTML parser in pieces and tidies its prose piece
by piece (so a giant body is never copied whole several times over): on any body, with
any piece size, it must give exactly what feeding the body whole and tidying the joined
prose gave (the reference below is that code, as it was). The classifier and the
selection read this text, so not one character may differ.
"""

from __future__ import annotations

import random
import re

import pytest

from issueminer import text
from issueminer.text import URL_PLACEHOLDER, _HTMLSplitter, plain_text, prose_prefix, split_html

FRAGMENTS = [
    "word",
    "distributed",
    "Ünïcödé",
    "数据并行",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "\n\n \n",
    "\u00a0",
    "\u2003",
    "\x1c",
    "<p>",
    "</p>",
    "<br>",
    "<br/>",
    "<li>",
    "<div class='x'>",
    "</div>",
    "<h1>",
    "<blockquote>",
    "<pre><code>",
    "</code></pre>",
    "<pre>",
    "</pre>",
    "<code>",
    "</code>",
    '<a href="https://example.com/a?b=1&amp;c=2">',
    "</a>",
    "<script>var a = '<p>';</script>",
    "<style>p { x: 1 }</style>",
    "<script>",
    "</script>",
    "<!-- a comment < with > signs -->",
    "<!--",
    "-->",
    "<!DOCTYPE html>",
    "<![CDATA[ x < y ]]>",
    "<!bogus>",
    "<?pi x?>",
    "&amp;",
    "&lt;",
    "&gt;",
    "&#39;",
    "&#x27;",
    "&nbsp;",
    "&copy",
    "&",
    "& ",
    "&#",
    "&#x",
    "&unknown;",
    "<",
    "< b",
    "</",
    ">",
    "[link](https://example.com/x)",
    "https://example.com/path_(x)",
    "http://a.b/c",
    "see https://x.y/z.",
    '<img src="a.png" alt="an image">',
    "<unknown-tag attr=1>",
    "<p",
    '<a href="',
]


def reference(body: str) -> tuple[str, list[str]]:
    """split_html as it was: the body fed whole, the prose joined, then tidied."""
    parser = _HTMLSplitter()
    parser.feed(body)
    parser.close()
    prose = text._URL.sub(URL_PLACEHOLDER, "".join(parser.prose))
    prose = re.sub(r"[ \t]+", " ", prose)
    return re.sub(r"\n\s*\n+", "\n\n", prose).strip(), parser.code


def bodies(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    made = ["", " ", "\n\n", "<p></p>", "plain words only", "x" * 5000, " y" * 3000]
    for _ in range(count):
        length = rng.choice([1, 3, 10, 40, 200])
        made.append("".join(rng.choice(FRAGMENTS) for _ in range(length)))
    return made


@pytest.mark.parametrize("feed_chars", [1, 2, 5, 17, 64, 1000, text.FEED_CHARS])
@pytest.mark.parametrize("long_run", [9, 30, text.LONG_RUN_CHARS])
def test_split_html_in_pieces_gives_what_the_whole_body_gave(
    monkeypatch, feed_chars, long_run
) -> None:
    monkeypatch.setattr(text, "FEED_CHARS", feed_chars)
    monkeypatch.setattr(text, "LONG_RUN_CHARS", long_run)  # runs cut inside, URLs or not
    monkeypatch.setattr(text, "HELD_BACK_CHARS", long_run * 3)
    for body in bodies(400, feed_chars + long_run):
        split = split_html(body)
        assert (split.prose, split.code) == reference(body), repr(body)


@pytest.mark.parametrize("feed_chars", [3, 50, text.FEED_CHARS])
def test_prose_prefix_is_the_start_of_plain_text(monkeypatch, feed_chars) -> None:
    monkeypatch.setattr(text, "FEED_CHARS", feed_chars)
    rng = random.Random(feed_chars)
    for body in bodies(300, feed_chars + 1):
        whole = reference(body)[0]
        for limit in {0, 1, len(whole) - 1, len(whole), len(whole) + 1, rng.randrange(200)}:
            if limit < 0:
                continue
            assert prose_prefix(body, limit) == (whole[:limit], len(whole) > limit), repr(body)


def test_a_long_body_is_not_kept_by_the_cache() -> None:
    long_body = "<p>" + "distributed training hangs " * (text.CACHED_BODY_CHARS // 20) + "</p>"
    text._cached_plain_text.cache_clear()  # a full cache (earlier tests) would not grow
    before = text._cached_plain_text.cache_info().currsize
    assert plain_text(long_body, "stackoverflow") == reference(long_body)[0]
    assert text._cached_plain_text.cache_info().currsize == before
    short = "<p>short &amp; sweet</p>"
    assert plain_text(short, "stackoverflow") == "short & sweet"
    assert text._cached_plain_text.cache_info().currsize == before + 1


def test_tidy_gives_what_it_gave() -> None:
    """Runs of spaces and tabs are matched only where they change (a lone space stays)."""

    def old_tidy(value: str) -> str:
        value = text._URL.sub(URL_PLACEHOLDER, value)
        value = re.sub(r"[ \t]+", " ", value)
        return re.sub(r"\n\s*\n+", "\n\n", value).strip()

    for value in bodies(500, 99) + [" \t ", "a \t b", "a\t\tb", "a  b", "a b", "\t", " "]:
        assert text.tidy(value) == old_tidy(value), repr(value)


def test_prose_of_pieces_cut_anywhere() -> None:
    rng = random.Random(5)
    for body in bodies(300, 6):
        cuts = sorted(rng.sample(range(len(body) + 1), min(len(body) + 1, rng.randrange(1, 9))))
        pieces = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        whole = reference(body)[0]
        limit = rng.randrange(len(whole) + 2)
        assert text.pieces_prose_prefix(iter(pieces), limit) == (whole[:limit], len(whole) > limit)


@pytest.mark.parametrize(
    "body",
    [
        "<p>" + "a" * 300_000 + "</p>",  # a run without a space, longer than a piece
        "<p>x https://" + "a" * 300_000 + " y</p>",  # ... that is a URL
        "<p>" + "b" * 200_000 + "https://q.r" + "c" * 100_000 + " e</p>",  # URL inside it
        "<p>" + "ab" * 100 + "http" + "c" * 300_000 + "https://x.y" + "d" * 90_000 + "</p>",
        '<img src="data:' + "a" * 300_000 + '"><p>z</p>',  # a tag longer than a piece
        "<p>" + "a&b" * 100_000 + "</p>",  # "&"s the parser holds back
        "<p>x" + " \n\t" * 100_000 + "y https://a.b c</p>",  # a long run of spaces
        "<p>" + "\n" * 200_000 + "</p>",  # nothing but spaces
    ],
)
def test_long_runs_and_held_back_stretches(monkeypatch, body) -> None:
    """Cut inside a long run of non-spaces, or fed at once where the parser holds back,
    it reads as the whole body did (and in linear time: a 50 MB such body was quadratic)."""
    monkeypatch.setattr(text, "FEED_CHARS", 4096)
    monkeypatch.setattr(text, "LONG_RUN_CHARS", 10_000)
    monkeypatch.setattr(text, "HELD_BACK_CHARS", 50_000)
    split = split_html(body)
    assert (split.prose, split.code) == reference(body)
    assert prose_prefix(body, 1000) == (reference(body)[0][:1000], len(reference(body)[0]) > 1000)
