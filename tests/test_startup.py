"""The command answers at once: each command imports only what it uses.

Not a timed test (times depend on the machine; `make bench-cli` measures them): each
command runs in a fresh process, and what it imported is checked by name. `--help`,
browsing and the other light commands must not load the libraries that only crawling,
importing, reporting, classifying or the annotation app need; `--help` must not even
load the database layer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from issueminer.cli.main import app
from tests.conftest import REPO, SAMPLE

# what the crawlers, importers, report, classifier and annotation app bring in
HEAVY = (
    "alembic",
    "dask",
    "distributed",
    "github",
    "jinja2",
    "matplotlib",
    "numpy",
    "openpyxl",
    "pandas",
    "py7zr",
    "scipy",
    "sklearn",
    "skops",
    "spacy",
    "stackapi",
    "starlette",
    "uvicorn",
)
DATABASE = ("sqlalchemy", "issueminer.store.db", "issueminer.store.schema")

# Runs the command as the `issueminer` script does, then writes the names of HEAVY and
# DATABASE modules it loaded to the file named first.
PROBE = """
import json, sys
out, names, args = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3:]
sys.argv = ["issueminer", *args]
code = 0
try:
    from issueminer.cli.main import run
    if args:
        run()
except SystemExit as exc:
    code = exc.code
with open(out, "w") as handle:
    json.dump(sorted(n for n in names if n in sys.modules), handle)
sys.exit(code)
"""


def run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """One command in a fresh interpreter (this checkout's package), and what it loaded."""
    loaded = tmp_path / "loaded.json"
    loaded.unlink(missing_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    env.pop("ISSUEMINER_DB", None)
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(loaded), json.dumps([*HEAVY, *DATABASE]), *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    return done, json.loads(loaded.read_text())


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory) -> str:
    from typer.testing import CliRunner

    db = str(tmp_path_factory.mktemp("startup") / "sample.db")
    for kind, name in (("issues", "issues.jsonl"), ("labels", "labels.csv")):
        done = CliRunner().invoke(app, ["import", kind, str(SAMPLE / name), "--db", db])
        assert done.exit_code == 0, done.output
    return db


def test_importing_the_command_loads_nothing_heavy(tmp_path) -> None:
    done, loaded = run(tmp_path)
    assert done.returncode == 0, done.stderr
    assert loaded == []


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["stats", "--help"],
        ["crawl", "--help"],
        ["crawl", "so-dump", "--help"],
        ["label", "--help"],
        ["train", "--help"],
        ["report", "--help"],
        ["taxonomy", "show"],
    ],
    ids=" ".join,
)
def test_help_and_commands_without_a_database_load_neither_heavy_libraries_nor_the_database(
    tmp_path, args
) -> None:
    done, loaded = run(tmp_path, *args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()
    assert loaded == []


def test_help_lists_every_area(tmp_path) -> None:
    done, _ = run(tmp_path, "--help")
    for command in ("import", "issues", "crawl", "stats", "agree", "label", "report", "train"):
        assert f" {command} " in done.stdout, command


def test_issues_list_reads_sqlite_without_the_database_layer(tmp_path, sample_db, runner) -> None:
    """The listing a process prints is the one the command prints in-process; on a SQLite
    file at the current schema it took neither SQLAlchemy nor the store's ORM
    (issueminer.store.sqlite_reader reads it), and nothing heavy."""
    listed = runner.invoke(app, ["issues", "list", "--limit", "5", "--db", sample_db, "-f", "json"])
    assert listed.exit_code == 0, listed.output
    uids = [row["uid"][:10] for row in json.loads(listed.stdout)]
    assert len(uids) == 5

    done, loaded = run(tmp_path, "issues", "list", "--limit", "5", "--db", sample_db)
    assert done.returncode == 0, done.stderr
    assert "5 issues" in done.stdout
    assert all(uid in done.stdout for uid in uids)
    assert loaded == []


def test_issues_list_with_filters_stays_light_too(tmp_path, sample_db) -> None:
    done, loaded = run(
        tmp_path, "issues", "list", "--type", "fault", "--labelled", "--db", sample_db
    )
    assert done.returncode == 0, done.stderr
    assert " issues" in done.stdout
    assert loaded == []


# the script's way (run: only the named area) and the whole command's (app), both as
# `issueminer` would be called
AS_SCRIPT = """
import sys
sys.argv = ["issueminer", *sys.argv[1:]]
from issueminer.cli.main import {}
{}()
"""


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["--version"],
        ["issues"],
        ["issues", "--help"],
        ["issues", "lst"],
        ["round", "--help"],
        ["stats", "--help"],
        ["crawl", "so-dump", "--help"],
        ["nonsense"],
        ["issues", "list", "--limit", "3", "-f", "json"],
    ],
    ids=" ".join,
)
def test_the_script_answers_as_the_whole_command_does(tmp_path, sample_db, args) -> None:
    """The script builds only the area a command line names (`cli.main.run`); its output
    and exit code are those of the command holding every area."""
    if args[0] == "issues" and "list" in args:
        args = [*args, "--db", sample_db]
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    env.pop("ISSUEMINER_DB", None)
    answers = [
        subprocess.run(
            [sys.executable, *how, *args],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=120,
        )
        for how in (["-c", AS_SCRIPT.format("run", "run")], ["-c", AS_SCRIPT.format("app", "app")])
    ]
    script, whole = ((a.returncode, a.stdout, a.stderr) for a in answers)
    assert script == whole
    assert script[1] or script[2]  # each says something
