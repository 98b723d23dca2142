"""`make bench-dump`: the data-dump scan against grep and two XML parsers, on one 1 GB file.

The synthetic Posts.xml (bench/synthetic.py) is generated into bench/data/ on first use and
read once before timing, so every contender reads it from the page cache. Throughput is
the file's size over wall-clock time; the slow parsers run once, the fast ones best of
seven, taking turns (grep, 1 worker, 2 workers, grep, ...) so that a slow spell of a
shared machine falls on all of them alike rather than on one (on a shared 2-core VM the
best of five still moved by up to a tenth from one run of the benchmark to the next). The
two-worker ratio is also given turn by turn (median and range), which shows the noise.
issueminer's figure is a whole scan into a fresh SQLite database: pre-filter, parse, the
study's selection, envelopes, commits, and starting and stopping the workers. The
tokenizer (about 1 s to load, whatever the size of the file) is loaded by one untimed scan
first.

Usage: python -m bench.dump_bench [--size 1GB] [--skip-parsers]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.synthetic import DEFAULT_SEED, parse_size, write_posts

DATA = Path(__file__).resolve().parent / "data"
REPEATS = 7  # for the fast contenders (the best of them); the slow parsers run once
Timings = dict[str, tuple[float, float]]  # contender -> (wall-clock s, CPU s)
Turns = dict[str, list[float]]  # contender -> wall-clock s of each turn, in order


def ensure_dump(size: int) -> Path:
    """The synthetic dump of this size, generated (deterministically) if it is missing."""
    path = DATA / f"Posts-{size}.xml"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        print(f"generating {path} ({size / 1e9:.2f} GB, seed {DEFAULT_SEED}) ...", flush=True)
        partial = path.with_suffix(".partial")
        with partial.open("wb") as handle:
            write_posts(handle, size, DEFAULT_SEED)
        partial.replace(path)
    return path


def warm(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(64 << 20):
            pass


def timed(runs: dict[str, Callable[[], object]], repeats: int, path: Path) -> tuple[Timings, Turns]:
    """Best wall-clock seconds and best CPU seconds (this process and its children) of each
    contender, the contenders taking turns; and every turn's wall-clock seconds."""
    best = {name: (float("inf"), float("inf")) for name in runs}
    turns: Turns = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            if hasattr(run, "prepare"):
                run.prepare()
            warm(path)  # the page cache may have dropped it while the last contender ran
            before, start = os.times(), time.perf_counter()
            run()
            wall, after = time.perf_counter() - start, os.times()
            cpu = sum(after[:4]) - sum(before[:4])  # user + system, self + children
            best[name] = (min(best[name][0], wall), min(best[name][1], cpu))
            turns[name].append(wall)
    return best, turns


def grep(path: Path) -> None:
    subprocess.run(["grep", "-c", 'PostTypeId="1"', str(path)], check=True, capture_output=True)


def elementtree_rows(path: Path) -> None:
    with path.open("rb") as handle:
        for line in handle:
            if line.lstrip().startswith(b"<row"):
                ET.fromstring(line)


def lxml_iterparse(path: Path) -> None:
    from lxml import etree

    for _, element in etree.iterparse(str(path), tag="row"):
        element.clear()
        while element.getprevious() is not None:  # keep memory flat
            del element.getparent()[0]


class Scan:
    """One issueminer scan of the dump into a fresh SQLite database (made before the clock
    starts: creating a database is not part of scanning)."""

    def __init__(self, path: Path, workers: int) -> None:
        from issueminer.taxonomy import load_taxonomy

        self.path = path
        self.workers = workers
        self.taxonomy = load_taxonomy()
        self.kept = (0, 0)
        self.folder: str | None = None
        self.store: Any = None

    def prepare(self) -> None:
        from issueminer.store import Store

        self.folder = tempfile.mkdtemp()
        self.store = Store(f"sqlite:///{self.folder}/bench.db")

    def __call__(self) -> None:
        from issueminer.collect import sodump
        from issueminer.collect.checkpoints import Checkpointer
        from issueminer.collect.selection import Selection

        executor = sodump.ProcessExecutor(self.workers) if self.workers > 1 else None
        try:
            criteria = sodump.Criteria(Selection.from_taxonomy(self.taxonomy), self.taxonomy)
            source = sodump.open_source(self.path)
            crawler = sodump.DumpCrawler(source, criteria, executor=executor)
            checkpointer = Checkpointer(self.store, "so-dump", crawler.query())
            summary = crawler.run(checkpointer)
            checkpointer.finish("done")
            self.kept = (summary.questions, summary.answers)
        finally:
            if executor is not None:
                executor.close()  # timed, and the workers' CPU time is counted once they end
            self.store.close()
            shutil.rmtree(self.folder or "")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1GB")
    parser.add_argument("--skip-parsers", action="store_true", help="Only grep and issueminer.")
    args = parser.parse_args(argv)
    path = ensure_dump(parse_size(args.size))
    size = path.stat().st_size
    print(f"file: {path} ({size / 1e6:.0f} MB), {os.cpu_count()} CPUs, load {_load()}")
    one = Scan(path, 1)
    one.prepare()
    one()  # loads the tokenizer, which a scan in a long-lived process would have loaded
    fast = {"grep -c": lambda: grep(path), "issueminer, 1 worker": one}
    seconds, turns = timed({**fast, "issueminer, 2 workers": Scan(path, 2)}, REPEATS, path)
    if not args.skip_parsers:
        slow = {
            "lxml iterparse": lambda: lxml_iterparse(path),
            "ElementTree per row": lambda: elementtree_rows(path),
        }
        seconds.update(timed(slow, 1, path)[0])
    print(f"issueminer kept {one.kept[0]} questions and {one.kept[1]} answers")
    print(f"{'contender':<24}{'wall s':>8}{'MB/s':>8}{'CPU s':>8}{'MB/CPU-s':>10}")
    for name, (wall, cpu) in seconds.items():
        rates = f"{size / wall / 1e6:>8.0f}{cpu:>8.2f}{size / cpu / 1e6:>10.0f}"
        print(f"{name:<24}{wall:>8.2f}{rates}")
    print(f"load after: {_load()}")
    print(f"{'ratio (higher is faster)':<44}{'wall':>7}{'CPU':>7}{'target':>8}")
    for name, faster, slower, target in _ratios(args.skip_parsers):
        by_wall = seconds[slower][0] / seconds[faster][0]
        by_cpu = seconds[slower][1] / seconds[faster][1]
        verdict = "met" if by_wall >= target else "NOT met"
        print(f"{name:<44}{by_wall:>7.2f}{by_cpu:>7.2f}{target:>8}  {verdict} (by wall clock)")
    print(_turn_by_turn(turns, "issueminer, 2 workers", "issueminer, 1 worker"))


def _turn_by_turn(turns: Turns, faster: str, slower: str) -> str:
    """The ratio within each turn (the two ran seconds apart), as a sense of the noise."""
    ratios = sorted(s / f for f, s in zip(turns[faster], turns[slower], strict=True))
    low, middle, high = ratios[0], statistics.median(ratios), ratios[-1]
    return f"{faster} / {slower}, turn by turn: median {middle:.2f}, {low:.2f} to {high:.2f}"


def _ratios(skip_parsers: bool) -> list[tuple[str, str, str, float]]:
    one, two = "issueminer, 1 worker", "issueminer, 2 workers"
    ratios = [(f"{one} / grep -c", one, "grep -c", 0.15), (f"{two} / 1 worker", two, one, 1.6)]
    if not skip_parsers:
        ratios += [
            (f"{one} / lxml iterparse", one, "lxml iterparse", 5),
            (f"{one} / ElementTree per row", one, "ElementTree per row", 12),
        ]
    return ratios


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


if __name__ == "__main__":
    sys.exit(main())
