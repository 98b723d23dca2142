"""`issueminer study`: find, inspect, check and start studies (a study file and a codebook)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from issueminer.cli.common import (
    Format,
    FormatOption,
    err,
    fail,
    handled,
    out,
    print_json,
    report_validation,
)
from issueminer.study import StudyError, check_study, describe, list_studies, new_study
from issueminer.taxonomy import load_taxonomy, study_dirs, taxonomy_path

app = typer.Typer(help="Studies: one study file and its codebook each.", no_args_is_help=True)


@app.command("list")
def list_(fmt: FormatOption = Format.md) -> None:
    """List the studies on the search path ($ISSUEMINER_STUDY_PATH, ./studies, bundled).

    Example: issueminer study list --format json
    """
    studies = list_studies()
    if fmt == Format.json:
        print_json(
            {
                "search_path": [str(d) for d in study_dirs()],
                "studies": [s.as_dict() for s in studies],
            }
        )
        return
    for summary in studies:
        mode = "open coding" if summary.open_coding else "fixed taxonomy"
        state = f"{summary.status}, {mode}" if not summary.problems else "INVALID"
        out.print(f"{summary.name:<28} {state:<26} {summary.title}")
        out.print(f"{'':<28} {summary.path}")
    if not studies:
        err.print("no study files found in: " + ", ".join(str(d) for d in study_dirs()))


@app.command("show")
def show(
    name: Annotated[str, typer.Argument(help="Study name or study file.")],
    fmt: FormatOption = Format.md,
) -> None:
    """Show a study: its files, status, label names, categories, selection and signals.

    Example: issueminer study show serverless
    """
    if not taxonomy_path(name).is_file():
        fail(f"no study '{name}' (looked in {', '.join(str(d) for d in study_dirs())})")
    with handled():
        info = describe(load_taxonomy(name))
    if fmt == Format.json:
        print_json(info)
        return
    out.print(f"{info['title']} ({info['study']})")
    out.print(f"  file:        {info['file']}")
    out.print(f"  codebook:    {info['codebook'] or '(none found)'}")
    coding = "open coding (new categories may be proposed)" if info["open_coding"] else "fixed"
    out.print(f"  status:      {info['status']}, {coding}")
    out.print("  labels:      " + ", ".join(f"{k}={v}" for k, v in info["labels"].items()))
    out.print("  categories:  " + ", ".join(f"{k} {v}" for k, v in info["categories"].items()))
    for key, values in info["selection"].items():
        out.print(f"  {key + ':':<33} {', '.join(values) or '-'}")
    out.print(f"  classifier signals: {', '.join(info['classifier_signals']) or '-'}")


@app.command("validate")
def validate(
    path: Annotated[Path, typer.Argument(help="Study file (YAML).")],
    fmt: FormatOption = Format.md,
) -> None:
    """Check a study file (file:line: problem) and that its codebook names every category.

    Problems make the file unusable (exit 1); codebook gaps are warnings.

    Example: issueminer study validate studies/my-study.yaml
    """
    problems, warnings = check_study(path)
    report_validation(path, problems, fmt, warnings)


@app.command("new")
def new(
    name: Annotated[str, typer.Argument(help="The new study's name (lower-case, digits, '-').")],
    source: Annotated[
        str | None,
        typer.Option("--from", help="Start from this study's file instead of the template."),
    ] = None,
    directory: Annotated[
        Path | None,
        typer.Option("--dir", help="Where to write NAME.yaml and NAME.md [default: ./studies]."),
    ] = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Write a study file and a codebook skeleton, every key explained in a comment.

    Without --from the taxonomy starts empty in open-coding mode: annotators propose
    categories in the app and `issueminer taxonomy merge` settles their names.

    Example: issueminer study new cloud-cost --from serverless
    """
    with handled():  # a --dir that cannot be made is one line too
        try:
            made = new_study(name, directory, source)
        except StudyError as exc:
            fail(str(exc))
    if fmt == Format.json:
        print_json({"study_file": str(made.study_file), "codebook": str(made.codebook)})
        return
    out.print(f"study file: {made.study_file}")
    out.print(f"codebook:   {made.codebook}")
    out.print(
        f"next: edit the selection in {made.study_file.name}, then "
        f"`issueminer crawl stackoverflow --study {made.study_file}`"
    )
