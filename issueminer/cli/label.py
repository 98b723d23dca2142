"""`issueminer label` (the annotation app) and `issueminer round` (sampling, progress)."""

from __future__ import annotations

import ipaddress
import re
import socket
from typing import Annotated, Any

import typer

from issueminer.analyse.stats import render_table
from issueminer.cli.common import (
    DbOption,
    Format,
    FormatOption,
    StudyOption,
    fail,
    iso_date,
    open_store,
    out,
    print_json,
    study_taxonomy,
)

round_app = typer.Typer(
    help="Labelling rounds: draw issues for double labelling, follow progress.",
    no_args_is_help=True,
)

LOOPBACK = "127.0.0.1"
UNSPECIFIED = {"0.0.0.0", "::"}  # "every address of this machine"
# a host name or address as a browser sends it in Host, without port; `*.` may lead
HOST_NAME = re.compile(r"(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")


def _names(text: str | None) -> list[str]:
    return [n.strip() for n in (text or "").split(",") if n.strip()]


def label(
    annotator: Annotated[
        str | None, typer.Option(help="Who labels (or resolves, with --adjudicate).")
    ] = None,
    round_name: Annotated[str | None, typer.Option("--round", help="The round to label.")] = None,
    team: Annotated[
        str | None,
        typer.Option(help="Comma-separated annotators; each gets a personal link with a token."),
    ] = None,
    adjudicate: Annotated[
        bool,
        typer.Option(help="--annotator NAME resolves the round's disagreements (final labels)."),
    ] = False,
    adjudicator: Annotated[
        str | None,
        typer.Option(help="With --team: who resolves disagreements; gets a link of their own."),
    ] = None,
    host: Annotated[
        str, typer.Option(help="Address to bind; not loopback only with --team.")
    ] = LOOPBACK,
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8765,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            help="A further host name the app answers to (a reverse proxy's name); repeatable. "
            "It always answers its bound address, localhost and 127.0.0.1."
        ),
    ] = None,
    db: DbOption = None,
    study: StudyOption = None,
) -> None:
    """Start the annotation app in the browser for one annotator, a team, or adjudication.

    Keys are listed on screen; every save is kept, nothing is overwritten.

    Every person's link carries a secret made at this start: keep it private.

    Example: issueminer label --annotator alice --round r1
    """
    import uvicorn

    from issueminer.label.webapp.app import Settings, create_app
    from issueminer.store import LabelingRound

    team_names = _names(team)
    if not team_names and not annotator:
        fail("say who labels: --annotator NAME, or --team a,b for personal links")
    if not _is_loopback(host) and not team_names:
        fail(
            f"binding to {host} exposes the app to the network: use --team so that every "
            "annotator needs a personal token"
        )
    if (adjudicate or adjudicator) and not round_name:
        fail("adjudication needs --round")
    if adjudicate and team_names:
        fail(
            "--adjudicate makes --annotator the adjudicator; with --team, name the adjudicator "
            "with --adjudicator NAME (annotators never get an adjudication link)"
        )
    if adjudicator and not team_names:
        fail("--adjudicator goes with --team; alone, use --annotator NAME --adjudicate")
    extra_hosts = _host_names(allow_host or [])
    if host in UNSPECIFIED:
        extra_hosts.append(socket.gethostname())
    store = open_store(db)
    taxonomy = study_taxonomy(store, study)
    if round_name:
        with store.session() as session:
            if session.get(LabelingRound, round_name) is None:
                fail(f"no round '{round_name}' (create it with `issueminer round create`)")
            _check_people(session, round_name, team_names or [annotator], adjudicate, adjudicator)
    _check_address(host, port)
    tokens = Settings.team_tokens(team_names) if team_names else {}
    judges = Settings.team_tokens([adjudicator]) if adjudicator else {}
    settings = Settings(
        store,
        taxonomy,
        round=round_name,
        annotator=annotator,
        team=tokens,
        adjudicate=adjudicate,
        adjudicators=judges,
        host=host,
        allow_hosts=extra_hosts,
    )
    base = f"http://{host}:{port}"
    if tokens:
        out.print("personal links (keep them private):")
        for token, name in tokens.items():
            out.print(f"  {name}: {base}/?t={token}")
        for token, name in judges.items():
            out.print(f"  {name} (adjudicator; for {name} only): {base}/?t={token}")
    else:
        doing = "adjudicating" if adjudicate else "labelling"
        token = settings.link_token(annotator or "")
        out.print(f"{doing} as {annotator} (keep the link private): {base}/?t={token}")
    if host in UNSPECIFIED:
        out.print(
            f"answering {', '.join(settings.allowed_hosts())}; open it by another name "
            "only after adding that name with --allow-host"
        )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")


def _check_people(
    session: Any, round_name: str, names: list[str], adjudicate: bool, adjudicator: str | None
) -> None:
    """Only the round's members label in it, and adjudication keeps their labels independent:
    refused here, before any link is printed, with the members named."""
    from issueminer.label import rounds

    try:
        if adjudicate:
            rounds.check_adjudicator(session, round_name, names[0])
            return
        for name in names:
            rounds.check_member(session, round_name, name)
        if adjudicator:
            rounds.check_adjudicator(session, round_name, adjudicator)
    except rounds.LabelingError as exc:
        fail(str(exc))


def _host_names(names: list[str]) -> list[str]:
    """--allow-host values as the host check compares them: a name, no scheme, port or path."""
    for name in names:
        if name == "*" or not HOST_NAME.fullmatch(name):
            fail(
                f"--allow-host {name!r} is not a host name: give the name alone, as in "
                "--allow-host annotate.example.org (no scheme, port or path; '*' would "
                "answer any page that rebinds its name to this address)"
            )
    return list(names)


def _check_address(host: str, port: int) -> None:
    """Bind once before the links are printed: a wrong host or a port in use would
    otherwise show up as a server error after links that lead nowhere."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        fail(f"cannot listen on --host {host} --port {port}: {exc.strerror or exc}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@round_app.command("create")
def create(
    annotators: Annotated[str, typer.Option(help="Comma-separated annotators, e.g. alice,bob.")],
    size: Annotated[
        int | None, typer.Option(help="How many issues to draw (--for-estimate: or --width).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Round name [default: round<N+1>].")] = None,
    stratify: Annotated[
        str | None, typer.Option(help="Keep the sources' proportions: source.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed, for a reproducible draw.")] = 0,
    pilot: Annotated[bool, typer.Option(help="Mark the round as the pilot.")] = False,
    allow_empty: Annotated[
        bool,
        typer.Option(
            help="Draw issues that have no text yet too (by default they are left out: "
            "fill them with `issueminer crawl hydrate`)."
        ),
    ] = False,
    for_estimate: Annotated[
        bool,
        typer.Option(
            "--for-estimate",
            help="Draw the random sample `issueminer estimate` needs, from the population's "
            "unlabelled issues, and record its design weights.",
        ),
    ] = False,
    width: Annotated[
        float | None,
        typer.Option(help="--for-estimate: size the sample for 95% intervals this wide."),
    ] = None,
    by_prediction: Annotated[
        bool,
        typer.Option(
            "--by-prediction",
            help="--for-estimate: stratify by the predicted issue type (weights recorded).",
        ),
    ] = False,
    group: Annotated[
        str | None, typer.Option(help="--for-estimate: only this framework group's issues.")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="--for-estimate: only issues created on or after.")
    ] = None,
    study: StudyOption = None,
    db: DbOption = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Draw issues without final labels and not in an earlier round for double labelling.

    Only issues with text (a title or body stored) are drawn, unless --allow-empty. With
    --for-estimate the draw is the random sample of a population that `issueminer
    estimate` uses (sized from --width when --size is not given).

    Example: issueminer round create --size 110 --annotators alice,bob --stratify source --seed 1
    """

    from issueminer.label import draw, rounds

    people = _names(annotators)
    store = open_store(db)
    if for_estimate:
        _create_for_estimate(
            store, name, people, size, width, by_prediction, group, since, seed, fmt, study
        )
        return
    if size is None:
        fail("say how many issues to draw: --size N")
    with store.session() as session:
        if name is None:
            name = _next_name(session)
        candidates = draw.round_candidates(session)
        try:
            chosen = rounds.create_round(
                session,
                name,
                size,
                people,
                stratify=stratify,
                seed=seed,
                kind="pilot" if pilot else "reliability",
                allow_empty=allow_empty,
            )
        except rounds.LabelingError as exc:
            fail(str(exc))
    left_out = 0 if allow_empty else candidates.without_text
    why = "no text yet: fill them with `issueminer crawl hydrate`" if left_out else None
    if fmt == Format.json:
        drawn = {"round": name, "annotators": people, "seed": seed, "size": len(chosen)}
        print_json(
            {
                **drawn,
                "candidates": candidates.total,
                "left_out": {"count": left_out, "why": why},
                "issues": chosen,
            }
        )
        return
    out.print(f"round {name}: {len(chosen)} issues for {', '.join(people)}")
    if left_out:
        out.print(
            f"left out {left_out:,} of {candidates.total:,} candidates that have {why} "
            "(or draw them as they are with --allow-empty)"
        )


def _next_name(session: Any) -> str:
    from sqlalchemy import select

    from issueminer.store import LabelingRound

    taken = set(session.scalars(select(LabelingRound.name)))
    return next(f"round{i}" for i in range(1, len(taken) + 2) if f"round{i}" not in taken)


def _create_for_estimate(
    store: Any,
    name: str | None,
    people: list[str],
    size: int | None,
    width: float | None,
    by_prediction: bool,
    group: str | None,
    since: str | None,
    seed: int,
    fmt: Format,
    study: str | None = None,
) -> None:
    from issueminer.analyse.estimate import design
    from issueminer.analyse.estimate.population import PopulationError, choose_population
    from issueminer.analyse.estimate.tables import newest_predictions
    from issueminer.label.rounds import LabelingError

    if size is None and width is None:
        fail("say how many issues to draw: --size N or --width 0.05")
    start = iso_date(since or None, "--since")  # an empty --since has meant no limit
    taxonomy = study_taxonomy(store, study)
    with store.session() as session:
        try:
            population = choose_population(session, taxonomy, since=start, group=group)
            frame = design.estimate_frame(session, population.uids)
            predicted = {
                uid: p["issue_type"]
                for uid, p in newest_predictions(session, frame).items()
                if "issue_type" in p
            }
            planned = design.planning_share(predicted) if size is None else None
            if size is None:
                size = design.sample_size(width, len(frame), planned)
            drawn = design.draw_for_estimate(
                session,
                name or _next_name(session),
                people,
                frame,
                size,
                predicted,
                design.BY_PREDICTION if by_prediction else design.RANDOM,
                seed,
                width,
            )
        except (PopulationError, LabelingError) as exc:
            fail(str(exc))
    drawn.planning_share = planned
    if fmt == Format.json:
        print_json(drawn.as_json())
        return
    out.print(
        f"round {drawn.round}: {drawn.size} of {drawn.frame:,} unlabelled issues drawn for "
        f"the estimate ({drawn.design} design) for {', '.join(people)}"
    )
    if planned is not None:
        out.print(
            f"sized for 95% intervals {width} wide around a share of {planned:.2f} (the "
            "predicted issue type nearest one half); shares among faults get wider ones"
        )


@round_app.command("finalize")
def finalize(
    round_name: Annotated[str, typer.Option("--round", help="The round to finalize.")],
    db: DbOption = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Turn the round's agreed labels into final labels; disagreements go to adjudication.

    Example: issueminer round finalize --round round1
    """
    from issueminer.label import adjudication, rounds

    store = open_store(db)
    with store.session() as session:
        try:
            counts = adjudication.finalize_agreed(session, round_name)
        except rounds.LabelingError as exc:
            fail(str(exc))
    if fmt == Format.json:
        print_json({"round": round_name, **counts})
        return
    for what, n in counts.items():
        out.print(f"{what:>26}: {n}")


@round_app.command("status")
def status(
    round_name: Annotated[str | None, typer.Option("--round", help="Only this round.")] = None,
    db: DbOption = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Per round and annotator: done, pending, skipped and left.

    Example: issueminer round status --round round1 --format json
    """
    import pandas as pd
    from sqlalchemy import select

    from issueminer.label import rounds
    from issueminer.store import LabelingRound

    store = open_store(db)
    with store.session() as session:
        names = (
            [round_name]
            if round_name
            else list(
                session.scalars(select(LabelingRound.name).order_by(LabelingRound.created_at))
            )
        )
        try:
            rows = [row for name in names for row in rounds.round_status(session, name)]
        except rounds.LabelingError as exc:
            fail(str(exc))
    if fmt == Format.json:
        print_json(rows)
        return
    frame = pd.DataFrame(
        rows, columns=["round", "annotator", "size", "done", "pending", "skipped", "left"]
    )
    out.print(render_table(frame, fmt.value, "Labelling progress"))
