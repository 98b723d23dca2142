"""The annotation web app: server-rendered pages, a little plain JavaScript, JSON saves.

Who is signed in, and as what (annotator or adjudicator), comes from a secret made at every
start (`access`). Annotators reach only their own labels; the adjudicator reads every
member's labels and records final labels. Every page carries a strict
Content-Security-Policy: no inline script runs, whatever an issue body contains.
"""

from __future__ import annotations

import functools
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from issueminer.label import adjudication, rounds
from issueminer.label.rounds import LabelingError, StaleLabel
from issueminer.label.webapp.access import (
    LOCAL_NAMES,
    SIGNED_IN,
    RequireSecret,
    SecurityHeaders,
    forbidden,
)
from issueminer.label.webapp.pickers import fix_pattern_counts, load_codebook
from issueminer.label.webapp.render import render_body
from issueminer.store import (
    ADJUDICATOR,
    ANNOTATOR,
    Annotation,
    Issue,
    Reply,
    Store,
    label_values,
)
from issueminer.taxonomy import FIELD_OF, Taxonomy

HERE = Path(__file__).parent
QUEUE_SIZE_TTL = 30.0


@dataclass
class Settings:
    store: Store
    taxonomy: Taxonomy
    round: str | None = None
    annotator: str | None = None  # single-person mode: labels, or adjudicates with `adjudicate`
    team: dict[str, str] = field(default_factory=dict)  # token -> annotator (team mode)
    adjudicate: bool = False
    adjudicators: dict[str, str] = field(default_factory=dict)  # token -> adjudicator
    host: str = "127.0.0.1"  # the address the app is bound to
    allow_hosts: list[str] = field(default_factory=list)  # further names it answers to

    _queue_size: tuple[float, int] | None = None

    def __post_init__(self) -> None:
        # one person gets a secret too: a page in another tab must not act as them
        if self.annotator and not self.team and not self.adjudicators:
            tokens = self.team_tokens([self.annotator])
            if self.adjudicate:
                self.adjudicators = tokens
            else:
                self.team = tokens

    def people(self) -> dict[str, tuple[str, str]]:
        """Every secret of this start: token -> (name, role)."""
        return {
            **{token: (name, ANNOTATOR) for token, name in self.team.items()},
            **{token: (name, ADJUDICATOR) for token, name in self.adjudicators.items()},
        }

    def link_token(self, name: str, role: str | None = None) -> str:
        """The secret of `name`'s link (as `role`, when the name has both)."""
        return next(
            token
            for token, (who, its_role) in self.people().items()
            if who == name and role in (None, its_role)
        )

    def allowed_hosts(self) -> list[str]:
        """Host names as a browser sends them: an IPv6 address in brackets ([::1])."""
        names = [self.host, *LOCAL_NAMES, *self.allow_hosts]
        return list(dict.fromkeys(f"[{n}]" if ":" in n else n for n in names))

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
    with settings.store.session() as session:  # once per start: one pass over final labels
        base_picker = _picker_data(taxonomy, fix_pattern_counts(session, settings.round))
    fixed_picker = script_json(base_picker)
    # label fields as the study names them ("symptom", not leaf_symptom)
    field_names = {
        "issue_type": "issue type",
        **{f: taxonomy.labels.get(d, d) for d, f in FIELD_OF.items()},
        "specific": taxonomy.labels.get("specific", "specific"),
    }
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

    def who(request: Request, role: str) -> str:
        """The signed-in person, if the route is theirs: annotators never reach another
        person's labels or the final labels, adjudicators never save a member's label."""
        name, their_role = request.scope[SIGNED_IN]
        if their_role != role:
            raise NotYours(their_role)
        return name

    # drafts in the browser are keyed by database, round and person as well as issue, so a
    # shared browser or a second study never offers one person's unsaved edits to another
    database = hashlib.sha256(
        settings.store.engine.url.render_as_string(hide_password=True).encode()
    ).hexdigest()[:12]

    def draft_scope(person: str) -> str:
        return json.dumps([database, settings.round, person])

    def page(name: str, session: Any = None, **context: Any) -> Response:
        text = templates.get_template(name).render(
            picker=picker(session) if session is not None else fixed_picker,
            round=settings.round,
            **words,
            **context,
        )
        return HTMLResponse(text)

    async def home(request: Request) -> Response:
        _, role = request.scope[SIGNED_IN]
        return RedirectResponse("/adjudicate" if role == ADJUDICATOR else "/label", 303)

    async def label_page(request: Request) -> Response:
        annotator = who(request, ANNOTATOR)
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
            if settings.round and not rounds.in_round(session, settings.round, uid):
                return page(
                    "done.html",
                    annotator=annotator,
                    progress=progress,
                    message=f"issue {uid} is not in round {settings.round}",
                )
            # the newest row is the version a save must be based on; an undo leaves no label
            newest = rounds.newest_row(session, uid, annotator, settings.round)
            current = rounds.standing(newest)
            return page(
                "label.html",
                session,
                annotator=annotator,
                issue=issue,
                progress=progress,
                current=script_json(_label_dict(current)),
                version="" if newest is None else newest.id,
                draft_scope=draft_scope(annotator),
                status=current.status if current else None,
                suggestions=rounds.suggestions(session, uid, settings.round),
                history=rounds.recent_decisions(session, annotator, settings.round),
            )

    async def adjudicate_page(request: Request) -> Response:
        resolver = who(request, ADJUDICATOR)
        if settings.round is None:
            return JSONResponse({"error": "adjudication needs --round"}, status_code=400)
        with settings.store.session() as session:
            pending = adjudication.disagreements(session, settings.round)
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
                draft_scope=draft_scope(resolver),
                differing=[field_names.get(f, f) for f in item.dimensions],
                left=len(pending),
                # empty until the adjudicator takes a side (a / o) or fills it in:
                # starting from one side would nudge the decision towards it
                current=script_json({}),
                differing_fields=item.dimensions,
            )

    async def save(request: Request) -> Response:
        annotator = who(request, ANNOTATOR)
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
                based_on=_version(body),
            )
            saved = annotation.id
        with settings.store.session() as session:
            next_uid = rounds.next_issue(
                session, annotator, settings.round, after=str(body.get("issue"))
            )
        return JSONResponse({"ok": True, "saved": saved, "next": next_uid})

    async def undo(request: Request) -> Response:
        annotator = who(request, ANNOTATOR)
        await _json(request)
        with settings.store.session() as session:
            uid = rounds.undo_last(session, annotator, settings.round)
            if uid is None:
                return JSONResponse({"ok": False, "issue": None})
            # what was undone goes back into the form, to edit rather than retype
            undo_row = rounds.newest_row(session, uid, annotator, settings.round)
            undone = session.get(Annotation, (undo_row.raw_labels or {}).get("undo_of"))
            issue = session.get(Issue, uid)
            return JSONResponse(
                {
                    "ok": True,
                    "issue": uid,
                    "title": issue.title or uid,
                    "status": undone.status if undone else None,
                    "undone": {**label_values(undone), "memo": undone.memo} if undone else {},
                }
            )

    async def progress(request: Request) -> Response:
        annotator = who(request, ANNOTATOR)
        with settings.store.session() as session:
            return JSONResponse(
                rounds.progress(session, annotator, settings.round, settings.queue_size(session))
            )

    async def resolve(request: Request) -> Response:
        resolver = who(request, ADJUDICATOR)
        body = await _json(request)
        if settings.round is None:
            raise LabelingError("adjudication needs a round")
        with settings.store.session() as session:
            adjudication.resolve(
                session,
                settings.taxonomy,
                settings.round,
                str(body.get("issue")),
                resolver,
                body.get("fields") or {},
            )
        with settings.store.session() as session:
            left = len(adjudication.disagreements(session, settings.round))
        return JSONResponse({"ok": True, "left": left})

    async def unresolve(request: Request) -> Response:
        resolver = who(request, ADJUDICATOR)
        await _json(request)
        if settings.round is None:
            raise LabelingError("adjudication needs a round")
        with settings.store.session() as session:
            undone = adjudication.undo_resolution(session, settings.round, resolver)
            if undone is None:
                return JSONResponse({"ok": False, "issue": None})
            issue = session.get(Issue, undone.issue_uid)
            return JSONResponse(
                {
                    "ok": True,
                    "issue": undone.issue_uid,
                    "title": issue.title or undone.issue_uid,
                    "undone": {**label_values(undone), "memo": undone.memo},
                }
            )

    @functools.cache
    def codebook_data() -> str:
        return json.dumps(load_codebook(taxonomy))

    async def codebook(request: Request) -> Response:
        # the study's codebook entries (examples, decision rules) for the pickers' `?` key;
        # read on the first ask, so starting the app does not parse the codebook
        return Response(codebook_data(), media_type="application/json")

    app = Starlette(
        routes=[
            Route("/", home),
            Route("/label", label_page),
            Route("/adjudicate", adjudicate_page),
            Route("/api/save", save, methods=["POST"]),
            Route("/api/undo", undo, methods=["POST"]),
            Route("/api/progress", progress),
            Route("/api/resolve", resolve, methods=["POST"]),
            Route("/api/unresolve", unresolve, methods=["POST"]),
            Route("/api/codebook", codebook),
            Route("/favicon.ico", _no_icon),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ],
        exception_handlers={
            LabelingError: _invalid,
            _BadRequest: _bad_request,
            NotYours: _not_yours,
            StaleLabel: _stale,
        },
        # outermost first: every answer gets the headers, a foreign Host gets 400 before
        # the secret is looked at, and only then does a route run
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(TrustedHostMiddleware, allowed_hosts=settings.allowed_hosts()),
            Middleware(RequireSecret, people=settings.people()),
        ],
    )
    return app


def script_json(data: Any) -> str:
    """JSON safe inside <script type="application/json">: a memo cannot close the tag."""
    text = json.dumps(data, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class NotYours(Exception):
    """A signed-in person on a route of the other role."""


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


def _version(body: dict[str, Any]) -> int | None:
    """The version a save was based on: a page always sends one (null: no label yet), so a
    save without one counts as based on nothing and cannot overwrite a saved label."""
    version = body.get("based_on")
    if version is None:
        return None
    if isinstance(version, bool) or not isinstance(version, int):
        raise _BadRequest("based_on must be a label version (an integer) or null")
    return version


async def _no_icon(_request: Request) -> Response:
    return Response(status_code=204)  # browsers ask for one; a 404 would log an error


async def _not_yours(request: Request, exc: Exception) -> Response:
    role = str(exc)
    message = (
        "annotators label; only the round's adjudicator sees other people's labels and "
        "records final labels"
        if role == ANNOTATOR
        else "an adjudicator resolves disagreements; labelling is the members' own"
    )
    return forbidden(request.url.path, message)


async def _stale(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StaleLabel)
    return JSONResponse(
        {
            "ok": False,
            "error": str(exc),
            "stale": True,
            "version": exc.version,
            "saved": {"labels": exc.labels, "status": exc.status},
        },
        status_code=409,
    )


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


def _picker_data(taxonomy: Taxonomy, fix_counts: dict[str, Any] | None = None) -> dict[str, Any]:
    """The taxonomy flattened into the lists the picker filters, with definitions, the
    aliases the filter also matches and the fix patterns' order: most frequent in final
    labels first, overall and per symptom (`pickers.fix_pattern_counts`; only the order
    goes to the page, not the counts)."""
    definition = taxonomy.definition

    def known(dimension: str, name: str, parent: str | None = None) -> dict[str, Any]:
        node = taxonomy.node(dimension, f"{parent}/{name}" if parent else name)
        return {"aliases": list(node.aliases)} if node and node.aliases else {}

    symptoms = [
        {
            "stage": stage,
            "inner": inner,
            "leaf": leaf,
            "path": _path(stage, inner, leaf),
            "definition": definition("symptom", leaf),
            "context": definition("inner_category", inner) if inner else definition("stage", stage),
            **known("symptom", leaf),
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
                **known("howto_topic", topic),
            }
        )
        howto += [
            {
                "topic": topic,
                "subtopic": sub,
                "path": _path(topic, sub),
                "definition": definition("howto_subtopic", f"{topic}/{sub}"),
                **known("howto_subtopic", sub, topic),
            }
            for sub in subs
        ]
    counts = fix_counts or {}
    return {
        "issue_types": [
            {"name": n, "definition": definition("issue_type", n), **known("issue_type", n)}
            for n in taxonomy.names("issue_type")
        ],
        "symptoms": symptoms,
        "fix_patterns": [
            {"name": n, "definition": definition("fix_pattern", n), **known("fix_pattern", n)}
            for n in taxonomy.names("fix_pattern")
        ],
        "fix_order": {
            "overall": list(counts.get("overall", {})),
            "by_symptom": {leaf: list(c) for leaf, c in counts.get("by_symptom", {}).items()},
        },
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
