"""Giant dump rows (issue 17, point 12): read without copying them whole again and again.

A row longer than `large_rows.LARGE_ROW_BYTES` is parsed by `large_rows` (its long values
decoded a piece at a time) instead of ElementTree; its Body stays UTF-8 bytes until SQLite
takes it. These tests check that it gives what ElementTree gives, row for row and bad row
for bad row; that such a row is stored as an ordinary one is (body, text, raw row), from a
plain file, a .gz and two workers alike; and that a scan's peak memory stays under three
times its largest row.
"""

from __future__ import annotations

import gzip
import random
import sqlite3
import tracemalloc
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from sqlalchemy import select

from issueminer.collect import sodump
from issueminer.collect.checkpoints import Checkpointer
from issueminer.collect.large_text import LargeText
from issueminer.collect.selection import Selection
from issueminer.collect.sodump import large_rows, rows
from issueminer.store import Issue, Reply, Store
from issueminer.text import plain_text

GOOD = [
    "&lt;p&gt;",
    "&lt;/p&gt;",
    "&lt;pre&gt;&lt;code&gt;x = 1&#xA;&lt;/code&gt;&lt;/pre&gt;",
    "distributed training hangs ",
    "&amp;",
    "&amp;lt;",
    "&quot;",
    "&apos;",
    ">",
    "&#xA;",
    "&#10;",
    "&#x1F600;",
    "&#0000065;",
    "é",
    "数据并行",
    "😀",
    "\t",
    "\r\n",
    "\n",
    "\r",
    " ",
    "https://example.com/a?b=1&amp;c=2 ",
]
BAD = ["&bogus;", "& ", "<", "\x01", "&#0;", "&#xD800;", "&lt", "&#X41;", "\ufffe"]


def row_line(body: str, title: str = "A title", **extra: str) -> bytes:
    attributes = {"Id": "7", "PostTypeId": "1", "Body": body, "Title": title, **extra}
    inner = " ".join(f'{k}="{v}"' for k, v in attributes.items())
    return f"  <row {inner} />\r\n".encode()


def parsed_by_expat(line: bytes) -> dict[str, str] | str:
    """What the ordinary path gives: the attributes, or the kind of bad row."""
    try:
        return rows.parse_row(line.strip())
    except rows.BadRow as bad:
        return bad.kind


def parsed_here(line: bytes) -> dict[str, str] | str:
    try:
        attrs = large_rows.parse_large_row(line, 0, len(line))
    except rows.BadRow as bad:
        return bad.kind
    return {k: v.text() if isinstance(v, LargeText) else v for k, v in attrs.items()}


@pytest.mark.parametrize("piece", [7, 16, 61, large_rows.PIECE_BYTES])
def test_giant_rows_parse_as_expat_parses_them(monkeypatch, piece) -> None:
    monkeypatch.setattr(large_rows, "LONG_VALUE_BYTES", 8)  # most values are long here
    monkeypatch.setattr(large_rows, "PIECE_BYTES", piece)
    rng = random.Random(piece)
    checked = {"good": 0, "bad": 0}
    for _ in range(600):
        fragments = [rng.choice(GOOD) for _ in range(rng.randrange(1, 60))]
        if rng.random() < 0.3:
            fragments.insert(rng.randrange(len(fragments) + 1), rng.choice(BAD))
        body = "".join(fragments)
        title = "".join(rng.choice(GOOD) for _ in range(rng.randrange(0, 6)))
        line = row_line(body, title, Tags="|horovod|")
        if rng.random() < 0.05:  # a byte that is not UTF-8
            at = rng.randrange(line.index(b"Body") + 6, line.index(b'" Title'))
            line = line[:at] + b"\xff" + line[at:]
        expected = parsed_by_expat(line)
        assert parsed_here(line) == expected, line
        checked["good" if isinstance(expected, dict) else "bad"] += 1
    assert min(checked.values()) > 50  # both kinds were met


def test_a_giant_row_that_is_bad_outside_its_long_values_is_refused() -> None:
    long = "x" * (large_rows.LONG_VALUE_BYTES + 10)
    for line, kind in [
        (row_line(long).replace(b"/>", b">"), "malformed-row"),  # never closed
        (row_line(long, **{"Id": "7"}).replace(b'Id="7"', b'Id="7" Id="8"'), "malformed-row"),
        (b'<!DOCTYPE x [<!ENTITY e "y">]>' + row_line(long), "dtd-declaration"),
        (row_line(long).replace(b'Id="7" ', b""), "malformed-row"),  # no Id
    ]:
        assert parsed_by_expat(line) == kind
        assert parsed_here(line) == kind


# ---- giant rows through the whole scan ------------------------------------------------------
def big_body(size: int) -> str:
    """An HTML body of about `size` characters, as the dump escapes it: prose, code, links."""
    unit = (
        "&lt;p&gt;Distributed training with horovod hangs on 4 GPUs &amp;amp; 2 nodes, see "
        "https://example.com/x.&lt;/p&gt;&#xA;&lt;pre&gt;&lt;code&gt;hvd.init()&#xA;"
        "x = 1&#xA;&lt;/code&gt;&lt;/pre&gt;&#xA;"
    )
    return unit * (size // len(unit))


def dump(body_bytes: int) -> bytes:
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<posts>"]
    for qid in range(1000, 1040, 2):
        body = big_body(body_bytes) if qid == 1000 else "&lt;p&gt;It hangs.&lt;/p&gt;"
        lines.append(
            f'  <row Id="{qid}" PostTypeId="1" AcceptedAnswerId="{qid + 1}" '
            f'CreationDate="2019-03-01T10:00:00.123" Score="3" Body="{body}" '
            f'LastActivityDate="2019-03-02T11:00:00.000" Title="Horovod question {qid}" '
            f'Tags="|horovod|python|" AnswerCount="1" />'
        )
        answer = big_body(body_bytes // 2) if qid == 1002 else "&lt;p&gt;Use this.&lt;/p&gt;"
        lines.append(
            f'  <row Id="{qid + 1}" PostTypeId="2" ParentId="{qid}" '
            f'CreationDate="2019-03-01T12:00:00.000" Score="1" Body="{answer}" />'
        )
    lines.append("</posts>")
    return ("\r\n".join(lines) + "\r\n").encode()


def scan(path: Path, db: Path, taxonomy, executor=None, piece=64 << 20, traced=False) -> Store:
    """A scan into a new store; `traced`: with tracemalloc on while it runs (not while the
    store is opened and the input identified, as every scan does first), its peak is
    returned as the store's `peak`."""
    store = Store(f"sqlite:///{db}")
    criteria = sodump.Criteria(Selection.from_taxonomy(taxonomy), taxonomy)
    source = sodump.open_source(path)
    crawler = sodump.DumpCrawler(source, criteria, executor=executor, piece_bytes=piece)
    checkpointer = Checkpointer(store, "so-dump", crawler.query())
    if traced:
        tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        crawler.run(checkpointer)
        checkpointer.finish("done")
        store.peak = tracemalloc.get_traced_memory()[1] - start
    finally:
        if traced:
            tracemalloc.stop()
    return store


def expat_rows(data: bytes) -> dict[str, dict[str, str]]:
    return {e.attrib["Id"]: dict(e.attrib) for e in ET.fromstring(data)}


@pytest.mark.parametrize("form", ["plain", "gzip", "two workers"])
def test_a_giant_row_is_stored_as_an_ordinary_row_is(tmp_path, taxonomy, form) -> None:
    data = dump(3_000_000)
    path = tmp_path / ("Posts.xml.gz" if form == "gzip" else "Posts.xml")
    path.write_bytes(gzip.compress(data) if form == "gzip" else data)
    executor = sodump.ProcessExecutor(2) if form == "two workers" else None
    try:
        store = scan(path, tmp_path / "giant.db", taxonomy, executor)
    finally:
        if executor is not None:
            executor.close()
    expected = expat_rows(data)
    body = expected["1000"]["Body"]
    assert len(body) > large_rows.LARGE_ROW_BYTES
    with store.session() as session:
        issues = {i.native_id: i for i in session.scalars(select(Issue))}
        replies = {r.native_id: r for r in session.scalars(select(Reply))}
    giant = issues["1000"]
    assert giant.body == body
    prose = plain_text(body, "stackoverflow")
    assert len(prose) > large_rows.TEXT_LIMIT
    assert giant.text == prose[: large_rows.TEXT_LIMIT]
    assert large_rows.TEXT_CUT_FLAG in giant.flags
    # the raw row leaves out the Body it would repeat; dump_row puts it back
    assert "Body" not in giant.raw["row"]
    assert rows.dump_row(giant.raw, giant.body) == expected["1000"]
    assert replies["answer:1003"].body == expected["1003"]["Body"]
    assert "Body" not in replies["answer:1003"].raw["row"]
    # an ordinary row is stored as it always was
    small = issues["1004"]
    assert (
        small.raw["row"] == expected["1004"] and rows.dump_row(small.raw, None) == small.raw["row"]
    )
    assert small.text == "It hangs." and large_rows.TEXT_CUT_FLAG not in small.flags
    with sqlite3.connect(tmp_path / "giant.db") as connection:  # stored as text, not a blob
        kinds = connection.execute("SELECT DISTINCT typeof(body) FROM issue").fetchall()
    assert kinds == [("text",)]


def test_a_giant_row_scanned_again_changes_nothing(tmp_path, taxonomy) -> None:
    path = tmp_path / "Posts.xml"
    path.write_bytes(dump(2_000_000))
    scan(path, tmp_path / "again.db", taxonomy)
    store = Store(f"sqlite:///{tmp_path / 'again.db'}")
    with store.session() as session:
        before = {i.native_id: (i.body, i.text, i.raw) for i in session.scalars(select(Issue))}
    path.touch()  # another run of the same bytes: every payload is the same
    scan(path, tmp_path / "again.db", taxonomy)
    with store.session() as session:
        after = {i.native_id: (i.body, i.text, i.raw) for i in session.scalars(select(Issue))}
    assert after == before


@pytest.mark.parametrize("form", ["plain", "gzip"])
def test_peak_memory_of_a_giant_row_stays_under_three_times_it(tmp_path, taxonomy, form) -> None:
    """tracemalloc sees what Python allocates (SQLite's copies are measured by
    `make bench-dump-memory`); before, this path peaked at 15 times the row. Pieces of
    1 MiB: a stream is read in blocks of up to 8 MB, a fixed cost that a row of a few MB
    would not show apart from its own."""
    data = dump(4_000_000)
    row = max(len(line) for line in data.splitlines())
    name = "Posts.xml.gz" if form == "gzip" else "Posts.xml"
    warm = tmp_path / "warm" / name  # the same scan of small rows: first allocations
    warm.parent.mkdir()
    small = dump(2_000)
    warm.write_bytes(gzip.compress(small) if form == "gzip" else small)
    scan(warm, tmp_path / "warm.db", taxonomy, piece=1 << 20)
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if form == "gzip" else data)
    store = scan(path, tmp_path / "measured.db", taxonomy, piece=1 << 20, traced=True)
    with store.session() as session:
        assert session.scalar(select(Issue.body).where(Issue.native_id == "1000")) is not None
    assert store.peak / row < 3, f"peak {store.peak / row:.2f} times the row"
