"""Reading a thread on purpose: the issue template, the replies that resolve it, and logs.

* Template: a project's issue template (an "Environment" block, a checklist) sits in
  faults and questions alike, so its sections and lines are stripped; its header ("Your
  question:", "Bug report:"), which says what kind of issue it is, becomes a marker.
* Replies: the study labels an issue by how its thread resolves, so the accepted answer
  and the comments that say what solved it are read apart from the other replies.
* Logs: an error line says what failed once its incidental parts are gone: MPI's rank
  prefix, timestamps, paths, hex addresses and numbers are normalised (so one failure on
  two machines reads the same), error codes kept as tokens, and repeated lines (the
  hundred INFO lines a communication library logs per run) read once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from issueminer.study import ThreadReading

NO_MARKER = "template_none"  # an issue without a known template header (a token, never empty)

# A line that starts a section: a Markdown heading, a bold line, or "Name:" alone.
_ANY_HEADER = re.compile(
    r"^\s*(?:#{1,6}\s+\S.*|(?:\*\*|__)[^*_\n]{1,80}(?:\*\*|__)\s*:?\s*"
    r"|[A-Z][\w ,/()?'-]{1,60}:)\s*$"
)
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(?:\[[ xX]\]\s*)?")

MPI_PREFIX = re.compile(r"^\s*\[\d+,\d+\]<(?:stdout|stderr)>:\s?")
# error codes kept as tokens ("exit code 137" -> exit_code_137): they name the failure
ERROR_CODE = re.compile(
    r"\b(exit code|exit status|exitcode|error code|errno|return code|signal|error)"
    r"\s*[:=]?\s*\(?(-?\d{1,5})\b"
)
TIMESTAMP = re.compile(
    r"\b\d{4}-\d\d-\d\d(?:[ t_]\d\d:\d\d(?::\d\d)?(?:[.,]\d+)?)?|\b\d\d:\d\d:\d\d(?:[.,]\d+)?"
)
HEX = re.compile(r"\b0x[0-9a-f]+\b|\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{8,}\b")
PATH = re.compile(
    r"(?<![\w/])(?:[a-z]:\\|~?/|\.\.?/)[\w.@+~-]+(?:[/\\][\w.@+~-]+)+"
    r"|\b[\w.-]+(?:/[\w.@+-]+){2,}"
)
NUMBER = re.compile(r"(?<![a-z_])\d+(?:\.\d+)*")
# placeholders: letters only, so the word tokeniser keeps them
TIME_TOKEN, HEX_TOKEN, PATH_TOKEN, NUMBER_TOKEN = " time ", " hexval ", " pathname ", " num "


@dataclass(frozen=True)
class ReplyText:
    """What the classifier reads of one reply: its kind, body (as stored) and whether the
    asker accepted it."""

    kind: str
    body: str
    accepted: bool = False


# ---- the template -------------------------------------------------------------------------
@lru_cache(maxsize=64)
def _named_headers(names: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    """A header naming one of `names`: a heading, a bold label, or the name and a colon
    ("Environment variables are ..." is prose, not the Environment section)."""
    if not names:
        return ()
    name = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
    return tuple(
        re.compile(pattern, re.I)
        for pattern in (
            rf"^\s*#{{1,6}}\s*({name})\s*\??\s*:?\s*()$",
            rf"^\s*(?:\*\*|__)\s*({name})\s*\??\s*:?\s*(?:\*\*|__)\s*:?\s*(.*)$",
            rf"^\s*({name})\s*\??\s*:\s*(.*)$",
        )
    )


def _header(line: str, patterns: tuple[re.Pattern[str], ...]) -> re.Match[str] | None:
    for pattern in patterns:
        match = pattern.match(line)
        if match:
            return match
    return None


def strip_template(prose: str, reading: ThreadReading) -> tuple[str, list[str]]:
    """The prose without the template's sections and lines, and the markers of its headers.

    A marker header ends any dropped section and is removed itself (what follows it on its
    line is kept); a section header drops its lines up to the next header of any kind.
    """
    markers: list[str] = []
    named = _named_headers(tuple(reading.markers) + reading.sections)
    if not named and not reading.lines:
        return prose, markers
    kept: list[str] = []
    dropping = False
    for line in prose.splitlines():
        match = _header(line, named)
        if match:
            name = match.group(1).lower()
            dropping = name in reading.sections
            if name in reading.markers:
                markers.append(f"template_{reading.markers[name]}")
            if not dropping and match.group(2).strip(" *_"):
                kept.append(match.group(2))
            continue
        if dropping and _ANY_HEADER.match(line):
            dropping = False
        if dropping:
            continue
        lowered = _BULLET.sub("", line).lower()
        if any(words in lowered for words in reading.lines):
            continue
        kept.append(line)
    return "\n".join(kept), list(dict.fromkeys(markers))


# ---- replies ------------------------------------------------------------------------------
def resolving(replies: Sequence[ReplyText], reading: ThreadReading) -> list[ReplyText]:
    """The replies that hold the resolution: the accepted answer, comments that say what
    solved the issue (the study's resolving words), and the study's last N comments."""
    last = set(range(len(replies) - reading.last_comments, len(replies)))
    found = []
    for index, reply in enumerate(replies):
        text = (reply.body or "").lower()
        if (
            reply.accepted
            or index in last
            or any(words in text for words in reading.resolving_words)
        ):
            found.append(reply)
    return found


# ---- logs ---------------------------------------------------------------------------------
def error_codes(line: str) -> list[str]:
    """Error codes of a lower-cased line as tokens: 'exit code 137' -> 'exit_code_137'."""
    return [
        f"{kind.replace(' ', '_')}_{number.lstrip('-')}"
        for kind, number in ERROR_CODE.findall(line)
    ]


def normalise_log_line(line: str) -> str:
    """A lower-cased log line with its run-specific parts replaced by placeholders."""
    line = MPI_PREFIX.sub("", line)
    line = TIMESTAMP.sub(TIME_TOKEN, line)
    line = PATH.sub(PATH_TOKEN, line)
    line = HEX.sub(HEX_TOKEN, line)
    return re.sub(r"[ \t]+", " ", NUMBER.sub(NUMBER_TOKEN, line)).strip()
