"""The annotation app in real headless Chromium (Debian's package), driven by Playwright.

Screenshots of the labelling and adjudication screens go to tests/artifacts/ (not
committed) so a reviewer can look at them.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import uvicorn
from playwright.sync_api import Page, expect
from sqlalchemy import select

from issueminer.label import rounds
from issueminer.label.agreement import agreement_table, cohen_kappa
from issueminer.label.webapp.app import Settings, create_app
from issueminer.store import Annotation, FinalLabel
from issueminer.taxonomy import load_taxonomy
from tests.helpers import ARTIFACTS
from tests.labeling_fixtures import FAULT, HOWTO, add_issues


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


@contextmanager
def labelling_as_alice(browser, store, taxonomy, first: str) -> Iterator[tuple[Page, list[str]]]:
    """alice's round r1, opened through her printed link in a browser of its own."""
    settings = Settings(store, taxonomy, round="r1", annotator="alice")
    with LiveServer(settings) as url:
        page = browser.new_context().new_page()
        problems = watch(page)
        page.goto(link(url, settings))
        wait_for_issue(page, first)
        yield page, problems


def save_a_fault(page: Page, next_uid: str) -> None:
    """A complete fault label, saved with Ctrl+Enter; on to `next_uid`."""
    label_with_keys(page, "program failure out of memory", "fix batch size")
    page.keyboard.press("Control+Enter")
    wait_for_issue(page, next_uid)


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
        # the study's names for the fields, not the database's
        assert page.text_content("h2") == "They differ on: symptom"
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
    from datetime import timedelta

    from issueminer.store import LabelingRound, Prediction

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
                # made before the round began: a later model may have learnt from it
                created_at=session.get(LabelingRound, "r1").created_at - timedelta(hours=1),
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
        # runtime has aspects: the study file requires one (`required:`)
        page.keyboard.type("runtime › invocation failure › warm pool exhausted")
        assert page.text_content("#symptom-options li.active") == (
            "propose: runtime › invocation failure › warm pool exhausted"
        )
        page.keyboard.press("Enter")
        page.keyboard.press("x")
        page.keyboard.type("pin the runtime version")
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        assert page.text_content("#symptom-value") == (
            "runtime › invocation failure › warm pool exhausted"
        )
        page.screenshot(path=str(ARTIFACTS / "open-coding.png"), full_page=True)
        page.keyboard.press("Control+Enter")
        wait_for_issue(page, chosen[1])
        # the proposal is now a choice like any other (typed in part, picked with Enter)
        page.keyboard.press("/")
        page.keyboard.type("warm pool")
        assert page.text_content("#symptom-options li.active") == (
            "runtime › invocation failure › warm pool exhausted"
        )
        page.keyboard.press("Enter")
        page.keyboard.press("Control+Enter")
        wait_for_issue_change(page, chosen[1])
        assert problems == []
    with store.session() as session:
        rows = session.scalars(select(Annotation).order_by(Annotation.id)).all()
    assert [(r.stage, r.inner_category, r.leaf_symptom) for r in rows] == [
        ("runtime", "invocation failure", "warm pool exhausted")
    ] * 2
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


def _drafts(page: Page) -> dict:
    return page.evaluate(
        "Object.fromEntries(Object.keys(localStorage).filter(k => k.startsWith('issueminer-draft'))"
        ".map(k => [k, localStorage.getItem(k)]))"
    )


def test_a_stale_tab_cannot_overwrite_a_saved_label(browser, world, taxonomy) -> None:
    store, chosen = world
    settings = Settings(store, taxonomy, round="r1", annotator="alice")
    with LiveServer(settings) as url:
        context = browser.new_context()
        first, second = context.new_page(), context.new_page()
        problems = watch(first) + watch(second)
        first.goto(link(url, settings))
        wait_for_issue(first, chosen[0])
        second.goto(f"{url}/label?issue={chosen[0]}")  # the same issue, in a second tab
        wait_for_issue(second, chosen[0])
        assert _drafts(first) == {}  # looking is not editing: no draft written
        label_with_keys(first, "program failure out of memory", "fix batch size")
        first.keyboard.press("Control+Enter")
        wait_for_issue(first, chosen[1])
        # the second tab, opened before that save, labels the issue differently
        second.keyboard.press("2")
        second.keyboard.press("t")
        second.keyboard.type("communication backend")
        second.keyboard.press("Enter")
        second.keyboard.press("Control+Enter")
        expect(second.locator("#conflict")).to_be_visible()
        assert "out of memory" in second.text_content("#conflict-saved")
        assert "how-to question" in second.text_content("#conflict-mine")
        assert "NOT saved" in second.text_content("#status")
        second.screenshot(path=str(ARTIFACTS / "stale-tab.png"), full_page=True)
        with store.session() as session:  # nothing was overwritten
            assert session.scalars(select(Annotation.issue_type)).all() == ["fault"]
        second.click("#keep-saved")  # the saved label comes back into the form
        assert second.text_content("#symptom-value").endswith("out of memory")
        assert second.locator("#conflict").is_hidden()
        # ... or, told what is there, the annotator saves over it knowingly
        second.keyboard.press("2")
        second.keyboard.press("t")
        second.keyboard.type("communication backend")
        second.keyboard.press("Enter")
        second.keyboard.press("Control+Enter")
        wait_for_issue_change(second, chosen[0])
        assert problems == []
    with store.session() as session:
        saved = session.scalars(select(Annotation.issue_type).order_by(Annotation.id)).all()
    assert saved == ["fault", "how-to question"]


def test_unsaved_edits_stay_with_their_annotator(browser, world, taxonomy) -> None:
    store, chosen = world
    tokens = Settings.team_tokens(["alice", "bob"])
    settings = Settings(store, taxonomy, round="r1", team=tokens)
    with LiveServer(settings) as url:
        page = browser.new_context().new_page()  # one shared browser, two people in turn
        problems = watch(page)
        page.goto(link(url, settings, name="alice"))
        wait_for_issue(page, chosen[0])
        page.keyboard.press("m")
        page.keyboard.type("alice thinks it is the firewall")
        page.keyboard.press("Escape")
        assert len(_drafts(page)) == 1  # an edit is kept as a draft
        page.reload()
        wait_for_issue(page, chosen[0])
        assert page.input_value("#memo") == "alice thinks it is the firewall"
        assert "restored your unsaved edits" in page.text_content("#status")
        page.goto(link(url, settings, name="bob"))
        wait_for_issue(page, chosen[0])
        assert "bob" in page.text_content("header")
        assert page.input_value("#memo") == ""
        assert "restored" not in page.text_content("#status")
        assert problems == []


def test_a_round_end_to_end_counts_only_its_members(browser, world, taxonomy) -> None:
    """Two annotators label in their own browsers, a stray name saves through the library,
    an adjudicator resolves: agreement counts exactly the members' done labels."""
    store, chosen = world
    tokens = Settings.team_tokens(["alice", "bob"])
    judges = Settings.team_tokens(["carol"])
    settings = Settings(store, taxonomy, round="r1", team=tokens, adjudicators=judges)
    symptoms = {"alice": ["out of memory"] * 4, "bob": ["out of memory"] * 3 + ["hang"]}
    with store.session() as session:  # someone labelled as "Alice" by mistake
        for uid in chosen:
            rounds.save_label(session, taxonomy, uid, "Alice", "r1", HOWTO)
    with LiveServer(settings) as url:
        for name in ("alice", "bob"):
            page = browser.new_context().new_page()
            problems = watch(page)
            page.goto(link(url, settings, name=name))
            for uid, symptom in zip(chosen, symptoms[name], strict=True):
                wait_for_issue(page, uid)
                label_with_keys(page, symptom, "fix batch size")
                page.keyboard.press("Control+Enter")
            wait_for_issue_change(page, chosen[-1])
            assert problems == []
            # an annotator's link does not open adjudication
            assert page.goto(f"{url}/adjudicate").status == 403
        with store.session() as session:
            rows = {r.dimension: r for r in agreement_table(session, "r1")}
        leaf = rows["leaf_symptom"]
        assert leaf.annotators == ["alice", "bob"] and leaf.n == 4
        assert leaf.kappa == cohen_kappa(symptoms["alice"], symptoms["bob"])
        assert rows["issue_type"].agreement == 1.0  # "Alice"'s how-to labels did not count
        judge = browser.new_context().new_page()
        problems = watch(judge)
        judge.goto(link(url, settings, name="carol"))
        wait_for_issue(judge, chosen[3])
        assert "carol" in judge.text_content("header")
        assert judge.text_content("h2") == "They differ on: inner category, symptom"
        assert judge.locator(".side dd.differs").count() == 2  # the symptom row, both sides
        assert judge.text_content("#symptom-value") == "—"  # no side taken for the judge
        for width in (1440, 800):
            judge.set_viewport_size({"width": width, "height": 900})
            judge.evaluate("window.scrollTo(0, document.body.scrollHeight)")
            judge.screenshot(path=str(ARTIFACTS / f"adjudication-{width}x900.png"))
            box = judge.locator("#resolve").bounding_box()
            assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 900, width
        judge.keyboard.press("o")  # bob's label, then resolved
        judge.keyboard.press("Control+Enter")
        expect(judge.locator("body")).to_contain_text("No disagreements left")
        with store.session() as session:
            assert session.scalars(select(FinalLabel.leaf_symptom)).all() == ["hang"]
        judge.wait_for_function(READY)  # the end page's keys work
        judge.keyboard.press("u")  # undo that resolution: the disagreement is open again
        wait_for_issue(judge, chosen[3])
        assert "undid your resolution" in judge.text_content("#status")
        with store.session() as session:
            assert session.scalars(select(FinalLabel)).all() == []
        judge.keyboard.press("a")
        judge.keyboard.press("Control+Enter")
        expect(judge.locator("body")).to_contain_text("No disagreements left")
        assert problems == []
    with store.session() as session:
        final = session.scalars(select(FinalLabel)).one()
    assert (final.issue_uid, final.resolved_by, final.leaf_symptom) == (
        chosen[3],
        "carol",
        "out of memory",
    )


def test_undo_puts_the_undone_label_back_in_the_form(browser, world, taxonomy) -> None:
    store, chosen = world
    with labelling_as_alice(browser, store, taxonomy, chosen[0]) as (page, problems):
        save_a_fault(page, chosen[1])
        page.keyboard.press("u")
        wait_for_issue(page, chosen[0])
        status = page.text_content("#status")
        assert status.startswith("undid your done label of") and "back in the form" in status
        assert page.text_content("#symptom-value").endswith("out of memory")
        assert page.text_content("#fix-value") == "fix batch size"
        assert "done 0" in page.text_content("#progress")  # undone until saved again
        page.keyboard.press("Control+Enter")  # saved again as it was, in one key
        wait_for_issue(page, chosen[1])
        assert problems == []
    with store.session() as session:
        rows = session.scalars(select(Annotation).order_by(Annotation.id)).all()
    assert [(r.provenance, r.leaf_symptom) for r in rows] == [
        ("app", "out of memory"),
        ("app:undo", None),
        ("app", "out of memory"),
    ]


def test_an_image_shows_as_a_placeholder_with_a_link(browser, store, taxonomy) -> None:
    from issueminer.collect.ingest import upsert_issues
    from issueminer.ids import parse_issue_url

    ref = parse_issue_url("https://github.com/horovod/horovod/issues/97001")
    record = {
        "source": "github",
        "origin": ref.origin,
        "url": ref.url,
        "native_id": ref.native_id,
        "uid": ref.uid,
        "text": "hang after upgrade",
        "title": "Hang after upgrade (screenshot only)",
        "body": "![NCCL WARN timeout in allreduce](https://example.org/trace.png)",
    }
    with store.session() as session:
        upsert_issues(session, [record])
    settings = Settings(store, taxonomy, annotator="alice")
    with LiveServer(settings) as url:
        page = browser.new_context().new_page()
        problems = watch(page)
        page.goto(link(url, settings, f"/label?issue={ref.uid}"))
        wait_for_issue(page, ref.uid)
        image = page.locator("#issue .image")
        assert image.text_content() == "[image: NCCL WARN timeout in allreduce] open the image"
        assert image.locator("a").get_attribute("href") == "https://example.org/trace.png"
        assert page.locator("#issue img").count() == 0  # nothing is loaded from elsewhere
        assert problems == []


def test_done_is_refused_until_the_label_is_complete(browser, world, taxonomy) -> None:
    store, chosen = world
    with labelling_as_alice(browser, store, taxonomy, chosen[0]) as (page, problems):
        page.keyboard.press("1")  # a fault, a symptom, but no fix pattern
        page.keyboard.press("/")
        page.keyboard.type("program failure out of memory")
        page.keyboard.press("Enter")
        page.keyboard.press("Escape")
        page.keyboard.press("Control+Enter")
        expect(page.locator("#status")).to_contain_text(
            "NOT saved: a fault needs its fix pattern before it can be done"
        )
        assert uid_of(page) == chosen[0]  # still here, the form as it was
        assert page.text_content("#symptom-value").endswith("out of memory")
        page.keyboard.press("p")  # pending always saves
        wait_for_issue(page, chosen[1])
        # the refused save is the one failed request the browser saw, and no script broke
        assert len(problems) == 1 and "status of 422" in problems[0]
    with store.session() as session:
        saved = session.scalars(select(Annotation)).all()
    assert [(a.status, a.leaf_symptom, a.fix_patterns) for a in saved] == [
        ("pending", "out of memory", [])
    ]


def test_the_history_panel_reopens_a_decision(browser, world, taxonomy) -> None:
    store, chosen = world
    with labelling_as_alice(browser, store, taxonomy, chosen[0]) as (page, problems):
        save_a_fault(page, chosen[1])
        page.keyboard.press("p")
        wait_for_issue(page, chosen[2])
        entries = page.locator("#history li")
        assert entries.count() == 2  # newest first
        assert "pending" in entries.nth(0).text_content()
        assert "done · fault" in entries.nth(1).text_content()
        page.keyboard.press("h")
        page.keyboard.press("Tab")  # from the newest entry to the one before
        page.keyboard.press("Enter")
        wait_for_issue(page, chosen[0])
        assert page.text_content("#symptom-value").endswith("out of memory")
        assert problems == []
