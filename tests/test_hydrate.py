"""`crawl hydrate`: text for issues imported by URL, against fake APIs on 127.0.0.1."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys

from sqlalchemy import select

from issueminer.collect.ingest import import_issues, import_replication
from issueminer.store import Issue, Reply, Store
from tests.fakes.github import FakeGitHub, make_comment, make_issue
from tests.fakes.stackexchange import (
    FakeStackExchange,
    make_answer,
    make_question,
)
from tests.fakes.stackexchange import (
    make_comment as make_so_comment,
)

SO_CSV = (
    "distributed_training_data/Identified distributed-training-related posts/so_dl_distributed.csv"
)


def _hydrate(db: str, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "issueminer.cli",
            "crawl",
            "hydrate",
            "--db",
            db,
            "--format",
            "json",
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_hydrate_the_study_s_stack_overflow_questions(tosem_dir, taxonomy, tmp_path) -> None:
    db = str(tmp_path / "study.db")
    store = Store(f"sqlite:///{db}")
    import_replication(store, tosem_dir, taxonomy)
    with store.session() as session:
        study_ids = sorted(
            int(n)
            for n in session.scalars(select(Issue.native_id).where(Issue.source == "stackoverflow"))
        )
    with (tosem_dir / SO_CSV).open() as handle:
        candidates = {int(row["question"].rsplit("/", 1)[1]) for row in csv.DictReader(handle)}
    assert set(study_ids) >= candidates  # every candidate URL was imported
    known = study_ids[::3]  # the fake site still has a third of them
    questions = [
        make_question(q, f"Question {q}", "<p>body</p>", ["tensorflow"], 1_500_000_000)
        for q in known
    ]
    answers = [make_answer(q * 10 + 1, q, "<p>answer</p>", accepted=True) for q in known]
    comments = [make_so_comment(q * 10 + 2, q, "comment") for q in known]
    with FakeStackExchange(questions, answers, comments) as fake:
        env = {**os.environ, "ISSUEMINER_STACKEXCHANGE_API": fake.url}
        result = _hydrate(db, env, "--source", "stackoverflow")
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["filled"] == len(known)
        missing = {int(m["url"].rsplit("/", 1)[1]) for m in report["missing"]}
        assert missing == set(study_ids) - set(known)
        batches = [r for r in fake.requests if re.fullmatch(r"/2\.3/questions/[\d;]+/?", r["path"])]
        assert len(batches) == -(-len(study_ids) // 100)  # 100 ids per call
        # a second run asks for nothing: filled issues have text, missing ones are flagged
        before = len(fake.requests)
        again = _hydrate(db, env, "--source", "stackoverflow")
        assert json.loads(again.stdout) == {"filled": 0, "missing": []}
        assert len(fake.requests) == before + 1  # only stackapi's /sites call
    with store.session() as session:
        filled = session.scalars(select(Issue).where(Issue.text.is_not(None))).all()
        assert {int(i.native_id) for i in filled} == set(known)
        assert session.scalar(select(Reply).limit(1)) is not None
        # labels imported earlier are untouched by hydration
        labelled = session.scalar(select(Issue).where(Issue.native_id == str(known[0])))
        assert labelled.found_by.startswith("replication:")


def test_hydrate_github_reports_gone_moved_and_unknown(taxonomy, tmp_path) -> None:
    repo = "horovod/horovod"
    urls = [f"https://github.com/{repo}/issues/{n}" for n in (1, 2, 3, 4, 5, 6)]
    path = tmp_path / "urls.csv"
    path.write_text("url\n" + "\n".join(urls) + "\n")
    db = str(tmp_path / "gh.db")
    store = Store(f"sqlite:///{db}")
    import_issues(store, path, taxonomy)
    issues = {
        repo: [
            make_issue(repo, n, f"Issue {n}", "Body", "2020-01-01T00:00:00Z", comments=1)
            for n in (1, 2, 3, 5)
        ]
    }
    issues["other/place"] = [
        make_issue("other/place", 77, "Moved here", "Body", "2020-01-01T00:00:00Z")
    ]
    comments = {
        (repo, n): [make_comment(repo, n, n * 10, "a comment", "2020-01-02T00:00:00Z")]
        for n in (1, 2, 3, 5)
    }
    with FakeGitHub(issues, comments) as fake:
        fake.gone(repo, 4)
        fake.moved(repo, 5, "other/place", 77)
        env = {**os.environ, "ISSUEMINER_GITHUB_API": fake.url, "GITHUB_TOKEN": "gh-s3cret"}
        result = _hydrate(db, env, "--source", "github")
        assert result.returncode == 0, result.stderr
        assert "gh-s3cret" not in result.stdout + result.stderr
        report = json.loads(result.stdout)
        assert report["filled"] == 4
        assert {m["url"]: m["reason"] for m in report["missing"]} == {
            urls[3]: "deleted",
            urls[5]: "not found (deleted, private or moved)",
        }
        # issue 6 turns up (made public, say): only --retry-missing asks for it again
        fake.add_issue(repo, make_issue(repo, 6, "Issue 6", "Late body", "2020-01-03T00:00:00Z"))
        assert json.loads(_hydrate(db, env, "--source", "github").stdout) == {
            "filled": 0,
            "missing": [],
        }
        retried = json.loads(_hydrate(db, env, "--source", "github", "--retry-missing").stdout)
        assert retried["filled"] == 1 and [m["url"] for m in retried["missing"]] == [urls[3]]
    with store.session() as session:
        moved = session.scalar(select(Issue).where(Issue.url == urls[4]))
        assert moved.title == "Moved here"
        assert any(f.startswith("moved-to:") for f in moved.flags)
        assert session.scalar(select(Issue).where(Issue.url == urls[0])).text == "Body"
        assert session.scalar(select(Issue).where(Issue.url == urls[5])).text == "Late body"
