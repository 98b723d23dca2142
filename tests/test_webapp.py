"""Every route of the annotation app, through Starlette's test client."""

from __future__ import annotations

import re
import socket

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from issueminer.label import adjudication, rounds
from issueminer.label.webapp.app import Settings, create_app
from issueminer.store import Annotation, FinalLabel, Issue, Store
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
    # an issue outside the round is not the round's to label (nor to read through it)
    outside = app.get(f"/label?issue={_hostile_uid(store)}")
    assert "is not in round r1" in outside.text and "data-uid" not in outside.text
    anywhere = client(store, taxonomy, annotator="alice")  # no round: any issue
    hostile = anywhere.get(f"/label?issue={_hostile_uid(store)}")
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
    answer = undone.json()
    # what was undone comes back, to be put in the form again
    assert (answer["ok"], answer["issue"], answer["status"]) == (True, chosen[0], "done")
    with store.session() as session:
        assert answer["title"] == session.get(Issue, chosen[0]).title
    assert answer["undone"]["leaf_symptom"] == FAULT["leaf_symptom"]
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
    token = next(iter(settings.people()))
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
        assert app.get("/", headers={"host": name}).status_code == 303, name


def test_more_host_names_are_answered_only_when_allowed(world, taxonomy) -> None:
    store, _ = world
    app = client(store, taxonomy, round="r1", annotator="alice", allow_hosts=["annot.lab"])
    assert app.get("/api/progress", headers={"host": "annot.lab:8765"}).status_code == 200
    assert app.get("/api/progress", headers={"host": "other.lab:8765"}).status_code == 400
    bound = client(store, taxonomy, round="r1", annotator="alice", host="10.1.2.3")
    assert bound.get("/api/progress", headers={"host": "10.1.2.3:8765"}).status_code == 200
    # an IPv6 address arrives in brackets, the loopback one answered by default
    assert bound.get("/api/progress", headers={"host": "[::1]:8765"}).status_code == 200
    v6 = client(store, taxonomy, round="r1", annotator="alice", host="fd00::7")
    assert v6.get("/api/progress", headers={"host": "[fd00::7]:8765"}).status_code == 200
    assert v6.get("/api/progress", headers={"host": "[fd00::8]:8765"}).status_code == 400


@pytest.mark.parametrize("mode", MODES)
def test_without_the_secret_every_route_is_403(world, taxonomy, mode) -> None:
    store, chosen = world
    settings = Settings(store, taxonomy, **MODES[mode])
    app = create_app(settings)
    stranger = TestClient(app, base_url=BASE, follow_redirects=False)
    forger = TestClient(app, base_url=BASE, follow_redirects=False)
    forger.cookies.set(COOKIE, "not-the-secret")
    token = next(iter(settings.people()))
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


# ---- roles: annotators label, the adjudicator reads everyone and records final labels ------
BOB_MEMO = "bob-private-memo: the hang comes from the firewall"


def _team(store, taxonomy):
    team = Settings.team_tokens(["alice", "bob"])
    judges = Settings.team_tokens(["carol"])
    settings = Settings(store, taxonomy, round="r1", team=team, adjudicators=judges)
    app = create_app(settings)
    browsers = {}
    for name in ("alice", "bob", "carol"):
        browsers[name] = TestClient(app, base_url=BASE, follow_redirects=False)
        assert browsers[name].get(f"/?t={settings.link_token(name)}").status_code == 200
    return browsers


def _save(browser: TestClient, uid: str, fields: dict, based_on=None, status="done"):
    body = {"issue": uid, "fields": fields, "status": status, "based_on": based_on}
    return browser.post("/api/save", json=body)


def test_an_annotator_never_reaches_other_labels_or_final_labels(world, taxonomy) -> None:
    store, chosen = world
    people = _team(store, taxonomy)
    for uid in chosen:
        assert _save(people["alice"], uid, FAULT).status_code == 200
        bob = {**(HOWTO if uid == chosen[0] else FAULT), "memo": BOB_MEMO}
        assert _save(people["bob"], uid, bob).status_code == 200
    alice = people["alice"]
    for path in ("/adjudicate", f"/adjudicate?issue={chosen[0]}"):
        refused = alice.get(path)
        assert refused.status_code == 403 and BOB_MEMO not in refused.text
    resolve = alice.post("/api/resolve", json={"issue": chosen[0], "fields": FAULT})
    assert resolve.status_code == 403
    for uid in chosen:  # her own pages show her label only
        page = alice.get(f"/label?issue={uid}")
        assert page.status_code == 200 and BOB_MEMO not in page.text
        assert '"issue_type": "how-to question"' not in page.text
    # the adjudicator sees both sides, and cannot label as a member
    carol = people["carol"]
    assert carol.get("/").headers["location"] == "/adjudicate"
    judged = carol.get("/adjudicate")
    assert judged.status_code == 200 and BOB_MEMO in judged.text
    assert "issue type" in judged.text and "They differ on: issue type" in judged.text
    assert carol.get("/label").status_code == 403
    assert _save(carol, chosen[1], FAULT).status_code == 403
    assert carol.post("/api/resolve", json={"issue": chosen[0], "fields": FAULT}).json() == {
        "ok": True,
        "left": 0,
    }
    with store.session() as session:
        final = session.scalars(select(FinalLabel)).one()
        assert (final.issue_uid, final.resolved_by) == (chosen[0], "carol")


def test_a_save_based_on_a_changed_label_is_refused_with_both_versions(world, taxonomy) -> None:
    store, chosen = world
    app = client(store, taxonomy, round="r1", annotator="alice")
    page = app.get(f"/label?issue={chosen[0]}")
    assert 'data-version=""' in page.text  # nothing saved yet
    first = _save(app, chosen[0], FAULT)
    assert first.status_code == 200
    version = first.json()["saved"]
    assert f'data-version="{version}"' in app.get(f"/label?issue={chosen[0]}").text
    # a second tab opened before the first save still says "no label yet"
    stale = _save(app, chosen[0], HOWTO)
    assert stale.status_code == 409
    body = stale.json()
    assert body["stale"] and body["version"] == version and "another tab" in body["error"]
    assert body["saved"]["labels"]["leaf_symptom"] == FAULT["leaf_symptom"]
    assert body["saved"]["status"] == "done"
    # choosing to save over it, knowingly
    over = _save(app, chosen[0], HOWTO, based_on=version)
    assert over.status_code == 200
    assert _save(app, chosen[0], FAULT, based_on=version).status_code == 409
    assert _save(app, chosen[0], FAULT, based_on="1").status_code == 400
    # an undo changes the version too: a page opened before it cannot overwrite it
    assert app.post("/api/undo", json={}).json()["ok"]
    assert _save(app, chosen[0], FAULT, based_on=over.json()["saved"]).status_code == 409
    with store.session() as session:
        rows = session.scalars(select(Annotation).order_by(Annotation.id)).all()
        assert [r.provenance for r in rows] == ["app", "app", "app:undo"]


def test_only_disagreements_between_done_member_labels_are_resolvable(world, taxonomy) -> None:
    store, chosen = world
    with store.session() as session:
        save = rounds.save_label
        save(session, taxonomy, chosen[0], "alice", "r1", FAULT, "pending")
        save(session, taxonomy, chosen[0], "bob", "r1", HOWTO, "pending")  # both pending
        save(session, taxonomy, chosen[1], "alice", "r1", FAULT)
        save(session, taxonomy, chosen[1], "bob", "r1", HOWTO, "pending")  # one still pending
        save(session, taxonomy, chosen[2], "alice", "r1", FAULT)
        save(session, taxonomy, chosen[2], "Alice", "r1", HOWTO)  # not a member
        save(session, taxonomy, chosen[3], "alice", "r1", FAULT)
        save(session, taxonomy, chosen[3], "bob", "r1", HOWTO)  # the one disagreement
        assert [d.issue_uid for d in adjudication.disagreements(session, "r1")] == [chosen[3]]
        for uid in chosen[:3]:
            with pytest.raises(rounds.LabelingError, match="not a disagreement"):
                adjudication.resolve(session, taxonomy, "r1", uid, "carol", FAULT)
        adjudication.resolve(session, taxonomy, "r1", chosen[3], "carol", HOWTO)
        with pytest.raises(rounds.LabelingError, match="not a disagreement"):
            adjudication.resolve(session, taxonomy, "r1", chosen[3], "carol", FAULT)  # twice


def test_members_are_checked_exactly_and_adjudication_waits_for_them(world, taxonomy) -> None:
    store, chosen = world
    with store.session() as session:
        rounds.check_member(session, "r1", "alice")
        with pytest.raises(rounds.LabelingError) as wrong_case:
            rounds.check_member(session, "r1", "Alice")
        assert "members: alice, bob" in str(wrong_case.value)
        assert "did you mean 'alice'" in str(wrong_case.value)
        with pytest.raises(rounds.LabelingError, match=r"\(members: alice, bob\)$"):
            rounds.check_member(session, "r1", "mallory")
        rounds.check_adjudicator(session, "r1", "carol")  # not a member: any time
        with pytest.raises(rounds.LabelingError, match=r"alice \(4 left\), bob \(4 left\)"):
            rounds.check_adjudicator(session, "r1", "alice")
        for uid in chosen:
            for name in ("alice", "bob"):
                rounds.save_label(session, taxonomy, uid, name, "r1", FAULT)
        rounds.check_adjudicator(session, "r1", "alice")  # everyone finished


def test_suggestions_from_after_the_round_began_are_not_shown(world, taxonomy) -> None:
    from datetime import timedelta

    from issueminer.store import LabelingRound, Prediction

    store, chosen = world
    with store.session() as session:
        began = session.get(LabelingRound, "r1").created_at
        for label, when in (("fault", began - timedelta(days=1)), ("how-to question", None)):
            session.add(
                Prediction(
                    issue_uid=chosen[0],
                    model_id=f"model-{label}",
                    target="issue_type",
                    label=label,
                    probability=0.9,
                    probabilities={label: 0.9},
                    **({"created_at": when} if when else {}),
                )
            )
    with store.session() as session:
        # outside the round the newest model speaks; inside it, only one from before it
        assert [s["model"] for s in rounds.suggestions(session, chosen[0])] == [
            "model-how-to question"
        ]
        assert [s["model"] for s in rounds.suggestions(session, chosen[0], "r1")] == ["model-fault"]


def test_cli_refuses_non_members_and_mixed_roles(runner, world) -> None:
    from issueminer.cli.main import app

    store, _ = world
    url = store.engine.url.render_as_string(hide_password=False)
    cases = [
        (["--annotator", "Alice"], "did you mean 'alice'"),
        (["--team", "alice,mallory"], "'mallory' is not a member of round 'r1'"),
        (["--team", "alice,bob", "--adjudicate"], "--adjudicator NAME"),
        (["--annotator", "carol", "--adjudicator", "dave"], "--adjudicator goes with --team"),
        (["--annotator", "alice", "--adjudicate"], "before every member has finished"),
    ]
    for options, message in cases:
        result = runner.invoke(app, ["label", "--round", "r1", *options, "--db", url])
        assert result.exit_code == 1 and message in result.output, (options, result.output)
        assert "http://" not in result.output  # refused before any link is printed
