"""A researcher's own files: issues from JSON Lines / CSV, labels from CSV, URL identities
and the plain text kept for each issue."""

import csv
import hashlib
import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from issueminer.cli.main import app
from issueminer.collect.ingest import import_issues, import_labels
from issueminer.collect.sources import files
from issueminer.collect.sources.files import LABEL_COLUMNS
from issueminer.findings import ImportFailure
from issueminer.ids import parse_issue_url
from issueminer.store import Annotation, FinalLabel, Issue, LabelingRound, Reply, Store
from issueminer.text import plain_text
from tests.helpers import dump


def sha1_uid(origin, native_id):
    return hashlib.sha1(f"{origin}:{native_id}".encode()).hexdigest()


SO_UID = sha1_uid("https://stackoverflow.com", "4242")
GH_UID = sha1_uid("https://github.com/horovod/horovod", "17")

SO_BODY = (
    "<p>My <b>DDP</b> job hangs, see https://example.com/log.txt for the log.</p>"
    "<pre><code>import torch.distributed as dist\ndist.init_process_group('nccl')\n</code></pre>"
    "<script>var secret = 'tracker';</script>"
    "<p>Any idea?</p>"
)

JSONL_RECORDS = [
    {
        "url": "https://stackoverflow.com/questions/4242/ddp-hangs-at-init",
        "title": "DDP hangs at init",
        "body": SO_BODY,
        "source": "stackoverflow",
        "tags": ["pytorch", "ddp"],
        "state": "open",
        "answers": [
            {"id": 1, "author": "ann", "body": "set NCCL_DEBUG", "score": 2},
            {"id": 2, "author": "ben", "body": "open the port", "accepted": True, "score": 5},
        ],
    },
    {
        "url": "https://github.com/Horovod/horovod/issues/17",
        "title": "horovodrun fails",
        "body": "It fails.\n\n```\nhorovodrun -np 2 python train.py\n```\n",
        "tags": "bug, mpi",
        "state": "closed",
        "answers": [{"id": 99, "body": "fixed in 0.28"}],
    },
]


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _write_csv(path, rows, columns):
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def _counts(store):
    with store.session() as session:
        return {
            model.__name__: session.scalar(select(func.count()).select_from(model))
            for model in (Issue, Reply, Annotation, FinalLabel, LabelingRound)
        }


def _as_utc(value):
    """Stored datetimes: aware on PostgreSQL, naive (meaning UTC) on SQLite."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


# ---- issues ---------------------------------------------------------------------------


def test_import_issues_jsonl(store, tmp_path):
    """A JSON Lines file: identities, fields, plain text and replies are stored."""
    path = _write_jsonl(tmp_path / "mine.jsonl", JSONL_RECORDS)
    report = import_issues(store, path)
    assert report.counts["issues added"] == 2
    assert report.counts["replies added"] == 3
    with store.session() as session:
        so = session.get(Issue, SO_UID)
        gh = session.get(Issue, GH_UID)
        assert so.url == "https://stackoverflow.com/questions/4242"
        assert (so.source, so.origin, so.native_id) == (
            "stackoverflow",
            "https://stackoverflow.com",
            "4242",
        )
        assert so.title == "DDP hangs at init"
        assert so.body == SO_BODY
        assert so.tags == ["pytorch", "ddp"]
        assert so.state == "open"
        assert so.found_by == "file:mine.jsonl"
        assert so.accepted_answer_id == "2"
        assert so.raw["title"] == "DDP hangs at init"
        answers = {r.native_id: r for r in so.replies}
        assert set(answers) == {"1", "2"}
        assert all(r.kind == "answer" for r in answers.values())
        assert answers["2"].accepted and not answers["1"].accepted
        assert (answers["2"].author, answers["2"].score) == ("ben", 5)

        assert gh.url == "https://github.com/horovod/horovod/issues/17"
        assert gh.source == "github"
        assert gh.tags == ["bug", "mpi"]
        assert [(r.native_id, r.kind) for r in gh.replies] == [("99", "comment")]
        assert gh.accepted_answer_id is None
        assert "horovodrun -np" not in gh.text and gh.text == "It fails."


def test_import_issues_csv(store, tmp_path):
    """A CSV file: url required, title/body/source/tags/created/state optional."""
    rows = [
        {
            "url": "http://www.stackoverflow.com/q/4242/",
            "title": "DDP hangs",
            "body": "<p>Help with https://x.org/a</p>",
            "source": "",
            "tags": "<pytorch><ddp>",
            "created": "2021-03-04T05:06:07Z",
            "state": "open",
        },
        {
            "url": "https://example.org/forum/t/5/",
            "title": "A forum post",
            "body": "",
            "source": "forum",
            "tags": "a; b | c",
            "created": "2020-01-02",
            "state": "",
        },
    ]
    columns = ["url", "title", "body", "source", "tags", "created", "state"]
    path = _write_csv(tmp_path / "mine.csv", rows, columns)
    report = import_issues(store, path)
    assert report.counts["issues added"] == 2
    with store.session() as session:
        so = session.get(Issue, SO_UID)
        assert so.url == "https://stackoverflow.com/questions/4242"
        assert so.tags == ["pytorch", "ddp"]
        assert so.text == "Help with URL"
        assert _as_utc(so.created_at) == datetime(2021, 3, 4, 5, 6, 7, tzinfo=UTC)
        web = session.get(Issue, sha1_uid("https://example.org", "/forum/t/5"))
        assert web is not None
        assert (web.source, web.url, web.title) == ("forum", rows[1]["url"], "A forum post")
        assert web.tags == ["a", "b", "c"]
        assert web.body is None and web.text is None and web.state is None
        assert _as_utc(web.created_at) == datetime(2020, 1, 2, tzinfo=UTC)
        assert web.found_by == "file:mine.csv"


@pytest.mark.parametrize(
    "url",
    [
        "https://stackoverflow.com/questions/4242",
        "https://stackoverflow.com/questions/4242/ddp-hangs-at-init",
        "http://stackoverflow.com/questions/4242/ddp-hangs-at-init/",
        "https://www.stackoverflow.com/q/4242",
        "https://stackoverflow.com/q/4242/",
        "  https://STACKOVERFLOW.com/questions/4242/slug?noredirect=1#comment1  ",
    ],
)
def test_stackoverflow_url_forms_one_uid(url):
    """Every form of a Stack Overflow question URL maps to one uid and one canonical URL."""
    ref = parse_issue_url(url)
    assert ref.source == "stackoverflow"
    assert ref.uid == SO_UID
    assert ref.url == "https://stackoverflow.com/questions/4242"


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/horovod/horovod/issues/17",
        "http://github.com/Horovod/Horovod/issues/17",
        "https://www.github.com/horovod/horovod/issues/17/",
        "https://github.com/horovod/horovod/issues/17#issuecomment-1",
        "https://github.com/horovod/horovod/pull/17",
    ],
)
def test_github_url_forms_one_uid(url):
    """GitHub issue and pull URLs share one number space per repository: one uid."""
    ref = parse_issue_url(url)
    assert (ref.source, ref.repository) == ("github", "horovod/horovod")
    assert ref.uid == GH_UID


def test_url_identity_distinguishes_issues():
    """Other numbers or repositories give other uids; other sites are not recognised."""
    assert parse_issue_url("https://stackoverflow.com/questions/4243").uid != SO_UID
    assert parse_issue_url("https://github.com/horovod/other/issues/17").uid != GH_UID
    assert parse_issue_url("https://github.com/horovod/horovod/issues/18").uid != GH_UID
    assert parse_issue_url("https://serverfault.com/questions/4242") is None
    assert parse_issue_url("https://github.com/horovod/horovod") is None


def test_url_forms_in_one_file_make_one_issue(store, tmp_path):
    """Two rows naming one question in different forms: one row, fields merged, reported."""
    path = _write_jsonl(
        tmp_path / "forms.jsonl",
        [
            {"url": "http://www.stackoverflow.com/q/4242/", "tags": ["a"]},
            {"url": "https://stackoverflow.com/questions/4242/slug", "title": "T", "tags": ["b"]},
        ],
    )
    report = import_issues(store, path)
    assert report.counts["issues added"] == 1
    [duplicate] = report.of_kind("duplicate")
    assert duplicate.row == 2
    with store.session() as session:
        issue = session.get(Issue, SO_UID)
        assert issue.title == "T"
        assert issue.tags == ["a", "b"]
    assert _counts(store)["Issue"] == 1


def test_reimport_is_a_no_op(store, tmp_path):
    """Importing the same file again changes nothing: all issues unchanged, no new rows."""
    path = _write_jsonl(tmp_path / "mine.jsonl", JSONL_RECORDS)
    import_issues(store, path)
    before = _counts(store)
    report = import_issues(store, path)
    assert report.counts["issues unchanged"] == 2
    assert report.counts["issues added"] == 0
    assert report.counts["issues updated"] == 0
    assert report.counts["replies added"] == 0
    assert _counts(store) == before


def test_reimport_with_created_date_is_a_no_op(store, tmp_path):
    """A file with 'created' dates, imported twice, leaves every issue unchanged."""
    records = [{**r, "created": "2021-03-04T05:06:07Z"} for r in JSONL_RECORDS]
    path = _write_jsonl(tmp_path / "dated.jsonl", records)
    import_issues(store, path)
    before = _counts(store)
    report = import_issues(store, path)
    assert _counts(store) == before
    assert report.counts["issues unchanged"] == 2


def test_reimport_updates_changed_fields(store, tmp_path):
    """A changed field is updated in place; an empty field never erases a stored value."""
    path = _write_jsonl(tmp_path / "mine.jsonl", JSONL_RECORDS)
    import_issues(store, path)
    changed = [{**JSONL_RECORDS[0], "state": "closed"}, {**JSONL_RECORDS[1], "title": ""}]
    report = import_issues(store, _write_jsonl(path, changed))
    # both records differ from before (the second one at least in `raw`, the record as read)
    assert report.counts["issues updated"] == 2
    with store.session() as session:
        assert session.get(Issue, SO_UID).state == "closed"
        github = session.get(Issue, GH_UID)
        assert github.title == "horovodrun fails"
        assert github.raw["title"] == ""
    assert _counts(store)["Issue"] == 2


def test_bad_json_line_fails_and_writes_nothing(store, tmp_path):
    """A line that is not JSON: ImportFailure naming file and line; the store is untouched."""
    import_issues(store, _write_jsonl(tmp_path / "first.jsonl", JSONL_RECORDS[:1]))
    before = _counts(store)
    path = tmp_path / "broken.jsonl"
    path.write_text(
        json.dumps(JSONL_RECORDS[1]) + "\n\n" + '{"url": "https://stackoverflow.com/q/1",\n',
        encoding="utf-8",
    )
    with pytest.raises(ImportFailure) as raised:
        import_issues(store, path)
    message = str(raised.value)
    assert str(path) in message
    assert "line 3" in message
    assert _counts(store) == before
    with store.session() as session:
        assert session.get(Issue, GH_UID) is None


def test_json_line_that_is_not_an_object_fails(store, tmp_path):
    """A JSON value other than an object is rejected with its line number."""
    path = tmp_path / "list.jsonl"
    path.write_text('{"url": "https://stackoverflow.com/q/1"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(ImportFailure, match=r"line 2: expected a JSON object"):
        import_issues(store, path)
    assert _counts(store)["Issue"] == 0


def test_row_without_url_fails_naming_the_row(store, tmp_path):
    """A CSV row without url: ImportFailure naming that row; the other rows are not written."""
    rows = [
        {"url": "https://stackoverflow.com/q/1", "title": "fine"},
        {"url": "https://stackoverflow.com/q/2", "title": "fine too"},
        {"url": "", "title": "no link"},
        {"url": "not a url", "title": "bad link"},
    ]
    path = _write_csv(tmp_path / "rows.csv", rows, ["url", "title"])
    with pytest.raises(ImportFailure) as raised:
        import_issues(store, path)
    problems = raised.value.problems
    assert problems[0] == f"{path}, row 4: missing 'url'"
    assert problems[1].startswith(f"{path}, row 5: ")
    assert len(problems) == 2
    assert _counts(store)["Issue"] == 0


def test_jsonl_record_without_url_names_its_line(store, tmp_path):
    """In JSON Lines the row number is the file's line number (blank lines counted)."""
    path = tmp_path / "lines.jsonl"
    path.write_text('{"url": "https://stackoverflow.com/q/1"}\n\n{"title": "x"}\n')
    with pytest.raises(ImportFailure, match=r"lines\.jsonl, row 3: missing 'url'"):
        import_issues(store, path)
    assert _counts(store)["Issue"] == 0


def test_bad_created_date_fails(store, tmp_path):
    """A 'created' value that is not an ISO date is a row error."""
    path = _write_csv(
        tmp_path / "d.csv", [{"url": "https://stackoverflow.com/q/1", "created": "last week"}],
        ["url", "created"],
    )  # fmt: skip
    with pytest.raises(ImportFailure, match=r"row 2: 'created' is not an ISO date"):
        import_issues(store, path)


# ---- labels ---------------------------------------------------------------------------

Q1 = "https://stackoverflow.com/questions/4242/ddp-hangs-at-init"
Q2 = "https://github.com/horovod/horovod/issues/17"
Q3 = "https://stackoverflow.com/questions/555"


def _label(url, kind, annotator, round_name="", **labels):
    row = dict.fromkeys(LABEL_COLUMNS, "")
    row.update(url=url, kind=kind, annotator=annotator, round=round_name, **labels)
    return row


LABEL_ROWS = [
    _label(Q1, "annotation", "alice", "round 1", issue_type="fault",
           stage="Communication Setup", leaf_symptom="hang and timeout",
           fix_patterns="fix network setting & fix timeout setting", specific="1"),
    _label(Q1, "annotation", "bob", "round 1", issue_type="fault",
           stage="communication setup", leaf_symptom="setup failure",
           fix_patterns="fix netowrk setting", specific="yes"),
    _label(Q2, "annotation", "alice", "round 1", issue_type="how-to",
           howto_topic="communication", howto_subtopic="configuartion"),
    _label(Q2, "annotation", "bob", "round 1", issue_type="how-to question",
           howto_topic="device usage", howto_subtopic="configuration"),
    _label(Q1, "final", "carol", issue_type="fault", stage="communication setup",
           leaf_symptom="hang and timeout", fix_patterns="fix network setting",
           memo="agreed in meeting"),
    _label(Q2, "final", "carol", issue_type="how-to question", howto_topic="communication",
           howto_subtopic="configuration"),
]  # fmt: skip


def _write_labels(path, rows):
    return _write_csv(path, rows, list(LABEL_COLUMNS))


def test_import_labels_annotations_and_finals(store, tmp_path, taxonomy):
    """Annotations are appended with round and annotator; final labels are stored."""
    path = _write_labels(tmp_path / "labels.csv", LABEL_ROWS)
    report = import_labels(store, path, taxonomy)
    assert report.counts["annotations added"] == 4
    assert report.counts["final labels added"] == 2
    assert report.counts["issues added"] == 2
    with store.session() as session:
        annotations = {(a.issue_uid, a.annotator): a for a in session.scalars(select(Annotation))}
        assert len(annotations) == 4
        alice = annotations[(SO_UID, "alice")]
        assert (alice.round, alice.role, alice.status) == ("round 1", "annotator", "done")
        assert alice.stage == "communication setup"
        assert alice.fix_patterns == ["fix network setting", "fix timeout setting"]
        assert alice.specific is True
        assert alice.provenance == "file:labels.csv!2"
        assert alice.raw_labels["stage"] == "Communication Setup"
        assert annotations[(SO_UID, "bob")].fix_patterns == ["fix network setting"]
        how = annotations[(GH_UID, "alice")]
        assert (how.issue_type, how.howto_topic, how.howto_subtopic) == (
            "how-to question",
            "communication",
            "configuration",
        )
        assert annotations[(GH_UID, "bob")].howto_topic == "device usage"

        finals = {(f.issue_uid, f.issue_type): f for f in session.scalars(select(FinalLabel))}
        assert set(finals) == {(SO_UID, "fault"), (GH_UID, "how-to question")}
        fault = finals[(SO_UID, "fault")]
        assert fault.leaf_symptom == "hang and timeout"
        assert fault.fix_patterns == ["fix network setting"]
        assert (fault.resolved_by, fault.memo) == ("carol", "agreed in meeting")
        assert fault.resolved_from == "file:labels.csv!6"

        labeling_round = session.get(LabelingRound, "round 1")
        assert labeling_round.annotators == ["alice", "bob"]
        assert session.get(Issue, SO_UID).url == "https://stackoverflow.com/questions/4242"


def test_import_labels_twice_adds_nothing(store, tmp_path, taxonomy):
    """Re-importing the same label file writes no new annotations or final labels."""
    path = _write_labels(tmp_path / "labels.csv", LABEL_ROWS)
    import_labels(store, path, taxonomy)
    before = _counts(store)
    report = import_labels(store, path, taxonomy)
    assert report.counts["annotations added"] == 0
    assert report.counts["annotations unchanged"] == 4
    assert report.counts["final labels added"] == 0
    assert report.counts["final labels updated"] == 0
    assert report.counts["final labels unchanged"] == 2
    assert report.counts["issues unchanged"] == 2
    assert _counts(store) == before


def test_a_copy_of_a_label_file_under_another_name_adds_nothing(store, tmp_path, taxonomy):
    """Matched by the labels as they stand, not only by file and row: no duplicate rows,
    and a final label whose only change is the file it came from is left as it was."""
    import_labels(store, _write_labels(tmp_path / "labels.csv", LABEL_ROWS), taxonomy)
    before = dump(store)
    report = import_labels(store, _write_labels(tmp_path / "copy.csv", LABEL_ROWS), taxonomy)
    assert report.counts["annotations added"] == 0 and report.counts["final labels updated"] == 0
    assert report.counts["annotations unchanged"] == 4
    assert dump(store) == before
    changed = [dict(r) for r in LABEL_ROWS]
    changed[1]["leaf_symptom"] = "hang and timeout"  # bob, in the copy, changes his mind
    report = import_labels(store, _write_labels(tmp_path / "copy.csv", changed), taxonomy)
    assert report.counts["annotations added"] == 1


def _stored_flags(url):
    """(issue, annotator or kind, round) -> the stored `specific` flag, for every label."""
    store = Store(url)
    try:
        with store.session() as session:
            annotations = session.scalars(select(Annotation))
            flags = {(a.issue_uid, a.annotator, a.round): a.specific for a in annotations}
            for final in session.scalars(select(FinalLabel)):
                flags[(final.issue_uid, "final", final.issue_type)] = final.specific
            return flags
    finally:
        store.close()


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_old_distributed_specific_column_imports_like_specific(tmp_path, taxonomy, suffix):
    """A label file written before the flag was renamed (column `distributed_specific`)
    imports the same values as one with the column `specific`."""
    rows = [
        *LABEL_ROWS[:4],
        {**LABEL_ROWS[4], "specific": "0"},  # a final fault that is not specific
        LABEL_ROWS[5],
    ]
    old_name = {"specific": "distributed_specific"}
    old_rows = [{old_name.get(k, k): v for k, v in row.items()} for row in rows]
    stored = {}
    for name, file_rows in (("new", rows), ("old", old_rows)):
        path = tmp_path / f"{name}.{suffix}"
        if suffix == "csv":
            _write_csv(path, file_rows, list(file_rows[0]))
        else:
            _write_jsonl(path, file_rows)
        url = f"sqlite:///{tmp_path / name}.db"
        store = Store(url)
        report = import_labels(store, path, taxonomy)
        store.close()
        assert (report.counts["annotations added"], report.counts["final labels added"]) == (4, 2)
        stored[name] = _stored_flags(url)
    assert stored["old"] == stored["new"]
    assert sorted(stored["new"].values(), key=repr) == [False, None, None, None, True, True]
    assert stored["new"][(SO_UID, "alice", "round 1")] is True
    assert stored["new"][(SO_UID, "final", "fault")] is False


def test_both_flag_columns_keep_specific_and_report_the_conflict(tmp_path, taxonomy):
    """With both columns filled differently, `specific` wins and the report says so."""
    row = {**LABEL_ROWS[0], "specific": "0", "distributed_specific": "1"}
    path = _write_csv(tmp_path / "labels.csv", [row], list(row))
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store = Store(url)
    report = import_labels(store, path, taxonomy)
    store.close()
    assert _stored_flags(url) == {(SO_UID, "alice", "round 1"): False}
    conflicts = [(f.column, f.value, f.row) for f in report.of_kind("conflict")]
    assert conflicts == [("distributed_specific", "1", 2)]
    same = {**LABEL_ROWS[0], "specific": "yes", "distributed_specific": "1"}  # one answer
    again = _write_csv(tmp_path / "same.csv", [same], list(same))
    other = Store(f"sqlite:///{tmp_path / 'same.db'}")
    assert not import_labels(other, again, taxonomy).of_kind("conflict")
    other.close()


def test_import_labels_changed_file_appends_and_upserts(store, tmp_path, taxonomy):
    """A corrected annotation is appended (history kept); a changed final label is updated."""
    path = _write_labels(tmp_path / "labels.csv", LABEL_ROWS)
    import_labels(store, path, taxonomy)
    rows = [dict(r) for r in LABEL_ROWS]
    rows[1]["leaf_symptom"] = "hang and timeout"  # bob changes his mind
    rows[4]["fix_patterns"] = "fix timeout setting"  # the final label is revised
    report = import_labels(store, _write_labels(path, rows), taxonomy)
    assert report.counts["annotations added"] == 1
    assert report.counts["annotations unchanged"] == 3
    assert report.counts["final labels updated"] == 1
    assert report.counts["final labels unchanged"] == 1
    with store.session() as session:
        bobs = session.scalars(
            select(Annotation)
            .where(Annotation.issue_uid == SO_UID, Annotation.annotator == "bob")
            .order_by(Annotation.id)
        ).all()
        assert [a.leaf_symptom for a in bobs] == ["setup failure", "hang and timeout"]
        finals = session.scalars(select(FinalLabel).where(FinalLabel.issue_uid == SO_UID)).all()
        assert [f.fix_patterns for f in finals] == [["fix timeout setting"]]


def test_import_labels_unknown_label_fails_and_writes_nothing(store, tmp_path, taxonomy):
    """An unknown label: ImportFailure naming its row and cell; nothing is written."""
    rows = [*LABEL_ROWS]
    rows.insert(
        2,
        _label(Q3, "annotation", "bob", "round 1", issue_type="fault",
               stage="communication setup", leaf_symptom="flux capacitor overload"),
    )  # fmt: skip
    path = _write_labels(tmp_path / "labels.csv", rows)
    before = _counts(store)
    with pytest.raises(ImportFailure) as raised:
        import_labels(store, path, taxonomy)
    assert raised.value.problems == [
        f"{path}, row 4: unknown label leaf_symptom='flux capacitor overload'"
    ]
    assert _counts(store) == before


def test_import_labels_bad_kind_and_missing_annotator(store, tmp_path, taxonomy):
    """A kind other than annotation/final, or no annotator, is a row error."""
    rows = [
        LABEL_ROWS[0],
        _label(Q2, "opinion", "alice", issue_type="fault"),
        _label(Q3, "final", "", issue_type="not relevant"),
    ]
    path = _write_labels(tmp_path / "labels.csv", rows)
    with pytest.raises(ImportFailure) as raised:
        import_labels(store, path, taxonomy)
    problems = raised.value.problems
    assert len(problems) == 2
    assert problems[0].startswith(f"{path}, row 3: kind must be one of")
    assert problems[1].startswith(f"{path}, row 4: missing 'annotator'")
    assert _counts(store)["Annotation"] == 0


def test_import_labels_missing_url_column(store, tmp_path, taxonomy):
    """A label file without a url column is rejected at its header."""
    path = _write_csv(tmp_path / "nourl.csv", [{"link": Q1, "kind": "final"}], ["link", "kind"])
    with pytest.raises(
        ImportFailure, match=r"row 1: unknown column 'link'; missing columns 'url', 'annotator'"
    ):
        import_labels(store, path, taxonomy)


# the documented header, written out (not taken from the code under test)
DOCUMENTED_LABEL_HEADER = (
    "url,kind,annotator,round,issue_type,specific,stage,inner_category,leaf_symptom,"
    "fix_patterns,howto_topic,howto_subtopic,memo"
)


def test_the_documented_label_header_is_the_one_read(store, tmp_path, taxonomy):
    path = tmp_path / "labels.csv"
    path.write_text(
        DOCUMENTED_LABEL_HEADER + "\n"
        f"{Q1},final,carol,,fault,yes,communication setup,,hang and timeout,"
        "fix network setting,,,\n",
        encoding="utf-8",
    )
    assert import_labels(store, path, taxonomy).counts["final labels added"] == 1


def _imported_then_failing(store, tmp_path, taxonomy, text, match):
    """Good labels are imported, then `text` (a label file) must fail with `match` and
    leave every table as it was."""
    import_labels(store, _write_labels(tmp_path / "good.csv", LABEL_ROWS), taxonomy)
    before = dump(store)
    bad = tmp_path / "bad.csv"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ImportFailure, match=match):
        import_labels(store, bad, taxonomy)
    assert dump(store) == before


def test_a_renamed_label_column_stops_the_import(store, tmp_path, taxonomy):
    """Read as a missing column, a renamed one would blank the stored leaf symptoms."""
    header = DOCUMENTED_LABEL_HEADER.replace("leaf_symptom", "symptom")
    row = f"{Q1},final,carol,,fault,yes,communication setup,,hang and timeout,,,,"
    match = r"bad.csv, row 1: unknown column 'symptom'; missing column 'leaf_symptom'"
    _imported_then_failing(store, tmp_path, taxonomy, f"{header}\n{row}\n", match)


def test_a_label_file_without_kind_stops_the_import(store, tmp_path, taxonomy):
    header = DOCUMENTED_LABEL_HEADER.replace("url,kind,", "url,")
    row = f"{Q1},alice,round 1,fault,yes,communication setup,,hang and timeout,,,,"
    match = r"row 1: missing column 'kind'"
    _imported_then_failing(store, tmp_path, taxonomy, f"{header}\n{row}\n", match)


def test_short_rows_and_annotations_without_a_round_are_named(store, tmp_path, taxonomy):
    good = f"{Q1},annotation,dana,round 2,fault,yes,communication setup,,hang and timeout,,,,"
    short = f"{Q2},annotation,dana,round 2,fault"
    no_round = f"{Q2},annotation,erin,,fault,yes,communication setup,,hang and timeout,,,,"
    text = "\n".join([DOCUMENTED_LABEL_HEADER, good, short, no_round]) + "\n"
    _imported_then_failing(store, tmp_path, taxonomy, text, r"row 3: 5 fields")
    with pytest.raises(ImportFailure) as failure:
        import_labels(store, tmp_path / "bad.csv", taxonomy)
    assert [p.split(", ", 1)[1] for p in failure.value.problems] == [
        "row 3: 5 fields where the header has 13",
        "row 4: an annotation needs its round",
    ]


def test_a_quote_left_open_in_an_issue_file_is_named_with_its_line(store, tmp_path):
    """The open quote swallows the rest of the file into one field; nothing is imported."""
    path = tmp_path / "issues.csv"
    path.write_text(
        "url,title\n"
        "https://github.com/a/b/issues/4,fine\n"
        '"https://github.com/a/b/issues/5,unterminated\n'
        "https://github.com/a/b/issues/6,ok\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportFailure) as failure:
        import_issues(store, path)
    assert failure.value.problems == [
        f"{path}, row 4: 1 fields where the header has 2; the row runs from line 3: "
        "a quote left open there?"
    ]
    assert _counts(store)["Issue"] == 0


def test_unreadable_issue_files_are_named_with_their_line(store, tmp_path):
    not_utf8 = tmp_path / "latin1.jsonl"
    not_utf8.write_bytes(b'{"url": "https://github.com/a/b/issues/1"}\n\n{"url": "caf\xe9"}\n')
    with pytest.raises(ImportFailure, match=r"latin1.jsonl, line 3: byte 0xe9 is not UTF-8"):
        import_issues(store, not_utf8)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"url": "https://github.com/a/b/issues/1"}\n{"url": "x\n', "utf-8")
    with pytest.raises(ImportFailure, match=r"line 2: not valid JSON \(.* at column 9\)"):
        import_issues(store, broken)
    no_url = _write_csv(tmp_path / "nourl.csv", [{"link": "a"}, {"link": "b"}], ["link"])
    with pytest.raises(ImportFailure) as failure:
        import_issues(store, no_url)
    assert failure.value.problems == [f"{no_url}, row 1: missing column 'url' (columns: ['link'])"]
    assert _counts(store)["Issue"] == 0


def test_a_quote_left_open_in_the_last_column_is_found_by_the_rows_it_takes_in(store, tmp_path):
    """The swallowed rows leave the field count right; a line inside the field that reads
    as a whole row of its own gives it away. A body that only spans lines is imported."""
    path = tmp_path / "issues.csv"
    path.write_text(
        "url,title,body\n"
        'https://github.com/a/b/issues/1,t,"first line\nsecond, with a comma\n'
        'https://example.org/a link on its own line"\n'
        'https://github.com/a/b/issues/2,t,"left open\n'
        "https://github.com/a/b/issues/3,t,fine\n",
        encoding="utf-8",
    )
    with pytest.raises(ImportFailure) as failure:
        import_issues(store, path)
    assert failure.value.problems == [
        f"{path}, row 6: line 6 reads as a row of its own, inside a field that runs from "
        "line 5: a quote left open there?"
    ]
    path.write_text(path.read_text().replace('"left open', '"closed"'), encoding="utf-8")
    assert import_issues(store, path).counts["issues added"] == 3
    with store.session() as session:
        first = session.scalar(select(Issue).where(Issue.native_id == "1"))
        assert first.body.count("\n") == 2


def test_a_url_with_spaces_in_it_is_refused(store, tmp_path):
    path = _write_jsonl(tmp_path / "issues.jsonl", [{"url": "https://github.com/a/b/issues/5 x"}])
    with pytest.raises(ImportFailure, match=r"row 1: .* has spaces or line breaks in it"):
        import_issues(store, path)


def test_unknown_keys_in_json_lines_labels_are_named(store, tmp_path, taxonomy):
    record = {"url": Q1, "kind": "final", "annotator": "carol", "symptom": "hang"}
    path = _write_jsonl(tmp_path / "labels.jsonl", [record])
    with pytest.raises(ImportFailure, match=r"row 1: unknown column 'symptom'"):
        import_labels(store, path, taxonomy)


# ---- plain text -----------------------------------------------------------------------


def test_plain_text_of_html_body():
    """HTML prose is kept; <pre><code> blocks and <script> content go; URLs become 'URL'."""
    text = plain_text(SO_BODY, "stackoverflow")
    assert "DDP job hangs" in text
    assert "Any idea?" in text
    assert "see URL for the log" in text
    for gone in ("import torch", "init_process_group", "secret", "tracker", "example.com", "<"):
        assert gone not in text
    assert plain_text(None, "stackoverflow") == ""
    assert plain_text("", "github") == ""


def test_plain_text_of_markdown_body():
    """Markdown: fenced and indented code go, inline HTML and URLs are replaced."""
    body = (
        "Run it:\n\n```python\nimport horovod\n```\n\n    mpirun -np 2\n\nSee <b>http://a.b/c</b>."
    )
    text = plain_text(body, "github")
    assert "import horovod" not in text and "mpirun" not in text
    assert "Run it:" in text and "See" in text and "URL" in text and "a.b" not in text


def test_imported_issue_text_drops_code_and_urls(store, tmp_path):
    """The stored issue.text is the plain text of the stored HTML body."""
    path = _write_jsonl(tmp_path / "one.jsonl", JSONL_RECORDS[:1])
    import_issues(store, path)
    with store.session() as session:
        issue = session.get(Issue, SO_UID)
        assert issue.text == plain_text(SO_BODY, "stackoverflow")
        assert issue.text.startswith("My DDP job hangs, see URL for the log.")
        assert "dist.init_process_group" not in issue.text
        assert "secret" not in issue.text


def test_csv_rows_are_numbered_by_file_line(store, tmp_path):
    """A blank line in a CSV file does not shift the line number an error names."""
    path = tmp_path / "gaps.csv"
    path.write_text("url,title\nhttps://stackoverflow.com/q/1,a\n\nnot-a-url,b\n")
    with pytest.raises(ImportFailure) as failure:
        import_issues(store, path)
    assert failure.value.problems == [f"{path}, row 4: 'not-a-url' is not an http(s) URL"]


def test_csv_answers_column_is_refused_clearly(store, tmp_path):
    path = tmp_path / "answers.csv"
    path.write_text('url,answers\nhttps://stackoverflow.com/q/1,"[{""id"": 1}]"\n')
    with pytest.raises(ImportFailure, match="JSON Lines files only"):
        import_issues(store, path)


# ---- large fields: real bodies run to megabytes ---------------------------------------------
MEGABYTE_BODY = "A stack trace line that repeats.\n" * 32_768  # 1 MiB, over csv's 128 KiB


def test_a_one_megabyte_body_imports_through_the_cli(runner, sqlite_url, tmp_path):
    issues = _write_csv(
        tmp_path / "issues.csv",
        [{"url": Q2, "title": "huge log", "body": MEGABYTE_BODY}, {"url": Q3, "body": "short"}],
        ["url", "title", "body"],
    )
    result = runner.invoke(app, ["import", "issues", str(issues), "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    assert "issues added: 2" in result.output
    memo = "x" * 2**20
    labels = _write_labels(tmp_path / "labels.csv", [{**LABEL_ROWS[4], "memo": memo}])
    result = runner.invoke(app, ["import", "labels", str(labels), "--db", sqlite_url])
    assert result.exit_code == 0, result.output
    store = Store(sqlite_url)
    with store.session() as session:
        assert session.get(Issue, GH_UID).body == MEGABYTE_BODY
        assert session.scalars(select(FinalLabel.memo)).one() == memo


def test_a_field_past_the_bound_is_named_with_file_and_line(
    runner, sqlite_url, tmp_path, monkeypatch
):
    monkeypatch.setattr(files, "CSV_FIELD_LIMIT", 1000)
    issues = _write_csv(
        tmp_path / "issues.csv",
        [{"url": Q2, "body": "short"}, {"url": Q3, "body": "b" * 1001}],
        ["url", "body"],
    )
    labels = _write_labels(tmp_path / "labels.csv", [{**LABEL_ROWS[4], "memo": "m" * 1001}])
    for kind, path, line in (("issues", issues, 3), ("labels", labels, 2)):
        result = runner.invoke(app, ["import", kind, str(path), "--db", sqlite_url])
        assert result.exit_code == 1, result.output
        assert f"{path}, line {line}: a field of more than 1,000 characters" in result.output
        assert "Traceback" not in result.output and result.exception.__class__ is SystemExit
    assert not (tmp_path / "store.db").exists()  # the failed first import left no database
