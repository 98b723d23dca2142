"""Every route of the annotation app, through Starlette's test client."""

from __future__ import annotations

import re
import socket

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from issueminer.label import rounds
from issueminer.label.webapp.app import Settings, create_app
from issueminer.store import Annotation, FinalLabel, Store
from tests.helpers import dump
from tests.labeling_fixtures import APP_BASE, APP_COOKIE, FAULT, HOWTO, add_issues, app_client


@pytest.fixture
def world(store, taxonomy):
    add_issues(store, 8)
    with store.session() as session:
        chosen = rounds.create_round(session, "r1", 4, ["alice", "bob"], seed=1)
    return store, chosen


BASE = APP_BASE
COOKIE = APP_COOKIE


def client(store, taxonomy, **settings) -> TestClient:
    """A browser on the app, signed in through the printed link of its one annotator."""
    return app_client(Settings(store, taxonomy, **settings))


def uid_on(page: str) -> str:
    return re.search(r'data-uid="([0-9a-f]{40})"', page).group(1)


def test_label_page_shows_the_next_issue_safely(world, taxonomy) -> None:
    store, chosen = world
    app = client(store, taxonomy, round="r1", annotator="alice")
    home = app.get("/")
    assert home.status_code == 303 and home.headers["location"] == "/label"
    page = app.get("/label")
    assert page.status_code == 200
    policy = dict(d.split(" ", 1) for d in page.headers["content-security-policy"].split("; "))
    assert policy == {  # the page's own files only: no inline script or style, no framing
        "default-src": "'none'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": "'self'",
        "connect-src": "'self'",
        "form-action": "'self'",
        "base-uri": "'none'",
        "frame-ancestors": "'none'",
    }
    assert uid_on(page.text) == chosen[0]
    assert "Keys" in page.text and "Ctrl+Enter" in page.text
    assert "done 0 · pending 0 · left 4" in page.text
    hostile = app.get(f"/label?issue={_hostile_uid(store)}")
    assert "<script>window" not in hostile.text and "onerror" not in hostile.text
    assert "javascript:" not in hostile.text and "onmouseover" not in hostile.text
    assert "✔ accepted answer" in hostile.text
    assert app.get("/static/app.js").status_code == 200


def _hostile_uid(store) -> str:
    from issueminer.ids import parse_issue_url

    return parse_issue_url("https://stackoverflow.com/questions/95000000").uid


def test_save_next_undo_and_progress(world, taxonomy) -> None:
    store, chosen = world
    app = client(store, taxonomy, round="r1", annotator="alice")
    saved = app.post("/api/save", json={"issue": chosen[0], "fields": FAULT})
    assert saved.status_code == 200
    body = saved.json()
    assert body["next"] == chosen[1]
    assert app.get("/api/progress").json()["left"] == 3
    undone = app.post("/api/undo", json={})
    assert undone.json() == {"ok": True, "issue": chosen[0]}
    assert app.get("/api/progress").json()["done"] == 0
    with store.session() as session:
        statuses = [a.status for a in session.scalars(select(Annotation).order_by(Annotation.id))]
    assert statuses == ["done", "retracted"]


def test_bad_saves_are_refused_and_change_nothing(world, taxonomy) -> None:
    store, chosen = world
    app = client(store, taxonomy, round="r1", annotator="alice")
    wrong = app.post(
        "/api/save", json={"issue": chosen[0], "fields": {**FAULT, "leaf_symptom": "banana"}}
    )
    assert wrong.status_code == 422 and "banana" in wrong.json()["error"]
    not_json = app.post(
        "/api/save",
        content="issue=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert not_json.status_code == 400
    unknown = app.post("/api/save", json={"issue": "nope", "fields": FAULT})
    assert unknown.status_code == 422
    with store.session() as session:
        assert session.scalars(select(Annotation)).all() == []


def test_memo_cannot_break_out_of_the_page(world, taxonomy) -> None:
    store, chosen = world
    app = client(store, taxonomy, round="r1", annotator="alice")
    memo = "</script><script>alert(1)</script>"
    app.post("/api/save", json={"issue": chosen[0], "fields": {**FAULT, "memo": memo}})
    page = app.get(f"/label?issue={chosen[0]}").text
    assert memo not in page and "\\u003c/script\\u003e" in page


def test_team_mode_needs_a_personal_token(world, taxonomy) -> None:
    store, chosen = world
    tokens = Settings.team_tokens(["alice", "bob"])
    by_name = {name: token for token, name in tokens.items()}
    app = client(store, taxonomy, round="r1", team=tokens)
    assert app.get("/label").status_code == 403
    assert app.post("/api/save", json={"issue": chosen[0], "fields": FAULT}).status_code == 403
    assert app.get(f"/label?t={by_name['bob']}").headers["set-cookie"].startswith(COOKIE)
    # the cookie now identifies bob without the query parameter
    assert ">bob<" in app.get("/label").text
    assert app.post("/api/save", json={"issue": chosen[0], "fields": FAULT}).status_code == 200
    with store.session() as session:
        assert session.scalars(select(Annotation.annotator)).all() == ["bob"]


def test_adjudication_routes(world, taxonomy) -> None:
    store, chosen = world
    with store.session() as session:
        for uid in chosen:
            rounds.save_label(session, taxonomy, uid, "alice", "r1", FAULT)
            rounds.save_label(
                session, taxonomy, uid, "bob", "r1", HOWTO if uid == chosen[2] else FAULT
            )
    app = client(store, taxonomy, round="r1", annotator="carol", adjudicate=True)
    assert app.get("/").headers["location"] == "/adjudicate"
    page = app.get("/adjudicate")
    assert uid_on(page.text) == chosen[2]
    assert "alice" in page.text and "bob" in page.text and "issue_type" in page.text
    resolved = app.post("/api/resolve", json={"issue": chosen[2], "fields": HOWTO})
    assert resolved.json() == {"ok": True, "left": 0}
    assert "No disagreements left" in app.get("/adjudicate").text
    with store.session() as session:
        final = session.scalars(select(FinalLabel)).one()
        assert (final.issue_uid, final.resolved_by) == (chosen[2], "carol")
    no_round = client(store, taxonomy, annotator="carol", adjudicate=True)
    assert no_round.get("/adjudicate").status_code == 400


def test_done_page_when_the_round_is_finished(world, taxonomy) -> None:
    store, chosen = world
    app = client(store, taxonomy, round="r1", annotator="alice")
    for uid in chosen:
        app.post("/api/save", json={"issue": uid, "fields": HOWTO})
    assert "Nothing left to label" in app.get("/label").text


def test_cli_refuses_an_open_address_without_tokens(runner, sqlite_url) -> None:
    from issueminer.cli.main import app

    result = runner.invoke(
        app, ["label", "--annotator", "a", "--host", "0.0.0.0", "--db", sqlite_url]
    )
    assert result.exit_code == 1 and "--team" in result.output
    Store(sqlite_url).close()  # an empty study's database
    missing = runner.invoke(
        app, ["label", "--annotator", "a", "--round", "nope", "--db", sqlite_url]
    )
    assert missing.exit_code == 1 and "no round 'nope'" in missing.output
    with socket.socket() as taken:  # a port in use is said before any link is printed
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        busy = runner.invoke(app, ["label", "--annotator", "a", "--port", port, "--db", sqlite_url])
    assert busy.exit_code == 1 and "http://" not in busy.output
    assert f"cannot listen on --host 127.0.0.1 --port {port}: Address already in use" in (
        busy.output
    )


def test_round_create_refuses_what_is_not_a_round(runner, world) -> None:
    from issueminer.cli.main import app

    store, _ = world
    db = store.engine.url.render_as_string(hide_password=False)
    before = dump(store)
    for options, message in (
        (["--size", "0", "--annotators", "a,b"], "at least one issue, not 0"),
        (["--size", "-5", "--annotators", "a,b"], "at least one issue, not -5"),
        (["--size", "2", "--annotators", "a,b,a"], "a named more than once"),
        (["--size", "2", "--annotators", "a,b", "--name", " "], "a round needs a name"),
    ):
        result = runner.invoke(app, ["round", "create", *options, "--db", db])
        assert result.exit_code == 1 and message in result.output, options
    assert dump(store) == before


def test_round_cli(runner, tmp_path) -> None:
    import json

    from issueminer.cli.main import app
    from issueminer.store import Store

    db = str(tmp_path / "r.db")
    add_issues(Store(f"sqlite:///{db}"), 8)
    made = runner.invoke(
        app,
        [
            "round",
            "create",
            "--size",
            "4",
            "--annotators",
            "alice,bob",
            "--stratify",
            "source",
            "--db",
            db,
        ],
    )
    assert made.exit_code == 0 and "round round1: 4 issues for alice, bob" in made.output
    status = json.loads(
        runner.invoke(app, ["round", "status", "--db", db, "--format", "json"]).stdout
    )
    assert [(r["annotator"], r["left"]) for r in status] == [("alice", 4), ("bob", 4)]


# ---- who may reach the app: its own host names, and a secret of this start ----------------
ROUTES = [
    ("GET", "/"),
    ("GET", "/label"),
    ("GET", "/adjudicate"),
    ("GET", "/api/progress"),
    ("GET", "/static/app.js"),
    ("GET", "/favicon.ico"),
    ("POST", "/api/save"),
    ("POST", "/api/undo"),
    ("POST", "/api/resolve"),
]
MODES = {
    "single": {"round": "r1", "annotator": "alice"},
    "team": {"round": "r1", "team": {"tok-alice-0123456789": "alice", "tok-bob-01234567": "bob"}},
    "adjudicator": {"round": "r1", "annotator": "carol", "adjudicate": True},
}


def call(app: TestClient, method: str, path: str, issue: str = "x", **kwargs):
    body = {"json": {"issue": issue, "fields": FAULT}} if method == "POST" else {}
    return app.request(method, path, **body, **kwargs)


def signed_in(store, taxonomy, mode: str) -> tuple[TestClient, Settings]:
    settings = Settings(store, taxonomy, **MODES[mode])
    app = TestClient(create_app(settings), base_url=BASE, follow_redirects=False)
    token = next(iter(settings.team))
    assert app.get(f"/?t={token}").status_code == 200
    return app, settings


@pytest.mark.parametrize("mode", MODES)
def test_a_foreign_host_gets_400_on_every_route(world, taxonomy, mode) -> None:
    store, _ = world
    app, _ = signed_in(store, taxonomy, mode)
    # the browser holds the secret's cookie: a page that rebound its own name to this
    # address (DNS rebinding) would not even have that, and still gets nothing
    for method, path in ROUTES:
        answer = call(app, method, path, headers={"host": "attacker.example:8765"})
        assert answer.status_code == 400, (method, path)
        assert answer.headers["x-content-type-options"] == "nosniff"
    for name in ("localhost:8765", "127.0.0.1:8765", "127.0.0.1"):
        assert app.get("/api/progress", headers={"host": name}).status_code == 200, name


def test_more_host_names_are_answered_only_when_allowed(world, taxonomy) -> None:
    store, _ = world
    app = client(store, taxonomy, round="r1", annotator="alice", allow_hosts=["annot.lab"])
    assert app.get("/api/progress", headers={"host": "annot.lab:8765"}).status_code == 200
    assert app.get("/api/progress", headers={"host": "other.lab:8765"}).status_code == 400
    bound = client(store, taxonomy, round="r1", annotator="alice", host="10.1.2.3")
    assert bound.get("/api/progress", headers={"host": "10.1.2.3:8765"}).status_code == 200


@pytest.mark.parametrize("mode", MODES)
def test_without_the_secret_every_route_is_403(world, taxonomy, mode) -> None:
    store, chosen = world
    settings = Settings(store, taxonomy, **MODES[mode])
    app = create_app(settings)
    stranger = TestClient(app, base_url=BASE, follow_redirects=False)
    forger = TestClient(app, base_url=BASE, follow_redirects=False)
    forger.cookies.set(COOKIE, "not-the-secret")
    token = next(iter(settings.team))
    # another port's cookie (another app on this machine) is not this app's
    elsewhere = TestClient(app, base_url=BASE, follow_redirects=False)
    elsewhere.cookies.set("issueminer_9999", token)
    for method, path in ROUTES:
        for browser, params in [
            (stranger, {}),
            (stranger, {"t": "not-the-secret"}),
            (forger, {}),
            (elsewhere, {}),
        ]:
            answer = call(browser, method, path, params=params)
            assert answer.status_code == 403, (method, path, params)
            assert "printed" in answer.text and answer.headers["cache-control"] == "no-store"
    # the secret signs a browser in only through the link, never as part of a save
    saved = stranger.post(f"/api/save?t={token}", json={"issue": chosen[0], "fields": FAULT})
    assert saved.status_code == 403
    with store.session() as session:
        assert session.scalars(select(Annotation)).all() == []


def test_the_link_moves_the_secret_into_a_strict_cookie(world, taxonomy) -> None:
    store, chosen = world
    settings = Settings(store, taxonomy, round="r1", annotator="alice")
    app = TestClient(create_app(settings), base_url=BASE, follow_redirects=False)
    token = settings.link_token("alice")
    assert len(token) >= 24 and token != Settings(store, taxonomy, annotator="alice").link_token(
        "alice"
    )
    answer = app.get(f"/label?issue={chosen[1]}&t={token}")
    assert answer.status_code == 200 and token not in answer.text
    # on to the same address without the secret, by the page itself (so the strict cookie
    # goes along even when the link was opened from another site)
    assert f'content="0; url=/label?issue={chosen[1]}"' in answer.text
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}={token};")
    assert {"HttpOnly", "SameSite=strict", "Path=/"} <= {p.strip() for p in cookie.split(";")}
    page = app.get(f"/label?issue={chosen[1]}")
    assert page.status_code == 200 and uid_on(page.text) == chosen[1]


def test_every_answer_carries_the_local_app_headers(world, taxonomy) -> None:
    store, chosen = world
    app = client(store, taxonomy, round="r1", annotator="alice")
    for method, path in ROUTES:
        headers = call(app, method, path, issue=chosen[0]).headers
        assert headers["cache-control"] == "no-store", path
        assert headers["x-content-type-options"] == "nosniff", path
        assert "frame-ancestors 'none'" in headers["content-security-policy"], path
