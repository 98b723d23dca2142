"""A deterministic, realistic synthetic Stack Overflow Posts.xml.

It looks like the published dump: one `<row .../>` per line in Id order with the dump's
attributes in the dump's order, HTML bodies escaped into XML attributes (newlines as
`&#xA;`, code blocks whose own `<`/`&` are escaped twice), about 40% questions, 58%
answers that mostly follow their question (a few, like answers moved by a merge, come
before it), gaps where posts were deleted, a few wiki posts, some non-ASCII text, and
about 3% of questions carrying one of the study's tags, with keywords in the title, in
the prose, only inside code, only inside a link, or nowhere.

The same seed and size always give the same bytes.

Usage: python -m bench.synthetic OUT [--size 1GB] [--seed 2023] [--tags pipe|angle|mixed]
"""

from __future__ import annotations

import argparse
import html
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

DEFAULT_SEED = 2023
STUDY_SHARE = 0.03  # share of questions with a study tag (the figure)
# Where a study-tagged question mentions a keyword: in the study's data about one in ten
# does so in its prose; others only in code or a link, most nowhere.
KIND_WEIGHTS = {"title": 3, "prose": 4, "phrase": 1, "code": 5, "url": 2, "none": 85}
START = datetime(2015, 1, 1, tzinfo=UTC)
SECONDS_PER_POST = 11  # about the site's posting rate
ANSWER_BEFORE_QUESTION = 0.002  # answers merged in from a question with a lower Id
DELETED_SHARE = 0.08  # Ids that never reach the dump
WIKI_SHARE = 0.015  # tag wikis and their excerpts (PostTypeId 4 and 5)
ORPHAN_SHARE = 0.02  # answers whose question was deleted or lies outside the dump

STUDY_TAGS = [("tensorflow", 6), ("keras", 3), ("pytorch", 4), ("horovod", 0.4)]
COMPANION_TAGS = ["python", "deep-learning", "neural-network", "gpu", "machine-learning", "cuda"]
COMMON_TAGS = str.split(
    "python javascript java c# php android html jquery c++ css ios sql mysql r node.js "
    "reactjs arrays c asp.net json ruby-on-rails .net sql-server swift python-3.x django "
    "objective-c angular excel pandas regex ruby iphone linux ajax spring typescript xml "
    "vba laravel wordpress database git bash postgresql docker numpy multithreading "
    "string go rust kotlin spark apache-spark dataframe"
)

WORDS = str.split(
    "the a my this when I it to of in and is for with that on but not have can how use "
    "value list file function error code output data model method class object result "
    "array string loop server request page query table column row version install build "
    "run running works returns gets shows using call called fails expected problem "
    "issue example variable memory time first second new old simple following below "
    "above getting trying tried want need help thanks anyone know why what where which "
    "update change set type number index key map test training layer batch size loss "
    "accuracy epoch tensor shape input weights gradient device process thread job queue"
)
KEYWORD_PHRASES = [
    "distributed",
    "in parallel",
    "several workers",
    "multiple GPUs",
    "multiple machines",
    "data-parallel",
    "multi-GPU",
    "parallelism",
    "distribute",
]
NON_ASCII = ["naïve", "café", "Größe", "日本語", "😀", "–", "“quoted”", "Ωmega", "ñandú"]
CODE_LINES = [
    "import numpy as np",
    "import tensorflow as tf",
    "import torch.distributed as dist",
    "from keras.models import Sequential",
    "strategy = tf.distribute.MirroredStrategy()",
    "model = torch.nn.parallel.DistributedDataParallel(model)",
    "for i in range(len(items)):",
    "    if a < b and b > c:",
    "        result.append(x & 0xFF)",
    'print("value: %s" % value)',
    'cfg = {"workers": 4, "multi_gpu": True}',
    "x = [i ** 2 for i in range(10) if i % 2 == 0]",
    "std::vector<int> v; v.push_back(1);",
    'document.querySelector("#id").innerHTML = "<b>bold</b>";',
    "public static void main(String[] args) { }",
    "$ python train.py --num-workers 8",
    "Traceback (most recent call last):",
    '  File "train.py", line 12, in <module>',
    "RuntimeError: CUDA out of memory.",
]
# a rare line that names a study tag the way the Tags attribute does, inside a body
TAG_LOOKALIKE = "SELECT * FROM posts WHERE score > 10 AND tags LIKE '%|keras|%';"


@dataclass
class Stats:
    rows: int = 0
    questions: int = 0
    answers: int = 0
    study_questions: int = 0
    bytes: int = 0
    answers_before_question: int = 0


@dataclass
class _Plan:
    """What is already decided about a future question: its early answers."""

    early_answers: list[int] = field(default_factory=list)


def attr(value: str) -> str:
    """The dump's escaping of an attribute value."""
    escaped = html.escape(value, quote=False).replace('"', "&quot;")
    return escaped.replace("\r", "&#xD;").replace("\n", "&#xA;").replace("\t", "&#x9;")


class _Writer:
    def __init__(self, rng: random.Random, tags_format: str) -> None:
        self.rng = rng
        self.tags_format = tags_format

    # ---- text ------------------------------------------------------------------------------
    def sentence(self, keyword: str | None = None) -> str:
        rng = self.rng
        words = rng.choices(WORDS, k=rng.randint(6, 18))
        if rng.random() < 0.04:
            words.insert(rng.randrange(len(words)), rng.choice(NON_ASCII))
        if keyword:
            words.insert(rng.randrange(len(words) + 1), keyword)
        text = " ".join(words)
        return text[0].upper() + text[1:] + rng.choice([".", ".", "?", "!", ":"])

    def paragraph(self, keyword: str | None = None) -> str:
        rng = self.rng
        sentences = [self.sentence() for _ in range(rng.randint(1, 4))]
        if keyword:
            sentences[rng.randrange(len(sentences))] = self.sentence(keyword)
        text = " ".join(sentences)
        roll = rng.random()
        if roll < 0.2:
            text += f" Calling <code>{html.escape(rng.choice(CODE_LINES).strip())}</code> fails."
        elif roll < 0.3:
            text += " See <strong>this</strong> &amp; <em>that</em>."
        return f"<p>{text}</p>\n"

    def code_block(self, lines: list[str] | None = None) -> str:
        rng = self.rng
        lines = lines or rng.choices(CODE_LINES, k=rng.randint(2, 12))
        if rng.random() < 0.002:
            lines.append(TAG_LOOKALIKE)
        lang = rng.choice(['<pre class="lang-py prettyprint-override">', "<pre>"])
        return f"{lang}<code>{html.escape(chr(10).join(lines), quote=False)}\n</code></pre>\n"

    def link(self, target: str) -> str:
        url = f"https://example.org/docs/{target}/guide"
        return f'<p>I followed <a href="{url}" rel="nofollow noreferrer">{url}</a>.</p>\n'

    def body(self, paragraphs: int, keyword: str | None = None, hidden: str = "") -> str:
        rng = self.rng
        parts = [self.paragraph() for _ in range(paragraphs)]
        for _ in range(rng.choice([0, 1, 1, 2])):
            parts.insert(rng.randrange(len(parts) + 1), self.code_block())
        if keyword:
            parts.insert(rng.randrange(len(parts) + 1), self.paragraph(keyword))
        if hidden == "code":
            parts.append(self.code_block(["strategy = distributed(workers=2)", "run()"]))
        elif hidden == "url":
            parts.append(self.link("distributed"))
        return "".join(parts)

    def title(self, keyword: str | None = None) -> str:
        rng = self.rng
        words = rng.choices(WORDS, k=rng.randint(4, 10))
        if keyword:
            words.insert(rng.randrange(len(words) + 1), keyword)
        roll = rng.random()
        if roll < 0.05:
            words.append('"quoted" & <angled>')
        elif roll < 0.08:
            words.append(rng.choice(NON_ASCII))
        return "How to " + " ".join(words) + "?"

    def tags(self, study: str | None) -> list[str]:
        rng = self.rng
        tags = rng.sample(COMMON_TAGS, rng.randint(1, 4))
        if study:
            tags = [study, *rng.sample(COMPANION_TAGS, rng.randint(0, 2)), *tags[:2]]
        return list(dict.fromkeys(tags))[:5]

    def tags_attr(self, tags: list[str]) -> str:
        style = self.tags_format
        if style == "mixed":
            style = self.rng.choice(["pipe", "angle"])
        if style == "pipe":
            return "|" + "|".join(tags) + "|"
        return "".join(f"<{t}>" for t in tags)

    @staticmethod
    def date(post_id: int) -> str:
        moment = START + timedelta(seconds=post_id * SECONDS_PER_POST)
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{post_id % 1000:03d}"


def _row(fields: list[tuple[str, object]]) -> str:
    inner = " ".join(f'{k}="{attr(str(v))}"' for k, v in fields if v is not None)
    return f"  <row {inner} />"


class Generator:
    """Posts in Id order; answers are scheduled ahead, so AcceptedAnswerId is known."""

    def __init__(
        self,
        seed: int = DEFAULT_SEED,
        tags_format: str = "pipe",
        study_share: float = STUDY_SHARE,
        kinds: dict[str, float] | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.study_share = study_share
        self.kinds = kinds or KIND_WEIGHTS
        self.text = _Writer(self.rng, tags_format)
        self.next_id = 1
        self.answers_due: dict[int, int] = {}  # answer Id -> question Id
        self.plans: dict[int, _Plan] = {}  # future question Id -> what is decided
        self.stats = Stats()

    def _free_id(self, wanted: int) -> int:
        while wanted in self.answers_due or wanted in self.plans:
            wanted += 1
        return wanted

    def rows(self) -> Callable[[], str | None]:
        def next_row() -> str | None:
            post_id = self.next_id
            self.next_id += 1
            if post_id in self.answers_due:
                return self._answer(post_id, self.answers_due.pop(post_id))
            if post_id in self.plans:
                return self._question(post_id, self.plans.pop(post_id))
            roll = self.rng.random()
            if roll < DELETED_SHARE:
                return None
            if roll < DELETED_SHARE + WIKI_SHARE:
                return self._wiki(post_id)
            if roll < DELETED_SHARE + WIKI_SHARE + ANSWER_BEFORE_QUESTION:
                question = self._free_id(post_id + self.rng.randint(1, 3000))
                self.plans[question] = _Plan([post_id])
                self.stats.answers_before_question += 1
                return self._answer(post_id, question)
            if roll < 1 - ORPHAN_SHARE:
                return self._question(post_id, _Plan())
            return self._answer(post_id, max(1, post_id - self.rng.randint(1, 50_000)))

        return next_row

    def _question(self, post_id: int, plan: _Plan) -> str:
        rng, text = self.rng, self.text
        self.stats.questions += 1
        study = None
        if rng.random() < self.study_share:
            study = rng.choices([t for t, _ in STUDY_TAGS], [w for _, w in STUDY_TAGS])[0]
            self.stats.study_questions += 1
        answer_ids = list(plan.early_answers)
        for _ in range(rng.choices([0, 1, 2, 3, 5], [25, 40, 20, 10, 5])[0]):
            delay = (
                int(rng.expovariate(1 / 40)) + 1 if rng.random() < 0.9 else rng.randint(1, 10**5)
            )
            answer = self._free_id(post_id + delay)
            self.answers_due[answer] = post_id
            answer_ids.append(answer)
        accepted = rng.choice(answer_ids) if answer_ids and rng.random() < 0.55 else None
        kind = rng.choices(list(self.kinds), list(self.kinds.values()))[0]
        keyword = rng.choice(KEYWORD_PHRASES) if study else None
        if not study and rng.random() < 0.05:
            keyword, kind = rng.choice(KEYWORD_PHRASES), "prose"
        if not study and rng.random() < 0.01:
            keyword, kind = rng.choice(["tensorflow", "keras", "PyTorch"]), "prose"
        title = text.title(keyword if kind == "title" else None)
        body = text.body(
            rng.randint(2, 6),
            keyword if kind in ("prose", "phrase") else None,
            kind if kind in ("code", "url") else "",
        )
        closed = text.date(post_id + 5000) if rng.random() < 0.04 else None
        return _row(
            [
                ("Id", post_id),
                ("PostTypeId", 1),
                ("AcceptedAnswerId", accepted),
                ("CreationDate", text.date(post_id)),
                ("Score", rng.randint(-3, 40)),
                ("ViewCount", rng.randint(5, 90_000)),
                ("Body", body),
                ("OwnerUserId", rng.randint(1, 20_000_000)),
                ("LastEditorUserId", rng.randint(1, 20_000_000) if rng.random() < 0.4 else None),
                ("LastEditDate", text.date(post_id + 900) if rng.random() < 0.4 else None),
                ("LastActivityDate", text.date(post_id + rng.randint(0, 99_999))),
                ("Title", title),
                ("Tags", text.tags_attr(text.tags(study))),
                ("AnswerCount", len(answer_ids)),
                ("CommentCount", rng.randint(0, 6)),
                ("FavoriteCount", rng.randint(1, 30) if rng.random() < 0.1 else None),
                ("ClosedDate", closed),
                ("ContentLicense", "CC BY-SA 4.0"),
            ]
        )

    def _answer(self, post_id: int, parent: int) -> str:
        rng, text = self.rng, self.text
        self.stats.answers += 1
        mention = rng.choice(["tensorflow", "keras"]) if rng.random() < 0.03 else None
        body = text.body(rng.randint(1, 4), mention)
        return _row(
            [
                ("Id", post_id),
                ("PostTypeId", 2),
                ("ParentId", parent),
                ("CreationDate", text.date(post_id)),
                ("Score", rng.randint(-2, 60)),
                ("Body", body),
                ("OwnerUserId", rng.randint(1, 20_000_000) if rng.random() < 0.97 else None),
                ("OwnerDisplayName", "user" + str(post_id % 977) if rng.random() < 0.03 else None),
                ("LastActivityDate", text.date(post_id + rng.randint(0, 99_999))),
                ("CommentCount", rng.randint(0, 4)),
                ("ContentLicense", "CC BY-SA 4.0"),
            ]
        )

    def _wiki(self, post_id: int) -> str:
        text = self.text
        return _row(
            [
                ("Id", post_id),
                ("PostTypeId", self.rng.choice([4, 5])),
                ("CreationDate", text.date(post_id)),
                ("Score", 0),
                ("Body", text.body(1)),
                ("LastActivityDate", text.date(post_id)),
                ("CommentCount", 0),
                ("ContentLicense", "CC BY-SA 3.0"),
            ]
        )


def write_posts(
    out: BinaryIO,
    size: int,
    seed: int = DEFAULT_SEED,
    tags_format: str = "pipe",
    newline: str = "\r\n",
    study_share: float = STUDY_SHARE,
    kinds: dict[str, float] | None = None,
) -> Stats:
    """Write about `size` bytes of Posts.xml to `out` (the closing tag always included)."""
    generator = Generator(seed, tags_format, study_share, kinds)
    next_row = generator.rows()
    head = f'<?xml version="1.0" encoding="utf-8"?>{newline}<posts>{newline}'.encode()
    out.write(head)
    written = len(head)
    batch: list[str] = []
    batch_bytes = 0
    while written + batch_bytes < size:
        row = next_row()
        if row is None:
            continue
        batch.append(row)
        batch_bytes += len(row) + len(newline)
        if len(batch) >= 2000:
            written += out.write((newline.join(batch) + newline).encode())
            generator.stats.rows += len(batch)
            batch, batch_bytes = [], 0
    # past the size nothing new starts; the answers already promised are still written
    _drain(generator, next_row, batch)
    generator.stats.rows += len(batch)
    if batch:
        written += out.write((newline.join(batch) + newline).encode())
    written += out.write(f"</posts>{newline}".encode())
    generator.stats.bytes = written
    return generator.stats


def _drain(generator: Generator, next_row: Callable[[], str | None], batch: list[str]) -> None:
    while generator.answers_due or generator.plans:
        post_id = generator.next_id
        if post_id in generator.answers_due or post_id in generator.plans:
            row = next_row()
            if row is not None:
                batch.append(row)
        else:
            generator.next_id += 1


def parse_size(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "K": 10**3, "M": 10**6, "G": 10**9}
    for suffix, factor in units.items():
        if text.upper().endswith(suffix):
            return int(float(text[: -len(suffix)]) * factor)
    return int(text)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", default="1GB")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--tags", default="pipe", choices=["pipe", "angle", "mixed"])
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_suffix(args.out.suffix + ".partial")
    with partial.open("wb") as handle:
        stats = write_posts(handle, parse_size(args.size), args.seed, args.tags)
    partial.replace(args.out)  # a half-written file never passes for a finished one
    print(f"{args.out}: {stats}", file=sys.stderr)


if __name__ == "__main__":
    main()
