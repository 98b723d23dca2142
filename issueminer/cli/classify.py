"""`issueminer train`, `evaluate` and `classify`: label suggestions, measured honestly."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

# the package loads scikit-learn and spaCy only when a command calls into it (lib.<name>)
import issueminer.analyse.classify as lib
from issueminer.analyse.classify.targets import (
    CLASSIFIERS,
    DEFAULT_CLASSIFIER,
    DEFAULT_FOLDS,
    DEFAULT_MODELS_DIR,
    ORDERS,
    SUMMARY_KEYS,
    TARGETS,
    ClassifierError,
    OnProgress,
    get_target,
)
from issueminer.analyse.stats import render_table
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
    study_taxonomy,
    writable_file,
)
from issueminer.taxonomy import Taxonomy

if TYPE_CHECKING:  # pandas and the store load with the commands that use them
    import pandas as pd

    from issueminer.store import Store

METRIC_DECIMALS = 3


Classifier = StrEnum("Classifier", [(name, name) for name in CLASSIFIERS])


DEFAULT_MODEL = Classifier(DEFAULT_CLASSIFIER)


Order = StrEnum("Order", [(name, name) for name in ORDERS])


TargetOption = Annotated[
    str, typer.Option("--target", help=f"What to predict: {', '.join(TARGETS)}.")
]
ClassifierOption = Annotated[
    Classifier,
    typer.Option(
        "--classifier", help="Linear model: logistic regression or a calibrated linear SVM."
    ),
]
FoldsOption = Annotated[int, typer.Option("--folds", "-k", help="Cross-validation folds.")]
SeedOption = Annotated[int, typer.Option("--seed", help="Seed of the folds' shuffle.")]


@contextmanager
def _classifier_errors() -> Iterator[None]:
    with handled():
        try:
            yield
        except ClassifierError as exc:
            fail(str(exc))


@contextmanager
def _steps(what: str) -> Iterator[OnProgress]:
    """A progress bar on stderr for long classifier work; yields the library's callback."""
    with progress() as bar:
        task = bar.add_task(what, total=None)

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield on_progress


def _examples(store: Store, taxonomy: Taxonomy, target_name: str) -> lib.Examples:
    with _classifier_errors():
        target = get_target(target_name)
    with handled(), store.session() as session:
        examples = lib.load_examples(session, target, taxonomy)
    if examples.without_text:
        err.print(f"({examples.without_text} labelled issues have no text and are left out)")
    if not examples.documents:
        fail(f"no final label with issue text for target '{target.name}'")
    return examples


def _emit(text: str) -> None:
    out.print(text, end="" if text.endswith("\n") else "\n")  # no blank line after a CSV


def _metrics_frame(results: dict[str, dict[str, Any]]) -> pd.DataFrame:
    import pandas as pd

    rows = [{"system": name, **{k: r[k] for k in SUMMARY_KEYS}} for name, r in results.items()]
    return pd.DataFrame(rows, columns=["system", *SUMMARY_KEYS])


def train(
    db: DbOption = None,
    study: StudyOption = None,
    target: TargetOption = "issue_type",
    classifier: ClassifierOption = DEFAULT_MODEL,
    folds: Annotated[
        int, typer.Option("--folds", "-k", help="Cross-validate first (0: skip) for metadata.")
    ] = DEFAULT_FOLDS,
    seed: SeedOption = 0,
    out_path: Annotated[
        Path, typer.Option("--out", help="Directory (or .skops file) for the model.")
    ] = DEFAULT_MODELS_DIR,
    holdout: Annotated[
        float | None,
        typer.Option(
            "--holdout",
            help="Keep this share of the labelled issues out of training (seeded by --seed, "
            "stratified); `classify --include-labelled` then compares them.",
        ),
    ] = None,
    exclude_labels: Annotated[
        Path | None,
        typer.Option(
            "--exclude-labels",
            help="A file of issue URLs or uids (one a line) to leave out of training.",
        ),
    ] = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Train a classifier on the final labels and save it with its metadata.

    Features: title and prose words, title character n-grams, and error signals from
    code and logs (exception names, the study file's signals, out of memory, segmentation
    faults). A symptom model predicts the leaf together with its stage. The model file
    (skops) records the label set, a hash of the training set, library versions and
    cross-validated metrics beside the baselines'.

    With --holdout or --exclude-labels the model never sees those issues (the model file
    lists them as held out), so `classify --include-labelled` can compare its predictions
    with their final labels.

    Example: issueminer train --target symptom --holdout 0.2 --seed 1 --out models/
    """
    store = open_store(db)
    taxonomy = study_taxonomy(store, study)
    examples = _examples(store, taxonomy, target)
    documents, labels, held_out = _training_part(
        store, examples, target, holdout, exclude_labels, seed
    )
    err.print(f"training a {target} model on {len(documents)} labelled issues ...")
    with _classifier_errors(), _steps("cross-validating, then fitting") as on_progress:
        model = lib.train_model(
            documents,
            labels,
            get_target(target),
            taxonomy,
            classifier.value,
            folds,
            seed,
            on_progress,
        )
        model.metadata["held_out"] = held_out
        path = lib.save_model(model, out_path)
    metadata = model.metadata
    if fmt == Format.json:
        print_json({"path": str(path), **metadata})
        return
    metrics = {k: v for k, v in metadata["metrics"].items() if isinstance(v, dict)}
    if fmt == Format.md:
        out.print(
            f"saved {path}\nmodel {model.model_id}: {metadata['training_set']['n']} issues, "
            f"{len(metadata['labels'])} labels, fitted in {metadata['fit_seconds']:.1f} s\n"
        )
        for part, chosen in metadata.get("knowledge", {}).items():
            # inner cross-validation's choice between the model and the study's rules
            out.print(
                f"{part}: {chosen['choice']}; labels known from the study alone: "
                f"{chosen['labels_without_issues']}"
            )
        if metrics:
            out.print(f"cross-validated ({folds} folds, seed {seed}):\n")
    if metrics:
        frame = _metrics_frame(metrics)
        caption = f"{target}: {folds}-fold cross-validation"
        _emit(render_table(frame, fmt.value, caption, METRIC_DECIMALS))


def _training_part(
    store: Store,
    examples: lib.Examples,
    target: str,
    holdout: float | None,
    exclude_labels: Path | None,
    seed: int,
) -> tuple[list, list, list[str]]:
    """The documents and labels to train on, and the uids held out (--holdout and
    --exclude-labels may be combined: the exclusions first)."""
    documents, labels, held_out = examples.documents, examples.labels, []
    with _classifier_errors():
        spec = get_target(target)
        if exclude_labels is not None:
            excluded = lib.read_exclusions(exclude_labels)
            with handled(), store.session() as session:
                urls = lib.issue_urls(session, [d.uid for d in documents])
            split = lib.exclude(documents, labels, excluded, urls)
            documents, labels, held_out = split.documents, split.labels, split.held_out
        if holdout is not None:
            split = lib.hold_out(documents, labels, spec, holdout, seed)
            documents, labels = split.documents, split.labels
            held_out = sorted([*held_out, *split.held_out])
    return documents, labels, held_out


def evaluate(
    db: DbOption = None,
    study: StudyOption = None,
    target: TargetOption = "issue_type",
    classifier: ClassifierOption = DEFAULT_MODEL,
    folds: FoldsOption = DEFAULT_FOLDS,
    seed: SeedOption = 0,
    figure: Annotated[
        Path | None,
        typer.Option(
            "--figure",
            help="Confusion-matrix PNG (default: confusion-TARGET.png).",
            callback=writable_file,
        ),
    ] = None,
    no_figure: Annotated[bool, typer.Option("--no-figure", help="Write no figure.")] = False,
    per_class: Annotated[
        bool, typer.Option("--per-class", help="csv/latex: the per-label table instead.")
    ] = False,
    curve: Annotated[
        bool,
        typer.Option(
            "--learning-curve",
            help="Macro-F1 against the number of training issues, with the baselines "
            "(table, and a figure: --figure, default learning-curve-TARGET.png).",
        ),
    ] = False,
    reliability: Annotated[
        Path | None,
        typer.Option(
            "--reliability",
            help="Also write the model's reliability figure (claimed vs right) to this PNG.",
            callback=writable_file,
        ),
    ] = None,
    fmt: FormatOption = Format.md,
) -> None:
    """Cross-validate the classifier against majority and keyword-rule baselines.

    Stratified k-fold: every issue is scored once by systems fitted without it. Reports
    accuracy, macro- and weighted-F1, top-3 accuracy, per-label precision, recall and F1,
    calibration (Brier score, expected calibration error), for fix patterns micro-F1 and
    the mean number of patterns predicted beside the true mean, and the confusion matrix
    (also as a PNG). With --learning-curve: macro-F1 of every system trained on 20 %,
    40 % ... of each training fold, to judge how many more issues are worth labelling.

    Example: issueminer evaluate --target stage --folds 10 --seed 1 --format json
    """
    store = open_store(db)
    taxonomy = study_taxonomy(store, study)
    examples = _examples(store, taxonomy, target)
    if curve:
        _learning_curve(examples, taxonomy, target, classifier, folds, seed, figure, no_figure, fmt)
        return
    with _classifier_errors(), _steps(f"{folds}-fold cross-validation") as on_progress:
        evaluation = lib.evaluate_model(
            examples.documents,
            examples.labels,
            get_target(target),
            taxonomy,
            classifier.value,
            folds,
            seed,
            on_progress=on_progress,
        )
    path = (
        None if no_figure else lib.confusion_figure(evaluation, figure or f"confusion-{target}.png")
    )
    if reliability is not None:
        title = f"{target}: model, {folds}-fold cross-validation"
        lib.reliability_figure(evaluation.model.reliability, title, reliability)
    if fmt == Format.json:
        print_json({**evaluation.as_json(), "figure": str(path) if path else None})
        return
    summary = evaluation.summary_frame()
    caption = f"{target}: {folds}-fold cross-validation, n={evaluation.n}"
    if fmt != Format.md:
        frame = evaluation.per_class_frame() if per_class else summary
        _emit(render_table(frame, fmt.value, caption, METRIC_DECIMALS))
        return
    out.print(f"# {caption}\n")
    out.print(render_table(summary, "md", caption, METRIC_DECIMALS))
    for part, kinds in evaluation.choice_counts().items():
        # what inner cross-validation chose on each training part: model, rules or both
        chosen = ", ".join(f"{kind} in {n} of {folds} folds" for kind, n in kinds.items())
        out.print(f"model's {part} part: {chosen}")
    out.print("\n## Calibration and label counts\n")
    out.print(render_table(_extra_frame(evaluation), "md", caption, METRIC_DECIMALS))
    out.print("## Per label (model; baselines' F1)\n")
    out.print(render_table(evaluation.per_class_frame(), "md", caption, METRIC_DECIMALS))
    if path:
        out.print(f"confusion matrix: {path}")
    if reliability is not None:
        out.print(f"reliability figure: {reliability}")


def _extra_frame(evaluation: Any) -> pd.DataFrame:
    """Per system: Brier score and calibration error; for fix patterns also micro-F1 and
    the mean number of patterns predicted beside the true mean."""
    import pandas as pd

    rows = [{"system": name, **r.extra} for name, r in evaluation.results.items()]
    return pd.DataFrame(rows)


def _learning_curve(
    examples: lib.Examples,
    taxonomy: Taxonomy,
    target: str,
    classifier: Classifier,
    folds: int,
    seed: int,
    figure: Path | None,
    no_figure: bool,
    fmt: Format,
) -> None:
    with _classifier_errors(), _steps("learning curve") as on_progress:
        curve = lib.evaluate_learning_curve(
            examples.documents,
            examples.labels,
            get_target(target),
            taxonomy,
            classifier.value,
            folds,
            seed,
            on_progress,
        )
    path = None if no_figure else lib.curve_figure(curve, figure or f"learning-curve-{target}.png")
    if fmt == Format.json:
        print_json({**curve.as_json(), "figure": str(path) if path else None})
        return
    caption = f"{target}: macro-F1 by training issues, {folds}-fold cross-validation"
    _emit(render_table(curve.frame(), fmt.value, caption, METRIC_DECIMALS))
    if path and fmt == Format.md:
        out.print(f"learning curve: {path}")


def classify(
    db: DbOption = None,
    target: Annotated[
        str | None,
        typer.Option(
            help=f"What to predict: {', '.join(TARGETS)} [default: the --model's, else issue_type]."
        ),
    ] = None,
    model_path: Annotated[
        Path | None, typer.Option("--model", help="Model file (default: the newest for --target).")
    ] = None,
    models_dir: Annotated[
        Path, typer.Option("--models", help="Where to look for the newest model.")
    ] = DEFAULT_MODELS_DIR,
    limit: Annotated[int | None, typer.Option(min=0, help="At most this many issues.")] = None,
    order: Annotated[
        Order, typer.Option("--order", help="List in uid order or least certain first.")
    ] = Order.issue,
    include_labelled: Annotated[
        bool,
        typer.Option(
            "--include-labelled",
            help="Also predict issues with final labels; a model trained with --holdout "
            "is compared with its held-out issues' final labels.",
        ),
    ] = False,
    fmt: FormatOption = Format.md,
) -> None:
    """Predict labels for issues without final labels and store them as predictions.

    Predictions (label, probabilities, model id) go to the prediction table only, never
    to annotations or final labels, so stats, agree and exports ignore them. Stage,
    symptom and fix-pattern models say what a fault would be: read them beside an
    issue_type model's predictions. With --order uncertainty the list is an annotation
    queue, least certain first, the order the annotation app uses.

    Example: issueminer classify --target symptom --order uncertainty --limit 50
    """
    import pandas as pd

    if target is not None:
        with _classifier_errors():
            get_target(target)  # a misspelt target is said as such, not as a missing model
    wanted = target or "issue_type"
    path = model_path or lib.newest_model_file(models_dir, wanted)
    if path is None:
        fail(f"no {wanted} model in {models_dir}; run `issueminer train --target {wanted}`")
    with _classifier_errors():
        model = lib.load_model(path)
    if target is not None and model.target.name != target:
        fail(f"{path} predicts {model.target.name}, not {target}")
    store = open_store(db)
    with handled(), store.session() as session, _steps("predicting") as on_progress:
        predicted = lib.classify_unlabelled(
            session, model, limit, on_progress, include_labelled=include_labelled
        )
        rows = lib.prediction_queue(session, predicted, model.target.field, order.value)
        held_out = _held_out(session, store, model, predicted) if include_labelled else None
    if fmt == Format.json:
        found = {"model_id": model.model_id, "target": model.target.name, "issues": rows}
        print_json({**found, "held_out": held_out} if held_out else found)
        return
    if held_out and fmt == Format.md:
        share = "-" if held_out["accuracy"] is None else f"{held_out['accuracy']:.3f}"
        out.print(f"held-out issues: {held_out['n']}, predicted as finally labelled: {share}")
    frame = pd.DataFrame(
        rows, columns=["uid", "url", "title", "label", "probability", "uncertainty"]
    )
    if fmt == Format.md:
        out.print(f"{len(rows)} issues predicted by {model.model_id} (stored as predictions)\n")
        frame["uid"] = frame["uid"].str[:10]
    _emit(render_table(frame, fmt.value, f"{model.target.name} predictions", METRIC_DECIMALS))


def _held_out(session: Any, store: Store, model: Any, predicted: list) -> dict[str, Any] | None:
    """The model's held-out issues: its predictions beside their final labels."""
    uids = set(model.metadata.get("held_out") or ())
    if not uids:
        return None
    taxonomy = study_taxonomy(store, None)  # the database's study: its labels' names
    examples = lib.load_examples(session, model.target, taxonomy)
    truth = {d.uid: y for d, y in zip(examples.documents, examples.labels, strict=True)}
    return lib.held_out_agreement(
        predicted, {u: truth[u] for u in uids if u in truth}, model.target
    )
