"""The store on real SQLite files and a real PostgreSQL server."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from issueminer.collect.ingest import upsert_issues
from issueminer.ids import github_issue, issue_uid, parse_issue_url, stackoverflow_question
from issueminer.label.agreement import current_annotations
from issueminer.store import Annotation, FinalLabel, Issue, Store
from issueminer.store.db import (
    HEAD_REVISION,
    at_head,
    current_revision,
    head_revision,
    resolve_url,
    upgrade,
)
from issueminer.store.schema import Base


def _issue(url: str, **fields) -> dict:
    return {**parse_issue_url(url).identity(), **fields}


def test_fresh_database_is_upgraded_to_head(db_url: str) -> None:
    """Opening an empty database creates every table at the newest migration."""
    store = Store(db_url)
    assert current_revision(store.engine) == head_revision()
    tables = set(sa.inspect(store.engine).get_table_names())
    assert {
        "issue",
        "reply",
        "annotation",
        "final_label",
        "prediction",
        "crawl_run",
        "labeling_round",
        "meta",
        "alembic_version",
    } <= tables
    store.close()
    again = Store(db_url)  # a second open finds it current and changes nothing
    assert current_revision(again.engine) == head_revision()
    again.close()


def test_the_head_revision_without_alembic_is_alembics_head() -> None:
    """Opening a store compares its revision with HEAD_REVISION by plain SQL; a migration
    added without moving the constant would leave databases at the old head unmigrated."""
    assert head_revision() == HEAD_REVISION


def test_only_a_database_at_the_head_is_at_head_without_alembic(db_url: str) -> None:
    """The plain-SQL check says yes only to exactly the head; an empty database, an older
    revision, or a version table with two rows go to Alembic as before."""
    store = Store(db_url, auto_upgrade=False)
    assert not at_head(store.engine)  # no version table yet
    upgrade(store.engine, "0005")
    assert not at_head(store.engine)
    upgrade(store.engine)
    assert at_head(store.engine)
    with store.engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO alembic_version (version_num) VALUES ('0005')"))
    assert not at_head(store.engine)
    store.close()


def test_migrations_build_exactly_the_models_schema(db_url: str) -> None:
    """Alembic's comparison of the migrated database with the models finds no difference."""
    store = Store(db_url)
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    store.close()
    assert differences == []


def _downgrade(engine: sa.Engine, revision: str) -> None:
    from alembic import command

    from issueminer.store.db import _alembic_config

    config = _alembic_config(engine)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, revision)


def test_every_migration_goes_down_and_up_again_keeping_the_issues(db_url: str) -> None:
    """Step by step from the first revision to the newest: each upgrade keeps the rows made
    before it, and each downgrade undoes exactly its upgrade's tables, so it can be redone."""
    from alembic.script import ScriptDirectory

    from issueminer.store.db import _alembic_config, upgrade

    store = Store(db_url, auto_upgrade=False)
    script = ScriptDirectory.from_config(_alembic_config(store.engine))
    revisions = [r.revision for r in reversed(list(script.walk_revisions()))]
    assert revisions[0] == "0001" and revisions[-1] == head_revision()
    upgrade(store.engine, revisions[0])
    url = "https://github.com/a/b/issues/7"
    with store.engine.begin() as connection:
        connection.execute(sa.insert(Issue.__table__), [_issue(url, title="Kept", tags=[])])

    def tables() -> set[str]:
        return set(sa.inspect(store.engine).get_table_names())

    for before, revision in zip(revisions, revisions[1:], strict=False):
        below = tables()
        upgrade(store.engine, revision)
        above = tables()
        _downgrade(store.engine, before)
        assert tables() == below, f"downgrading {revision} left {tables() - below}"
        upgrade(store.engine, revision)
        assert tables() == above and current_revision(store.engine) == revision
        with store.engine.connect() as connection:
            titles = connection.execute(sa.text("SELECT title FROM issue")).scalars().all()
        assert titles == ["Kept"], revision
    store.close()


def test_upgrading_from_0003_drops_the_repeated_indexes_and_keeps_the_data(db_url: str) -> None:
    """A database made before migration 0004 loses the five indexes that repeat the first
    column of another, and keeps its rows; downgrading puts them back."""
    from issueminer.store.db import upgrade

    def indexes() -> set[str]:
        inspector = sa.inspect(store.engine)
        tables = ("reply", "annotation", "final_label", "prediction", "round_item")
        return {i["name"] for t in tables for i in inspector.get_indexes(t)}

    repeated = {
        "ix_reply_issue_uid",
        "ix_annotation_issue_uid",
        "ix_final_label_issue_uid",
        "ix_prediction_issue_uid",
        "ix_round_item_round",
    }
    store = Store(db_url, auto_upgrade=False)
    upgrade(store.engine, "0003")
    assert repeated <= indexes()
    url = "https://stackoverflow.com/questions/91000009"
    with store.engine.begin() as connection:
        connection.execute(sa.insert(Issue.__table__), [_issue(url, title="Kept", tags=[])])
    store.close()
    store = Store(db_url)  # opening it upgrades it
    assert current_revision(store.engine) == head_revision()
    assert not repeated & indexes()
    assert "ix_annotation_current" in indexes()  # what answers the same lookups stays
    with store.session() as session:
        assert session.scalar(select(Issue.title)) == "Kept"
    _downgrade(store.engine, "0003")
    assert repeated <= indexes()
    store.close()


def test_upgrading_from_0004_renames_the_flag_to_specific_and_keeps_the_values(
    db_url: str,
) -> None:
    """A database made before migration 0005 holds the yes/no flag in `distributed_specific`;
    opening it renames the column to `specific` in annotation and final_label with every
    value kept, and downgrading renames it back."""
    from issueminer.store.db import upgrade

    tables = ("annotation", "final_label")

    def columns(table: str) -> set[str]:
        return {c["name"] for c in sa.inspect(store.engine).get_columns(table)}

    def flags(column: str) -> dict[str, list]:  # raw SQL: the models only know one name
        with store.engine.connect() as connection:
            return {
                table: connection.execute(sa.text(f"SELECT {column} FROM {table} ORDER BY id"))
                .scalars()
                .all()
                for table in tables
            }

    def old_table(name: str, *more: str) -> sa.TableClause:  # as 0004 left it, for inserts
        return sa.table(
            name,
            *(sa.column(c) for c in ("issue_uid", "issue_type", *more)),
            sa.column("distributed_specific", sa.Boolean()),
            sa.column("fix_patterns", sa.JSON()),
            sa.column("raw_labels", sa.JSON()),
            sa.column("created_at", sa.DateTime(timezone=True)),
        )

    store = Store(db_url, auto_upgrade=False)
    upgrade(store.engine, "0004")
    for table in tables:
        assert "distributed_specific" in columns(table) and "specific" not in columns(table)
    urls = ["https://stackoverflow.com/questions/91000011", "https://github.com/a/b/issues/12"]
    issues = [_issue(url, title="Kept", tags=[]) for url in urls]
    uids = [issue["uid"] for issue in issues]
    final_label = old_table("final_label")
    annotation = old_table("annotation", "annotator", "role", "status")
    now = datetime.now(UTC)
    with store.engine.begin() as connection:
        connection.execute(sa.insert(Issue.__table__), issues)
        connection.execute(
            sa.insert(final_label).values(fix_patterns=[], raw_labels={}, created_at=now),
            [
                {"issue_uid": uids[0], "issue_type": "fault", "distributed_specific": True},
                {"issue_uid": uids[1], "issue_type": "fault", "distributed_specific": False},
                {
                    "issue_uid": uids[1],
                    "issue_type": "how-to question",
                    "distributed_specific": None,
                },
            ],
        )
        connection.execute(
            sa.insert(annotation).values(
                issue_type="fault",
                role="annotator",
                status="done",
                fix_patterns=[],
                raw_labels={},
                created_at=now,
            ),
            [
                {"issue_uid": uids[0], "annotator": "alice", "distributed_specific": True},
                {"issue_uid": uids[0], "annotator": "bob", "distributed_specific": False},
                {"issue_uid": uids[1], "annotator": "alice", "distributed_specific": None},
            ],
        )
    store.close()
    store = Store(db_url)  # opening it upgrades it
    assert current_revision(store.engine) == head_revision()
    for table in tables:
        assert "specific" in columns(table) and "distributed_specific" not in columns(table)
    with store.session() as session:
        finals = session.execute(
            select(FinalLabel.issue_uid, FinalLabel.issue_type, FinalLabel.specific)
        ).all()
        assert sorted(finals) == sorted(
            [
                (uids[0], "fault", True),
                (uids[1], "fault", False),
                (uids[1], "how-to question", None),
            ]
        )
        annotations = session.execute(
            select(Annotation.annotator, Annotation.specific).order_by(Annotation.id)
        ).all()
        assert annotations == [("alice", True), ("bob", False), ("alice", None)]
    assert flags("specific") == {
        "annotation": [True, False, None],
        "final_label": [True, False, None],
    }
    _downgrade(store.engine, "0004")
    for table in tables:
        assert "distributed_specific" in columns(table) and "specific" not in columns(table)
    assert flags("distributed_specific") == {
        "annotation": [True, False, None],
        "final_label": [True, False, None],
    }
    store.close()


def test_uid_is_sha1_of_origin_and_native_id() -> None:
    import hashlib

    ref = parse_issue_url("https://github.com/Horovod/horovod/issues/100#issuecomment-1")
    assert ref.uid == hashlib.sha1(b"https://github.com/horovod/horovod:100").hexdigest()
    assert ref.uid == issue_uid("https://github.com/horovod/horovod", 100)
    same = parse_issue_url("http://www.stackoverflow.com/questions/46519919/some-title/")
    assert same.url == "https://stackoverflow.com/questions/46519919"
    assert parse_issue_url("https://example.org/questions/1") is None
    # what a crawler builds from an id is what a URL to the same issue parses to
    assert stackoverflow_question(46519919) == same
    assert github_issue("Horovod/Horovod", 100) == ref
    pull = parse_issue_url("https://github.com/horovod/horovod/pull/100")
    assert pull.uid == ref.uid and pull.url.endswith("/pull/100")


def test_upsert_is_idempotent_and_never_erases(store: Store) -> None:
    """The same issue twice is one row; a later record without text keeps the stored text."""
    url = "https://stackoverflow.com/questions/91000001"
    with store.session() as session:
        counts = upsert_issues(session, [_issue(url, title="Hang in allreduce", tags=["horovod"])])
    assert counts["added"] == 1
    with store.session() as session:
        counts = upsert_issues(session, [_issue(url + "/slug", title=None, tags=["mpi"])])
    assert counts["updated"] == 1
    with store.session() as session:
        counts = upsert_issues(session, [_issue(url, tags=["mpi"])])
        assert counts["unchanged"] == 1
        rows = session.scalars(select(Issue)).all()
        assert len(rows) == 1
        assert rows[0].title == "Hang in allreduce"
        assert rows[0].tags == ["horovod", "mpi"]


def test_failed_transaction_leaves_nothing(store: Store) -> None:
    """An error inside a session rolls back everything written in it."""
    with pytest.raises(RuntimeError), store.session() as session:
        upsert_issues(session, [_issue("https://github.com/pytorch/pytorch/issues/90001")])
        raise RuntimeError("boom")
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Issue)) == 0


def test_annotations_are_append_only_and_newest_is_current(store: Store) -> None:
    url = "https://github.com/pytorch/pytorch/issues/90002"
    with store.session() as session:
        upsert_issues(session, [_issue(url)])
        uid = parse_issue_url(url).uid
        session.add(
            Annotation(
                issue_uid=uid,
                annotator="ann",
                round="r1",
                issue_type="fault",
                stage="communication setup",
            )
        )
    with store.session() as session:
        session.add(
            Annotation(
                issue_uid=uid,
                annotator="ann",
                round="r1",
                issue_type="fault",
                stage="training & evaluation",
            )
        )
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Annotation)) == 2
        current = current_annotations(session, "r1")
        assert [a.stage for a in current] == ["training & evaluation"]


def test_one_final_label_per_issue_and_type(store: Store) -> None:
    url = "https://github.com/keras-team/keras/issues/90003"
    uid = parse_issue_url(url).uid
    with store.session() as session:
        upsert_issues(session, [_issue(url)])
        session.add(FinalLabel(issue_uid=uid, issue_type="fault", fix_patterns=["a", "b"]))
    with pytest.raises(sa.exc.IntegrityError), store.session() as session:
        session.add(FinalLabel(issue_uid=uid, issue_type="fault"))
    with store.session() as session:
        label = session.scalars(select(FinalLabel)).one()
        assert label.fix_patterns == ["a", "b"]  # JSON round-trips on both backends


def test_database_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ISSUEMINER_DB", raising=False)
    assert resolve_url(None) == "sqlite:///issueminer.db"
    monkeypatch.setenv("ISSUEMINER_DB", "postgresql://u@h/db")
    assert resolve_url(None) == "postgresql+psycopg://u@h/db"
    assert resolve_url("x.db") == "sqlite:///x.db"


# ---- backup ----------------------------------------------------------------------------------
def _labelled_store(path) -> tuple[Store, list[str]]:
    from issueminer.label import rounds
    from tests.labeling_fixtures import add_issues

    store = Store(f"sqlite:///{path}")
    uids = add_issues(store, 6)
    with store.session() as session:
        rounds.create_round(session, "r1", 6, ["alice", "bob"], seed=1)
    return store, uids


def _annotation_ids(path) -> list[int]:
    """The annotation ids in a SQLite file; none when not even the table reached it."""
    import contextlib
    import sqlite3

    with contextlib.closing(sqlite3.connect(path)) as connection:
        try:
            rows = connection.execute("SELECT id FROM annotation ORDER BY id").fetchall()
        except sqlite3.OperationalError:
            return []
    return [row[0] for row in rows]


def test_backup_copies_labels_that_are_only_in_the_wal_while_a_writer_saves(tmp_path) -> None:
    """The copy holds every save committed before the backup began, although they sit in
    the -wal file (a copy of the .db file alone lacks them), and it is one consistent
    snapshot while another connection keeps saving."""
    import contextlib
    import shutil
    import sqlite3
    import threading

    from issueminer.label import rounds
    from issueminer.store.backup import backup_sqlite
    from issueminer.taxonomy import load_taxonomy
    from tests.labeling_fixtures import FAULT

    source = tmp_path / "live.db"
    store, uids = _labelled_store(source)
    taxonomy = load_taxonomy()
    with store.session() as session:
        for uid in uids:
            rounds.save_label(session, taxonomy, uid, "alice", "r1", FAULT)
    committed = _annotation_ids(source)
    assert len(committed) == len(uids)
    assert (tmp_path / "live.db-wal").stat().st_size > 0  # the saves are in the WAL
    shutil.copyfile(source, tmp_path / "naive.db")  # what copying the file gives
    assert _annotation_ids(tmp_path / "naive.db") == []

    writer_store = Store(f"sqlite:///{source}")  # another connection, as the app is
    stop = threading.Event()
    saved: list[int] = []

    def keep_saving() -> None:
        n = 0
        while not stop.is_set():
            with writer_store.session() as session:
                uid = uids[n % len(uids)]
                saved.append(rounds.save_label(session, taxonomy, uid, "bob", "r1", FAULT).id)
            n += 1

    writer = threading.Thread(target=keep_saving)
    writer.start()
    try:
        while len(saved) < 5:  # the writer is under way
            stop.wait(0.01)
        made = backup_sqlite(source, tmp_path / "copy.db")
        during = len(saved)
        while len(saved) < during + 5:  # and it went on saving after the backup
            stop.wait(0.01)
    finally:
        stop.set()
        writer.join()
    copied = _annotation_ids(made.path)
    assert set(committed) <= set(copied)
    # one snapshot: the first k saves, no gap (each save is one committed row)
    assert copied == list(range(1, len(copied) + 1))
    assert len(copied) < len(_annotation_ids(source))  # later saves are not in it
    with contextlib.closing(sqlite3.connect(made.path)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("delete",)
    assert made.tables["annotation"] == len(copied) and made.tables["issue"] == len(uids)
    assert made.size == made.path.stat().st_size
    assert not (tmp_path / "copy.db-wal").exists()  # the copy is one self-contained file
    assert Store(f"sqlite:///{made.path}").engine  # and opens as a store


def test_backup_refuses_to_overwrite_and_a_failure_leaves_no_file(tmp_path) -> None:
    from issueminer.store.backup import BackupError, backup_sqlite

    source = tmp_path / "live.db"
    _labelled_store(source)
    target = tmp_path / "out" / "copy.db"
    target.parent.mkdir()
    target.write_text("keep me")
    with pytest.raises(BackupError, match="copy.db already exists; pass --force"):
        backup_sqlite(source, target)
    assert target.read_text() == "keep me"
    assert backup_sqlite(source, target, force=True).tables["issue"] == 6
    with pytest.raises(BackupError, match="is the database itself"):
        backup_sqlite(source, source, force=True)
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not a database" * 100)
    with pytest.raises(BackupError, match="cannot back up"):
        backup_sqlite(broken, tmp_path / "out" / "other.db")
    assert sorted(p.name for p in target.parent.iterdir()) == ["copy.db"]  # no half file
    with pytest.raises(BackupError, match="no database at"):
        backup_sqlite(tmp_path / "missing.db", tmp_path / "out" / "other.db")


def test_the_pg_dump_command_never_holds_the_password() -> None:
    from issueminer.store.backup import pg_dump_command

    command = pg_dump_command("postgresql+psycopg://ann:s3cret@db.example:5433/study", "s.dump")
    assert command == (
        "pg_dump --format=custom --file=s.dump --host=db.example --port=5433 --username=ann study"
    )


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_postgresql_is_backed_up_with_pg_dump(db_url: str) -> None:
    from sqlalchemy import make_url

    from issueminer.store.backup import BackupError, backup_database

    Store(db_url)
    with pytest.raises(BackupError) as refused:
        backup_database(db_url, "study.dump")
    url = make_url(db_url)
    assert "pg_dump --format=custom --file=study.dump" in str(refused.value)
    assert f" {url.database}" in str(refused.value)
    if url.password:
        assert url.password not in str(refused.value)
