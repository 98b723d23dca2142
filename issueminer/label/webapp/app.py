"""The annotation web app: server-rendered pages, a little plain JavaScript, JSON saves.

Who is labelling comes from a secret made at every start: one per annotator (a single
annotator, or each member of a team) and per adjudicator. The printed link carries it once;
the app moves it into an HttpOnly, SameSite=Strict cookie and drops it from the address
bar, and every route, pages, API and static files alike, refuses a request without it. Only
the host names the app was started for are answered, so a page elsewhere that rebinds its
own name to this address (DNS rebinding) gets nothing. Every page carries a strict
Content-Security-Policy: no inline script runs, whatever an issue body contains.
"""

from __future__ import annotations

import html
import json
import secrets
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from issueminer.label import rounds
from issueminer.label.rounds import LabelingError
from issueminer.label.webapp.render import render_body
from issueminer.store import Issue, Reply, Store, label_values
from issueminer.taxonomy import Taxonomy

HERE = Path(__file__).parent
# Cookies are shared by every port of a host, so each app's cookie is named after its port:
# two apps on one machine (say, two rounds) do not sign each other's tabs out.
TOKEN_COOKIE = "issueminer_{port}"
TOKEN_PARAM = "t"  # the printed link's query parameter
# names a browser on this machine may use for the app, whatever address it is bound to
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
QUEUE_SIZE_TTL = 30.0
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


@dataclass
class Settings:
    store: Store
    taxonomy: Taxonomy
    round: str | None = None
    annotator: str | None = None  # single-annotator mode
    team: dict[str, str] = field(default_factory=dict)  # token -> annotator (team mode)
    adjudicate: bool = False
    host: str = "127.0.0.1"  # the address the app is bound to
    allow_hosts: list[str] = field(default_factory=list)  # further names it answers to

    _queue_size: tuple[float, int] | None = None

    def __post_init__(self) -> None:
        # one annotator gets a secret too: a page in another tab must not act as them
        if not self.team and self.annotator:
            self.team = self.team_tokens([self.annotator])

    def link_token(self, name: str) -> str:
        """The secret of `name`'s link."""
        return next(token for token, who in self.team.items() if who == name)

    def allowed_hosts(self) -> list[str]:
        return list(dict.fromkeys([self.host, *LOCAL_NAMES, *self.allow_hosts]))

    def queue_size(self, session: Any) -> int:
        """The queue's size, recounted at most every QUEUE_SIZE_TTL seconds (100k rows: ~15 ms)."""
        now = time.monotonic()
        if self._queue_size is None or now - self._queue_size[0] > QUEUE_SIZE_TTL:
            self._queue_size = (now, rounds.queue_size(session, self.round))
        return self._queue_size[1]

    @classmethod
    def team_tokens(cls, annotators: list[str]) -> dict[str, str]:
        return {secrets.token_urlsafe(18): name for name in annotators}


def create_app(settings: Settings) -> Starlette:
    templates = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"])
    )
    taxonomy = settings.taxonomy
    base_picker = _picker_data(taxonomy)
    fixed_picker = script_json(base_picker)
    # what the study calls things, the same on every page
    words = {
        "labels": taxonomy.labels,
        "plurals": {dimension: taxonomy.plural(dimension) for dimension in taxonomy.labels},
        "open_coding": taxonomy.open_coding,
    }

    def picker(session: Any) -> str:
        # open coding: every annotator sees the categories proposed so far
        if not taxonomy.open_coding:
            return fixed_picker
        return script_json(
            _with_proposals(taxonomy, base_picker, rounds.proposals(session, taxonomy))
        )

    def who(request: Request) -> str:
        return request.scope[SIGNED_IN]

    def page(name: str, session: Any = None, **context: Any) -> Response:
        text = templates.get_template(name).render(
            picker=picker(session) if session is not None else fixed_picker,
            round=settings.round,
            **words,
            **context,
        )
        return HTMLResponse(text)

    async def home(request: Request) -> Response:
        who(request)
        return RedirectResponse("/adjudicate" if settings.adjudicate else "/label", 303)

    async def label_page(request: Request) -> Response:
        annotator = who(request)
        with settings.store.session() as session:
            uid = request.query_params.get("issue") or rounds.next_issue(
                session, annotator, settings.round
            )
            progress = rounds.progress(
                session, annotator, settings.round, settings.queue_size(session)
            )
            if uid is None:
                return page("done.html", annotator=annotator, progress=progress)
            issue = _issue_view(session, uid)
            if issue is None:
                return page(
                    "done.html",
                    annotator=annotator,
                    progress=progress,
                    message=f"no issue {uid}",
                )
            current = rounds.current_label(session, uid, annotator, settings.round)
            return page(
                "label.html",
                session,
                annotator=annotator,
                issue=issue,
                progress=progress,
                current=script_json(_label_dict(current)),
                status=current.status if current else None,
                suggestions=rounds.suggestions(session, uid),
            )

    async def adjudicate_page(request: Request) -> Response:
        resolver = who(request)
        if settings.round is None:
            return JSONResponse({"error": "adjudication needs --round"}, status_code=400)
        with settings.store.session() as session:
            pending = rounds.disagreements(session, settings.round)
            wanted = request.query_params.get("issue")
            item = next((d for d in pending if d.issue_uid == wanted), None) if wanted else None
            item = item or (pending[0] if pending else None)
            if item is None:
                return page(
                    "done.html",
                    annotator=resolver,
                    adjudication=True,
                    progress={"left": 0},
                )
            sides = [
                {"annotator": name, "labels": _label_dict(a), "memo": a.memo, "status": a.status}
                for name, a in sorted(item.labels.items())
            ]
            return page(
                "adjudicate.html",
                session,
                annotator=resolver,
                issue=_issue_view(session, item.issue_uid),
                sides=sides,
                sides_json=script_json(sides),
                differing=item.dimensions,
                left=len(pending),
                current=script_json(sides[0]["labels"]),
            )

    async def save(request: Request) -> Response:
        annotator = who(request)
        body = await _json(request)
        with settings.store.session() as session:
            annotation = rounds.save_label(
                session,
                settings.taxonomy,
                str(body.get("issue")),
                annotator,
                settings.round,
                body.get("fields") or {},
                str(body.get("status") or "done"),
            )
            saved = annotation.id
        with settings.store.session() as session:
            next_uid = rounds.next_issue(
                session, annotator, settings.round, after=str(body.get("issue"))
            )
        return JSONResponse({"ok": True, "saved": saved, "next": next_uid})

    async def undo(request: Request) -> Response:
        annotator = who(request)
        await _json(request)
        with settings.store.session() as session:
            uid = rounds.undo_last(session, annotator, settings.round)
        return JSONResponse({"ok": uid is not None, "issue": uid})

    async def progress(request: Request) -> Response:
        annotator = who(request)
        with settings.store.session() as session:
            return JSONResponse(
                rounds.progress(session, annotator, settings.round, settings.queue_size(session))
            )

    async def resolve(request: Request) -> Response:
        resolver = who(request)
        body = await _json(request)
        if settings.round is None:
            raise LabelingError("adjudication needs a round")
        with settings.store.session() as session:
            rounds.resolve(
                session,
                settings.taxonomy,
                settings.round,
                str(body.get("issue")),
                resolver,
                body.get("fields") or {},
            )
        with settings.store.session() as session:
            left = len(rounds.disagreements(session, settings.round))
        return JSONResponse({"ok": True, "left": left})

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/label", label_page),
            Route("/adjudicate", adjudicate_page),
            Route("/api/save", save, methods=["POST"]),
            Route("/api/undo", undo, methods=["POST"]),
            Route("/api/progress", progress),
            Route("/api/resolve", resolve, methods=["POST"]),
            Route("/favicon.ico", _no_icon),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={
            LabelingError: _invalid,
            _BadRequest: _bad_request,
        },
        # outermost first: every answer gets the headers, a foreign Host gets 400 before
        # the secret is looked at, and only then does a route run
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts()),
            Middleware(RequireSecret, team=settings.team),
        ],
    )
    return app


def script_json(data: Any) -> str:
    """JSON safe inside <script type="application/json">: a memo cannot close the tag."""
    text = json.dumps(data, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class SecurityHeaders:
    """ASGI middleware adding the headers above to every response."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


SIGNED_IN = "issueminer.annotator"  # where RequireSecret leaves who signed in, in the scope
SIGN_IN_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta http-equiv="refresh" content="0; url={url}"><title>issueminer</title></head>
<body><p>Signed in. <a href="{url}">Continue</a>.</p></body></html>"""
NO_SECRET = (
    "This address needs the link that `issueminer label` printed when it started "
    "(it carries a secret made at every start)."
)


class RequireSecret:
    """ASGI middleware: only requests carrying a secret of this start get through.

    A link's `?t=SECRET` signs the browser in: the answer sets the cookie and sends the
    browser on to the same address without the secret (a meta refresh rather than a
    redirect, so the SameSite=Strict cookie goes with it even when the link was opened
    from another site). Afterwards the cookie alone is enough. Anything else gets 403.
    """

    def __init__(self, app: Any, team: dict[str, str]) -> None:
        self.app = app
        self.team = team

    def _named(self, token: str | None) -> str | None:
        # compare in constant time with every secret, so timing does not tell a near miss
        found = None
        for secret, name in self.team.items():
            if token is not None and secrets.compare_digest(token.encode(), secret.encode()):
                found = name
        return found

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cookie_name = TOKEN_COOKIE.format(port=(scope.get("server") or ("", 0))[1])
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), True)
        from_link = next((value for key, value in query if key == TOKEN_PARAM), None)
        if from_link is not None:
            name = self._named(from_link)
            if name is None or scope["method"] != "GET":
                await _refuse(scope, receive, send)
                return
            rest = urlencode([(k, v) for k, v in query if k != TOKEN_PARAM])
            await _signed_in(cookie_name, from_link, scope["path"] + (f"?{rest}" if rest else ""))(
                scope, receive, send
            )
            return
        name = self._named(_cookie(scope, cookie_name))
        if name is None:
            await _refuse(scope, receive, send)
            return
        scope[SIGNED_IN] = name
        await self.app(scope, receive, send)


def _cookie(scope: Any, name: str) -> str | None:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar = SimpleCookie()
            jar.load(value.decode("latin-1"))
            if name in jar:
                return jar[name].value
    return None


def _signed_in(cookie_name: str, token: str, url: str) -> Response:
    response = HTMLResponse(SIGN_IN_PAGE.format(url=html.escape(url, quote=True)))
    response.set_cookie(cookie_name, token, httponly=True, samesite="strict", path="/")
    return response


async def _refuse(scope: Any, receive: Any, send: Any) -> None:
    if scope["path"].startswith("/api/"):
        response: Response = JSONResponse({"ok": False, "error": NO_SECRET}, status_code=403)
    else:
        response = HTMLResponse(f"<!doctype html><p>{html.escape(NO_SECRET)}</p>", 403)
    await response(scope, receive, send)


class _BadRequest(Exception):
    pass


async def _json(request: Request) -> dict[str, Any]:
    # a JSON body cannot be sent by a plain cross-site form, which keeps saves same-origin
    if not request.headers.get("content-type", "").startswith("application/json"):
        raise _BadRequest("send JSON")
    try:
        body = await request.json()
    except ValueError as exc:
        raise _BadRequest("not valid JSON") from exc
    if not isinstance(body, dict):
        raise _BadRequest("expected a JSON object")
    return body


async def _no_icon(_request: Request) -> Response:
    return Response(status_code=204)  # browsers ask for one; a 404 would log an error


async def _invalid(_request: Request, exc: Exception) -> Response:
    return JSONResponse({"ok": False, "error": str(exc)}, status_code=422)


async def _bad_request(_request: Request, exc: Exception) -> Response:
    return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)


def _label_dict(annotation: Any) -> dict[str, Any]:
    if annotation is None:
        return {}
    return label_values(annotation)


def _issue_view(session: Any, uid: str) -> dict[str, Any] | None:
    issue = session.get(Issue, uid)
    if issue is None:
        return None
    replies = session.scalars(
        select(Reply).where(Reply.issue_uid == uid).order_by(Reply.accepted.desc(), Reply.id)
    ).all()
    return {
        "uid": issue.uid,
        "url": issue.url,
        "source": issue.source,
        "framework": issue.framework,
        "title": issue.title or "(no title stored; hydrate it with `issueminer crawl hydrate`)",
        "tags": issue.tags or [],
        "body": render_body(issue.body, issue.source),
        "replies": [
            {
                "kind": r.kind,
                "author": r.author,
                "accepted": r.accepted,
                "body": render_body(r.body, issue.source),
            }
            for r in replies
        ],
    }


PROPOSED = "proposed by an annotator; not in the study file yet"


def _path(*parts: str | None) -> str:
    return " › ".join(p for p in parts if p)


def _picker_data(taxonomy: Taxonomy) -> dict[str, Any]:
    """The taxonomy flattened into the lists the picker filters, with definitions."""
    definition = taxonomy.definition
    symptoms = [
        {
            "stage": stage,
            "inner": inner,
            "leaf": leaf,
            "path": _path(stage, inner, leaf),
            "definition": definition("symptom", leaf),
            "context": definition("inner_category", inner) if inner else definition("stage", stage),
        }
        for stage, inner, leaf in taxonomy.leaf_paths()
    ]
    howto = []
    for topic, subs in taxonomy.howto_tree.items():
        howto.append(
            {
                "topic": topic,
                "subtopic": None,
                "path": topic,
                "definition": definition("howto_topic", topic),
            }
        )
        howto += [
            {
                "topic": topic,
                "subtopic": sub,
                "path": _path(topic, sub),
                "definition": definition("howto_subtopic", f"{topic}/{sub}"),
            }
            for sub in subs
        ]
    return {
        "issue_types": [
            {"name": n, "definition": definition("issue_type", n)}
            for n in taxonomy.names("issue_type")
        ],
        "symptoms": symptoms,
        "fix_patterns": [
            {"name": n, "definition": definition("fix_pattern", n)}
            for n in taxonomy.names("fix_pattern")
        ],
        "howto": howto,
        "open_coding": taxonomy.open_coding,
    }


def _with_proposals(
    taxonomy: Taxonomy,
    picker: dict[str, Any],
    proposed: dict[str, list[tuple[str | None, ...]]],
) -> dict[str, Any]:
    """The picker lists and, after each, the categories proposed in open coding so far
    (`rounds.proposals`)."""
    extra = {
        "symptoms": [
            {
                "stage": stage,
                "inner": inner,
                "leaf": leaf,
                "path": _path(stage, inner, leaf),
                # a known leaf on a new path keeps its definition
                "definition": taxonomy.definition("symptom", leaf) or PROPOSED,
            }
            for stage, inner, leaf in proposed.get("symptoms", [])
        ],
        "howto": [
            {"topic": topic, "subtopic": sub, "path": _path(topic, sub), "definition": PROPOSED}
            for topic, sub in proposed.get("howto", [])
        ],
        "fix_patterns": [
            {"name": name, "definition": PROPOSED} for (name,) in proposed.get("fix_patterns", [])
        ],
    }
    return {
        **picker,
        **{
            key: picker[key] + [{**item, "proposed": True} for item in items]
            for key, items in extra.items()
        },
    }
