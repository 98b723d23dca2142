"""`issueminer crawl`: Stack Overflow and GitHub into the store, resumable and incremental."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from issueminer.cli.common import (
    DbOption,
    Format,
    FormatOption,
    StudyOption,
    err,
    fail,
    open_store,
    out,
    print_json,
    progress,
    study_taxonomy,
)
from issueminer.crawl import Checkpointer, QuotaExhausted, crawl_status
from issueminer.hydrate import HydrateResult, hydrate_github, hydrate_stackoverflow, pending
from issueminer.selection import Selection
from issueminer.sources.github import GitHubClient, GitHubCrawler, GitHubError
from issueminer.sources.stackexchange import (
    StackExchangeClient,
    StackExchangeError,
    StackOverflowCrawler,
    scrub,
)

app = typer.Typer(help="Crawl Stack Overflow and GitHub into the store.", no_args_is_help=True)

# Secrets come from the environment only; they are never printed, logged or stored.
STACKEXCHANGE_KEY_ENV = "STACKEXCHANGE_KEY"
GITHUB_TOKEN_ENV = "GITHUB_TOKEN"
STACKEXCHANGE_API_ENV = "ISSUEMINER_STACKEXCHANGE_API"
GITHUB_API_ENV = "ISSUEMINER_GITHUB_API"

SinceOption = Annotated[
    datetime | None,
    typer.Option(help="Start from this date [default: where the last run of the query stopped]."),
]
SeApiOption = Annotated[
    str | None,
    typer.Option(
        "--api-url",
        envvar=STACKEXCHANGE_API_ENV,
        help="Stack Exchange API base URL (tests, mirrors).",
    ),
]
GhApiOption = Annotated[
    str | None,
    typer.Option(
        "--api-url", envvar=GITHUB_API_ENV, help="GitHub API base URL (Enterprise, tests)."
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
    key, token = _secrets()
    try:
        yield
    except QuotaExhausted as exc:
        when = exc.resume_at.strftime("%Y-%m-%d %H:%M UTC") if exc.resume_at else "later"
        if checkpointer:
            checkpointer.finish("quota", scrub(str(exc), key, token))
        fail(
            f"{scrub(str(exc), key, token)}\nstopped cleanly; run the same command after "
            f"{when} to resume where it stopped"
        )
    except (StackExchangeError, GitHubError, Exception) as exc:
        message = scrub(f"{type(exc).__name__}: {exc}", key, token)
        if checkpointer:
            checkpointer.finish("interrupted", message)
        fail(
            f"crawl stopped: {message}\neverything fetched so far is stored; run the same "
            "command again to resume"
        )


def _bar() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.fields[stats]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )


@app.command("stackoverflow")
def stackoverflow(
    db: DbOption = None,
    study: StudyOption = None,
    since: SinceOption = None,
    api_url: SeApiOption = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Questions with the study's tags, their answers and comments, a checkpoint per page.

    The key comes from STACKEXCHANGE_KEY (works without, with a smaller quota).

    Example: issueminer crawl stackoverflow --since 2020-01-01
    """
    store = open_store(db)
    taxonomy = study_taxonomy(store, study)
    selection = Selection.from_taxonomy(taxonomy)
    key, _ = _secrets()
    checkpointer = Checkpointer(store, "stackoverflow", StackOverflowCrawler.query(selection))
    with _bar() as bar, _crawl_errors(checkpointer):
        task = bar.add_task("stackoverflow", total=None, stats="")

        pages = [0]

        def on_page(stats: dict[str, Any]) -> None:
            pages[0] += 1
            bar.update(
                task,
                description=f"tag {stats['tag']}",
                stats=(
                    f"pages {pages[0]}  seen {checkpointer.items_seen}  "
                    f"kept {checkpointer.items_stored}  "
                    f"requests {stats['requests']}  quota left {stats['quota_remaining']}"
                ),
            )

        client = StackExchangeClient(
            api_url, key, selection.site, sleep=_countdown(bar), on_wait=_wait_notice(bar)
        )
        crawler = StackOverflowCrawler(client, selection, taxonomy, on_page)
        crawler.run(checkpointer, _aware(since))
        checkpointer.finish("done")
    _summary(
        checkpointer, fmt, {"requests": client.requests, "quota_remaining": client.quota_remaining}
    )


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

    Searches are split into creation-date windows under the 1,000-result cap. The token
    comes from GITHUB_TOKEN (works without, slower).

    Example: issueminer crawl github --repo horovod/horovod
    """
    store = open_store(db)
    taxonomy = study_taxonomy(store, study)
    selection = Selection.from_taxonomy(taxonomy)
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

        pages = [0]

        def on_page(stats: dict[str, Any]) -> None:
            pages[0] += 1
            bar.update(
                task,
                description=stats["query"][:60],
                stats=(
                    f"pages {pages[0]}  seen {checkpointer.items_seen}  "
                    f"kept {checkpointer.items_stored}  "
                    f"requests {stats['requests']}  rate left {stats['rate_remaining']}"
                ),
            )

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
    _summary(
        checkpointer, fmt, {"requests": client.requests, "rate_remaining": client.rate_remaining}
    )


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
        str | None, typer.Option("--stackexchange-api-url", envvar=STACKEXCHANGE_API_ENV)
    ] = None,
    gh_api_url: Annotated[
        str | None, typer.Option("--github-api-url", envvar=GITHUB_API_ENV)
    ] = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Fetch title, body, answers/comments of stored issues that have a URL but no text.

    Issues the source no longer has (deleted, moved, private) are listed, not fatal.

    Example: issueminer import replication ../shared/tosem23 && issueminer crawl hydrate
    """
    store = open_store(db)
    taxonomy = study_taxonomy(store, study)
    selection = Selection.from_taxonomy(taxonomy)
    key, token = _secrets()
    sources = [source] if source else ["stackoverflow", "github"]
    result = HydrateResult()
    for name in sources:
        work = len(pending(store, name, retry_missing))
        checkpointer = Checkpointer(store, f"hydrate-{name}", {"source": name})
        with progress() as bar, _crawl_errors(checkpointer):
            task = bar.add_task(f"hydrate {name}", total=work)

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
                hydrate_stackoverflow(store, crawler, checkpointer, result, advance, retry_missing)
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
                    retry_missing,
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
    store = open_store(db)
    runs = crawl_status(store)
    if fmt == Format.json:
        print_json(runs)
        return
    if not runs:
        out.print("no crawl has run on this database yet")
    for run in runs:
        checkpoint = run["checkpoint"]
        left = checkpoint.get("quota_remaining", checkpoint.get("rate_remaining"))
        out.print(
            f"#{run['id']} {run['source']} [{run['status']}] seen {run['items_seen']} "
            f"stored {run['items_stored']} limit left {left if left is not None else '?'}",
            highlight=False,
            markup=False,
        )
        for name, state in (checkpoint.get("tags") or {}).items():
            resume = "done" if state.get("done") else f"from {_when(state.get('cursor'))}"
            out.print(f"    tag {name}: {resume}", highlight=False, markup=False)
        for name, state in (checkpoint.get("queries") or {}).items():
            windows = state.get("windows") or []
            resume = (
                f"window {windows[0][0]}..{windows[0][1]} page {state.get('page')}"
                if windows
                else "done"
            )
            out.print(f"    {name}: {resume}", highlight=False, markup=False)
        if run["message"]:
            out.print(f"    {run['message']}", highlight=False, markup=False)


def _when(timestamp: Any) -> str:
    if not timestamp:
        return "the beginning"
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _countdown(bar: Progress) -> Any:
    """A sleep that shows a countdown bar, so a wait for a rate-limit reset is visible."""
    import time

    def sleep(seconds: float) -> None:
        task = bar.add_task("waiting for the limit to reset", total=None, stats="")
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            bar.update(task, stats=f"{left:4.0f}s left")
            time.sleep(min(1.0, left))
        bar.remove_task(task)

    return sleep


def _summary(checkpointer: Checkpointer, fmt: Format, facts: dict[str, Any]) -> None:
    data = {
        "run": checkpointer.run_id,
        "resumed": checkpointer.resumed,
        "seen": checkpointer.items_seen,
        "stored": checkpointer.items_stored,
        **facts,
    }
    if fmt == Format.json:
        print_json(data)
    else:
        out.print("  ".join(f"{k} {v}" for k, v in data.items()), highlight=False, markup=False)
