"""One row of a dump: the file format's quirks, parsing a `<row .../>` line, and the row in
the shape the Stack Exchange API gives, so that what the dump yields is stored exactly as
what the API crawler stores (`question_envelope`) and an issue found both ways is one row.

A row that cannot be parsed raises `BadRow`, which says what kind of bad input it is; the
scan reports it with its place and goes on. A row that declares a DOCTYPE or entities is
refused as such (the published dumps never do), whatever the installed expat would allow.
"""

from __future__ import annotations

import html
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any

from issueminer.collect.checkpoints import Envelope
from issueminer.collect.large_text import LargeText
from issueminer.collect.sources.stackexchange import question_envelope
from issueminer.ids import STACKOVERFLOW_ORIGIN

# ---- format quirks of the published dumps ------------------------------------------------
NEWLINE = b"\n"  # one row per line: newlines inside values are written as &#xA;
LINE_END = b"\r\n"  # some dumps end lines with CRLF
# Attributes are always double-quoted, written without spaces around "=", and a `"` inside
# a value is escaped as &quot;, so `Name="` only ever starts that attribute.
PARENT_ID = b'ParentId="'
POST_ID = b'PostId="'  # Comments.xml: the commented post
# a row's own Id: after a space, so ParentId, PostId, AcceptedAnswerId and the user ids
# (a letter before `Id`) are not taken for it. The dump writes Id first, but a row that
# does not is still a row: it is found wherever its Id stands.
ROW_ID = b' Id="'

TAGS_ATTR = b'Tags="'
ACCEPTED_ATTR = b'AcceptedAnswerId="'
# Tags come as `|a|b|` (newer dumps) or `<a><b>` written `&lt;a&gt;&lt;b&gt;` (older);
# `>` may legally stay unescaped in an XML attribute.
TAG_OPENERS = (b"|", b"&lt;")
TAG_CLOSERS = (b"|", b"&gt;", b">")
TAG_OPEN = rb"(?:" + b"|".join(map(re.escape, TAG_OPENERS)) + rb")"
TAG_CLOSE = rb"(?:" + b"|".join(map(re.escape, TAG_CLOSERS)) + rb")"
ANGLE_TAG = re.compile(r"<([^<>]+)>")
# a DTD, and the entities it declares, are never in a dump: refused wherever they are
DECLARATIONS = (b"<!DOCTYPE", b"<!ENTITY")

DUMP_MARKER = "stackexchange-data-dump"  # raw["source"] of everything stored from a dump


class BadRow(Exception):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __reduce__(self) -> tuple[Any, ...]:
        return BadRow, (self.kind, self.message)  # so that it can come back from a worker


def parse_row(line: bytes) -> dict[str, str]:
    """The attributes of one `<row .../>` line, XML-unescaped; BadRow says what is wrong."""
    if b"<!" in line:  # only a line that is no plain row gets here from `parse_rows`
        _refuse_declarations(line)
    try:
        element = ET.fromstring(line)
    except ET.ParseError as exc:
        raise _bad_row(line, exc) from None
    if element.tag != "row" or "Id" not in element.attrib:
        raise BadRow("malformed-row", f"not a <row> with an Id: {line[:60]!r}")
    return dict(element.attrib)


def _refuse_declarations(line: bytes) -> None:
    for declaration in DECLARATIONS:
        at = line.find(declaration)
        if at >= 0:
            name = declaration[2:].decode()
            raise BadRow(
                "dtd-declaration",
                f"a {name} declaration at column {at + 1}: refused (a dump has none)",
            )


def _bad_row(line: bytes, exc: ET.ParseError) -> BadRow:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as bad:
        byte = line[bad.start]
        return BadRow("non-utf8", f"byte 0x{byte:02x} at column {bad.start + 1} is not UTF-8")
    message = str(exc)
    column = exc.position[1] + 1 if exc.position else 0
    if "invalid character number" in message:
        return BadRow("invalid-character-reference", f"{message.split(':')[0]} at column {column}")
    return BadRow("malformed-row", f"{message.split(':')[0]} at column {column}")


def parse_rows(lines: list[bytes]) -> list[dict[str, str] | BadRow]:
    """Many rows at once (one parser run), falling back to one by one when any is broken.

    Inside the `<rows>` wrapper no DOCTYPE can stand, so a row declaring one breaks the
    batch and is refused by `parse_row`."""
    if not lines:
        return []
    try:
        root = ET.fromstring(b"<rows>" + NEWLINE.join(lines) + b"</rows>")
    except ET.ParseError:
        root = None
    if root is not None and len(root) == len(lines):
        elements = list(root)
        if all(e.tag == "row" and "Id" in e.attrib for e in elements):
            return [dict(e.attrib) for e in elements]
    results: list[dict[str, str] | BadRow] = []
    for line in lines:
        try:
            results.append(parse_row(line))
        except BadRow as bad:
            results.append(bad)
    return results


def row_tags(value: str) -> list[str]:
    """Tags from either format: `|a|b|` or `<a><b>`."""
    if value.startswith("<"):
        return ANGLE_TAG.findall(value)
    return [tag for tag in value.split("|") if tag]


def dump_time(value: str | None) -> int | None:
    """A dump timestamp (2008-07-31T21:42:52.667, UTC without a zone) as unix seconds."""
    if not value:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def _int(attrs: dict[str, str], name: str) -> int | None:
    value = attrs.get(name)
    if value in (None, ""):
        return None
    try:
        return int(value)
    except ValueError:
        raise BadRow("malformed-row", f"attribute {name}={value!r} is not a number") from None


def _time(attrs: dict[str, str], name: str) -> int | None:
    try:
        return dump_time(attrs.get(name))
    except ValueError:
        raise BadRow("malformed-row", f"attribute {name}={attrs[name]!r} is not a date") from None


def _owner(attrs: dict[str, str], user: str, name: str) -> dict[str, Any] | None:
    owner = {"user_id": _int(attrs, user), "display_name": attrs.get(name)}
    owner = {k: v for k, v in owner.items() if v is not None}
    return owner or None


def _compact(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if v is not None}  # the API leaves out empty fields


def decision_fields(attrs: dict[str, str]) -> dict[str, Any]:
    """The fields the selection reads, in the API's shape."""
    return {
        "question_id": _int(attrs, "Id"),
        # the API sends titles HTML-escaped; the dump has them plain
        "title": html.escape(attrs.get("Title", "")),
        "body": attrs.get("Body"),
        "tags": row_tags(attrs.get("Tags", "")),
        "accepted_answer_id": _int(attrs, "AcceptedAnswerId"),
    }


def api_question(attrs: dict[str, str]) -> dict[str, Any]:
    """A Posts.xml question row in the API's shape, so `question_envelope` stores it alike."""
    return _compact(
        {
            **decision_fields(attrs),
            "score": _int(attrs, "Score"),
            "view_count": _int(attrs, "ViewCount"),
            "answer_count": _int(attrs, "AnswerCount"),
            "comment_count": _int(attrs, "CommentCount"),
            "favorite_count": _int(attrs, "FavoriteCount"),
            "creation_date": _time(attrs, "CreationDate"),
            "last_activity_date": _time(attrs, "LastActivityDate"),
            "last_edit_date": _time(attrs, "LastEditDate"),
            "closed_date": _time(attrs, "ClosedDate"),
            "community_owned_date": _time(attrs, "CommunityOwnedDate"),
            "owner": _owner(attrs, "OwnerUserId", "OwnerDisplayName"),
            "content_license": attrs.get("ContentLicense"),
            "link": f"{STACKOVERFLOW_ORIGIN}/questions/{attrs['Id']}",
        }
    )


def api_answer(attrs: dict[str, str], accepted_answer_id: int | None) -> dict[str, Any]:
    answer_id = _int(attrs, "Id")
    return _compact(
        {
            "answer_id": answer_id,
            "question_id": _int(attrs, "ParentId"),
            "body": attrs.get("Body"),
            "score": _int(attrs, "Score"),
            "is_accepted": answer_id == accepted_answer_id,
            "comment_count": _int(attrs, "CommentCount"),
            "creation_date": _time(attrs, "CreationDate"),
            "last_activity_date": _time(attrs, "LastActivityDate"),
            "last_edit_date": _time(attrs, "LastEditDate"),
            "owner": _owner(attrs, "OwnerUserId", "OwnerDisplayName"),
            "content_license": attrs.get("ContentLicense"),
        }
    )


def api_comment(attrs: dict[str, str]) -> dict[str, Any]:
    return _compact(
        {
            "comment_id": _int(attrs, "Id"),
            "post_id": _int(attrs, "PostId"),
            "body": attrs.get("Text"),  # the dump has the comment's Markdown, not HTML
            "score": _int(attrs, "Score"),
            "creation_date": _time(attrs, "CreationDate"),
            "owner": _owner(attrs, "UserId", "UserDisplayName"),
            "content_license": attrs.get("ContentLicense"),
        }
    )


# A giant row's Body (a LargeText: see large_rows) is not stored twice. Its raw item keeps
# the rest of the row, and says under ROW_BODY that the Body is the record's own body
# column: storing it in the raw JSON as well cost the JSON text and SQLite's copies of it
# (three times the row) for nothing `dump_row` cannot put back. Rows of ordinary size keep
# their Body in the raw row, as they always did.
ROW_BODY = "row_body"


def _dump_raw(attrs: dict[str, Any]) -> dict[str, Any]:
    # The row exactly as the dump has it; `api_question(raw["row"])` gives the API's shape.
    if isinstance(attrs.get("Body"), LargeText):
        rest = {name: value for name, value in attrs.items() if name != "Body"}
        return {"source": DUMP_MARKER, "row": rest, ROW_BODY: "body"}
    return {"source": DUMP_MARKER, "row": attrs}


def dump_row(raw: dict[str, Any], body: str | None) -> dict[str, Any]:
    """The dump row a stored raw item holds, its Body put back from the record's `body`
    where it was left out (`_dump_raw`)."""
    row = dict(raw.get("row") or {})
    if raw.get(ROW_BODY) == "body":
        row["Body"] = body
    return row


def reply_envelope(
    question_id: int,
    answers: list[tuple[dict[str, Any], dict[str, str]]],
    comments: list[tuple[dict[str, Any], dict[str, str]]],
) -> Envelope:
    """Answers and comments found later, attached to a stored question by its uid."""
    built = question_envelope(
        {"question_id": question_id}, [a for a, _ in answers], [c for c, _ in comments]
    )
    for reply, (_, attrs) in zip(built.replies, [*answers, *comments], strict=True):
        reply["raw"] = _dump_raw(attrs)
    # only the uid: upsert_issues leaves the stored question's fields as they are
    return Envelope({"uid": built.issue["uid"]}, built.replies)
