"""Very long lines in a dump (issue 17, point 12): a stream reads a row of any plausible
size whole, as the plain file is read; a line longer than `streams.MAX_LINE_BYTES` is bad
input wherever it is met, never parsed in part; a giant row cut short is a bad row.

Before, a stream handed on the first 64 MB of a longer line as if it were a line, and the
rest as the start of the next block: a 70 MB question from a .gz was "rejected: no
accepted answer" (its tail, without the attribute) with exit status 0. The limit is set
small here (the module constant, read at run time) so that no test writes a GiB.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import xml.etree.ElementTree as ET

import pytest
from sqlalchemy import select

from issueminer.cli.main import app
from issueminer.collect import sodump
from issueminer.collect.checkpoints import Checkpointer
from issueminer.collect.selection import Selection
from issueminer.collect.sodump import streams
from issueminer.store import Issue, Store
from tests.helpers import dump
from tests.test_sodump import HEAD, answer, question

PIECE = 64 << 10  # a stream's block; the giant row is many blocks long
GIANT_ID = 1000
FORMS = ["plain", "gzip", "stdin"]


def giant_row(body_bytes: int, tags_first: bool = False) -> str:
    """A question as the dump writes it: AcceptedAnswerId before the Body, Tags after
    (the shape whose cut tail lost the accepted answer); `tags_first` puts Tags first."""
    body = "&lt;p&gt;" + "distributed training with horovod hangs " * (body_bytes // 40)
    tags = 'Tags="|horovod|python|"'
    return (
        f'  <row Id="{GIANT_ID}" PostTypeId="1" {tags if tags_first else ""} '
        f'AcceptedAnswerId="{GIANT_ID + 1}" CreationDate="2019-03-01T10:00:00.123" '
        f'Score="3" Body="{body}&lt;/p&gt;" LastActivityDate="2019-03-02T11:00:00.000" '
        f'Title="A giant question" {"" if tags_first else tags} AnswerCount="1" />'
    )


def posts(giant: str) -> bytes:
    lines = [giant, answer(GIANT_ID + 1, GIANT_ID)]
    for q in range(1002, 1010, 2):
        lines += [question(q, "|horovod|python|", f"Q {q}", accepted=q + 1, answers=1)]
        lines += [answer(q + 1, q)]
    return (HEAD + "\n".join(lines) + "\n</posts>\n").encode()


def scan(tmp_path, data: bytes, form: str, taxonomy) -> tuple[Store, sodump.ScanSummary]:
    """The library's scan of `data` as a plain file, a .gz or stdin, into a new store."""
    path = tmp_path / ("Posts.xml.gz" if form == "gzip" else "Posts.xml")
    path.write_bytes(gzip.compress(data, 1) if form == "gzip" else data)
    store = Store(f"sqlite:///{tmp_path / f'{form}.db'}")
    stdin = io.BytesIO(data) if form == "stdin" else None
    source = sodump.open_source("-" if form == "stdin" else path)
    criteria = sodump.Criteria(Selection.from_taxonomy(taxonomy), taxonomy)
    crawler = sodump.DumpCrawler(source, criteria, piece_bytes=PIECE, stdin=stdin)
    checkpointer = Checkpointer(store, "so-dump", crawler.query())
    summary = crawler.run(checkpointer)
    checkpointer.finish("done")
    return store, summary


def content(store: Store) -> dict[str, list[str]]:
    runs = {"crawl_run", "meta", "crawl_item", "issue_payload"}
    return dump(store, skip_tables=runs, skip_columns={"found_by"})


def stored_ids(store: Store) -> set[str]:
    with store.session() as session:
        return set(session.scalars(select(Issue.native_id)))


# ---- a long row is read whole from a stream ------------------------------------------------
def test_a_row_many_blocks_long_is_stored_from_gz_and_stdin_as_from_the_file(
    tmp_path, taxonomy, monkeypatch
) -> None:
    """3 MB of row in blocks of 64 KiB, read on 64 KiB at a time, under a limit of 4 MiB:
    from every form, the giant question with its accepted answer, exactly as expat reads
    the row, and the same database."""
    monkeypatch.setattr(streams, "MAX_LINE_BYTES", 4 << 20)
    monkeypatch.setattr(streams, "GIANT_LINE_BYTES", 64 << 10)
    data = posts(giant_row(3_000_000))
    stores = {}
    for form in FORMS:
        (tmp_path / form).mkdir()
        store, summary = scan(tmp_path / form, data, form, taxonomy)
        assert not summary.findings, form
        assert summary.questions == 5 and summary.answers == 5, form
        stores[form] = store
    expected = {e.attrib["Id"]: e.attrib for e in ET.fromstring(data)}[str(GIANT_ID)]
    with stores["gzip"].session() as session:
        giant = session.scalar(select(Issue).where(Issue.native_id == str(GIANT_ID)))
        assert giant is not None and giant.body == expected["Body"]
        assert giant.raw["row"]["AcceptedAnswerId"] == expected["AcceptedAnswerId"]
    plain = content(stores["plain"])
    assert content(stores["gzip"]) == plain
    assert content(stores["stdin"]) == plain


def test_a_line_of_70_mb_comes_whole_from_a_stream() -> None:
    """The size the issue names, at the real limit: one block holding the whole line."""
    line = b"  <row " + b"x" * 70_000_000 + b" />\n"
    data = b"<posts>\n" + line + b"</posts>\n"
    parts = list(streams.stream_blocks(io.BytesIO(data)))
    assert not any(isinstance(part, streams.LongLine) for _, part in parts)
    starts = {offset: part[: len(line)] == line for offset, part in parts}
    assert starts == {0: False, 8: True}  # the head, then a block that holds the line whole
    joined = b"".join(part for _, part in parts) == data
    assert joined


# ---- a line longer than any row is bad input -------------------------------------------------
@pytest.mark.parametrize("form", FORMS)
def test_a_line_past_the_limit_is_bad_input_and_nothing_of_it_is_stored(
    tmp_path, taxonomy, monkeypatch, form
) -> None:
    monkeypatch.setattr(streams, "MAX_LINE_BYTES", 2 << 20)
    monkeypatch.setattr(streams, "GIANT_LINE_BYTES", 64 << 10)
    giant = giant_row(3_000_000)
    data = posts(giant)
    store, summary = scan(tmp_path, data, form, taxonomy)
    offset = data.index(giant.encode())
    line = data[:offset].count(b"\n") + 1
    [finding] = summary.findings
    assert (finding["kind"], finding["offset"], finding["line"]) == ("overlong-line", offset, line)
    assert f"a line of {len(giant.encode())} bytes" in finding["message"]
    assert f"({2 << 20} bytes at most)" in finding["message"]
    # nothing of the giant question, neither as a row nor as its cut tail; the rest is read
    assert stored_ids(store) == {"1002", "1004", "1006", "1008"}
    assert summary.questions == 4 and sum(summary.rejected.values()) == 0
    assert summary.parsed == 8  # the small questions and their answers: the line is not


def test_stream_blocks_read_past_a_long_line_and_digest_every_byte(monkeypatch) -> None:
    """What follows the long line comes as it would without it, offsets stay true, and a
    stdin checkpoint's digest covers the line read past; one cut short ends the stream."""
    monkeypatch.setattr(streams, "MAX_LINE_BYTES", 1000)
    monkeypatch.setattr(streams, "GIANT_LINE_BYTES", 64)
    long_line = b"<row " + b"y" * 5000 + b" />\n"
    data = b"<posts>\n<row a/>\n" + long_line + b"<row b/>\n</posts>\n" + b"z" * 3000
    digest = hashlib.blake2b(digest_size=20)
    parts = list(streams.stream_blocks(io.BytesIO(data), block_bytes=100, digest=digest))
    assert digest.hexdigest() == hashlib.blake2b(data, digest_size=20).hexdigest()
    longs = [(offset, part) for offset, part in parts if isinstance(part, streams.LongLine)]
    at = data.index(long_line)
    assert [(o, p.size, p.ended) for o, p in longs] == [
        (at, len(long_line), True),
        (len(data) - 3000, 3000, False),
    ]
    kept = b"".join(bytes(p) for _, p in parts if not isinstance(p, streams.LongLine))
    assert kept == data.replace(long_line, b"")[:-3000]
    for offset, part in parts:  # every block stands where it is in the input
        if not isinstance(part, streams.LongLine):
            assert data[offset : offset + len(part)] == part


def test_the_command_exits_3_for_a_line_past_the_limit(tmp_path, runner, monkeypatch) -> None:
    monkeypatch.setattr(streams, "MAX_LINE_BYTES", 2 << 20)
    data = posts(giant_row(3_000_000))
    path = tmp_path / "Posts.xml.gz"
    path.write_bytes(gzip.compress(data, 1))
    db = tmp_path / "cli.db"
    result = runner.invoke(app, ["crawl", "so-dump", str(path), "--db", str(db)])
    assert result.exit_code == 3, result.output
    assert "overlong-line" in result.stdout
    assert "finished with 1 case of bad input skipped (exit status 3)" in result.stderr
    assert stored_ids(Store(f"sqlite:///{db}")) == {"1002", "1004", "1006", "1008"}


# ---- a giant row cut short is a bad row -----------------------------------------------------
@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("cut", ["no closing />", "cut in its body"])
def test_a_giant_row_cut_short_is_a_bad_row(tmp_path, taxonomy, form, cut) -> None:
    """A giant row (parsed by `large_rows`) that does not end in `/>` before its newline:
    a malformed row where it starts, and nothing of it stored."""
    whole = giant_row(3_000_000, tags_first=True)
    giant = whole.removesuffix(" />") if cut == "no closing />" else whole[: len(whole) // 2]
    data = posts(giant)
    store, summary = scan(tmp_path, data, form, taxonomy)
    offset = data.index(giant.encode())
    kinds = [(f["kind"], f["offset"], f["line"]) for f in summary.findings]
    assert kinds == [("malformed-row", offset, data[:offset].count(b"\n") + 1)]
    assert stored_ids(store) == {"1002", "1004", "1006", "1008"}
