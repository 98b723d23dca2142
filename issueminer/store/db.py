"""Engine and session factory; every open upgrades the schema to the newest migration.

Alembic is imported only to read or change the schema's revision: a store already at
`HEAD_REVISION` opens without it (Alembic takes longer to import than a command's work).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import URL, Engine, create_engine, event, inspect, text
from sqlalchemy.orm import Session, sessionmaker

from issueminer.store.revision import (  # noqa: F401 (re-exported: the store's one entry)
    DB_URL_ENV,
    DEFAULT_DB_URL,
    HEAD_REVISION,
    VERSION_TABLE,
    resolve_url,
)
from issueminer.store.schema import Meta

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def sqlite_file(url: URL) -> Path | None:
    """The file a SQLite URL names; None for another database or an in-memory one."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def make_engine(url: str | None = None) -> Engine:
    engine = create_engine(resolve_url(url))
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


SQLITE_BUSY_TIMEOUT_MS = 10_000  # concurrent annotators wait for a writer instead of failing


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    # WAL lets readers (other annotators' pages) proceed while one save is written
    cursor.execute("PRAGMA journal_mode=WAL")
    # in WAL mode NORMAL cannot corrupt the file; it only defers the fsync to checkpoints
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.close()


def _alembic_config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


@cache
def known_revisions() -> frozenset[str]:
    """Every revision of the migrations shipped with the package."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(_alembic_config())
    return frozenset(script.revision for script in scripts.walk_revisions())


@cache  # the migrations shipped with the package; every Store compares against it
def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config()).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def at_head(engine: Engine) -> bool:
    """True when the version table holds exactly `HEAD_REVISION`: read with plain SQL, so
    opening an up-to-date store needs no Alembic. Anything else (no table, another
    revision, several rows) is for Alembic to judge."""
    with engine.connect() as conn:
        if not inspect(conn).has_table(VERSION_TABLE):
            return False
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()
    return rows == [HEAD_REVISION]


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent)."""
    from alembic import command

    config = _alembic_config(engine)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def remember_study(session: Session, study: str, path: Path) -> None:
    """The study a database was created for, by name and by file (for studies off the path);
    the first one used with it stays."""
    if session.get(Meta, "study") is None:
        session.add(Meta(key="study", value=study))
        session.add(Meta(key="study_file", value=str(Path(path).resolve())))


class UnknownRevision(Exception):
    """The database's schema revision is none of this package's migrations (a newer
    issueminer wrote it, or the version table was edited)."""

    def __init__(self, revision: str | None) -> None:
        super().__init__(
            f"the database is at schema revision {revision!r}, which this issueminer does "
            f"not know (its newest is {HEAD_REVISION!r}); open it with the issueminer that "
            "wrote it"
        )


class Store:
    """An upgraded database and a session factory for it."""

    def __init__(self, url: str | None = None, *, auto_upgrade: bool = True) -> None:
        self.engine = make_engine(url)
        if auto_upgrade and not at_head(self.engine):
            revision = current_revision(self.engine)
            if revision is not None and revision not in known_revisions():
                raise UnknownRevision(revision)
            if revision != head_revision():
                upgrade(self.engine)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error."""
        with self._sessions() as session, session.begin():
            yield session

    def close(self) -> None:
        self.engine.dispose()
