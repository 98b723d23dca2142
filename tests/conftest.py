"""Shared fixtures: real SQLite files, a real PostgreSQL server, the study's real data."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from issueminer.store import Store
from issueminer.taxonomy import Taxonomy, load_taxonomy
from tests.helpers import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from tests.pgserver import PG_ENV, fresh_database, private_server

REPO = Path(__file__).resolve().parent.parent


def _shared_dir() -> Path:
    """../shared beside the checkout, or beside the repository it was cloned from (a clone
    made elsewhere, e.g. `git clone . /tmp/check`, has no shared/ next to it)."""
    beside = REPO.parent / "shared"
    if beside.is_dir():
        return beside
    origin = subprocess.run(
        ["git", "-C", str(REPO), "config", "--get", "remote.origin.url"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if origin and Path(origin).is_dir():
        cloned_from = Path(origin).resolve().parent / "shared"
        if cloned_from.is_dir():
            return cloned_from
    return beside  # missing: the fixtures that need it say where they looked


SHARED = _shared_dir()
TOSEM_DIR = Path(os.environ.get("ISSUEMINER_TOSEM23", SHARED / "tosem23"))
TOSEM_ZIP = Path(os.environ.get("ISSUEMINER_TOSEM23_ZIP", SHARED / "tosem23.zip"))
SAMPLE = REPO / "data" / "sample"


@pytest.fixture(scope="session")
def taxonomy() -> Taxonomy:
    return load_taxonomy()


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    if os.environ.get(PG_ENV):
        yield os.environ[PG_ENV]
        return
    with private_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    with fresh_database(request.getfixturevalue("pg_admin_url")) as url:
        yield url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    store = Store(db_url)
    yield store
    store.close()


@pytest.fixture
def sqlite_only_store(sqlite_url: str) -> Iterator[Store]:
    """A store on a SQLite file alone: for tests of what a database cannot change (HTTP
    shapes a crawler is sent), which the PostgreSQL run of `store` would only repeat."""
    store = Store(sqlite_url)
    yield store
    store.close()


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="session")
def tosem_dir() -> Path:
    if not (TOSEM_DIR / "distributed_training_data").is_dir():
        pytest.fail(f"the TOSEM 2023 data is missing at {TOSEM_DIR} (set ISSUEMINER_TOSEM23)")
    return TOSEM_DIR


@pytest.fixture(scope="session")
def tosem_zip() -> Path:
    if not TOSEM_ZIP.is_file():
        pytest.fail(f"the TOSEM 2023 zip is missing at {TOSEM_ZIP} (set ISSUEMINER_TOSEM23_ZIP)")
    return TOSEM_ZIP


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Headless Chromium for one test module (Playwright driving Debian's package)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
