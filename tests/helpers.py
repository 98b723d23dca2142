"""Test helpers shared by several test modules."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa

from issueminer.store import Store
from issueminer.store.schema import Base

# screenshots for a reviewer (not committed); Debian's Chromium, as the probe of this kind
# starts it: without the background-networking flags it keeps calling out to a closed network
ARTIFACTS = Path(__file__).parent / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

CLOCK_COLUMNS = {"id", "created_at", "fetched_at", "started_at", "finished_at"}


def dump(
    store: Store, skip_tables: set[str] = frozenset(), skip_columns: set[str] = frozenset()
) -> dict[str, list[str]]:
    """Every table's content without surrogate keys and clocks, in a stable order."""
    skip = CLOCK_COLUMNS | set(skip_columns)
    result = {}
    with store.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name in skip_tables:
                continue
            cols = [c for c in table.columns if c.name not in skip]
            rows = conn.execute(sa.select(*cols)).all()
            result[table.name] = sorted(repr(tuple(r)) for r in rows)
    return result


def crawled_content(store: Store) -> dict[str, list[str]]:
    """What a crawl stored, without what differs between runs (run ids, clocks)."""
    return dump(store, skip_tables={"crawl_run", "meta"}, skip_columns={"found_by"})


def kill_after_requests(
    start: Callable[[], subprocess.Popen], fake: object, requests: int, timeout: float = 60
) -> None:
    """Start a process and SIGKILL it once `fake` has served `requests` more requests."""
    before = len(fake.requests)
    process = start()
    deadline = time.time() + timeout
    while len(fake.requests) - before < requests and process.poll() is None:
        assert time.time() < deadline, "the crawl made no progress"
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    # a process that finished first would make the "resume" a second straight run
    assert process.wait() == -signal.SIGKILL, f"it finished before {requests} requests"
