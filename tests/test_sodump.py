"""The Stack Overflow data-dump scan against dumps written here, and a slow reference.

The reference reads every line with ElementTree and asks the study's Selection about every
question: obviously right and far too slow for a real dump. The fast path (a byte-level
pre-filter, then parsing only candidates) must keep exactly what it keeps.
"""

from __future__ import annotations

import gc
import gzip
import html
import io
import json
import os
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
import zlib
from contextlib import suppress
from pathlib import Path

import py7zr
import pytest
from sqlalchemy import func, select

from bench.synthetic import attr, write_posts
from issueminer.cli.main import app
from issueminer.collect import sodump
from issueminer.collect.checkpoints import Checkpointer, ctrl_c_after_commit
from issueminer.collect.ingest import import_issues, upsert_issues
from issueminer.collect.selection import Reason, Selection
from issueminer.collect.sodump import (
    commit_policy,
    dump_crawler,
    file_pieces,
    keyword_gate,
    rows,
    streams,
)
from issueminer.collect.sodump.commit_policy import COMMIT_PIECES
from issueminer.collect.sources.stackexchange import question_envelope
from issueminer.ids import STACKOVERFLOW_ORIGIN, issue_uid
from issueminer.store import Issue, Reply, Store
from issueminer.text import plain_text
from tests.helpers import crawled_content

UNIFORM_KINDS = {k: 1 for k in ("title", "prose", "phrase", "code", "url", "none")}
SMALL_PIECE = 40_000  # many pieces in a small dump, so piece edges fall everywhere


# ---- dumps written by hand -----------------------------------------------------------------
def row(**fields: object) -> str:
    inner = " ".join(f'{k}="{attr(str(v))}"' for k, v in fields.items() if v is not None)
    return f"  <row {inner} />"


def question(qid, tags, title="How to train?", body="<p>It fails.</p>", accepted=None, **kw):
    return row(
        Id=qid,
        PostTypeId=1,
        AcceptedAnswerId=accepted,
        CreationDate="2019-03-01T10:00:00.123",
        Score=kw.pop("score", 3),
        Body=body,
        OwnerUserId=7,
        LastActivityDate="2019-03-02T11:00:00.000",
        Title=title,
        Tags=tags,
        AnswerCount=kw.pop("answers", 0),
        ContentLicense="CC BY-SA 4.0",
        **kw,
    )


def answer(aid, parent, body="<p>Use this.</p>"):
    return row(
        Id=aid,
        PostTypeId=2,
        ParentId=parent,
        CreationDate="2019-03-01T12:00:00.000",
        Score=1,
        Body=body,
        OwnerUserId=8,
        LastActivityDate="2019-03-01T12:00:00.000",
        ContentLicense="CC BY-SA 4.0",
    )


HEAD = '<?xml version="1.0" encoding="utf-8"?>\n<posts>\n'
# line numbers of the hand-written dump below (the head is lines 1 and 2)
LINES = {"malformed": 14, "charref": 15, "non-utf8": 16, "cut": 20}


def handwritten() -> bytes:
    """Both Tags formats, escaping, code with keywords, answers before and after, bad rows."""
    lines = [
        question(10, "|horovod|python|", accepted=12, answers=2),  # 3: kept, tag alone
        answer(11, 10),
        answer(12, 10, "<p>Set <code>HOROVOD_FUSION</code> &amp; retry.</p>"),
        question(  # 6: kept, older Tags format, keyword in the prose
            20,
            "<tensorflow><keras>",
            body="<p>I train on several <b>workers</b>.</p>",
            accepted=21,
            answers=1,
        ),
        answer(21, 20),
        question(  # 8: keyword only inside a code block: not kept
            30,
            "|keras|",
            body="<p>See:</p><pre><code>strategy = distributed(workers=2)\n</code></pre>",
            accepted=31,
            answers=1,
        ),
        answer(31, 30),
        question(40, "|pytorch|", title="Distributed training hangs"),  # 10: no accepted
        answer(45, 50),  # 11: an answer merged in from an older question, before its question
        question(  # 12: kept; title escaping, phrase in the body
            50,
            "|tensorflow|",
            title='Loss is "nan" & <wrong> with multiple GPUs',
            body="<p>Running on 2 machines.</p>",
            accepted=45,
            answers=2,
        ),
        answer(51, 50),
        # 14: malformed (a quote missing)
        question(60, "|tensorflow|", accepted=61).replace('Score="3"', 'Score="3'),
        # 15: an invalid character reference
        question(70, "|keras|", body="<p>multiple GPUs CHARREF_X here</p>", accepted=71),
        question(80, "|pytorch|", title="Distributed PYTORCH_X", accepted=81),  # 16: bad byte
        question(90, "|python|", title="Distributed locks", accepted=91),  # 17: no study tag
        question(95, "|tensorflow-serving|", title="Distributed serving", accepted=96),  # 18
        answer(96, 95),  # 19
    ]
    text = HEAD + "\n".join(lines) + "\n"
    data = text.encode().replace(b"PYTORCH_X", b"caf\xff").replace(b"CHARREF_X", b"&#x1;")
    # 20: the file ends in the middle of a row carrying a study tag
    return data + question(100, "|horovod|", accepted=101).encode()[:-30]


HANDWRITTEN_KEPT = {10: {11, 12}, 20: {21}, 50: {45, 51}}


@pytest.fixture(scope="module")
def selection(taxonomy) -> Selection:
    return Selection.from_taxonomy(taxonomy)


def scan(
    store,
    path,
    taxonomy,
    *,
    executor=None,
    piece=SMALL_PIECE,
    comments=None,
    known=None,
    stdin=None,
):
    source = sodump.open_source(path)
    comment_source = sodump.open_source(comments, "comments") if comments else None
    criteria = sodump.Criteria(Selection.from_taxonomy(taxonomy), taxonomy, known)
    crawler = sodump.DumpCrawler(source, criteria, comment_source, executor, piece, stdin=stdin)
    checkpointer = Checkpointer(store, "so-dump", crawler.query())
    summary = crawler.run(checkpointer)
    checkpointer.finish("done")
    return summary


def stored(store: Store) -> dict[int, set[int]]:
    """Question id -> its stored answer ids, for the questions that have text."""
    with store.session() as session:
        issues = session.execute(
            select(Issue.uid, Issue.native_id).where(Issue.text.is_not(None))
        ).all()
        replies = session.execute(
            select(Reply.issue_uid, Reply.native_id).where(Reply.kind == "answer")
        ).all()
    by_uid = {uid: int(native) for uid, native in issues}
    result: dict[int, set[int]] = {q: set() for q in by_uid.values()}
    for uid, native in replies:
        result[by_uid[uid]].add(int(native.split(":")[1]))
    return result


def sqlite_store(tmp_path: Path, name: str) -> Store:
    return Store(f"sqlite:///{tmp_path / name}")


# ---- the reference -------------------------------------------------------------------------
def reference(data: bytes, selection: Selection) -> dict[int, set[int]]:
    """Every row parsed on its own with ElementTree; every question asked of the Selection."""
    rows = []
    for line in data.splitlines():
        if line.strip().startswith(b"<row"):
            try:
                rows.append(ET.fromstring(line).attrib)
            except ET.ParseError:
                continue
    kept: dict[int, set[int]] = {}
    for r in rows:
        if r.get("PostTypeId") != "1":
            continue
        tags = r.get("Tags", "")
        api = {
            "title": html.escape(r.get("Title", "")),
            "body": r.get("Body", ""),
            "tags": [t for t in tags.replace("<", "|").replace(">", "|").split("|") if t],
            "accepted_answer_id": r.get("AcceptedAnswerId"),
        }
        if selection.stackoverflow(api).kept:
            kept[int(r["Id"])] = set()
    for r in rows:
        if r.get("PostTypeId") == "2" and int(r.get("ParentId", 0)) in kept:
            kept[int(r["ParentId"])].add(int(r["Id"]))
    return kept


def generated(size=1_500_000, seed=11, tags="mixed", newline="\r\n") -> bytes:
    out = io.BytesIO()
    write_posts(out, size, seed, tags, newline, study_share=0.4, kinds=UNIFORM_KINDS)
    return out.getvalue()


def damaged(data: bytes) -> bytes:
    """A generated dump with broken candidate rows and a cut end."""
    lines = data.split(b"\n")
    tagged = [
        i
        for i, line in enumerate(lines)
        if b"AcceptedAnswerId" in line and (b"|tensorflow|" in line or b"&lt;keras&gt;" in line)
    ]
    lines[tagged[1]] = lines[tagged[1]].replace(b'Score="', b"Score=", 1)
    lines[tagged[2]] = lines[tagged[2]].replace(b"&#xA;", b"&#x0;", 1)
    lines[tagged[3]] = lines[tagged[3]].replace(b"How to", b"How \xc3\x28to", 1)
    return b"\n".join(lines)[:-300]


@pytest.fixture(scope="module")
def dump_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dump") / "Posts.xml"
    path.write_bytes(damaged(generated()))
    return path


# ---- rows ----------------------------------------------------------------------------------
def test_a_bad_row_travels_from_a_worker_as_itself() -> None:
    bad = pickle.loads(pickle.dumps(rows.BadRow("non-utf8", "byte 0xff at column 3")))
    assert (bad.kind, bad.message, str(bad)) == ("non-utf8",) + ("byte 0xff at column 3",) * 2


def test_rows_become_the_api_shape_in_both_tags_formats() -> None:
    line = question(
        20,
        "<tensorflow><keras>",
        title='A "quoted" & <angled> title',
        body="<p>a &lt;b&gt;</p>\n<pre><code>x &amp;&amp; y</code></pre>",
        accepted=21,
        answers=1,
        ClosedDate="2019-04-01T00:00:00.000",
    )
    attrs = rows.parse_row(line.encode())
    api = rows.api_question(attrs)
    assert api["tags"] == ["tensorflow", "keras"]
    assert rows.row_tags("|tensorflow|keras|") == ["tensorflow", "keras"]
    assert api["title"] == "A &quot;quoted&quot; &amp; &lt;angled&gt; title"  # as the API
    assert api["body"] == "<p>a &lt;b&gt;</p>\n<pre><code>x &amp;&amp; y</code></pre>"
    assert api["creation_date"] == 1551434400  # 2019-03-01T10:00:00 UTC
    assert api["closed_date"] == 1554076800
    assert api["accepted_answer_id"] == 21 and api["answer_count"] == 1


def test_a_question_found_by_the_api_and_in_the_dump_is_one_row(tmp_path, taxonomy) -> None:
    body = "<p>I train on several <b>workers</b>.</p>"
    from_api = {
        "question_id": 20,
        "title": "Training on two &quot;workers&quot;",
        "body": body,
        "tags": ["tensorflow", "keras"],
        "creation_date": 1551434400,
        "last_activity_date": 1551524400,
        "accepted_answer_id": 21,
        "score": 3,
    }
    store = sqlite_store(tmp_path, "both.db")
    api_checkpointer = Checkpointer(store, "stackoverflow", {"test": 1})
    api_envelope = question_envelope(from_api, [], [], taxonomy)
    api_checkpointer.commit_page([api_envelope], {}, seen=1)
    dump = tmp_path / "Posts.xml"
    title = 'Training on two "workers"'
    lines = [
        question(20, "|tensorflow|keras|", title=title, body=body, accepted=21),
        answer(21, 20),
    ]
    dump.write_text(HEAD + "\n".join(lines) + "\n</posts>\n")
    scan(store, dump, taxonomy)
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == 1
        issue = session.scalars(select(Issue)).one()
        for name in (
            "uid",
            "url",
            "title",
            "body",
            "text",
            "tags",
            "created_at",
            "updated_on",
            "score",
            "state",
            "accepted_answer_id",
            "framework",
        ):
            assert getattr(issue, name) == api_envelope.issue[name], name
        assert issue.raw["source"] == rows.DUMP_MARKER
        assert issue.raw["row"]["Title"] == title  # the row as the dump has it
        assert [r.native_id for r in issue.replies] == ["answer:21"]
        assert issue.replies[0].accepted


# ---- the hand-written dump -----------------------------------------------------------------
def test_handwritten_dump_keeps_what_the_criteria_admit(tmp_path, taxonomy, selection) -> None:
    data = handwritten()
    path = tmp_path / "Posts.xml"
    path.write_bytes(data)
    store = sqlite_store(tmp_path, "hand.db")
    summary = scan(store, path, taxonomy)
    assert stored(store) == HANDWRITTEN_KEPT == reference(data, selection)
    found = {(f["kind"], f["line"]) for f in summary.findings}
    assert found == {
        ("malformed-row", LINES["malformed"]),
        ("invalid-character-reference", LINES["charref"]),
        ("non-utf8", LINES["non-utf8"]),
        ("malformed-row", LINES["cut"]),
        ("truncated", LINES["cut"]),
    }
    assert summary.finding_counts["non-utf8"] == 1
    with store.session() as session:
        issue = session.scalar(select(Issue).where(Issue.native_id == "50"))
        assert issue.title == 'Loss is "nan" & <wrong> with multiple GPUs'
        assert issue.url == f"{STACKOVERFLOW_ORIGIN}/questions/50"
        accepted = {r.native_id: r.accepted for r in issue.replies}
        assert accepted == {"answer:45": True, "answer:51": False}


@pytest.mark.parametrize("form", ["gzip", "7z", "stdin"])
def test_compressed_and_piped_dumps_give_the_same_store(tmp_path, taxonomy, form) -> None:
    data = handwritten()
    plain = tmp_path / "Posts.xml"
    plain.write_bytes(data)
    expected = sqlite_store(tmp_path, "plain.db")
    scan(expected, plain, taxonomy)
    store = sqlite_store(tmp_path, f"{form}.db")
    line = 400  # a stream read a few rows at a time: answer 45 is read before question 50
    if form == "gzip":
        packed = tmp_path / "Posts.xml.gz"
        packed.write_bytes(gzip.compress(data))
        summary = scan(store, packed, taxonomy, piece=line)
    elif form == "7z":
        packed = tmp_path / "stackoverflow.com-Posts.7z"
        with py7zr.SevenZipFile(packed, "w") as archive:
            archive.write(plain, "Posts.xml")
        summary = scan(store, packed, taxonomy, piece=line)
    else:
        summary = scan(store, "-", taxonomy, piece=line, stdin=io.BytesIO(data))
    assert summary.scanned_bytes == len(data)  # the second pass for answer 45 is not counted
    if form == "stdin":
        # stdin cannot go back for the answer that came before its question: it says so
        assert stored(store) == {**HANDWRITTEN_KEPT, 50: {51}}
        assert [
            f["message"][:12] for f in summary.findings if f["kind"] == "answers-not-attached"
        ] == ["question 50 "]
        return
    assert crawled_content(store) == crawled_content(expected)
    lines = {(f["kind"], f["line"]) for f in summary.findings}
    assert ("truncated", LINES["cut"]) in lines and ("non-utf8", LINES["non-utf8"]) in lines


def test_gzip_on_stdin_gives_the_same_store_as_the_file(tmp_path, taxonomy) -> None:
    data = generated(400_000, seed=5)  # no answer here comes before its question
    plain = tmp_path / "Posts.xml"
    plain.write_bytes(data)
    expected = sqlite_store(tmp_path, "plain.db")
    scan(expected, plain, taxonomy)
    piped = sqlite_store(tmp_path, "stdin.db")
    summary = scan(piped, "-", taxonomy, stdin=io.BytesIO(gzip.compress(data)))
    assert not summary.finding_counts
    assert crawled_content(piped) == crawled_content(expected)
    assert len(stored(piped)) >= 10


# ---- the generated dump, against the reference -----------------------------------------------
def test_fast_path_keeps_exactly_what_the_reference_keeps(store, dump_file, taxonomy, selection):
    data = dump_file.read_bytes()
    expected = reference(data, selection)
    summary = scan(store, dump_file, taxonomy)
    assert stored(store) == expected
    assert len(expected) > 40 and sum(map(len, expected.values())) > 40  # a real test
    kinds = {f["kind"] for f in summary.findings}
    assert kinds == {"malformed-row", "invalid-character-reference", "non-utf8", "truncated"}
    lines = data.split(b"\n")
    for finding in summary.findings:  # each line number points at the row it names
        assert b"<row" in lines[finding["line"] - 1]


def test_workers_piece_sizes_and_dask_give_identical_stores(tmp_path, dump_file, taxonomy):
    from dask.distributed import LocalCluster

    one = sqlite_store(tmp_path, "one.db")
    big_pieces = scan(one, dump_file, taxonomy, piece=1 << 30)
    two = sqlite_store(tmp_path, "two.db")
    workers = sodump.ProcessExecutor(2)
    try:
        small_pieces = scan(two, dump_file, taxonomy, executor=workers)
        again = sqlite_store(tmp_path, "again.db")  # the same workers serve a second scan
        scan(again, dump_file, taxonomy, executor=workers, piece=3 * SMALL_PIECE)
    finally:
        workers.close()
    assert crawled_content(again) == crawled_content(one)
    assert gc.get_freeze_count() == 0  # a scan leaves the collector as it found it
    assert crawled_content(two) == crawled_content(one)
    assert small_pieces.findings == big_pieces.findings
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        executor = sodump.DaskExecutor(cluster.scheduler_address)
        try:
            on_dask = sqlite_store(tmp_path, "dask.db")
            dask_summary = scan(on_dask, dump_file, taxonomy, executor=executor)
        finally:
            executor.close()
    assert crawled_content(on_dask) == crawled_content(one)
    assert dask_summary.findings == big_pieces.findings


def _anonymous_kb() -> int:
    """This process's resident memory that is not a mapped file (what the scan allocates)."""
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"RssAnon:\s+(\d+)", status).group(1))


def test_memory_grows_with_what_is_kept_not_with_the_file(tmp_path, taxonomy) -> None:
    path = tmp_path / "Posts.xml"
    with path.open("wb") as handle:
        write_posts(handle, 48_000_000, 13)  # 3% of questions carry a study tag
    piece = 4 << 20
    scan(sqlite_store(tmp_path, "warm.db"), path, taxonomy, piece=piece)  # first allocations
    before, peak, done = _anonymous_kb(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _anonymous_kb())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        summary = scan(sqlite_store(tmp_path, "measured.db"), path, taxonomy, piece=piece)
    finally:
        done.set()
        sampler.join()
    assert summary.questions > 20  # a real scan, which kept something
    growth = (peak[0] - before) * 1024
    # the file's pages are mapped, shared with the page cache, and not counted here; a scan
    # that read the file into memory would grow by its 48 MB
    assert growth < 12_000_000, f"grew by {growth / 1e6:.1f} MB scanning 48 MB"


# ---- only known questions, comments ----------------------------------------------------------
def test_only_known_fills_in_exactly_the_stored_questions(tmp_path, taxonomy) -> None:
    path = tmp_path / "Posts.xml"
    path.write_bytes(handwritten())
    store = sqlite_store(tmp_path, "known.db")
    known = [30, 10, 999]  # 30 fails the criteria; 999 is not in the dump
    with store.session() as session:
        upsert_issues(
            session,
            [
                {
                    "uid": issue_uid(STACKOVERFLOW_ORIGIN, q),
                    "source": "stackoverflow",
                    "origin": STACKOVERFLOW_ORIGIN,
                    "native_id": str(q),
                    "url": f"{STACKOVERFLOW_ORIGIN}/questions/{q}",
                }
                for q in known
            ],
        )
    summary = scan(store, path, taxonomy, known=sodump.known_questions(store))
    assert stored(store) == {10: {11, 12}, 30: {31}}
    assert summary.missing == [999]
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == 3


def _comments_file(tmp_path: Path) -> Path:
    """Comments on question 10 and its answer 12 (kept by the criteria), and one on
    question 30 (which the criteria do not keep)."""
    comments = tmp_path / "Comments.xml"
    rows = [
        row(
            Id=1,
            PostId=10,
            Score=2,
            Text="Which version?",
            CreationDate="2019-03-01T10:05:00.000",
            UserId=5,
        ),
        row(
            Id=2,
            PostId=12,
            Score=0,
            Text="Thanks & more",
            CreationDate="2019-03-01T12:05:00.000",
            UserDisplayName="gone",
        ),
        row(Id=3, PostId=30, Score=0, Text="Not kept", CreationDate="2019-03-01T12:06:00.000"),
    ]
    comments.write_text('<?xml version="1.0"?>\n<comments>\n' + "\n".join(rows) + "\n</comments>\n")
    return comments


def test_comments_attach_to_the_question_and_its_answers(tmp_path, taxonomy) -> None:
    posts = tmp_path / "Posts.xml"
    posts.write_bytes(handwritten())
    comments = _comments_file(tmp_path)
    packed = tmp_path / "Comments.xml.gz"
    packed.write_bytes(gzip.compress(comments.read_bytes()))
    for name, comment_file in (("plain", comments), ("gzip", packed)):
        store = sqlite_store(tmp_path, f"comments-{name}.db")
        summary = scan(store, posts, taxonomy, comments=comment_file, piece=200)
        assert summary.comments == 2, name
        assert summary.scanned_bytes == posts.stat().st_size  # Posts.xml's bytes, once
        with store.session() as session:
            issue = session.scalar(select(Issue).where(Issue.native_id == "10"))
            comment = {r.native_id: r for r in issue.replies if r.kind == "comment"}
            assert set(comment) == {"comment:1", "comment:2"}, name
            assert comment["comment:2"].body == "Thanks & more"
            assert comment["comment:2"].author == "gone"


# ---- the keyword gate never rejects what the selection would keep ----------------------------
# a term token inside a longer word is a token only where spaCy splits the word there
IN_A_WORD = "<p>Calling <code>tf.distribute.MirroredStrategy()</code> fails.</p>"
SPLIT_OFF = "<p>x.Distributed and (workers)</p>"
TRICKY_BODIES = [
    "<p>dis<b>tributed</b> training</p>",
    "<p>multi-<em>GPU</em> setup</p>",
    "<p>&#100;istributed</p>",
    "<p>dis<pre>x</pre>tributed</p>",
    "<p>dis<!-- c -->tributed</p>",
    "<p>a < b distributed</p>",
    "<p>AT&T workers</p>",
    "<p>DISTRIBUTED</p>",
    "<a href='x>y'>distributed</a>",
    "<pre><pre>a</pre>distributed</pre>",
    "<p>see https://x.org/multi-gpu</p>",
    "<p>parallel</p><pre/>workers",
    "<p>multiple\n<b>GPUs</b></p>",
    "<p>the model works</p>",
    IN_A_WORD,
    SPLIT_OFF,
    "<p>tf.<b>Distributed</b></p>",
    "<p>foo(distributed) can't</p>",
    "<p>10workers &amp; multi_gpu&#46;</p>",
    "<p>multi-GPU, data-<i>parallel</i>…</p>",
]


def test_keyword_gate_is_conservative(selection, dump_file) -> None:
    gate = keyword_gate.KeywordGate(selection)
    bodies = list(TRICKY_BODIES)
    for line in dump_file.read_bytes().split(b"\n")[2:400]:
        try:
            bodies.append(ET.fromstring(line).attrib.get("Body", ""))
        except ET.ParseError:
            continue
    rejected = 0
    for body in bodies:
        if not gate.could_match("A title", body):
            rejected += 1
            assert not selection.matched_terms("A title", plain_text(body, "stackoverflow")), body
    assert rejected > 100  # it does reject most bodies
    assert not gate.could_match("The model", "<p>the model works</p>")
    assert not gate.could_match("x", IN_A_WORD)  # one token: "tf.distribute"
    assert gate.could_match("x", SPLIT_OFF)  # tokens "x." and "distributed"
    assert gate.could_match("x", TRICKY_BODIES[0]) and gate.could_match("x", TRICKY_BODIES[2])
    assert keyword_gate._marked_prose("<p>a < b</p>") is None  # read differently by HTMLParser


def test_the_criteria_decide_as_the_selection_with_the_gate_sparing_it(
    selection, dump_file, taxonomy
) -> None:
    """The gate changes no decision, nor the reason it is counted under: it only spares the
    selection's keyword match (HTML parsing and spaCy) for most questions."""
    criteria = sodump.Criteria(selection, taxonomy)
    questions = []
    for line in dump_file.read_bytes().split(b"\n"):
        with suppress(ET.ParseError, rows.BadRow):
            if b'PostTypeId="1"' in line:
                questions.append(rows.decision_fields(rows.parse_row(line)))
    tags = [["tensorflow"], ["horovod", "keras"], ["python"]]
    questions += [
        {"title": "x", "body": body, "tags": tags[i % 3], "accepted_answer_id": 1}
        for i, body in enumerate(TRICKY_BODIES)
    ]
    spared = 0
    for question in questions:
        decision = criteria.decide(question)
        assert decision == selection.stackoverflow(question), question
        spared += decision.code == Reason.TAG_WITHOUT_KEYWORD and not criteria.gate.could_match(
            html.unescape(question["title"]), question["body"] or ""
        )
    assert spared > 20  # a real test: the gate turned these away
    known = sodump.Criteria(selection, taxonomy, frozenset([b"1"])).decide(questions[0])
    assert known.kept and known.code == Reason.ALREADY_STORED


# ---- the tag finder finds what the exact pattern finds -----------------------------------------
def test_tag_finder_finds_what_the_tags_pattern_finds(dump_file, taxonomy) -> None:
    criteria = sodump.Criteria(Selection.from_taxonomy(taxonomy), taxonomy)
    long_value = "|".join(f"tag-number-{i}" for i in range(20))  # longer than the window
    extra = [
        question(1, "|TensorFlow|python|"),  # tags compare case-insensitively
        question(2, "&lt;python&gt;&lt;KERAS&gt;"),
        question(3, f"|{long_value}|pytorch|"),
        question(4, "|tensorflow-serving|"),  # not a study tag
        question(5, "|python|", body="<p>|keras| only in the body</p>"),
        question(6, f"|{long_value}|"),
    ]
    data = dump_file.read_bytes() + "\n".join(extra).encode() + b'\n  <row Tags="|keras|'
    pattern = criteria.tags_pattern
    every = [m.start() for m in re.finditer(b'Tags="', data) if pattern.match(data, m.start())]
    assert len(every) > 100
    cuts = sorted({0, len(data), *range(0, len(data), 7919), len(data) - 40, len(data) - 500})
    for lo, hi in zip(cuts, cuts[1:], strict=False):
        expected = [p for p in every if lo <= p and p + len('Tags="') <= hi]
        assert criteria.tag_finder.starts(data, lo, hi) == expected


# ---- pieces, lines, bad files ----------------------------------------------------------------
def test_threads_mapping_a_file_at_once_share_one_mapping(tmp_path) -> None:
    """Dask runs pieces on threads: none may close a mapping another is reading."""
    failures = []
    for attempt in range(40):
        path = tmp_path / f"Posts-{attempt}.xml"
        path.write_bytes(b"<posts>\n" + b"x" * 100_000)
        start = threading.Barrier(8)
        mappings = []

        def read(path=path, start=start, mappings=mappings) -> None:
            start.wait()
            try:
                buf = file_pieces._mapping(path)
                mappings.append(id(buf))
                for _ in range(200):
                    buf.find(b"y")
            except ValueError as exc:  # "mmap closed or invalid"
                failures.append(exc)

        threads = [threading.Thread(target=read) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(set(mappings)) == 1
    file_pieces._unmap()
    assert failures == []


def test_questions_are_stored_while_workers_scan_and_answers_in_larger_batches() -> None:
    due = commit_policy._commit_due
    # with workers, questions every two rounds, answers every COMMIT_PIECES pieces
    assert not due("questions", 3, 3, 22, 2) and due("questions", 4, 4, 22, 2)
    assert not due("answers", 4, 4, 22, 2) and due("answers", 8, COMMIT_PIECES, 22, 2)
    assert due("questions", 16, COMMIT_PIECES, 64, 8)  # never more than COMMIT_PIECES
    # not while each worker has its last piece or two: they would wait for the commit
    assert due("questions", 17, 4, 22, 2) and not due("questions", 18, 5, 22, 2)
    assert not due("questions", 22, 4, 22, 2)  # the last: left to _flush
    # one process scans and stores by turns: every COMMIT_PIECES pieces, whatever the phase
    assert not due("questions", 4, 4, 22, 1) and due("questions", 8, COMMIT_PIECES, 22, 1)


class _Commits:
    """A Checkpointer that only notes (phase, offset, envelopes) of every commit."""

    checkpoint: dict = {}

    def __init__(self) -> None:
        self.made: list[tuple[str, int, list]] = []

    def clear_items(self) -> None:
        pass

    def commit_page(self, envelopes, checkpoint, seen, items=()) -> None:
        self.made.append((checkpoint["phase"], checkpoint["offset"], list(envelopes)))


def test_a_phase_is_never_committed_as_done_before_its_last_batch() -> None:
    """The commit policy: pieces wait for the next phase's start, a stream's last blocks
    are committed at once; the move to the next phase never goes ahead of either."""
    checkpointer = _Commits()
    policy = commit_policy.CommitPolicy(
        checkpointer, commit_policy.fresh_state(100, "questions"), workers=2, piece_bytes=10
    )
    pieces = commit_policy.Batch("Posts.xml", envelopes=["q1"])
    policy.state["offset"] = 100
    assert not policy.end_pass(pieces, pieces=4)
    policy.move_on("answers")
    assert checkpointer.made == []  # the workers start on the answers meanwhile
    policy.flush()
    assert checkpointer.made == [("answers", 0, ["q1"])]
    policy.flush()
    assert len(checkpointer.made) == 1  # once
    stream = commit_policy.Batch("Posts.xml.gz", envelopes=["q2"], size=9)
    assert not policy.due("stream", stream, 1, None)  # by bytes: a piece's worth
    stream.size = 10
    assert policy.due("stream", stream, 1, None)
    policy.state.update(phase="stream", offset=50)
    assert policy.end_pass(stream, pieces=None)
    policy.move_on("late")
    assert checkpointer.made[1:] == [("stream", 50, ["q2"]), ("late", 0, [])]
    # what a phase finds without reading goes after the batch it would otherwise overtake
    policy.end_pass(commit_policy.Batch("Posts.xml", envelopes=["q3"]), pieces=4)
    policy.move_on("comments", commit_policy.Batch("Posts.xml"))
    assert checkpointer.made[3:] == [("comments", 0, ["q3"]), ("comments", 0, [])]


def test_pieces_end_at_line_ends_and_cover_the_file(dump_file) -> None:
    size = dump_file.stat().st_size
    pieces = file_pieces.split_pieces(dump_file, 0, size, 50_000)
    data = dump_file.read_bytes()
    assert pieces[0].start == 0 and pieces[-1].end == size
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))
    assert all(data[p.end - 1 : p.end] == b"\n" for p in pieces[:-1])
    offsets = [0, 1, 5000, pieces[3].start, size - 1]
    counted = dict(streams.line_numbers(io.BytesIO(data), offsets))
    assert counted == {o: data.count(b"\n", 0, o) + 1 for o in offsets}


class _TwoWorkers(sodump.SerialExecutor):
    workers = 2


def test_with_several_workers_the_last_round_of_pieces_is_cut_finer(dump_file, taxonomy):
    size = dump_file.stat().st_size
    criteria = sodump.Criteria(Selection.from_taxonomy(taxonomy), taxonomy)
    source = sodump.open_source(dump_file)
    piece = size // 6 + 1  # six pieces, an even number: the same cuts for one worker and two
    one = sodump.DumpCrawler(source, criteria, piece_bytes=piece)._pieces(source, 0)
    two = sodump.DumpCrawler(source, criteria, executor=_TwoWorkers(), piece_bytes=piece)
    pieces = two._pieces(source, 0)
    data = dump_file.read_bytes()
    assert pieces[0].start == 0 and pieces[-1].end == size
    assert all(a.end == b.start for a, b in zip(pieces, pieces[1:], strict=False))
    assert all(data[p.end - 1 : p.end] == b"\n" for p in pieces[:-1])
    whole = len(one) - 2  # one worker: equal pieces; two: the last two cut TAPER times finer
    assert pieces[:whole] == one[:whole]
    assert len(pieces) == whole + 2 * dump_crawler.TAPER
    assert max(p.end - p.start for p in pieces[whole:]) < piece / dump_crawler.TAPER * 1.2
    # a resumed scan tapers what is left of the file the same way
    resumed = two._pieces(source, pieces[3].start)
    assert resumed[0].start == pieces[3].start and resumed[-1].end == size
    assert len(resumed) - 2 * dump_crawler.TAPER in (2, 4)  # a whole round or two, then tapered


def test_not_a_dump_is_an_error(tmp_path) -> None:
    path = tmp_path / "Users.xml"
    path.write_text('<?xml version="1.0"?>\n<users>\n</users>\n')
    with pytest.raises(sodump.DumpError, match="Posts.xml"):
        sodump.open_source(path)
    with pytest.raises(sodump.DumpError, match="no such file"):
        sodump.open_source(tmp_path / "missing.xml")


# ---- the command ---------------------------------------------------------------------------
def test_cli_summary_json_and_report(tmp_path, runner) -> None:
    path = tmp_path / "Posts.xml"
    path.write_bytes(handwritten())
    db, report = str(tmp_path / "cli.db"), tmp_path / "bad.csv"
    args = ["crawl", "so-dump", str(path), "--db", db, "--report", str(report), "--format", "json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 3, result.output  # finished, with bad input skipped
    assert "finished with 5 cases of bad input skipped (exit status 3)" in result.stderr
    data = json.loads(result.stdout)
    assert (data["questions"], data["answers"], data["resumed"]) == (3, 5, False)
    assert data["bad_input"] == {
        "invalid-character-reference": 1,
        "malformed-row": 2,
        "non-utf8": 1,
        "truncated": 1,
    }
    rows = report.read_text().splitlines()
    assert rows[0] == "kind,file,sheet,row,column,value,message"
    assert any(r.startswith(f"non-utf8,Posts.xml,,{LINES['non-utf8']},") for r in rows)
    text = runner.invoke(app, ["crawl", "so-dump", str(path), "--db", str(tmp_path / "t.db")])
    assert "questions 3  answers 5" in text.stdout
    assert f"Posts.xml line {LINES['malformed']}: malformed-row" in text.stdout
    packed = tmp_path / "Posts.xml.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    refused = runner.invoke(app, ["crawl", "so-dump", str(packed), "--db", db, "--workers", "2"])
    assert refused.exit_code == 1 and "uncompressed" in refused.output


def test_cli_options_reach_the_scan(tmp_path, taxonomy, runner) -> None:
    """--comments, --only-known and --engine dask through the command give what the
    library gives with the same inputs."""
    posts = tmp_path / "Posts.xml"
    posts.write_bytes(handwritten())
    comments = _comments_file(tmp_path)
    urls = tmp_path / "known.csv"
    urls.write_text("url\n" + "".join(f"{STACKOVERFLOW_ORIGIN}/questions/{q}\n" for q in (10, 30)))
    db = str(tmp_path / "cli.db")
    assert runner.invoke(app, ["import", "issues", str(urls), "--db", db]).exit_code == 0
    options = ["--comments", str(comments), "--only-known", "-f", "json"]
    result = runner.invoke(app, ["crawl", "so-dump", str(posts), "--db", db, *options])
    assert result.exit_code == 3, result.output  # the hand-written dump's bad rows
    assert json.loads(result.stdout)["comments"] == 3  # 30 is known: its comment is kept
    library = sqlite_store(tmp_path, "library.db")
    import_issues(library, urls, taxonomy)
    known = sodump.known_questions(library)
    scan(library, posts, taxonomy, comments=comments, known=known)
    assert crawled_content(Store(f"sqlite:///{db}")) == crawled_content(library)
    assert stored(library) == {10: {11, 12}, 30: {31}}

    local, on_dask = str(tmp_path / "local.db"), str(tmp_path / "dask.db")
    for where, engine in ((local, []), (on_dask, ["--engine", "dask", "--workers", "2"])):
        done = runner.invoke(app, ["crawl", "so-dump", str(posts), "--db", where, *engine])
        assert done.exit_code == 3, done.output
    assert crawled_content(Store(f"sqlite:///{on_dask}")) == crawled_content(
        Store(f"sqlite:///{local}")
    )


def test_a_scan_stopped_in_the_late_pass_resumes_to_the_same_store(tmp_path, taxonomy) -> None:
    """Every answer moved before the questions: a stream finds them all in the late pass,
    and a scan stopped in the middle of that pass resumes to the same store."""
    lines = generated(800_000, seed=5, newline="\n").split(b"\n")
    answers = [line for line in lines if b'PostTypeId="2"' in line]
    rest = [line for line in lines if b'PostTypeId="2"' not in line]
    head = next(i for i, line in enumerate(rest) if line.startswith(b"<posts"))
    moved = b"\n".join([*rest[: head + 1], *answers, *rest[head + 1 :]])
    path = tmp_path / "Posts.xml.gz"
    path.write_bytes(gzip.compress(moved))
    straight = sqlite_store(tmp_path, "straight.db")
    scan(straight, path, taxonomy, piece=8 << 10)
    assert sum(map(len, stored(straight).values())) > 20  # all from the late pass

    stopped = sqlite_store(tmp_path, "stopped.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Checkpointer, "commit_page", _stop_at_commit("late", 3))
        with pytest.raises(KeyboardInterrupt):
            scan(stopped, path, taxonomy, piece=8 << 10)
    state = _checkpoint(tmp_path / "stopped.db")
    assert state["phase"] == "late" and state["offset"] > 0  # stopped inside the late pass
    summary = scan(stopped, path, taxonomy, piece=8 << 10)  # resumes in the late pass
    assert crawled_content(stopped) == crawled_content(straight)
    assert summary.scanned_bytes == len(moved)


def test_a_ctrl_c_during_a_commit_comes_once_the_commit_is_done(tmp_path) -> None:
    """The interrupt waits for the transaction to end (so the database is not left locked
    for the run's status), then comes as it would have; an error inside still wins."""
    store = sqlite_store(tmp_path, "held.db")
    checkpointer = Checkpointer(store, "so-dump", {"q": 1})
    after_signal = []
    with pytest.raises(KeyboardInterrupt), ctrl_c_after_commit():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # Python runs the handler meanwhile: it only notes the signal
        after_signal.append(True)
        checkpointer.commit_page([], {"offset": 7}, seen=0)
    assert after_signal == [True] and Checkpointer(store, "so-dump", {"q": 1}).checkpoint == {
        "offset": 7
    }
    with pytest.raises(ValueError, match="inside"), ctrl_c_after_commit():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        raise ValueError("inside")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_ctrl_c_is_reported_even_when_the_runs_status_cannot_be_recorded(
    tmp_path, taxonomy, runner, monkeypatch
) -> None:
    """Ctrl-C can cut a write short and leave the store busy for a moment: the interrupt
    is still reported as one (exit 130), and says that the status was not recorded."""
    path = tmp_path / "Posts.xml"
    path.write_bytes(generated(200_000, seed=2))

    def interrupted(self, checkpointer):
        raise KeyboardInterrupt

    def refused(self, status="done", message=None):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(sodump.DumpCrawler, "run", interrupted)
    monkeypatch.setattr(Checkpointer, "finish", refused)
    result = runner.invoke(app, ["crawl", "so-dump", str(path), "--db", str(tmp_path / "c.db")])
    assert result.exit_code == 130
    assert "interrupted: everything stored up to the last checkpoint is kept" in result.output
    assert "status could not be recorded: OperationalError: database is locked" in result.output


def _stop_at_commit(phase: str, number: int):
    """Checkpointer.commit_page that stops the scan (KeyboardInterrupt) at the given commit
    of the given phase, before it is made."""
    commit_page = Checkpointer.commit_page
    offsets = []

    def stopping(self, envelopes, checkpoint, seen, **more):
        if checkpoint.get("phase") == phase and checkpoint.get("offset"):
            offsets.append(checkpoint["offset"])
            if len(offsets) == number:
                raise KeyboardInterrupt
        return commit_page(self, envelopes, checkpoint, seen, **more)

    return stopping


def test_kept_items_are_rows_of_the_run_not_part_of_its_checkpoint(tmp_path, taxonomy) -> None:
    path = tmp_path / "Posts.xml"
    path.write_bytes(generated(600_000, seed=9))
    store = sqlite_store(tmp_path, "items.db")
    summary = scan(store, path, taxonomy)
    with sqlite3.connect(tmp_path / "items.db") as conn:
        (checkpoint,) = conn.execute("select checkpoint from crawl_run").fetchone()
        items = dict(conn.execute("select kind, count(*) from crawl_item group by kind"))
    assert {"kept", "answers"}.isdisjoint(json.loads(checkpoint))
    assert items == {"question": summary.questions, "answer": summary.answers}
    assert summary.questions > 10 and summary.answers > 10


def test_a_checkpoint_written_before_items_resumes_and_moves_them(tmp_path, taxonomy) -> None:
    """A scan stopped by an older version kept its items inside the checkpoint."""
    path = tmp_path / "Posts.xml"
    path.write_bytes(generated(600_000, seed=9))
    straight = sqlite_store(tmp_path, "straight.db")
    scan(straight, path, taxonomy)
    db = tmp_path / "old.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Checkpointer, "commit_page", _stop_at_commit("questions", 2))
        with pytest.raises(KeyboardInterrupt):
            scan(sqlite_store(tmp_path, "old.db"), path, taxonomy)
    with sqlite3.connect(db) as conn:  # as the older version wrote it
        (checkpoint,) = conn.execute("select checkpoint from crawl_run").fetchone()
        state = json.loads(checkpoint)
        rows = conn.execute("select kind, key, value from crawl_item").fetchall()
        assert rows, "the stopped scan had kept something"
        value = {(kind, k): json.loads(v) if isinstance(v, str) else v for kind, k, v in rows}
        state["kept"] = {k: v for (kind, k), v in value.items() if kind == "question"}
        state["answers"] = {k: v for (kind, k), v in value.items() if kind == "answer"}
        conn.execute("update crawl_run set checkpoint = ?", [json.dumps(state)])
        conn.execute("delete from crawl_item")
    resumed = sqlite_store(tmp_path, "old.db")
    summary = scan(resumed, path, taxonomy)
    assert crawled_content(resumed) == crawled_content(straight)
    with sqlite3.connect(db) as conn:
        (checkpoint,) = conn.execute("select checkpoint from crawl_run").fetchone()
        items = conn.execute("select count(*) from crawl_item").fetchone()[0]
    assert "kept" not in json.loads(checkpoint)
    assert items == summary.questions + summary.answers


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with suppress(OSError):  # gone meanwhile
            # after "pid (name)": state, then the parent's pid
            if int(stat.read_text().rpartition(")")[2].split()[1]) == pid:
                children.append(int(stat.parent.name))
    return children


def _checkpoint(db: Path) -> dict:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            found = conn.execute("select checkpoint from crawl_run order by id").fetchall()
    except sqlite3.OperationalError:  # not created yet
        return {}
    return json.loads(found[-1][0]) if found else {}


@pytest.mark.parametrize(
    ("form", "phase", "stop"),
    [
        ("plain", "questions", "kill"),
        ("plain", "answers", "kill"),
        ("gzip", "stream", "kill"),
        ("plain", "questions", "ctrl-c"),  # on two workers
    ],
)
def test_killed_scan_resumes_to_the_same_store(tmp_path, taxonomy, form, phase, stop) -> None:
    data = generated(2_500_000, seed=3)
    path = tmp_path / ("Posts.xml" if form == "plain" else "Posts.xml.gz")
    path.write_bytes(data if form == "plain" else gzip.compress(data, 1))
    straight = sqlite_store(tmp_path, "straight.db")
    scan(straight, path, taxonomy, piece=1 << 30)
    db = tmp_path / "killed.db"
    command = [
        sys.executable,
        "-m",
        "issueminer.cli",
        "crawl",
        "so-dump",
        str(path),
        "--db",
        str(db),
        "--piece-size",
        "8KB",
        *(["--workers", "2"] if stop == "ctrl-c" else []),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # a process group of its own, as a terminal's job is
        text=True,
    )
    deadline = time.time() + 90
    while process.poll() is None:
        assert time.time() < deadline
        state = _checkpoint(db)
        if state.get("phase") == phase and state.get("offset", 0) > 0:
            break
        time.sleep(0.01)
    assert process.poll() is None, "the scan ended before it could be killed"
    if stop == "kill":
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()
    else:  # Ctrl-C reaches every process of the terminal's job: the workers too
        workers = _children(process.pid)
        assert len(workers) == 1  # the command's own process is the other worker
        os.killpg(process.pid, signal.SIGINT)
        _, errors = process.communicate(timeout=60)
        assert process.returncode == 130, errors
        assert "interrupted: everything stored up to the last checkpoint is kept" in errors
        assert "Traceback" not in errors
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()]
        with sqlite3.connect(db) as conn:
            status = conn.execute("select status from crawl_run").fetchall()
            assert status == [("interrupted",)], errors
    assert _checkpoint(db)["phase"] == phase
    killed = Store(f"sqlite:///{db}")
    criteria = sodump.Criteria(Selection.from_taxonomy(taxonomy), taxonomy)
    crawler = sodump.DumpCrawler(sodump.open_source(path), criteria, piece_bytes=8 << 10)
    checkpointer = Checkpointer(killed, "so-dump", crawler.query())  # as the command does
    assert checkpointer.resumed
    crawler.run(checkpointer)
    checkpointer.finish("done")
    assert crawled_content(killed) == crawled_content(straight)


# ---- damaged, empty and declaring dumps --------------------------------------------------------
def _many_questions(count: int = 125) -> bytes:
    lines = []
    for q in range(1000, 1000 + 2 * count, 2):
        lines += [question(q, "|horovod|python|", accepted=q + 1, answers=1), answer(q + 1, q)]
    return (HEAD + "\n".join(lines) + "\n</posts>\n").encode()


def _stored_questions(db: str) -> int:
    return len(stored(Store(f"sqlite:///{db}")))


def test_a_damaged_gzip_is_stored_up_to_the_damage_and_says_where(tmp_path, runner) -> None:
    data = _many_questions()
    packed = gzip.compress(data)
    cut = tmp_path / "Posts.xml.gz"
    cut.write_bytes(packed[: len(packed) * 9 // 10])
    before = zlib.decompressobj(31).decompress(cut.read_bytes())  # all that can be read
    end = before.rfind(b"\n") + 1
    whole_questions = before[:end].count(b'PostTypeId="1"')
    line = before[:end].count(b"\n") + 1
    db = str(tmp_path / "cut.db")
    problem = f"Posts.xml.gz line {line} (byte {end}): damaged: EOFError"
    for run in (1, 2):  # a rerun does not pretend to resume: it says the same
        result = runner.invoke(app, ["crawl", "so-dump", str(cut), "--db", db])
        assert result.exit_code == 3, result.output
        assert problem in result.stderr and "run the same command" not in result.output
        assert f"the data ends at byte {end} (line {line})" in result.stderr
        assert "bad input (skipped): damaged 1" in result.stdout, run
        assert _stored_questions(db) == whole_questions > 100
    # corrupt data inside a larger stream that still decodes: only the CRC at the end of
    # the stream finds it wrong, and where it is cannot be told: refused before the scan
    # stores any of it
    plain = tmp_path / "Posts.xml"
    plain.write_bytes(generated(1_500_000, seed=3, newline="\n"))
    corrupt = bytearray(gzip.compress(plain.read_bytes()))
    at = len(corrupt) * 3 // 4
    corrupt[at : at + 64] = b"\xff" * 64
    cut.write_bytes(bytes(corrupt))
    with pytest.raises(gzip.BadGzipFile) as checked:  # it decodes to its end
        gzip.decompress(bytes(corrupt))
    assert "CRC check failed" in str(checked.value)
    result = runner.invoke(app, ["crawl", "so-dump", str(cut), "--db", str(tmp_path / "c.db")])
    assert result.exit_code == 3, result.output
    assert "decompresses but fails its checksum (CRC check failed" in result.stderr
    assert "Traceback" not in result.output
    assert not (tmp_path / "c.db").exists()  # refused before the store was opened


def test_a_gzip_whose_rows_decode_wrongly_is_refused_before_storing(tmp_path, runner) -> None:
    """Stored (level 0) deflate blocks carry the bytes as they are: a flipped byte in a
    title decodes to a well-formed row with another title, found only by the checksum."""
    data = _many_questions()
    packed = bytearray(gzip.compress(data, compresslevel=0))
    at = packed.index(b"How to train?")
    packed[at] = ord("W")
    path = tmp_path / "Posts.xml.gz"
    path.write_bytes(bytes(packed))
    db = tmp_path / "flip.db"
    result = runner.invoke(app, ["crawl", "so-dump", str(path), "--db", str(db)])
    assert result.exit_code == 3, result.output
    assert "Posts.xml.gz: the compressed data decompresses but fails its checksum" in (
        result.stderr
    )
    assert not db.exists()


def test_a_damaged_stream_through_the_library_and_stdin(tmp_path, taxonomy) -> None:
    data = _many_questions()
    packed = gzip.compress(data)
    cut = packed[: len(packed) * 9 // 10]
    path = tmp_path / "Posts.xml.gz"
    path.write_bytes(cut)
    for name, source, stdin in (("file", path, None), ("stdin", "-", io.BytesIO(cut))):
        store = sqlite_store(tmp_path, f"{name}.db")
        summary = scan(store, source, taxonomy, piece=2000, stdin=stdin)  # many commits
        assert summary.finding_counts["damaged"] == 1, name
        assert 100 < len(stored(store)) < 125
        (finding,) = [f for f in summary.findings if f["kind"] == "damaged"]
        if name == "stdin":  # the last question's answer is past the damage
            assert summary.finding_counts["answers-not-attached"] == 1
            assert "in the damaged part or before it" in summary.findings[-2]["message"]
        else:
            assert len(summary.finding_counts) == 1
        assert f"ends at byte {finding['offset']} " in finding["message"]
        assert finding["line"] == data[: finding["offset"]].count(b"\n") + 1


def test_a_broken_gzip_header_is_one_line_naming_the_file(tmp_path, runner) -> None:
    path = tmp_path / "Posts.xml.gz"
    db = tmp_path / "never.db"
    heads = {
        "method": b"\x1f\x8b\x07\x00" + bytes(20),  # magic right, compression method wrong
        "cut": b"\x1f\x8b\x08\x00\x00",  # the header itself cut short
        "flags": b"\x1f\x8b\x08\xe0" + bytes(20),  # reserved flag bits set
    }
    for why, head in heads.items():
        path.write_bytes(head)
        result = runner.invoke(app, ["crawl", "so-dump", str(path), "--db", str(db)])
        assert result.exit_code == 3, (why, result.output)
        assert result.stderr.count("\n") == 1 and "Posts.xml.gz" in result.stderr, why
        assert "damaged" in result.stderr and "Traceback" not in result.output
        assert not db.exists()  # refused before any store is made
    path.write_bytes(b"just some text, named .gz\n")  # not gzip at all
    result = runner.invoke(app, ["crawl", "so-dump", str(path), "--db", str(db)])
    assert result.exit_code == 1 and result.stderr.count("\n") == 1, result.output
    assert "Posts.xml.gz does not look like" in result.stderr


def test_a_dump_without_rows_is_refused_as_bad_input(tmp_path, runner) -> None:
    path = tmp_path / "Posts.xml"
    db = str(tmp_path / "empty.db")
    for content, why in ((b"", "the file is empty"), (HEAD.encode() + b"</posts>\n", "only")):
        path.write_bytes(content)
        result = runner.invoke(app, ["crawl", "so-dump", str(path), "--db", db])
        assert result.exit_code == 3, result.output
        assert f"Posts.xml: no rows ({why}" in result.stderr
        packed = tmp_path / "Posts.xml.gz"
        packed.write_bytes(gzip.compress(content))
        result = runner.invoke(app, ["crawl", "so-dump", str(packed), "--db", db])
        assert result.exit_code == 3 and "Posts.xml.gz: no rows" in result.stderr
        piped = runner.invoke(app, ["crawl", "so-dump", "-", "--db", db], input=content)
        assert piped.exit_code == 3, piped.output
        assert "<stdin> line 1 (byte 0): no-rows" in piped.stderr


def test_a_plain_dump_longer_than_its_head_without_rows_is_refused_at_open(
    tmp_path, runner
) -> None:
    """Past the first 4 KB still no row (padding, comments): refused when the file is
    opened, as a short one is, and no store is made."""
    path = tmp_path / "Posts.xml"
    filler = b"  <!-- no rows here -->\n" * 1000
    assert len(filler) > 4 * 4096
    path.write_bytes(HEAD.encode() + filler + b"</posts>\n")
    db = tmp_path / "none.db"
    result = runner.invoke(app, ["crawl", "so-dump", str(path), "--db", str(db)])
    assert result.exit_code == 3, result.output
    assert f"Posts.xml: no rows (none in its {path.stat().st_size} bytes)" in result.stderr
    assert not db.exists()
    path.write_bytes(HEAD.encode() + filler + question(1, "|numpy|").encode() + b"\n</posts>\n")
    assert sodump.open_source(path).plain  # a row after the filler: accepted


def test_a_damaged_7z_is_refused_in_one_line(tmp_path, runner) -> None:
    """A .7z cut short has lost its header (7z writes it at the end): not readable. One
    with a corrupt byte in its packed data fails to decode when its first block is read:
    damaged, bad input. Each in one line, no traceback, no store made."""
    import py7zr

    source = tmp_path / "Posts.xml"
    source.write_bytes(generated(600_000, seed=5, newline="\n"))
    archive = tmp_path / "whole.7z"
    with py7zr.SevenZipFile(archive, "w") as packed:
        packed.write(source, "Posts.xml")
    whole = archive.read_bytes()
    at = len(whole) * 9 // 10
    cases = {
        "cut.7z": (whole[: len(whole) * 2 // 3], 1, "not a readable .7z archive"),
        "flipped.7z": (
            whole[:at] + bytes([whole[at] ^ 0xFF]) + whole[at + 1 :],
            3,  # bad input
            "the compressed data is damaged (LZMAError",
        ),
    }
    for name, (content, status, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        db = tmp_path / f"{name}.db"
        result = runner.invoke(app, ["crawl", "so-dump", str(path), "--db", str(db)])
        assert result.exit_code == status, result.output
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.output and not db.exists()


def test_a_declared_doctype_or_entity_is_refused_wherever_it_is(tmp_path, taxonomy, runner):
    declaring = question(7, "|horovod|", title="TITLE_X", accepted=8).replace("TITLE_X", "&t;")
    declaring = '<!DOCTYPE row [<!ENTITY t "Replaced by the DTD">]>' + declaring.lstrip()
    with pytest.raises(rows.BadRow) as refused:
        rows.parse_row(declaring.encode())
    assert refused.value.kind == "dtd-declaration"
    (batch,) = [r for r in rows.parse_rows([declaring.encode()]) if isinstance(r, rows.BadRow)]
    assert batch.kind == "dtd-declaration"
    data = handwritten().replace(
        b"\n" + question(40, "|pytorch|", title="Distributed training hangs").encode(),
        b"\n" + declaring.encode(),
    )
    path = tmp_path / "Posts.xml"
    path.write_bytes(data)
    db = str(tmp_path / "dtd.db")
    result = runner.invoke(app, ["crawl", "so-dump", str(path), "--db", db])
    assert result.exit_code == 3, result.output
    assert "Posts.xml line 10: dtd-declaration: a DOCTYPE declaration" in result.stdout
    assert 7 not in stored(Store(f"sqlite:///{db}"))
    # in the file's head, before <posts>: refused when the file is opened, or on stdin found
    head = HEAD.replace("<posts>", '<!DOCTYPE posts [<!ENTITY t "x">]>\n<posts>').encode()
    path.write_bytes(head + handwritten()[len(HEAD) :])
    with pytest.raises(sodump.BadInput, match="Posts.xml line 2: a DOCTYPE declaration"):
        sodump.open_source(path)
    summary = scan(
        sqlite_store(tmp_path, "in.db"), "-", taxonomy, stdin=io.BytesIO(path.read_bytes())
    )
    assert any(f["kind"] == "dtd-declaration" and f["line"] == 2 for f in summary.findings)
