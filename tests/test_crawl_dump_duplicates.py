"""Post Ids met twice in a dump give the same store for any number of workers and piece
size, and are reported (issue 17, point 10)."""

from __future__ import annotations

import io
import sqlite3

import pytest

from issueminer.collect import sodump
from issueminer.store import Store
from tests.helpers import dump
from tests.test_sodump import HEAD, answer, question, row, scan

TAGS = "|horovod|python|"


def _copy(qid: int, title: str, active: str) -> str:
    """A second row of question `qid`, last active at `active`."""
    return row(
        Id=qid,
        PostTypeId=1,
        AcceptedAnswerId=qid + 1,
        CreationDate="2019-03-01T10:00:00.123",
        Score=5,
        Body="<p>It fails again.</p>",
        OwnerUserId=7,
        LastActivityDate=active,
        Title=title,
        Tags=TAGS,
        AnswerCount=1,
    )


def _dump() -> tuple[bytes, dict[str, int]]:
    """Questions 1000, 1002, ... each with its answer; then copies: question 1100 again,
    last active at the same time (the later copy stands), question 1300 again, last active
    earlier (the first stands), and answer 1201 again under question 1400."""
    lines = []
    for q in range(1000, 1600, 2):
        lines += [question(q, TAGS, f"Horovod question {q}", accepted=q + 1, answers=1)]
        lines += [answer(q + 1, q)]
    copies = {
        "1100": _copy(1100, "Horovod question 1100, copy", "2019-03-02T11:00:00.000"),
        "1300": _copy(1300, "Horovod question 1300, copy", "2019-03-01T11:00:00.000"),
        "1201": answer(1201, 1400, "<p>a copy under 1400</p>"),
    }
    lines[420:420] = [copies["1100"]]
    lines[500:500] = [copies["1300"]]
    lines[540:540] = [copies["1201"]]
    data = (HEAD + "\n".join(lines) + "\n</posts>\n").encode()
    return data, {key: data.index(text.encode()) for key, text in copies.items()}


def _content(store: Store) -> dict[str, list[str]]:
    runs = {"crawl_run", "meta", "crawl_item", "issue_payload"}
    return dump(store, skip_tables=runs, skip_columns={"found_by"})


@pytest.fixture(scope="module")
def dumped(tmp_path_factory):
    data, offsets = _dump()
    path = tmp_path_factory.mktemp("dup") / "Posts.xml"
    path.write_bytes(data)
    return path, offsets


@pytest.mark.parametrize(("workers", "piece"), [(1, 1 << 30), (1, 8000), (2, 8000), (2, 3000)])
def test_duplicates_give_one_store_for_any_workers(tmp_path, taxonomy, dumped, workers, piece):
    path, offsets = dumped
    reference = Store(f"sqlite:///{tmp_path / 'one.db'}")
    scan(reference, str(path), taxonomy, piece=1 << 30)
    store = Store(f"sqlite:///{tmp_path / 'many.db'}")
    executor = sodump.ProcessExecutor(workers) if workers > 1 else None
    try:
        summary = scan(store, str(path), taxonomy, executor=executor, piece=piece)
    finally:
        if executor is not None:
            executor.close()
    assert _content(store) == _content(reference)
    with sqlite3.connect(tmp_path / "many.db") as db:
        titles = dict(db.execute("select native_id, title from issue"))
        under = db.execute(
            "select i.native_id from reply r join issue i on i.uid = r.issue_uid "
            "where r.native_id = 'answer:1201'"
        ).fetchall()
    assert titles["1100"] == "Horovod question 1100, copy"  # a tie: the later copy
    assert titles["1300"] == "Horovod question 1300"  # the copy was last active before
    assert under == [("1200",)]  # an answer under one question only
    duplicates = sorted(f["offset"] for f in summary.findings if f["kind"] == "duplicate-id")
    assert duplicates == sorted(offsets.values())
    assert summary.finding_counts["duplicate-id"] == 3


def test_duplicates_in_a_stream_give_the_same_store(tmp_path, taxonomy, dumped) -> None:
    """Read as a stream (stdin), block by block: the same store, the same copies told."""
    path, offsets = dumped
    reference = Store(f"sqlite:///{tmp_path / 'file.db'}")
    scan(reference, str(path), taxonomy, piece=1 << 30)
    piped = Store(f"sqlite:///{tmp_path / 'stdin.db'}")
    summary = scan(piped, "-", taxonomy, piece=8000, stdin=io.BytesIO(path.read_bytes()))
    assert _content(piped) == _content(reference)
    duplicates = sorted(f["offset"] for f in summary.findings if f["kind"] == "duplicate-id")
    assert duplicates == sorted(offsets.values())
