"""A dump scan's checkpoint belongs to one input, known by its content (issue 17, point 8):
another input on stdin, or a file edited in place to the same size, starts afresh; a
resumed stdin scan whose bytes differ before its checkpoint stops before storing."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

from issueminer.collect import sodump
from issueminer.collect.checkpoints import Checkpointer
from issueminer.collect.selection import Selection
from issueminer.collect.sodump.input_identity import HEAD_ID_BYTES, InputChanged
from issueminer.store import CrawlRun, Issue, Store
from tests.helpers import dump
from tests.test_sodump import HEAD, answer, question

PIECE = 8 << 10


def _dump(count: int, first: int = 1000) -> bytes:
    lines = []
    for q in range(first, first + 2 * count, 2):
        title = f"Horovod question {q}"
        lines += [
            question(q, "|horovod|python|", title, accepted=q + 1, answers=1),
            answer(q + 1, q),
        ]
    return (HEAD + "\n".join(lines) + "\n</posts>\n").encode()


class _Stop(Exception):
    """Stands for a kill after the first commit."""


def _scan(store: Store, path: str, taxonomy, stdin=None, stop_after: int | None = None):
    """A scan as the command runs it; with `stop_after`, stopped once a commit has passed
    that many bytes (the run stays resumable, as after a kill)."""
    criteria = sodump.Criteria(Selection.from_taxonomy(taxonomy), taxonomy)

    def on_progress(_phase: str, done: int, _total: int | None) -> None:
        if stop_after is not None and done >= stop_after:
            raise _Stop

    source = sodump.open_source(path)
    crawler = sodump.DumpCrawler(source, criteria, None, None, PIECE, on_progress, stdin=stdin)
    checkpointer = Checkpointer(store, "so-dump", crawler.query())
    try:
        crawler.run(checkpointer)
    except _Stop:
        checkpointer.finish("interrupted")
        return checkpointer
    checkpointer.finish("done")
    return checkpointer


def _content(store: Store) -> dict[str, list[str]]:
    """The issues and replies stored, which the runs' own rows (items, payloads) are not."""
    runs = {"crawl_run", "meta", "crawl_item", "issue_payload"}
    return dump(store, skip_tables=runs, skip_columns={"found_by"})


def _titles(store: Store) -> dict[str, str]:
    with store.session() as session:
        return dict(session.execute(select(Issue.native_id, Issue.title)).all())


def _straight(tmp_path, data: bytes, taxonomy, name: str) -> Store:
    path = tmp_path / f"{name}.xml"
    path.write_bytes(data)
    store = Store(f"sqlite:///{tmp_path / f'{name}.db'}")
    _scan(store, str(path), taxonomy)
    return store


def test_another_input_on_stdin_starts_afresh(tmp_path, taxonomy) -> None:
    first, other = _dump(600), _dump(600, first=50_000)
    store = Store(f"sqlite:///{tmp_path / 'stdin.db'}")
    stopped = _scan(store, "-", taxonomy, io.BytesIO(first), stop_after=len(first) // 2)
    assert 0 < len(_titles(store)) < 600
    again = _scan(store, "-", taxonomy, io.BytesIO(other))
    assert not again.resumed and again.run_id != stopped.run_id
    expected = _titles(_straight(tmp_path, other, taxonomy, "other"))
    assert len(expected) == 600
    assert expected.items() <= _titles(store).items()  # every row of the other input read


def test_resumed_stdin_that_differs_after_its_head_is_refused(tmp_path, taxonomy) -> None:
    """Two inputs alike in their first MiB: the resumed scan reads the bytes before its
    checkpoint again, finds them changed, stores nothing and sets the checkpoint aside;
    the next run scans the input from its start."""
    data = _dump(4000)
    assert len(data) > 2 * HEAD_ID_BYTES
    moved = data.index(b"Horovod question", HEAD_ID_BYTES + 1000)
    edited = data[:moved] + b"Horovod QUESTION" + data[moved + 16 :]
    assert len(edited) == len(data) and edited[:HEAD_ID_BYTES] == data[:HEAD_ID_BYTES]
    db = tmp_path / "edit.db"
    store = Store(f"sqlite:///{db}")
    stopped = _scan(store, "-", taxonomy, io.BytesIO(data), stop_after=moved + 50_000)
    before = _titles(store)
    command = [sys.executable, "-m", "issueminer.cli", "crawl", "so-dump", "-", "--db", str(db)]
    refused = subprocess.run(command, input=edited, capture_output=True)
    assert refused.returncode == 1
    assert b"stdin is not the input the interrupted scan read" in refused.stderr
    assert b"Traceback" not in refused.stderr
    assert _titles(store) == before  # nothing stored
    with store.session() as session:
        runs = {r.id: r.status for r in session.scalars(select(CrawlRun))}
    assert runs[stopped.run_id] == "input-changed"
    done = subprocess.run(command, input=edited, capture_output=True)
    assert done.returncode == 0, done.stderr
    expected = _straight(tmp_path, edited, taxonomy, "edited")
    assert _content(Store(f"sqlite:///{db}")) == _content(expected)


@pytest.mark.parametrize("keep_mtime", [False, True])
def test_a_file_edited_in_place_to_the_same_size_starts_afresh(
    tmp_path, taxonomy, keep_mtime
) -> None:
    path = tmp_path / "Posts.xml"
    data = _dump(600)
    path.write_bytes(data)
    store = Store(f"sqlite:///{tmp_path / 'file.db'}")
    _scan(store, str(path), taxonomy, stop_after=len(data) // 2)
    assert _titles(store)["1002"] == "Horovod question 1002"  # before the checkpoint
    status = os.stat(path)
    with open(path, "r+b") as handle:  # in place, the same size
        handle.seek(data.index(b"Horovod question 1002"))
        handle.write(b"Horovod QUESTION 1002")
    if keep_mtime:  # the edit hides its time: the sampled bytes still tell
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))
    again = _scan(store, str(path), taxonomy)
    assert not again.resumed
    assert _titles(store)["1002"] == "Horovod QUESTION 1002"


def test_the_same_file_under_another_name_resumes(tmp_path, taxonomy) -> None:
    path = tmp_path / "Posts.xml"
    data = _dump(600)
    path.write_bytes(data)
    store = Store(f"sqlite:///{tmp_path / 'moved.db'}")
    _scan(store, str(path), taxonomy, stop_after=len(data) // 2)
    moved = tmp_path / "renamed.xml"
    os.rename(path, moved)  # a rename keeps the bytes and the modification time
    again = _scan(store, str(moved), taxonomy)
    assert again.resumed
    assert _content(store) == _content(_straight(tmp_path, data, taxonomy, "s"))


def test_stdin_stopped_and_resumed_with_the_same_bytes_equals_a_straight_scan(
    tmp_path, taxonomy
) -> None:
    data = _dump(4000)
    store = Store(f"sqlite:///{tmp_path / 'same.db'}")
    _scan(store, "-", taxonomy, io.BytesIO(data), stop_after=len(data) * 2 // 3)
    again = _scan(store, "-", taxonomy, io.BytesIO(data))
    assert again.resumed
    assert _content(store) == _content(_straight(tmp_path, data, taxonomy, "s"))


def test_input_changed_is_raised_by_the_library(tmp_path, taxonomy) -> None:
    data = _dump(4000)
    edited = data[: HEAD_ID_BYTES + 10] + b"#" + data[HEAD_ID_BYTES + 11 :]
    store = Store(f"sqlite:///{tmp_path / 'lib.db'}")
    _scan(store, "-", taxonomy, io.BytesIO(data), stop_after=len(data) - 100_000)
    with pytest.raises(InputChanged):
        _scan(store, "-", taxonomy, io.BytesIO(edited))
