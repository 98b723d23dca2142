"""`make bench-cli`: how long the `issueminer` command takes to answer, as whole processes.

Each command runs `--runs` times (after one warm-up run) as a fresh process of the same
interpreter's `issueminer` entry point. The baseline, measured in the same run, is
`python -c "import typer"`; two more references say what no command of ours can go below:
a one-command Typer app run with one option (Typer checks options with pydantic), and
importing SQLAlchemy's ORM, which `issues list` avoids on a SQLite store at the current
schema (it reads with sqlite3: `issueminer.store.sqlite_reader`). The
issue's target: under 0.3 s on a quiet machine for `issueminer --help` and
`issueminer issues list --limit 5` on the study database. Not part of `make test`.

The processes may write bytecode (.pyc) even under PYTHONDONTWRITEBYTECODE, so that the
warm-up leaves the package compiled as an installed one is: otherwise each run would
compile issueminer's modules again and time that instead.

Usage: python -m bench.cli_bench [--db study.db] [--runs 15] [--format table|json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

TARGET_SECONDS = 0.3  # the figure for --help and issues list
BASELINE = "python -c 'import typer'"
ONE_OPTION_APP = """
import typer
app = typer.Typer()
@app.command()
def main(limit: int | None = None) -> None:
    pass
app(["--limit", "5"])
"""


def commands(db: str) -> dict[str, tuple[list[str], bool]]:
    """Name -> (argv, held to the target); the entry point sits beside this interpreter."""
    issueminer = str(Path(sys.executable).with_name("issueminer"))
    return {
        BASELINE: ([sys.executable, "-c", "import typer"], False),
        "typer app, one option (reference)": ([sys.executable, "-c", ONE_OPTION_APP], False),
        "import sqlalchemy.orm (reference)": (
            [sys.executable, "-c", "import sqlalchemy.orm"],
            False,
        ),
        "issueminer --help": ([issueminer, "--help"], True),
        "issueminer issues list --limit 5": (
            [issueminer, "issues", "list", "--limit", "5", "--db", db],
            True,
        ),
        "issueminer stats --help": ([issueminer, "stats", "--help"], False),
    }


ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_once(argv: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, check=False, env=ENV)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip()
        raise SystemExit(f"{' '.join(argv)} exited {done.returncode}: {message}")
    return elapsed


def measure(db: str, runs: int) -> list[dict]:
    rows = []
    for name, (argv, targeted) in commands(db).items():
        run_once(argv)  # warm-up: file cache, .pyc files
        times = [run_once(argv) for _ in range(runs)]
        rows.append(
            {
                "command": name,
                "min": min(times),
                "median": statistics.median(times),
                "max": max(times),
                "target": TARGET_SECONDS if targeted else None,
            }
        )
    baseline = rows[0]["median"]
    for row in rows:
        row["ratio"] = row["median"] / baseline
        row["met"] = None if row["target"] is None else row["median"] < row["target"]
    return rows


def table(rows: list[dict], runs: int) -> str:
    width = max(len(row["command"]) for row in rows)
    lines = [
        f"{runs} runs each, seconds per process (baseline: {BASELINE})",
        f"{'command':<{width}}  {'min':>6}  {'median':>6}  {'max':>6}  {'x base':>6}  "
        f"{'target':>6}  met",
    ]
    for row in rows:
        target = f"{row['target']:.1f}" if row["target"] is not None else "-"
        met = {None: "-", True: "yes", False: "NO"}[row["met"]]
        lines.append(
            f"{row['command']:<{width}}  {row['min']:6.3f}  {row['median']:6.3f}  "
            f"{row['max']:6.3f}  {row['ratio']:6.2f}  {target:>6}  {met}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", default="study.db", help="the database for issues list")
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command")
    parser.add_argument("--format", choices=["table", "json"], default="table")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be 1 or more")
    if not Path(args.db).is_file():
        parser.error(f"no database at {args.db} (`make study` builds study.db)")
    rows = measure(args.db, args.runs)
    if args.format == "json":
        print(json.dumps({"runs": args.runs, "commands": rows}, indent=2))
    else:
        print(table(rows, args.runs))


if __name__ == "__main__":
    main()
