"""The annotation app in real headless Chromium (Debian's package), driven by Playwright.

Screenshots of the labelling and adjudication screens go to tests/artifacts/ (not
committed) so a reviewer can look at them.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy import select

from issueminer.label import rounds
from issueminer.label.agreement import agreement_table, cohen_kappa
from issueminer.label.webapp.app import Settings, create_app
from issueminer.store import Annotation, FinalLabel
from issueminer.taxonomy import load_taxonomy
from tests.labeling_fixtures import FAULT, HOWTO, add_issues

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


class LiveServer:
    """The app under uvicorn on 127.0.0.1, in a thread, for one test."""

    def __init__(self, settings: Settings) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.time() + 10
        while not self.server.started:
            assert time.time() < deadline, "server did not start"
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser() -> Iterator:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed (Debian package 'chromium'; .ci/run installs it)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def world(store, taxonomy):
    add_issues(store, 10)
    with store.session() as session:
        chosen = rounds.create_round(session, "r1", 4, ["alice", "bob"], seed=2)
    return store, chosen


def link(url: str, settings: Settings, path: str = "/", name: str | None = None) -> str:
    """The link `issueminer label` prints (to `path`), carrying the annotator's secret."""
    token = settings.link_token(name or settings.annotator)
    return f"{url}{path}{'&' if '?' in path else '?'}t={token}"


def watch(page: Page) -> list[str]:
    """Collect console errors and page errors; a dialog would mean a script ran."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: (problems.append("dialog: " + d.message), d.dismiss()))
    return problems


def label_with_keys(page: Page, symptom: str, fix: str) -> None:
    """Fault, distributed-specific, a symptom and a fix pattern, keyboard only."""
    page.keyboard.press("1")
    page.keyboard.press("d")
    page.keyboard.press("/")
    page.keyboard.type(symptom)
    page.keyboard.press("Enter")
    page.keyboard.press("x")
    page.keyboard.type(fix)
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")


READY = "document.body.dataset.ready === '1'"


def wait_for_issue_change(page: Page, old_uid: str) -> None:
    """Until another issue (or the end page) is shown and its keys work."""
    page.wait_for_function(
        "old => !document.getElementById('issue') || (document.getElementById('issue')"
        f".dataset.uid !== old && {READY})",
        arg=old_uid,
    )


def wait_for_issue(page: Page, uid: str) -> None:
    """Until `uid` is shown and its keys work."""
    page.wait_for_function(
        f"uid => document.getElementById('issue')?.dataset.uid === uid && {READY}", arg=uid
    )


def uid_of(page: Page) -> str:
    return page.get_attribute("#issue", "data-uid")


def test_an_annotator_labels_a_round_with_the_keyboard_only(browser, world, taxonomy) -> None:
    store, chosen = world
    settings = Settings(store, taxonomy, round="r1", annotator="alice")
    with LiveServer(settings) as url:
        page = browser.new_page()
        problems = watch(page)
        page.goto(link(url, settings))
        wait_for_issue(page, chosen[0])
        assert page.url == f"{url}/label"  # the secret is gone from the address bar
        label_with_keys(page, "program failure out of memory", "fix batch size")
        assert page.text_content("#symptom-value") == (
            "training & evaluation › program failure › out of memory"
        )
        page.screenshot(path=str(ARTIFACTS / "labelling.png"), full_page=True)
        page.keyboard.press("Control+Enter")
        wait_for_issue(page, chosen[1])
        # a how-to question through the topic picker, then save with "s"
        page.keyboard.press("2")
        page.keyboard.press("t")
        page.keyboard.type("communication backend")
        page.keyboard.press("Enter")
        page.keyboard.press("m")
        page.keyboard.type("asks which backend to use")
        page.keyboard.press("Escape")
        page.keyboard.press("s")
        wait_for_issue(page, chosen[2])
        page.keyboard.press("p")  # undecided: pending, comes back at the end
        wait_for_issue(page, chosen[3])
        page.keyboard.press("k")  # not relevant
        wait_for_issue(page, chosen[2])  # the pending one comes back
        page.keyboard.press("u")  # undo the skip: back to that issue
        wait_for_issue(page, chosen[3])
        label_with_keys(page, "communication setup hang and timeout", "fix network setting")
        page.keyboard.press("Control+Enter")
        wait_for_issue(page, chosen[2])  # only the pending one is left
        page.keyboard.press("b")  # back to the previous issue
        wait_for_issue(page, chosen[3])
        assert "done 3 · pending 1 · left 0" in page.text_content("#progress")
        assert problems == []
    with store.session() as session:
        rows = session.scalars(select(Annotation).order_by(Annotation.id)).all()
    latest = {row.issue_uid: row for row in rows}  # the newest row per issue wins
    assert latest[chosen[0]].leaf_symptom == "out of memory"
    assert latest[chosen[0]].specific is True
    assert latest[chosen[0]].fix_patterns == ["fix batch size"]
    assert (latest[chosen[1]].howto_topic, latest[chosen[1]].howto_subtopic) == (
        "communication",
        "backend",
    )
    assert latest[chosen[1]].memo == "asks which backend to use"
    assert latest[chosen[2]].status == "pending"
    assert latest[chosen[3]].leaf_symptom == "hang and timeout"
    assert [r.status for r in rows if r.issue_uid == chosen[3]] == ["skipped", "retracted", "done"]


def test_two_annotators_label_concurrently_with_personal_links(browser, world, taxonomy) -> None:
    store, chosen = world
    tokens = Settings.team_tokens(["alice", "bob"])
    settings = Settings(store, taxonomy, round="r1", team=tokens)
    with LiveServer(settings) as url:
        pages = {}
        for name in ("alice", "bob"):
            context = browser.new_context()
            pages[name] = context.new_page()
            pages[name].goto(link(url, settings, name=name))
            wait_for_issue(pages[name], chosen[0])
            # the secret moved into the cookie: the address bar no longer shows it
            assert pages[name].url == f"{url}/label"
        for uid in chosen:
            for name, symptom in (("alice", "out of memory"), ("bob", "segmentation fault")):
                page = pages[name]
                wait_for_issue(page, uid)
                label_with_keys(page, symptom, "fix dependency version")
            # both press save at the same moment
            for name in ("alice", "bob"):
                pages[name].keyboard.press("Control+Enter")
            for name in ("alice", "bob"):
                wait_for_issue_change(pages[name], uid)
        # independence: bob's screen never shows alice's label
        assert "out of memory" not in pages["bob"].content().split('id="picker-data"')[0]
    with store.session() as session:
        rows = session.scalars(select(Annotation)).all()
    assert len(rows) == 8
    assert {(r.annotator, r.leaf_symptom) for r in rows} == {
        ("alice", "out of memory"),
        ("bob", "segmentation fault"),
    }


def test_an_adjudicator_resolves_disagreements(browser, world, taxonomy) -> None:
    store, chosen = world
    alice = [FAULT, FAULT, HOWTO, FAULT]
    bob = [FAULT, {**FAULT, "leaf_symptom": "memory issue"}, HOWTO, HOWTO]
    with store.session() as session:
        for uid, a, b in zip(chosen, alice, bob, strict=True):
            rounds.save_label(session, taxonomy, uid, "alice", "r1", a)
            rounds.save_label(session, taxonomy, uid, "bob", "r1", b)
    settings = Settings(store, taxonomy, round="r1", annotator="carol", adjudicate=True)
    with LiveServer(settings) as url:
        page = browser.new_page()
        problems = watch(page)
        page.goto(link(url, settings))
        wait_for_issue(page, chosen[1])
        assert "leaf_symptom" in page.text_content("h2")
        page.screenshot(path=str(ARTIFACTS / "adjudication.png"), full_page=True)
        page.keyboard.press("o")  # take bob's label
        page.keyboard.press("Control+Enter")
        wait_for_issue(page, chosen[3])
        page.keyboard.press("a")  # take alice's label
        page.keyboard.press("Control+Enter")
        page.wait_for_selector("#done")
        assert problems == []
    with store.session() as session:
        finals = {f.issue_uid: f for f in session.scalars(select(FinalLabel))}
        rows = agreement_table(session, "r1")
    assert finals[chosen[1]].leaf_symptom == "memory issue"
    assert finals[chosen[3]].issue_type == "fault"
    assert {f.resolved_by for f in finals.values()} == {"carol"}
    # agreement figures match the saved independent labels, computed here from the inputs
    issue_type = next(r for r in rows if r.dimension == "issue_type")
    expected = cohen_kappa([a["issue_type"] for a in alice], [b["issue_type"] for b in bob])
    assert issue_type.n == 4 and issue_type.kappa == pytest.approx(expected)
    assert issue_type.agreement == pytest.approx(3 / 4)


def test_hostile_issue_text_is_inert(browser, store, taxonomy) -> None:
    uids = add_issues(store, 2)
    settings = Settings(store, taxonomy, annotator="alice")
    with LiveServer(settings) as url:
        page = browser.new_page()
        problems = watch(page)
        page.goto(link(url, settings, f"/label?issue={uids[0]}"))
        page.hover("text=hover here")
        page.click("text=click me", no_wait_after=True)
        time.sleep(0.3)
        assert page.evaluate("window.__pwned") is None
        assert page.locator("#issue-body [onerror], #issue-body [onmouseover]").count() == 0
        assert page.locator("#issue-body script").count() == 0
        assert "NCCL error <unhandled>" in page.text_content("#issue-body pre")
        assert not [p for p in problems if p.startswith("dialog")]


def test_a_failed_save_is_shown_and_the_form_kept(browser, world, taxonomy) -> None:
    store, chosen = world
    settings = Settings(store, taxonomy, round="r1", annotator="alice")
    with LiveServer(settings) as url:
        page = browser.new_page()
        page.goto(link(url, settings))
        # the failing server is in place before the first key: no save can get through
        page.route(
            "**/api/save",
            lambda route: route.fulfill(
                status=500,
                content_type="application/json",
                body='{"ok": false, "error": "disk full"}',
            ),
        )
        wait_for_issue(page, chosen[0])
        label_with_keys(page, "out of memory", "fix batch size")
        page.keyboard.press("Control+Enter")
        # on a timeout, says what the status line said instead
        expect(page.locator("#status")).to_contain_text("NOT saved: disk full", timeout=15_000)
        assert uid_of(page) == chosen[0]
        assert "out of memory" in page.text_content("#symptom-value")
        # reloading (a closed tab, a restarted server) restores the unsaved edits
        page.unroute("**/api/save")
        page.reload()
        wait_for_issue(page, chosen[0])
        assert "out of memory" in page.text_content("#symptom-value")
        page.keyboard.press("Control+Enter")
        wait_for_issue_change(page, chosen[0])
    with store.session() as session:
        assert [a.leaf_symptom for a in session.scalars(select(Annotation))] == ["out of memory"]


def test_suggestions_are_one_key_choices(browser, world, taxonomy) -> None:
    from issueminer.store import Prediction

    store, chosen = world
    with store.session() as session:
        session.add(
            Prediction(
                issue_uid=chosen[0],
                model_id="m",
                target="leaf_symptom",
                label="hang",
                probability=0.7,
                probabilities={"hang": 0.7, "out of memory": 0.2},
            )
        )
    settings = Settings(store, taxonomy, round="r1", annotator="alice")
    with LiveServer(settings) as url:
        page = browser.new_page()
        problems = watch(page)
        page.goto(link(url, settings))
        wait_for_issue(page, chosen[0])
        assert "not a human label" in page.text_content("#suggestions")
        page.keyboard.press("8")
        assert page.text_content("#symptom-value").endswith("out of memory")
        assert problems == []


def test_open_coding_proposes_new_categories_and_offers_them_again(browser, store) -> None:
    """A draft study: a name no list holds is proposed, saved, and offered on the next issue."""
    serverless = load_taxonomy("serverless")
    add_issues(store, 4, hostile=False)
    with store.session() as session:
        chosen = rounds.create_round(session, "open1", 2, ["alice"], seed=3)
    settings = Settings(store, serverless, round="open1", annotator="alice")
    with LiveServer(settings) as url:
        page = browser.new_page()
        problems = watch(page)
        page.goto(link(url, settings))
        wait_for_issue(page, chosen[0])
        assert "serverless-specific" in page.text_content("#label-form")
        page.keyboard.press("1")
        page.keyboard.press("/")
        page.keyboard.type("runtime › warm pool exhausted")
        assert page.text_content("#symptom-options li.active") == (
            "propose: runtime › warm pool exhausted"
        )
        page.keyboard.press("Enter")
        page.keyboard.press("x")
        page.keyboard.type("pin the runtime version")
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        assert page.text_content("#symptom-value") == "runtime › warm pool exhausted"
        page.screenshot(path=str(ARTIFACTS / "open-coding.png"), full_page=True)
        page.keyboard.press("Control+Enter")
        wait_for_issue(page, chosen[1])
        # the proposal is now a choice like any other (typed in part, picked with Enter)
        page.keyboard.press("/")
        page.keyboard.type("warm pool")
        assert page.text_content("#symptom-options li.active") == "runtime › warm pool exhausted"
        page.keyboard.press("Enter")
        page.keyboard.press("Control+Enter")
        wait_for_issue_change(page, chosen[1])
        assert problems == []
    with store.session() as session:
        rows = session.scalars(select(Annotation).order_by(Annotation.id)).all()
    assert [(r.stage, r.leaf_symptom) for r in rows] == [("runtime", "warm pool exhausted")] * 2
    assert rows[0].fix_patterns == ["pin the runtime version"] and rows[1].fix_patterns == []


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _host_status(port: int, host: str) -> int:
    """The status a request with this Host header gets from the app, over real HTTP."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.request("GET", "/api/progress", headers={"Host": host})
    status = connection.getresponse().status
    connection.close()
    return status


def test_the_printed_link_signs_in_and_a_save_lands(browser, world, taxonomy) -> None:
    """`issueminer label` as a user starts it: the link it prints, opened in Chromium."""
    store, chosen = world
    url = store.engine.url.render_as_string(hide_password=False)
    port = _free_port()
    command = [sys.executable, "-m", "issueminer.cli", "label", "--annotator", "alice"]
    command += ["--round", "r1", "--port", str(port), "--allow-host", "annot.lab", "--db", url]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = server.stdout.readline()
        assert line.startswith("labelling as alice (keep the link private): "), line
        printed = line.split(": ", 1)[1].strip()
        assert printed.startswith(f"http://127.0.0.1:{port}/?t=")
        secret = printed.split("?t=", 1)[1]
        deadline = time.time() + 20
        while True:  # until uvicorn listens
            try:
                assert _host_status(port, f"127.0.0.1:{port}") == 403  # no secret, no answer
                break
            except ConnectionRefusedError:
                assert time.time() < deadline, "the app did not start"
                time.sleep(0.1)
        assert _host_status(port, f"attacker.example:{port}") == 400
        assert _host_status(port, f"annot.lab:{port}") == 403  # allowed name, still no secret
        page = browser.new_context().new_page()
        problems = watch(page)
        page.goto(printed)
        wait_for_issue(page, chosen[0])
        assert page.url == f"http://127.0.0.1:{port}/label" and secret not in page.content()
        label_with_keys(page, "program failure out of memory", "fix batch size")
        page.keyboard.press("Control+Enter")
        wait_for_issue(page, chosen[1])
        assert problems == []
        # a second browser without the link sees nothing of the round
        stranger = browser.new_context().new_page()
        assert stranger.goto(f"http://127.0.0.1:{port}/label").status == 403
        assert chosen[0] not in stranger.content()
    finally:
        server.terminate()
        server.wait(timeout=20)
    with store.session() as session:
        saved = session.scalars(select(Annotation)).one()
    assert (saved.issue_uid, saved.annotator, saved.leaf_symptom) == (
        chosen[0],
        "alice",
        "out of memory",
    )


def test_a_host_name_that_is_not_one_is_refused(runner, sqlite_url) -> None:
    from issueminer.cli.main import app

    for wrong in ("http://annot.lab", "annot.lab:8765", "*", "annot.lab/label", ""):
        result = runner.invoke(
            app, ["label", "--annotator", "a", "--allow-host", wrong, "--db", sqlite_url]
        )
        assert result.exit_code == 1 and "is not a host name" in result.output, wrong
