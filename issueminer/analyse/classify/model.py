"""Train, save, load and apply a classifier; the file format loads without unpickling.

A model file is a skops archive (a zip of JSON and numpy arrays) holding a dict: the
format's name and version, the metadata as a JSON string (target, label set, training-set
hash, library versions, cross-validated metrics, creation time) and the fitted
scikit-learn objects. Loading refuses any file that would instantiate a type outside
skops's trusted defaults and `TRUSTED_TYPES`, so a tampered or foreign file is an error,
never code that runs.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from issueminer.analyse.classify.evaluation import Evaluation, cross_validate
from issueminer.analyse.classify.features import Document, featurize
from issueminer.analyse.classify.systems import TextClassifier, systems_for
from issueminer.analyse.classify.targets import (
    DEFAULT_CLASSIFIER,
    DEFAULT_FOLDS,
    INNER_FIELD,
    MULTI,
    PATH,
    ClassifierError,
    OnProgress,
    Target,
    get_target,
)
from issueminer.study import StudyError, ThreadReading, thread_reading
from issueminer.taxonomy import Taxonomy

MODEL_FORMAT = "issueminer-classifier"
FORMAT_VERSION = 1
MODEL_SUFFIX = ".skops"
PROBABILITY_DECIMALS = 4  # stored probabilities: enough to rank, short enough to read
MAX_LABEL_CHARS = 200  # Prediction.label's column size (several fix patterns can exceed it)
FIX_PATTERN_JOIN = " & "  # how the study's sheets join several fix patterns in one cell
# What skops does not trust by default but our models hold: private scikit-learn types
# inside fitted calibrated and one-vs-rest models, and the feature selection's scoring
# function (referenced by name, not code). Nothing else is ever instantiated from a file.
TRUSTED_TYPES = frozenset(
    {
        "sklearn.calibration._CalibratedClassifier",
        "sklearn.calibration._SigmoidCalibration",
        "sklearn.multiclass._ConstantPredictor",
        "sklearn.feature_selection._univariate_selection.chi2",
    }
)
VERSIONED_PACKAGES = ("scikit-learn", "numpy", "scipy", "spacy", "skops", "issueminer")


class ModelFileError(ClassifierError):
    """A model file that cannot be used: missing, not a model, or holding untrusted types."""


@dataclass
class TrainedModel:
    system: TextClassifier
    metadata: dict[str, Any]

    @property
    def model_id(self) -> str:
        return str(self.metadata["model_id"])

    @property
    def target(self) -> Target:
        return get_target(self.metadata["target"])


@dataclass(frozen=True)
class PredictedLabel:
    """One prediction of one issue for one label field (what a Prediction row stores)."""

    uid: str
    field: str
    label: str
    probability: float
    probabilities: dict[str, float]


# ---- training ------------------------------------------------------------------------------
def training_hash(documents: Sequence[Document], y: Sequence[Any]) -> str:
    """SHA-256 of the training set: each issue's uid, text, replies and label, in a
    stable order."""
    rows = sorted(
        json.dumps(
            [d.uid, d.title, d.body, [[r.kind, r.body, r.accepted] for r in d.replies]]
            + [_plain(label)],
            ensure_ascii=False,
        )
        for d, label in zip(documents, y, strict=True)
    )
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _plain(label: Any) -> Any:
    return list(label) if isinstance(label, tuple | list) else label


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in VERSIONED_PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "unknown"
    return found


def study_reading(taxonomy: Taxonomy) -> ThreadReading:
    """How the study file says to read a thread (`study.thread_reading`), as a
    classifier error when the file's classifier section is malformed."""
    try:
        return thread_reading(taxonomy)
    except StudyError as exc:
        raise ClassifierError(str(exc)) from exc


def evaluate_model(
    documents: Sequence[Document],
    y: Sequence[Any],
    target: Target,
    taxonomy: Taxonomy,
    classifier: str = DEFAULT_CLASSIFIER,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    frame: pd.DataFrame | None = None,
    on_progress: OnProgress | None = None,
) -> Evaluation:
    """Cross-validate the model and its baselines on the features training uses (the study's
    error signals included); `frame` when the caller has featurized already."""
    frame, systems = study_systems(documents, target, taxonomy, classifier, frame)
    return cross_validate(frame, y, target, systems, folds, seed, classifier, on_progress)


def study_systems(
    documents: Sequence[Document],
    target: Target,
    taxonomy: Taxonomy,
    classifier: str = DEFAULT_CLASSIFIER,
    frame: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, Callable[[], dict[str, Any]]]:
    """The features training uses (`frame` when given) and a maker of fresh, unfitted
    systems, both reading threads as the study file says: what every measurement fits."""
    reading = study_reading(taxonomy)
    if frame is None:
        frame = featurize(documents, taxonomy.signals, reading)

    def systems() -> dict[str, Any]:
        return systems_for(target, taxonomy, classifier, reading.weights)

    return frame, systems


def train_model(
    documents: Sequence[Document],
    y: Sequence[Any],
    target: Target,
    taxonomy: Taxonomy,
    classifier: str = DEFAULT_CLASSIFIER,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    on_progress: OnProgress | None = None,
) -> TrainedModel:
    """Fit on every labelled issue; with `folds`, first measure by cross-validation.
    `on_progress` hears of each fold and then of the final fit (folds + 1 steps)."""
    if len({str(v) for v in y}) < 2:
        raise ClassifierError(f"training a {target.name} model needs two different labels or more")
    reading = study_reading(taxonomy)
    frame = featurize(documents, taxonomy.signals, reading)
    steps = folds + 1
    metrics: dict[str, Any] = {}
    if folds:
        evaluation = evaluate_model(
            documents,
            y,
            target,
            taxonomy,
            classifier,
            folds,
            seed,
            frame,
            on_progress=(lambda done, _: on_progress(done, steps)) if on_progress else None,
        )
        metrics = {
            "folds": folds,
            "seed": seed,
            **{name: r.summary() for name, r in evaluation.results.items()},
        }
    started = time.perf_counter()
    system = systems_for(target, taxonomy, classifier, reading.weights)["model"]
    system.fit(frame, y)
    if on_progress:
        on_progress(steps, steps)
    created = datetime.now(UTC)
    digest = training_hash(documents, y)
    metadata = {
        "model_id": f"{target.name}-{created:%Y%m%dT%H%M%S}-{digest[:8]}",
        "target": target.name,
        "field": target.field,
        "classifier": classifier,
        "labels": system.classes_,
        "study": taxonomy.study,
        # the study's own error signals, so predictions compute the features training saw
        "signals": {name: [list(a), p] for name, (a, p) in taxonomy.signals.items()},
        # ... and reads threads as training did (template, resolving replies, weights)
        "thread": reading.as_dict(),
        # fix patterns: the rule inner cross-validation chose (kind, value)
        "decision_rule": system.parts["main"].get("rule") if target.kind == MULTI else None,
        # what the study's knowledge (keyword rules from names, definitions, codebook
        # examples) adds, per part: chosen by inner cross-validation on the training issues
        "knowledge": system.knowledge(),
        "created_at": created.isoformat(),
        "training_set": {"n": len(documents), "sha256": digest},
        "fit_seconds": round(time.perf_counter() - started, 3),
        "versions": library_versions(),
        "metrics": metrics,
    }
    return TrainedModel(system, metadata)


# ---- the file ------------------------------------------------------------------------------
def save_model(model: TrainedModel, path: Path | str) -> Path:
    """Write to `path`, or into it as `<model id>.skops` when it is a directory."""
    import skops.io

    path = Path(path)
    if path.suffix != MODEL_SUFFIX:
        path = path / f"{model.model_id}{MODEL_SUFFIX}"
    path.parent.mkdir(parents=True, exist_ok=True)
    bundle = {
        "format": MODEL_FORMAT,
        "format_version": FORMAT_VERSION,
        "metadata": json.dumps(model.metadata),
        "state": model.system.state(),
    }
    skops.io.dump(bundle, path)
    return path


def load_model(path: Path | str) -> TrainedModel:
    """Load a model file, refusing untrusted content (see the module's docstring)."""
    import skops.io

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"no model file at {path}")
    try:
        untrusted = set(skops.io.get_untrusted_types(file=path))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError, TypeError, ValueError) as exc:
        # TypeError: a zip whose schema names no skops protocol
        raise ModelFileError(f"{path} is not an issueminer model file ({exc})") from exc
    refused = sorted(untrusted - TRUSTED_TYPES)
    if refused:
        raise ModelFileError(f"refusing to load {path}: it holds untrusted types {refused}")
    try:
        bundle = skops.io.load(path, trusted=sorted(untrusted))
    except Exception as exc:  # skops raises many kinds on a malformed archive
        raise ModelFileError(f"{path} cannot be read as a model ({exc})") from exc
    return _from_bundle(bundle, path)


def _from_bundle(bundle: Any, path: Path) -> TrainedModel:
    if not isinstance(bundle, dict) or bundle.get("format") != MODEL_FORMAT:
        raise ModelFileError(f"{path} is not an issueminer model file")
    if bundle.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"{path} has model format {bundle.get('format_version')!r}")
    try:
        metadata = json.loads(bundle["metadata"])
        target = get_target(metadata["target"])
        system = TextClassifier.from_state(target, bundle["state"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{path} has an incomplete model ({exc})") from exc
    return TrainedModel(system, metadata)


def newest_model_file(directory: Path | str, target: str) -> Path | None:
    """The newest `<target>-*.skops` file in `directory` (model ids sort by creation time)."""
    name = get_target(target).name
    files = sorted(Path(directory).glob(f"{name}-*{MODEL_SUFFIX}"))
    return files[-1] if files else None


# ---- prediction ----------------------------------------------------------------------------
def predict(model: TrainedModel, documents: Sequence[Document]) -> list[PredictedLabel]:
    """Predictions for each document; a symptom model also gives its leaf's stage and inner."""
    reading = ThreadReading.from_dict(model.metadata.get("thread"))
    frame = featurize(documents, model.metadata.get("signals"), reading)
    target = model.target
    if target.kind == PATH:
        return _predict_path(model, documents, frame)
    scores = model.system.scores(frame)
    classes = model.system.classes_
    chosen = model.system.decide(scores) if target.kind == MULTI else None
    rounded = _rounded_rows(scores)
    found = []
    for row, document in enumerate(documents):
        probabilities = dict(zip(classes, rounded[row], strict=True))
        if chosen is not None:
            names = [c for c, keep in zip(classes, chosen[row], strict=True) if keep]
            names.sort(key=lambda c: -probabilities[c])
            label = FIX_PATTERN_JOIN.join(names)[:MAX_LABEL_CHARS]
        else:
            label = classes[int(scores[row].argmax())]
        best = float(scores[row].max())
        found.append(PredictedLabel(document.uid, target.field, label, best, probabilities))
    return found


def _predict_path(
    model: TrainedModel, documents: Sequence[Document], frame: Any
) -> list[PredictedLabel]:
    fields = {"stage": "stage", "inner_category": INNER_FIELD, "leaf": model.target.field}
    found = []
    for level, (classes, scores) in model.system.level_scores(frame).items():
        # stages without inner categories have None there: no inner-category prediction
        named = [i for i, c in enumerate(classes) if c is not None]
        names = [classes[i] for i in named]
        best = scores.argmax(axis=1)
        rounded = _rounded_rows(scores[:, named])
        for row, document in enumerate(documents):
            label = classes[best[row]]
            if label is not None:
                probability = float(scores[row, best[row]])
                probabilities = dict(zip(names, rounded[row], strict=True))
                found.append(
                    PredictedLabel(document.uid, fields[level], label, probability, probabilities)
                )
    return found


def _rounded_rows(scores: np.ndarray) -> list[list[float]]:
    """Stored probabilities, rounded for all rows at once (per row costs more than the model)."""
    return np.round(scores, PROBABILITY_DECIMALS).tolist()
