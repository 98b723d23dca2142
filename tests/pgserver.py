"""A throw-away PostgreSQL server for the store tests.

The tests use the server ISSUEMINER_TEST_PG names; without it they start a private one
from the installed binaries in a temporary folder (as the `postgres` user when run as
root, since initdb refuses root). `python -m tests.pgserver COMMAND...` runs COMMAND with
such a server started and named in ISSUEMINER_TEST_PG, then stops it: CI's way.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

PG_ENV = "ISSUEMINER_TEST_PG"


def _bindir() -> str | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for directory in candidates:
        if os.path.exists(os.path.join(directory, "initdb")):
            return directory
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def private_server() -> Iterator[str]:
    """Start a PostgreSQL server on 127.0.0.1; yields its admin URL; stops it afterwards."""
    bindir = _bindir()
    if bindir is None:
        raise RuntimeError(
            "PostgreSQL is not installed (no initdb); install the Debian package "
            f"'postgresql' or set {PG_ENV}"
        )
    root = tempfile.mkdtemp(prefix="issueminer-pg-")
    data = os.path.join(root, "data")
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        os.chmod(root, 0o755)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True)

    run(f"{bindir}/initdb", "-D", data, "-A", "trust", "-U", "issueminer", "--no-sync")
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(f"{bindir}/pg_ctl", "-D", data, "-o", options, "-l", f"{root}/log", "-w", "start")
    try:
        yield f"postgresql+psycopg://issueminer@127.0.0.1:{port}/postgres"
    finally:
        run(f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    """A new empty database on the server; yields its URL; drops it afterwards.

    Dropped even when a test left connections open (WITH (FORCE)), so a long-lived server
    named by ISSUEMINER_TEST_PG does not fill up with the databases of past runs.
    """
    name = f"t_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


def main(command: list[str]) -> int:
    """Run `command` beside a private server named in ISSUEMINER_TEST_PG; its exit status."""
    if not command:
        print("usage: python -m tests.pgserver COMMAND [ARG...]", file=sys.stderr)
        return 2
    with private_server() as url:
        return subprocess.run(command, env={**os.environ, PG_ENV: url}).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
