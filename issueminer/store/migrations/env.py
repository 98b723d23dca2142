"""Alembic environment: the connection is handed in by `issueminer.store.db.upgrade`."""

from alembic import context
from sqlalchemy import create_engine

from issueminer.store.schema import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        _run(conn)


def _run(connection) -> None:
    # batch mode lets later migrations alter tables on SQLite, which lacks ALTER COLUMN
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run_migrations_online()
