"""--only-known finds a known question's row wherever its Id stands (issue 17, point 12):
the dump writes Id first, but a row that does not is still read."""

from __future__ import annotations

import json

from sqlalchemy import select

from issueminer.collect import sodump
from issueminer.collect.ingest import import_issues
from issueminer.store import Issue, Reply
from tests.test_sodump import HEAD, question, row, scan


def test_only_known_reads_rows_whose_id_is_not_first(store, taxonomy, tmp_path) -> None:
    known = [1234, 1240]
    urls = tmp_path / "issues.jsonl"
    urls.write_text(
        "".join(
            json.dumps({"url": f"https://stackoverflow.com/questions/{q}"}) + "\n" for q in known
        )
    )
    import_issues(store, urls, taxonomy)
    lines = [
        question(1230, "|numpy|", "Not asked for", accepted=1231, answers=1),
        row(  # Id after other attributes
            PostTypeId=1,
            CreationDate="2019-03-01T10:00:00.123",
            Id=1234,
            AcceptedAnswerId=1235,
            Score=2,
            Body="<p>Its body.</p>",
            LastActivityDate="2019-03-02T11:00:00.000",
            Title="Known, with its Id third",
            Tags="|numpy|",
            AnswerCount=1,
        ),
        row(
            ParentId=1234,
            PostTypeId=2,
            Id=1235,
            Body="<p>Its answer.</p>",
            Score=1,
            CreationDate="2019-03-01T12:00:00.000",
        ),
        question(1240, "|numpy|", "Known, with its Id first"),
    ]
    path = tmp_path / "Posts.xml"
    path.write_bytes((HEAD + "\n".join(lines) + "\n</posts>\n").encode())
    scan(store, str(path), taxonomy, known=sodump.known_questions(store))
    with store.session() as session:
        titles = dict(session.execute(select(Issue.native_id, Issue.title)).all())
        replies = set(session.scalars(select(Reply.native_id)))
    assert titles == {"1234": "Known, with its Id third", "1240": "Known, with its Id first"}
    assert replies == {"answer:1235"}
