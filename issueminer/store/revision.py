"""Where the database is and which schema revision this package expects.

Plain Python (no SQLAlchemy): the quick read path of `issues list` (`store.sqlite_reader`)
needs these without paying for the database layer's import.
"""

from __future__ import annotations

import os

DEFAULT_DB_URL = "sqlite:///issueminer.db"
DB_URL_ENV = "ISSUEMINER_DB"
# the newest migration in store/migrations/versions; a new migration changes it too
# (tests/test_store.py checks it against Alembic's head)
HEAD_REVISION = "0008"
VERSION_TABLE = "alembic_version"  # Alembic's default, which migrations/env.py keeps


def resolve_url(url: str | None = None) -> str:
    """`--db` wins over `ISSUEMINER_DB`, which wins over the default file in the working dir."""
    url = url or os.environ.get(DB_URL_ENV) or DEFAULT_DB_URL
    if "://" not in url:  # a bare path is a SQLite file
        url = f"sqlite:///{url}"
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url
