"""`make bench-dump-memory`: the data-dump scan's peak memory against its largest row.

Issue 17 asks that a scan's peak memory above its start-up baseline stay under three times
the largest row it reads. This writes small dumps that each hold one kept question with a
body of SIZE (the rest ordinary rows), plain and gzipped, and scans each in a fresh
process under `/usr/bin/time -v` (its maximum resident set size). The baseline is a process
that does what every scan does before its first row (loads the CLI, the scanner and the
tokenizer, opens the store and reads the study) and nothing more; opening the store adds
about 11 MB to loading alone. Each line gives the peak, the peak above the baseline, and
that over the row's size: the target is under 3. A run counts only if the scan exited 0
and stored the giant question's body whole (its length is checked in the database): a
scan that lost the row is flagged LOST, never "met", and the benchmark exits non-zero.

Usage: python -m bench.dump_memory [--sizes 10MB,50MB] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import re
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.synthetic import parse_size

TIME = "/usr/bin/time"
TARGET = 3.0  # peak above baseline, in rows
PHRASE = "distributed training with horovod hangs "  # prose: no code, no markup
_RSS = re.compile(rb"Maximum resident set size \(kbytes\): (\d+)")
# What the command holds before its first row: the CLI, the scanner and the tokenizer
# loaded, the store opened (created and migrated, as the scan's is) and the study read.
BASELINE = (
    "import issueminer.cli.main, issueminer.collect.sodump, issueminer.collect.checkpoints;"
    "from issueminer.collect.selection import Selection, tokens; tokens('warm');"
    "from issueminer.cli.common import open_store, study_taxonomy;"
    "store = open_store({db!r}, create=True);"
    "Selection.from_taxonomy(study_taxonomy(store, None))"
)


def _row(attributes: dict[str, object]) -> str:
    inner = " ".join(f'{k}="{v}"' for k, v in attributes.items())
    return f"  <row {inner} />"


GIANT_ID = 1000


def write_dump(path: Path, body_bytes: int) -> tuple[int, int]:
    """A Posts.xml with one kept question whose body is about `body_bytes`, and 100 small
    ones with their answers; returns the longest row's length and the giant body's length
    once unescaped (what the store must hold)."""
    prose = PHRASE * (body_bytes // len(PHRASE))
    body = "&lt;p&gt;" + prose + "&lt;/p&gt;"
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<posts>"]
    for qid in range(1000, 1202, 2):
        lines.append(
            _row(
                {
                    "Id": qid,
                    "PostTypeId": 1,
                    "AcceptedAnswerId": qid + 1,
                    "CreationDate": "2019-03-01T10:00:00.123",
                    "Score": 3,
                    "Body": body if qid == GIANT_ID else "&lt;p&gt;It hangs.&lt;/p&gt;",
                    "LastActivityDate": "2019-03-02T11:00:00.000",
                    "Title": f"Horovod question {qid}",
                    "Tags": "|horovod|python|",
                    "AnswerCount": 1,
                }
            )
        )
        lines.append(
            _row(
                {
                    "Id": qid + 1,
                    "PostTypeId": 2,
                    "ParentId": qid,
                    "CreationDate": "2019-03-01T12:00:00.000",
                    "Score": 1,
                    "Body": "&lt;p&gt;Use this.&lt;/p&gt;",
                }
            )
        )
    lines.append("</posts>")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return max(len(line.encode()) for line in lines), len(f"<p>{prose}</p>")


def peak_kb(command: list[str], allowed: tuple[int, ...] = (0,)) -> tuple[int, int]:
    """The maximum resident set size of a command, from /usr/bin/time -v, and its exit
    status (one not in `allowed` stops the benchmark)."""
    done = subprocess.run([TIME, "-v", *command], capture_output=True, check=False)
    if done.returncode not in allowed:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr.decode()[-2000:]}")
    found = _RSS.search(done.stderr)
    if found is None:
        raise SystemExit(f"{TIME} gave no maximum resident set size")
    return int(found.group(1)), done.returncode


def stored_body_length(db: Path) -> int | None:
    """The length of the giant question's body as stored, None if it was not stored."""
    with sqlite3.connect(db) as connection:
        found = connection.execute(
            "SELECT length(body) FROM issue WHERE native_id = ?", (str(GIANT_ID),)
        ).fetchone()
    return None if found is None else found[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10MB,50MB", help="body sizes, comma-separated")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="dump-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    start_db = work / "baseline.db"
    start_db.unlink(missing_ok=True)
    baseline, _ = peak_kb([sys.executable, "-c", BASELINE.format(db=str(start_db))])
    print(f"baseline (CLI, scanner, tokenizer loaded, store opened): {baseline / 1024:.0f} MB")
    print(
        f"{'file':<26}{'largest row':>12}{'peak':>10}{'above base':>12}{'rows':>7}  target"
        "    exit  giant row stored"
    )
    lost = 0
    for size in [parse_size(s) for s in args.sizes.split(",")]:
        plain = work / f"Posts-{size // 10**6}MB.xml"
        row, body = write_dump(plain, size)
        packed = plain.with_suffix(".xml.gz")
        packed.write_bytes(gzip.compress(plain.read_bytes(), 1))
        for path in (plain, packed):
            db = path.with_suffix(".db")
            db.unlink(missing_ok=True)
            command = [sys.executable, "-m", "issueminer.cli", "crawl", "so-dump", str(path)]
            # any exit status is measured, and told: only 0 with the row stored counts
            peak, status = peak_kb([*command, "--db", str(db)], allowed=(0, 3))
            stored = stored_body_length(db)
            whole = status == 0 and stored == body
            above = (peak - baseline) * 1024 / row
            verdict = ("met" if above < TARGET else "NOT met") if whole else "LOST"
            told = "whole" if stored == body else f"NO ({stored} of {body} characters)"
            lost += not whole
            print(
                f"{path.name:<26}{row / 10**6:>10.0f}MB{peak / 1024:>8.0f}MB"
                f"{(peak - baseline) / 1024:>10.0f}MB{above:>7.1f}  < {TARGET:.0f}: {verdict:<8}"
                f"{status:>4}  {told}"
            )
    if lost:
        raise SystemExit(f"{lost} run(s) did not store the giant row whole with exit status 0")


if __name__ == "__main__":
    main()
