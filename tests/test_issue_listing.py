"""`issues list` on a SQLite file reads with sqlite3 alone; it must list exactly what the
store lists, and step aside whenever the store has something to say."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from issueminer.analyse.issue_listing import SqliteListing
from issueminer.analyse.issue_lookup import list_issues
from issueminer.cli.main import app
from issueminer.store import Store
from issueminer.store.revision import HEAD_REVISION
from issueminer.store.sqlite_reader import open_at_head, sqlite_path


@pytest.fixture(scope="module")
def study_db(tosem_dir, tmp_path_factory) -> str:
    db = str(tmp_path_factory.mktemp("listing") / "study.db")
    done = CliRunner().invoke(app, ["import", "replication", str(tosem_dir), "--db", db])
    assert done.exit_code == 0, done.output
    return db


def _copy(db: str, to: Path) -> Path:
    """The database as a reader sees it (SQLite's backup, so a WAL file is included)."""
    with sqlite3.connect(db) as source, sqlite3.connect(to) as target:
        source.backup(target)
    return to


def _filters(db: str) -> list[dict]:
    """Every filter on its own and combined, with values taken from the stored data."""
    with sqlite3.connect(db) as conn:
        source = conn.execute(
            "SELECT source FROM issue GROUP BY source ORDER BY count(*)"
        ).fetchone()[0]
        symptom = conn.execute(
            "SELECT leaf_symptom FROM final_label WHERE leaf_symptom IS NOT NULL "
            "GROUP BY leaf_symptom ORDER BY count(*) DESC"
        ).fetchone()[0]
    return [
        {},
        {"limit": 5},
        {"limit": 1},
        {"source": source},
        {"issue_type": "fault"},
        {"issue_type": "how-to question", "limit": 40},
        {"symptom": symptom},
        {"labelled_only": True},
        {"source": "github", "issue_type": "fault", "symptom": symptom, "limit": 3},
    ]


def test_the_quick_listing_equals_the_stores_for_every_filter(study_db) -> None:
    quick = SqliteListing.open(study_db)
    assert quick is not None
    store = Store(study_db)
    try:
        for filters in _filters(study_db):
            with store.session() as session:
                expected = list_issues(session, **filters)
            assert quick.issues(**filters) == expected, filters
            assert expected, filters  # each filter lists something, so the comparison bites
        with store.session() as session:
            assert len(list_issues(session)) > 1000  # the whole study, labels and all
    finally:
        quick.close()
        store.close()


def test_the_quick_listing_keeps_the_stores_types(study_db) -> None:
    quick = SqliteListing.open(study_db)
    assert quick is not None
    labels = [label for row in quick.issues(issue_type="fault") for label in row["final_labels"]]
    quick.close()
    assert {type(label["specific"]) for label in labels} <= {bool, type(None)}
    assert all(isinstance(label["fix_patterns"], list) for label in labels)
    assert any(label["fix_patterns"] for label in labels)


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("study.db", Path("study.db")),
        ("sqlite:///study.db", Path("study.db")),
        ("sqlite:////abs/study.db", Path("/abs/study.db")),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("sqlite:///study.db?mode=ro", None),
        ("sqlite+pysqlite:///study.db", None),
        ("postgresql://user@localhost/db", None),
    ],
)
def test_only_plain_sqlite_urls_are_read_directly(url, path) -> None:
    assert sqlite_path(url) == path


def test_a_database_the_store_must_see_first_is_left_to_it(tmp_path, study_db) -> None:
    """No file, another revision, no version table, not a database: all None (the store
    then explains or upgrades); a readable one at the head revision opens."""
    assert open_at_head(str(tmp_path / "missing.db")) is None
    assert not (tmp_path / "missing.db").exists()  # and nothing was created

    older = _copy(study_db, tmp_path / "older.db")
    with sqlite3.connect(older) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0001'")
    assert open_at_head(str(older)) is None

    bare = tmp_path / "bare.db"
    sqlite3.connect(bare).close()
    assert open_at_head(str(bare)) is None

    text = tmp_path / "notes.db"
    text.write_text("not a database\n" * 100)
    assert open_at_head(str(text)) is None

    conn = open_at_head(study_db)
    assert conn is not None
    assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [(HEAD_REVISION,)]
    conn.close()


def test_a_database_that_has_not_remembered_its_study_goes_through_the_store(tmp_path, study_db):
    """The store writes the study on first use; the quick reader never writes, so it steps
    aside, and the command's answer is the same either way."""
    db = _copy(study_db, tmp_path / "forgetful.db")
    with sqlite3.connect(db) as conn:
        conn.execute("DELETE FROM meta")
    assert SqliteListing.open(str(db)) is None

    runner = CliRunner()
    first = runner.invoke(app, ["issues", "list", "--db", str(db), "--limit", "4", "-f", "json"])
    assert first.exit_code == 0, first.output
    assert SqliteListing.open(str(db)) is not None  # remembered now
    second = runner.invoke(app, ["issues", "list", "--db", str(db), "--limit", "4", "-f", "json"])
    assert second.stdout == first.stdout


def test_an_older_database_still_gets_the_stores_answer(tmp_path, study_db) -> None:
    """At another revision the command goes through the store, which upgrades it (the
    store's rule for every command), then lists."""
    db = _copy(study_db, tmp_path / "older.db")
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff'")
    done = CliRunner().invoke(app, ["issues", "list", "--db", str(db), "--limit", "2"])
    assert done.exit_code != 0
    assert "ffff" in done.output
