"""`issueminer crawl`: Stack Overflow and GitHub into the store, resumable and incremental.

The crawlers are imported inside the commands: their clients (PyGithub, StackAPI), the dump
scanner and the importers take a while to load, and the other commands should not pay for
them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlsplit

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from issueminer.cli.common import (
    DbOption,
    Format,
    FormatOption,
    StudyOption,
    err,
    fail,
    handled,
    open_store,
    out,
    print_json,
    progress,
    progress_bar,
    study_taxonomy,
    writable_file,
)

if TYPE_CHECKING:
    from issueminer.collect import sodump
    from issueminer.collect.checkpoints import Checkpointer

app = typer.Typer(help="Crawl Stack Overflow and GitHub into the store.", no_args_is_help=True)

# Secrets come from the environment only; they are never printed, logged or stored.
STACKEXCHANGE_KEY_ENV = "STACKEXCHANGE_KEY"
GITHUB_TOKEN_ENV = "GITHUB_TOKEN"
STACKEXCHANGE_API_ENV = "ISSUEMINER_STACKEXCHANGE_API"
GITHUB_API_ENV = "ISSUEMINER_GITHUB_API"
INTERRUPTED = 130  # the exit status shells give a program stopped by Ctrl-C (128 + SIGINT)
# a dump scan that met bad input finishes and stores what it kept, then says so by its exit
# status too, so a script or make rule notices (1 and 2 are errors and usage errors); a dump
# refused as bad input as a whole (no rows, a DTD in its head) exits with it too
BAD_INPUT_SKIPPED = 3


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def past_date(value: datetime | None) -> datetime | None:
    """A --since in the future is a typo: the crawl would find nothing and say nothing."""
    moment = _aware(value)
    if moment is not None and moment > datetime.now(UTC):
        raise typer.BadParameter(f"{moment:%Y-%m-%d} is in the future")
    return value


SinceOption = Annotated[
    datetime | None,
    typer.Option(
        help="Start from this date [default: where the last run of the query stopped].",
        callback=past_date,
    ),
]


def http_url(value: str | None) -> str | None:
    """An API base URL must be one: a typo would otherwise fail deep in a client library."""
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise typer.BadParameter(f"{value!r} is not an http(s) URL")
    return value


SeApiOption = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        envvar=STACKEXCHANGE_API_ENV,
        help="Stack Exchange API base URL (tests, mirrors).",
        callback=http_url,
    ),
]
GhApiOption = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        envvar=GITHUB_API_ENV,
        help="GitHub API base URL (Enterprise, tests).",
        callback=http_url,
    ),
]


def _secrets() -> tuple[str | None, str | None]:
    return os.environ.get(STACKEXCHANGE_KEY_ENV) or None, os.environ.get(GITHUB_TOKEN_ENV) or None


def _wait_notice(bar: Progress) -> Any:
    def on_wait(why: str, seconds: float) -> None:
        bar.console.print(f"waiting {seconds:.0f}s: {why}", style="yellow", markup=False)

    return on_wait


@contextmanager
def _crawl_errors(checkpointer: Checkpointer | None) -> Iterator[None]:
    """Failures end the run cleanly: the checkpoint stays, the message says how to resume."""
    from issueminer.collect.checkpoints import QuotaExhausted
    from issueminer.collect.sodump.input_identity import InputChanged
    from issueminer.collect.sources.stackexchange import scrub

    key, token = _secrets()
    try:
        yield
    except QuotaExhausted as exc:
        when = exc.resume_at.strftime("%Y-%m-%d %H:%M UTC") if exc.resume_at else "later"
        message = scrub(str(exc), key, token)
        with suppress(Exception):  # `crawl status` shows the quota spent, not the last page's
            if checkpointer is not None:
                checkpointer.note(quota_remaining=0)
        unrecorded = _record_end(checkpointer, "quota", message)
        fail(
            f"{message}\nstopped cleanly; run the same command after "
            f"{when} to resume where it stopped{unrecorded}"
        )
    except InputChanged as exc:  # set aside, so that the next run starts afresh
        fail(f"{exc}{_record_end(checkpointer, 'input-changed', str(exc))}")
    except KeyboardInterrupt:
        unrecorded = _record_end(checkpointer, "interrupted", "stopped by Ctrl-C")
        err.print(
            "\ninterrupted: everything stored up to the last checkpoint is kept; run the same "
            f"command again to resume{unrecorded}"
        )
        raise typer.Exit(INTERRUPTED) from None
    except Exception as exc:  # any other failure: say it, keep what is stored
        message = scrub(f"{type(exc).__name__}: {exc}", key, token)
        unrecorded = _record_end(checkpointer, "interrupted", message)
        fail(
            f"crawl stopped: {message}\neverything fetched so far is stored; run the same "
            f"command again to resume{unrecorded}"
        )


def _record_end(checkpointer: Checkpointer | None, status: str, message: str) -> str:
    """Notes how the run ended; if the store refuses (say, just after a Ctrl-C cut a write
    short), says so instead of raising: the checkpoint is already committed, and the same
    command resumes from it."""
    if checkpointer is None:
        return ""
    try:
        checkpointer.finish(status, message)
    except Exception as exc:  # noqa: BLE001 - reported; what is stored is not at risk
        return f"\n(the run's status could not be recorded: {type(exc).__name__}: {exc})"
    return ""


def _page_reporter(
    bar: Progress, task: Any, checkpointer: Checkpointer, where: str, limit: str
) -> Any:
    """A crawler's on_page callback: pages, items seen and kept, requests, limit left."""
    pages = [0]

    def on_page(stats: dict[str, Any]) -> None:
        pages[0] += 1
        bar.update(
            task,
            description=str(stats[where])[:60],
            stats=(
                f"pages {pages[0]}  seen {checkpointer.items_seen}  "
                f"kept {checkpointer.items_stored}  requests {stats['requests']}  "
                f"{limit.replace('_remaining', '')} left {stats[limit]}"
            ),
        )

    return on_page


def _bar() -> Progress:
    return progress_bar(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
    )


@app.command("stackoverflow")
def stackoverflow(
    db: DbOption = None,
    study: StudyOption = None,
    since: SinceOption = None,
    recheck_after: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Ask again for questions waiting for an accepted answer last read this many "
            "days ago [default: the study's recheck_after_days, else 7].",
        ),
    ] = None,
    recheck_pending: Annotated[
        bool, typer.Option(help="Ask again for every question waiting for an accepted answer.")
    ] = False,
    api_url: SeApiOption = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Questions with the study's tags, their answers and comments, a checkpoint per page.

    Accepting an answer does not move a question's last activity, so questions refused only
    for want of one wait and are asked for again by id now and then (--recheck-after,
    --recheck-pending). The key comes from STACKEXCHANGE_KEY (works without, with a
    smaller quota).

    Example: issueminer crawl stackoverflow --since 2020-01-01
    """
    from issueminer.collect.checkpoints import Checkpointer
    from issueminer.collect.selection import Selection
    from issueminer.collect.sources.stackexchange import StackExchangeClient, StackOverflowCrawler
    from issueminer.collect.sources.unaccepted import policy_from, summary

    store = open_store(db, create=True)
    taxonomy = study_taxonomy(store, study)
    selection = Selection.from_taxonomy(taxonomy)
    try:
        policy = policy_from(
            (taxonomy.selection or {}).get("stackoverflow") or {}, recheck_after, recheck_pending
        )
    except ValueError as exc:
        fail(str(exc))
    key, _ = _secrets()
    checkpointer = Checkpointer(store, "stackoverflow", StackOverflowCrawler.query(selection))
    with _bar() as bar, _crawl_errors(checkpointer):
        task = bar.add_task("stackoverflow", total=None, stats="")

        on_page = _page_reporter(bar, task, checkpointer, "tag", "quota_remaining")

        client = StackExchangeClient(
            api_url, key, selection.site, sleep=_countdown(bar), on_wait=_wait_notice(bar)
        )
        crawler = StackOverflowCrawler(client, selection, taxonomy, on_page, policy)
        crawler.run(checkpointer, _aware(since))
        checkpointer.finish("done")
    facts = {"requests": client.requests, "quota_remaining": client.quota_remaining}
    _summary(checkpointer, fmt, {**facts, **summary(checkpointer.checkpoint)})


@app.command("github")
def github_command(
    db: DbOption = None,
    study: StudyOption = None,
    since: SinceOption = None,
    repo: Annotated[
        list[str] | None, typer.Option(help="Only this repository (repeatable).")
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option(help="Repository group of the study file: study (default), current, all."),
    ] = None,
    api_url: GhApiOption = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Issues of the study's repositories through the Search API, comments for kept ones.

    Searches are split into creation-date windows under the 1,000-result cap; a rerun
    searches by last activity in every state, so a reopened issue is stored as it is now.
    The token comes from GITHUB_TOKEN (works without, slower).

    Example: issueminer crawl github --repo OWNER/NAME --since 2023-01-01
    """
    from issueminer.collect.checkpoints import Checkpointer
    from issueminer.collect.selection import Selection
    from issueminer.collect.sources.github import GitHubCrawler
    from issueminer.collect.sources.github_client import GitHubClient

    store = open_store(db, create=True)
    taxonomy = study_taxonomy(store, study)
    selection = Selection.from_taxonomy(taxonomy)
    groups = sorted({r.group for r in selection.repositories} | {"all"})
    unknown_groups = sorted(set(group or []) - set(groups))
    if unknown_groups:
        fail(f"--group {', '.join(unknown_groups)}: the study's groups are {', '.join(groups)}")
    repositories = selection.repositories_in(group)
    if repo:
        repositories = [
            r for r in selection.repositories if r.repo.lower() in {x.lower() for x in repo}
        ]
        unknown = {x.lower() for x in repo} - {r.repo.lower() for r in repositories}
        if unknown:
            fail(f"not in the study file's repositories: {', '.join(sorted(unknown))}")
    _, token = _secrets()
    checkpointer = Checkpointer(store, "github", GitHubCrawler.query(selection, repositories))
    with _bar() as bar, _crawl_errors(checkpointer):
        task = bar.add_task("github", total=None, stats="")

        on_page = _page_reporter(bar, task, checkpointer, "query", "rate_remaining")

        client = GitHubClient(api_url, token, sleep=_countdown(bar), on_wait=_wait_notice(bar))
        crawler = GitHubCrawler(
            client,
            selection,
            taxonomy,
            on_page,
            on_note=lambda m: bar.console.print(m, highlight=False),
        )
        crawler.run(checkpointer, repositories, _aware(since))
        checkpointer.finish("done")
    facts = {"requests": client.requests, "rate_remaining": client.rate_remaining}
    _summary(checkpointer, fmt, facts, checkpointer.checkpoint.get("findings") or [])


@app.command("hydrate")
def hydrate(
    db: DbOption = None,
    study: StudyOption = None,
    source: Annotated[
        str | None, typer.Option(help="stackoverflow or github [default: both].")
    ] = None,
    retry_missing: Annotated[
        bool, typer.Option(help="Ask again for issues reported missing.")
    ] = False,
    se_api_url: Annotated[
        str | None,
        typer.Option("--stackexchange-api-url", envvar=STACKEXCHANGE_API_ENV, callback=http_url),
    ] = None,
    gh_api_url: Annotated[
        str | None,
        typer.Option("--github-api-url", envvar=GITHUB_API_ENV, callback=http_url),
    ] = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Fetch title, body, answers/comments of stored issues that have a URL but no text.

    Issues the source no longer has (deleted, moved, private) are listed, not fatal.

    Example: issueminer import replication ../shared/tosem23 && issueminer crawl hydrate
    """
    from issueminer.collect.checkpoints import Checkpointer
    from issueminer.collect.hydrate import (
        HydrateResult,
        hydrate_github,
        hydrate_stackoverflow,
        pending,
    )
    from issueminer.collect.selection import Selection
    from issueminer.collect.sources.github import GitHubCrawler
    from issueminer.collect.sources.github_client import GitHubClient
    from issueminer.collect.sources.stackexchange import StackExchangeClient, StackOverflowCrawler

    store = open_store(db)
    taxonomy = study_taxonomy(store, study)
    selection = Selection.from_taxonomy(taxonomy)
    key, token = _secrets()
    sources = [source] if source else ["stackoverflow", "github"]
    result = HydrateResult()
    for name in sources:
        work = pending(store, name, retry_missing)
        checkpointer = Checkpointer(store, f"hydrate-{name}", {"source": name})
        with progress() as bar, _crawl_errors(checkpointer):
            task = bar.add_task(f"hydrate {name}", total=len(work))

            def advance(n: int, task: Any = task, bar: Progress = bar) -> None:
                bar.advance(task, n)

            if name == "stackoverflow":
                client = StackExchangeClient(
                    se_api_url,
                    key,
                    selection.site,
                    sleep=_countdown(bar),
                    on_wait=_wait_notice(bar),
                )
                crawler = StackOverflowCrawler(client, selection, taxonomy)
                hydrate_stackoverflow(store, crawler, checkpointer, result, advance, work)
            else:
                gh = GitHubClient(
                    gh_api_url, token, sleep=_countdown(bar), on_wait=_wait_notice(bar)
                )
                hydrate_github(
                    store,
                    GitHubCrawler(gh, selection, taxonomy),
                    checkpointer,
                    result,
                    advance,
                    work,
                )
            checkpointer.finish("done")
    if fmt == Format.json:
        print_json(result.as_dict())
        return
    out.print(f"filled: {result.filled}   missing at the source: {len(result.missing)}")
    for item in result.missing:
        out.print(f"  {item['url']}: {item['reason']}", highlight=False, markup=False)


@app.command("status")
def status(db: DbOption = None, fmt: FormatOption = Format.md) -> None:
    """Crawl runs: query, state, counts, quota or rate limit left, where each would resume.

    Example: issueminer crawl status --format json
    """
    from issueminer.collect.checkpoints import crawl_status, status_lines

    store = open_store(db)
    runs = crawl_status(store)
    if fmt == Format.json:
        print_json(runs)
        return
    if not runs:
        out.print("no crawl has run on this database yet")
    for run in runs:
        for line in status_lines(run):
            out.print(line, highlight=False, markup=False)


def _countdown(bar: Progress) -> Any:
    """A sleep that shows a countdown bar, so a wait for a rate-limit reset is visible."""

    def sleep(seconds: float) -> None:
        task = bar.add_task("waiting for the limit to reset", total=None, stats="")
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            bar.update(task, stats=f"{left:4.0f}s left")
            time.sleep(min(1.0, left))
        bar.remove_task(task)

    return sleep


def _summary(
    checkpointer: Checkpointer,
    fmt: Format,
    facts: dict[str, Any],
    findings: list[dict[str, Any]] | None = None,
) -> None:
    data = {
        "run": checkpointer.run_id,
        "resumed": checkpointer.resumed,
        "seen": checkpointer.items_seen,
        "stored": checkpointer.items_stored,
        **facts,
    }
    if findings is not None:
        data["findings"] = len(findings)
    if fmt == Format.json:
        print_json({**data, "findings": findings} if findings is not None else data)
        return
    out.print("  ".join(f"{k} {v}" for k, v in data.items()), highlight=False, markup=False)
    for finding in findings or []:
        out.print(f"finding: {finding['message']}", highlight=False, markup=False)


class Engine(StrEnum):
    local = "local"
    dask = "dask"


@app.command("so-dump")
def so_dump(
    path: Annotated[
        str,
        typer.Argument(help="Posts.xml, Posts.xml.gz, the .7z archive as published, or - (stdin)."),
    ],
    comments: Annotated[
        str | None,
        typer.Option(help="Comments.xml (plain, .gz or .7z): attach the kept posts' comments."),
    ] = None,
    only_known: Annotated[
        bool,
        typer.Option(
            "--only-known",
            help="Keep exactly the Stack Overflow questions already in the store, whatever "
            "the criteria say, and fill in their text and answers.",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1, help="Processes (this one among them) or Dask workers scanning byte ranges."
        ),
    ] = 1,
    engine: Annotated[Engine, typer.Option(help="Run the pieces here or on Dask.")] = Engine.local,
    scheduler: Annotated[
        str | None,
        typer.Option(help="Dask scheduler address (default: a local cluster of --workers)."),
    ] = None,
    report: Annotated[
        str | None,
        typer.Option(
            "--report",
            help="Write every bad-input case with its line (.csv or .json).",
            callback=writable_file,
        ),
    ] = None,
    piece_size: Annotated[
        str, typer.Option(help="Bytes per work unit and per checkpoint, e.g. 64MB.")
    ] = "64MB",
    db: DbOption = None,
    study: StudyOption = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Scan the Stack Overflow data dump with the study's criteria; store questions and answers.

    Questions carrying a study tag are parsed and judged like the API crawler's; their
    answers (and with --comments their comments) are attached. Bad rows are counted,
    reported with their line and skipped; the scan goes on, stores the rest, and then exits
    with status 3. A compressed file damaged part way is stored up to the damage, which is
    reported with its byte and line: status 3 too. A file with no rows, a DTD in its head,
    or compressed data unreadable from the start is refused: status 3, nothing stored.
    Killed, the same command resumes where it stopped.

    Example: issueminer crawl so-dump Posts.xml --workers 2 --report bad.csv
    (a .gz or .7z file, or stdin, is streamed through one worker)
    """
    from issueminer.collect import sodump
    from issueminer.collect.checkpoints import Checkpointer
    from issueminer.collect.selection import Selection

    try:  # before the store: a mistyped path leaves no new database behind
        piece_bytes = sodump.parse_size(piece_size)
        posts = sodump.open_source(path, checked=sodump.checked_inputs(db))
        comment_source = sodump.open_source(comments, "comments") if comments else None
    except sodump.BadInput as exc:
        err.print(f"error: {exc} (exit status {BAD_INPUT_SKIPPED})", highlight=False, markup=False)
        raise typer.Exit(BAD_INPUT_SKIPPED) from None
    except (sodump.DumpError, ValueError) as exc:
        fail(str(exc))
    packed = [s for s in (posts, comment_source) if s is not None and not s.plain]
    if packed and (workers > 1 or engine == Engine.dask):
        fail(
            "--workers and --engine dask scan byte ranges of an uncompressed file; "
            f"{packed[0].name} is {packed[0].kind}: unpack it, or scan it with one worker"
        )
    store = open_store(db, create=True)
    taxonomy = study_taxonomy(store, study)
    selection = Selection.from_taxonomy(taxonomy)
    known = sodump.known_questions(store) if only_known else None
    if known is not None and not known:
        fail("--only-known: the store has no Stack Overflow questions yet (import them first)")
    criteria = sodump.Criteria(selection, taxonomy, known)
    with _dump_bar() as bar:
        tasks: dict[str, Any] = {}

        def on_progress(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(phase, total=total)
            bar.update(tasks[phase], completed=done, total=total)

        try:
            executor = _dump_executor(engine, workers, scheduler)
        except (OSError, TimeoutError) as exc:
            fail(f"cannot start or reach the Dask cluster: {exc}")
        crawler = sodump.DumpCrawler(
            posts, criteria, comment_source, executor, piece_bytes, on_progress
        )
        checkpointer = Checkpointer(store, "so-dump", crawler.query())
        started = time.perf_counter()
        try:
            with _crawl_errors(checkpointer):
                summary = crawler.run(checkpointer)
                checkpointer.finish("done")
        finally:
            executor.close()
    seconds = time.perf_counter() - started
    if report:
        with handled():
            sodump.findings_report(summary).write(report)
    _dump_summary(summary, checkpointer, seconds, report, fmt)
    if summary.finding_counts:
        skipped = sum(summary.finding_counts.values())
        for problem in summary.file_problems():
            err.print(problem, highlight=False, markup=False)
        err.print(
            f"finished with {skipped} case{'s' * (skipped != 1)} of bad input skipped "
            f"(exit status {BAD_INPUT_SKIPPED}); everything else is stored"
        )
        raise typer.Exit(BAD_INPUT_SKIPPED)


def _dump_bar() -> Progress:
    return progress_bar(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )


def _dump_executor(engine: Engine, workers: int, scheduler: str | None) -> Any:
    from issueminer.collect import sodump

    if engine == Engine.dask:
        return sodump.DaskExecutor(scheduler, workers)
    return sodump.ProcessExecutor(workers) if workers > 1 else sodump.SerialExecutor()


def _dump_summary(
    summary: sodump.ScanSummary,
    checkpointer: Checkpointer,
    seconds: float,
    report: str | None,
    fmt: Format,
) -> None:
    from issueminer.collect import sodump

    data = {
        "run": checkpointer.run_id,
        "resumed": checkpointer.resumed,
        **summary.as_dict(),
        "seconds": round(seconds, 2),
        "report_file": report,
    }
    if fmt == Format.json:
        print_json(data)
        return
    rate = summary.scanned_bytes / seconds / 1e6 if seconds else 0.0
    out.print(
        f"questions {summary.questions}  answers {summary.answers}  comments {summary.comments}"
        f"  parsed {summary.parsed}  scanned {summary.scanned_bytes / 1e6:.1f} MB in "
        f"{seconds:.1f}s ({rate:.0f} MB/s)  run {checkpointer.run_id}"
        f"  resumed {checkpointer.resumed}",
        highlight=False,
        markup=False,
    )
    if summary.rejected:
        rejected = ", ".join(f"{k} {n}" for k, n in sorted(summary.rejected.items()))
        out.print(f"rejected: {rejected}", highlight=False, markup=False)
    if summary.finding_counts:
        counts = ", ".join(f"{k} {n}" for k, n in sorted(summary.finding_counts.items()))
        out.print(f"bad input (skipped): {counts}", highlight=False, markup=False)
        for f in summary.findings[: sodump.SUMMARY_FINDINGS]:
            place = f"line {f['line']}" if f["line"] else f"byte {f['offset']}"
            out.print(
                f"  {f['file']} {place}: {f['kind']}: {f['message']}",
                highlight=False,
                markup=False,
            )
        out.print(
            f"every case, with its line: {report}"
            if report
            else "(--report FILE lists every case)",
            highlight=False,
            markup=False,
        )
    if summary.missing:
        shown = ", ".join(map(str, summary.missing[:20]))
        out.print(
            f"not in the dump: {len(summary.missing)} known question(s): {shown}",
            highlight=False,
            markup=False,
        )
