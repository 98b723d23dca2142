"""From a thread to the classifier's text fields: words, title, error signals, the
template's marker, the replies and the replies that resolve the issue.

Prose and code are split (`issueminer.text`) and treated differently on purpose:

* words: the title and the prose, tokenised with spaCy (the `selection.tokens` rules),
  lower-cased, tokens without a letter dropped (numbers, versions and ids are noise);
* title: the character n-grams of the title's words (spelling variants such as
  "all_reduce" and "allreduce", where they carry most weight);
* signals: what names the failure, wherever it occurs: exception class names, a fixed
  set of generic error patterns ("CUDA out of memory", "Segmentation fault", ...) plus
  the study file's own (`classifier.signals`), and the error lines of code blocks and
  pasted logs (normalised, error codes kept: `thread.normalise_log_line`). A log's other
  lines (step counters, progress, environment dumps, INFO chatter) are dropped: they are
  long, and they say nothing about what went wrong;
* template: the markers of the study's issue template ("Your question:" -> a question
  marker), whose other parts are stripped from the words (`thread.strip_template`);
* replies and resolution: the words and signals of every reply, and of the replies that
  resolve the issue (accepted answer, resolving comments), each a field of its own.

Features are computed per issue and hold no state fitted on other issues, so computing
them once before cross-validation cannot leak a test fold into training.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from issueminer.analyse.classify.thread import (
    NO_MARKER,
    ReplyText,
    error_codes,
    normalise_log_line,
    resolving,
    strip_template,
)
from issueminer.collect.selection import tokens
from issueminer.study import THREAD_FIELDS, ThreadReading
from issueminer.text import SplitText, split_html, split_markdown, tidy

FIELDS = THREAD_FIELDS
NO_REPLY = "reply_none"  # an issue nobody answered (a token, so the field is never empty)
MAX_REPLY_TOKENS = 400  # per field: a long discussion's later turns repeat its first
MAX_PROSE_TOKENS = 600  # prose longer than this is pasted output; the cap bounds cost per issue
MAX_ERROR_LINES = 8  # a traceback's last lines name the error; a log's other lines are noise
MAX_LINE_CHARS = 300  # one error line's useful part; the rest is paths and hex dumps
MAX_TOKEN_CHARS = 40  # longer "words" are hashes, paths and base64, never vocabulary
TOKEN_CACHE_LIMIT = 500_000  # chunks remembered; about 100 MB at worst, then it starts over

# Lines of a log pasted into prose without a code block: tracebacks and timestamped output.
LOG_LINE = re.compile(
    r'^\s*(?:Traceback \(most recent call last\)|File ".*", line \d+'
    r"|\[?\d{4}-\d\d-\d\d[ T]\d\d:\d\d|\[?\d\d:\d\d:\d\d|[IWEF]\d{4} \d\d:\d\d"
    r"|\[\d+,\d+\]<std(?:out|err)>:|\S+:\d+:\d+ \[\d+\] \w+ (?:INFO|WARN)"  # MPI ranks, libraries
    r"|(?:ERROR|WARNING|INFO|DEBUG):|(?:Collecting|Building wheel|Running setup\.py) )"  # pip
)
# What makes a line of code or log one that reports a problem (the only lines kept from
# code blocks); matched on lower-cased text, several times faster than re.IGNORECASE.
ERROR_WORD = re.compile(
    r"error|exception|fault|fatal|fail|killed|abort|timed? ?out|denied|refused|no such"
    r"|not found|cannot|could not|undefined|unsupported|not implemented|warn|exit (?:code|status)"
    r"|errno|non-zero"
)
# The end of an exception class name (RuntimeError, ValueError, ...); the name is found by
# walking back from it, much faster than a regex that has to try every word start.
EXCEPTION_SUFFIX = re.compile(r"(?:Error|Exception|Fault|Interrupt|Warning)\b")
TITLE_NGRAMS = (3, 5)  # character n-grams of title words: "allreduce" meets "all_reduce"
# Failures researchers label by name, in any study: each pattern becomes one feature,
# found in prose or code. The substrings before each pattern are a cheap test that every
# match passes: searching a few words with `in` is much faster than a regex scan, and
# most issues contain few of them. A study adds its own in its file.
ERROR_SIGNALS = {
    "out_of_memory": (
        ("memory", "oom", "exhausted"),
        r"out of memory|\boom\b|resource ?exhausted|cannot allocate memory",
    ),
    "segfault": (
        ("segmentation", "segfault", "sigsegv", "core dumped", "bus error", "sigabrt"),
        r"segmentation fault|segfault|sigsegv|core dumped|bus error|sigabrt",
    ),
    "timeout": (("time", "deadline"), r"timed? ?out|timeout|deadline exceeded"),
    "connection": (
        ("connection", "address already", "broken pipe"),
        r"connection (?:refused|reset|closed)|address already in use|broken pipe",
    ),
    "undefined_symbol": (
        ("symbol", "shared object"),
        r"undefined symbol|cannot open shared object|symbol not found",
    ),
    "missing_module": (
        ("module", "import"),
        r"no module named|modulenotfounderror|cannot import name",
    ),
    "build_failure": (
        ("wheel", "errored", "compilation", "cmake"),
        r"failed building wheel|command errored out|compilation terminated|cmake error",
    ),
    "cuda_device": (
        ("ordinal", "cuda", "device-side"),
        r"invalid device ordinal|cuda error|no cuda gpus|device-side assert",
    ),
    "shape_mismatch": (
        ("mismatch", "incompatible", "size"),
        r"shape mismatch|size mismatch|incompatible shapes|sizes? of tensors? must",
    ),
    "missing_path": (
        ("no such file", "filenotfound", "permission"),
        r"no such file or directory|filenotfounderror|permission denied",
    ),
    "not_implemented": (
        ("implemented", "supported"),
        r"notimplementederror|not (?:yet )?(?:implemented|supported)",
    ),
    "nan": (("nan",), r"\bnan\b"),
    "hang": (
        ("hang", "stuck", "freez", "deadlock"),
        r"\bhangs?\b|\bhanging\b|\bstuck\b|\bfreez|\bdeadlock",
    ),
    "killed": (("kill", "exit"), r"\bkilled\b|sigkill|exit (?:code|status) -?9\b"),
    "attribute": (("attribute",), r"attributeerror|has no attribute"),
}
NO_SIGNAL = "signal_none"  # no error anywhere is itself telling (how-to questions, mostly)
SignalSpec = Mapping[str, tuple[Sequence[str], str]]  # name -> (anchors, pattern)
Signals = dict[str, tuple[tuple[str, ...], re.Pattern[str]]]


def compile_signals(study_signals: SignalSpec | None = None) -> Signals:
    """The generic error signals plus a study's own (`Taxonomy.signals`)."""
    specs = {**ERROR_SIGNALS, **(study_signals or {})}
    return {
        name: (tuple(anchors), re.compile(pattern)) for name, (anchors, pattern) in specs.items()
    }


GENERIC_SIGNALS = compile_signals()
DEFAULT_READING = ThreadReading()  # no template to strip, the default weights
_HAS_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class Document:
    """What the classifier reads of an issue: its title and its body as fetched."""

    title: str
    body: str
    source: str = "github"  # stackoverflow bodies are HTML, every other source's Markdown
    uid: str = ""
    replies: tuple[ReplyText, ...] = ()  # answers and comments, in thread order


_chunk_tokens: dict[str, tuple[str, ...]] = {}
_chunk_words: dict[str, tuple[str, ...]] = {}
_word_ngrams: dict[str, tuple[str, ...]] = {}


def _remember(cache: dict[str, tuple[str, ...]], chunk: str, value: tuple[str, ...]) -> None:
    if len(cache) >= TOKEN_CACHE_LIMIT:
        cache.clear()
    cache[chunk] = value


def tokenize(text: str) -> list[str]:
    """Exactly `selection.tokens(text)`, about twenty times faster on real issues.

    spaCy splits text at whitespace first and tokenises each chunk on its own, so the
    tokens of a chunk can be remembered: most chunks of the next issue ("the", "GPU",
    "error") were seen before, and spaCy's per-call overhead is paid once per new chunk.
    """
    found: list[str] = []
    for chunk in text.split():
        cached = _chunk_tokens.get(chunk)
        if cached is None:
            cached = tuple(tokens(chunk))
            _remember(_chunk_tokens, chunk, cached)
        found.extend(cached)
    return found


def _words(text: str) -> list[str]:
    """`tokenize`, keeping tokens with a letter and of a word's length (also remembered)."""
    found: list[str] = []
    for chunk in text.split():
        cached = _chunk_words.get(chunk)
        if cached is None:
            kept = (
                t for t in tokenize(chunk) if len(t) <= MAX_TOKEN_CHARS and _HAS_LETTER.search(t)
            )
            cached = tuple(kept)
            _remember(_chunk_words, chunk, cached)
        found.extend(cached)
    return found


_MARKDOWN_MARKUP = ("`", "~~~", "<", "&", "](", "\t", "\n    ")


def _plain(body: str, source: str) -> bool:
    """A body without markup of its format, whose prose is itself (tidied)."""
    if source == "stackoverflow":
        return "<" not in body and "&" not in body
    return not body.startswith("    ") and not any(m in body for m in _MARKDOWN_MARKUP)


def _split(body: str, source: str) -> tuple[str, list[str]]:
    """Prose and code lines; log lines pasted into the prose count as code."""
    if _plain(body, source):
        split = SplitText(tidy(body))  # no markup (most comments): what the splitters give
    else:
        split = split_html(body) if source == "stackoverflow" else split_markdown(body)
    prose, code = [], [line for block in split.code for line in block.splitlines()]
    for line in split.prose.splitlines():
        (code if LOG_LINE.match(line) else prose).append(line)
    return "\n".join(prose), code


def error_lines(code_lines: list[str]) -> dict[str, str]:
    """The last `MAX_ERROR_LINES` different lines that report a problem, in text order:
    each normalised (`thread.normalise_log_line`) -> the line lower-cased, whose error
    codes the normalised form has lost; a line repeated by every rank counts once.

    Read from the end: a traceback ends with its error, so long logs are rarely read
    through.
    """
    found: dict[str, str] = {}
    for line in reversed(code_lines):
        lowered = line.lower()
        if ERROR_WORD.search(lowered):
            lowered = lowered.strip()[:MAX_LINE_CHARS]
            found.setdefault(normalise_log_line(lowered), lowered)
            if len(found) == MAX_ERROR_LINES:
                break
    return dict(reversed(found.items()))


def exception_names(text: str) -> list[str]:
    """Exception class names in order of first occurrence (RuntimeError, OSError)."""
    found = []
    for match in EXCEPTION_SUFFIX.finditer(text):
        start = match.start()
        while start and text[start - 1].isalnum():
            start -= 1
        name = text[start : match.end()]
        is_word = start == 0 or text[start - 1] != "_"
        if is_word and name[0].isupper() and len(name) > match.end() - match.start():
            found.append(name)
    return list(dict.fromkeys(found))


def signals(text: str, code_lines: list[str], patterns: Signals = GENERIC_SIGNALS) -> list[str]:
    """Exception names, named error patterns and the words of error lines, as feature tokens."""
    normalised = error_lines(code_lines)
    errors = list(normalised.values())
    everything = "\n".join([text.lower(), *errors])
    codes = [code for line in errors for code in error_codes(line)]
    found = [
        f"signal_{name}"
        for name, (anchors, pattern) in patterns.items()
        if any(a in everything for a in anchors) and pattern.search(everything)
    ]
    names = exception_names(text + "\n" + "\n".join(code_lines))
    found += [f"exception_{name.lower()}" for name in names]
    found += codes
    for line in normalised:  # each line's normalised words, once: not normalised again
        found += _words(line)
    return found or [NO_SIGNAL]


def title_ngrams(title: str) -> list[str]:
    """Character n-grams of each title word, marked at word edges (remembered per word)."""
    found: list[str] = []
    for word in _words(title):
        cached = _word_ngrams.get(word)
        if cached is None:
            padded = f"_{word}_"
            low, high = TITLE_NGRAMS
            cached = tuple(
                padded[i : i + n] for n in range(low, high + 1) for i in range(len(padded) - n + 1)
            )
            _remember(_word_ngrams, word, cached)
        found.extend(cached)
    return found


def _prose_and_markers(
    document: Document, reading: ThreadReading
) -> tuple[str, list[str], list[str]]:
    prose, code = _split(document.body or "", document.source)
    prose, markers = strip_template(prose, reading)
    return prose, code, markers


def _reply_terms(parts: list[tuple[str, list[str]]], patterns: Signals) -> str:
    """Words and error signals of replies (their prose and code lines), or `NO_REPLY`."""
    if not parts:
        return NO_REPLY
    words: list[str] = []
    for prose, _ in parts:
        words += _words(prose)
        if len(words) >= MAX_REPLY_TOKENS:
            break
    prose = "\n".join(prose for prose, _ in parts)
    code = [line for _, lines in parts for line in lines]
    found = [s for s in signals(prose, code, patterns) if s != NO_SIGNAL]
    return " ".join([*words[:MAX_REPLY_TOKENS], *found]) or NO_REPLY


def featurize_one(
    document: Document,
    patterns: Signals = GENERIC_SIGNALS,
    reading: ThreadReading = DEFAULT_READING,
) -> tuple[str, ...]:
    title = document.title or ""
    prose, code, markers = _prose_and_markers(document, reading)
    words = _words(title) + _words(prose)[:MAX_PROSE_TOKENS]
    grams = " ".join(title_ngrams(title))
    replies = list(document.replies)
    # each reply is split once; the resolving ones are read again as their own field
    parts = {id(r): _split(r.body or "", document.source) for r in replies}
    resolution = [parts[id(r)] for r in resolving(replies, reading)]
    return (
        " ".join(words),
        grams,
        " ".join(signals(f"{title}\n{prose}", code, patterns)),
        " ".join(markers) or NO_MARKER,
        _reply_terms(list(parts.values()), patterns),
        _reply_terms(resolution, patterns),
    )


def featurize(
    documents: Iterable[Document],
    study_signals: SignalSpec | None = None,
    reading: ThreadReading | None = None,
) -> pd.DataFrame:
    """One row per document with the columns of `FIELDS` (the pipeline's input)."""
    patterns = compile_signals(study_signals) if study_signals else GENERIC_SIGNALS
    reading = reading or DEFAULT_READING
    rows = [featurize_one(d, patterns, reading) for d in documents]
    return pd.DataFrame(rows, columns=list(FIELDS))
