"""Latency of "save and load next" in the annotation app on a 100,000-issue SQLite store.

    python bench/label_bench.py [--issues 100000] [--saves 300]

Each step is what the browser does: POST /api/save, then GET /label?issue=<next>, over
real HTTP to uvicorn on 127.0.0.1. The baseline, measured in the same run, is a request
the app answers without touching the database (GET /favicon.ico).
"""

from __future__ import annotations

import argparse
import hashlib
import socket
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx2 as httpx  # the dev extra's client (the one the app's TestClient uses)
import uvicorn
from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from issueminer.label.webapp.app import Settings, create_app  # noqa: E402
from issueminer.store import Issue, Store  # noqa: E402
from issueminer.taxonomy import load_taxonomy  # noqa: E402

LABEL = {
    "issue_type": "fault",
    "specific": True,
    "stage": "communication setup",
    "leaf_symptom": "hang and timeout",
    "fix_patterns": ["fix network setting"],
}
BODY = (
    "<p>Workers hang in <code>hvd.init()</code> on 2 nodes.</p><pre><code>"
    + ("NCCL WARN Connect to 10.0.0.2 failed\n" * 20)
    + "</code></pre>"
)


def fill(store: Store, n: int) -> None:
    rows = []
    for i in range(n):
        url = f"https://stackoverflow.com/questions/{10_000_000 + i}"
        rows.append(
            {
                "uid": hashlib.sha1(url.encode()).hexdigest(),
                "source": "stackoverflow",
                "origin": "https://stackoverflow.com",
                "native_id": str(10_000_000 + i),
                "url": url,
                "title": f"Horovod hangs ({i})",
                "body": BODY,
                "text": "Workers hang",
                "tags": ["horovod"],
                "flags": [],
                "raw": {},
            }
        )
    with store.engine.begin() as conn:
        for start in range(0, n, 5000):
            conn.execute(insert(Issue), rows[start : start + 5000])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--issues", type=int, default=100_000)
    parser.add_argument("--saves", type=int, default=300)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="issueminer-bench-"))
    store = Store(f"sqlite:///{folder / 'bench.db'}")
    started = time.perf_counter()
    fill(store, args.issues)
    print(f"store: {args.issues:,} issues in {time.perf_counter() - started:.1f} s")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(store, load_taxonomy(), annotator="bench")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    base = f"http://127.0.0.1:{port}"
    with httpx.Client() as client:
        # sign in through the link the app would print (it sets the secret's cookie)
        client.get(f"{base}/?t={settings.link_token('bench')}").raise_for_status()
        page = client.get(f"{base}/label").text
        uid = page.split('data-uid="', 1)[1].split('"', 1)[0]
        baseline, steps = [], []
        for _ in range(args.saves):
            t0 = time.perf_counter()
            client.get(f"{base}/favicon.ico")
            baseline.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            saved = client.post(
                f"{base}/api/save", json={"issue": uid, "fields": LABEL, "based_on": None}
            ).json()
            uid = saved["next"]
            client.get(f"{base}/label", params={"issue": uid}).raise_for_status()
            steps.append(time.perf_counter() - t0)
    server.should_exit = True
    ms = 1000
    p95, base95 = percentile(steps, 0.95) * ms, percentile(baseline, 0.95) * ms
    print(
        f"save and load next ({args.saves} steps): median {statistics.median(steps) * ms:.1f} ms"
        f"  p95 {p95:.1f} ms  max {max(steps) * ms:.1f} ms"
    )
    print(
        f"baseline (no database): median {statistics.median(baseline) * ms:.1f} ms"
        f"  p95 {base95:.1f} ms"
    )
    print(
        f"ratio p95 / baseline p95: {p95 / base95:.1f}x   target p95 < 50 ms: "
        f"{'met' if p95 < 50 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
