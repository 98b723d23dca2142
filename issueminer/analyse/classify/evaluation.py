"""Honest measurement: the classifier and the baselines on the same stratified folds.

Each fold gets fresh, unfitted systems that are fitted on the training part only and
scored on the held-out part; the metrics are computed on the pooled held-out scores (each
issue is scored exactly once, by systems that never saw it), and per fold for the spread.
"""

from __future__ import annotations

import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
from sklearn.model_selection import KFold, StratifiedKFold

from issueminer.analyse.classify.systems import MULTILABEL_THRESHOLD, flat
from issueminer.analyse.classify.targets import (
    MULTI,
    SUMMARY_KEYS,
    ClassifierError,
    OnProgress,
    Target,
)

TOP_K = 3  # the annotation app shows three suggestions; top-3 accuracy measures them
MIN_FIGURE_INCHES = 5.5  # room for the axis labels and the title when there are few labels
MAX_ANNOTATED_CELLS = 30  # beyond this many labels, counts in the figure's cells are unreadable
RELIABILITY_BINS = 10  # bins of claimed probability in the reliability table and figure


@dataclass
class SystemResult:
    name: str
    accuracy: float
    macro_f1: float
    weighted_f1: float
    top3_accuracy: float
    fold_macro_f1: list[float]
    per_class: list[dict[str, Any]]  # label, precision, recall, f1, support
    confusion: list[list[int]]  # true x predicted (fix patterns: co-occurrence counts)
    fit_seconds: float = 0.0
    predict_seconds: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)
    reliability: list[dict[str, Any]] = field(default_factory=list)  # see `reliability`

    def summary(self) -> dict[str, Any]:
        return {
            **{key: getattr(self, key) for key in SUMMARY_KEYS},
            "macro_f1_sd": float(np.std(self.fold_macro_f1)) if self.fold_macro_f1 else 0.0,
            "fit_seconds": round(self.fit_seconds, 3),
            "predict_seconds": round(self.predict_seconds, 3),
            **self.extra,
        }

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("extra")
        return {**data, **self.summary()}


@dataclass
class Evaluation:
    target: str
    folds: int
    seed: int
    n: int
    classifier: str
    labels: list[str]
    results: dict[str, SystemResult]
    # per fold, what the model's inner cross-validation chose per part (`knowledge`)
    choices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model(self) -> SystemResult:
        return self.results["model"]

    @property
    def baselines(self) -> dict[str, SystemResult]:
        return {name: r for name, r in self.results.items() if name != "model"}

    def as_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "folds": self.folds,
            "seed": self.seed,
            "n": self.n,
            "classifier": self.classifier,
            "labels": self.labels,
            "model": self.model.as_dict(),
            "baselines": {name: r.as_dict() for name, r in self.baselines.items()},
            "choices": self.choices,
        }

    def choice_counts(self) -> dict[str, dict[str, int]]:
        """Per part of the model, how many folds chose the model alone, the model and the
        rules, or the rules alone."""
        found: dict[str, dict[str, int]] = {}
        for fold in self.choices:
            for part, chosen in fold.items():
                kind = chosen["choice"].split(" (")[0]
                found.setdefault(part, {}).setdefault(kind, 0)
                found[part][kind] += 1
        return found

    def summary_frame(self) -> pd.DataFrame:
        rows = [{"system": name, **r.summary()} for name, r in self.results.items()]
        columns = ["system", *SUMMARY_KEYS, "macro_f1_sd", "fit_seconds", "predict_seconds"]
        return pd.DataFrame(rows, columns=columns)

    def per_class_frame(self) -> pd.DataFrame:
        """One row per label that some issue has: the model's precision, recall and F1, and
        each baseline's F1 (labels no issue has, which a model may still have guessed, are
        in the JSON only)."""
        frame = pd.DataFrame(self.model.per_class)
        frame = frame[["label", "support", "precision", "recall", "f1"]]
        for name, result in self.baselines.items():
            frame[f"{name}_f1"] = [row["f1"] for row in result.per_class]
        frame = frame[frame["support"] > 0]
        return frame.sort_values(["support", "label"], ascending=[False, True], ignore_index=True)


# ---- folds -------------------------------------------------------------------------------
def stratification_keys(target: Target, y: Sequence[Any]) -> list[str]:
    """What folds are stratified on: the label; for fix patterns the row's rarest pattern."""
    if target.kind != MULTI:
        return [str(flat(target, v)) for v in y]
    counts = Counter(label for row in y for label in row)
    return [min(row, key=lambda label: (counts[label], label)) if row else "" for row in y]


def fold_indices(keys: Sequence[str], folds: int, seed: int) -> list[tuple[np.ndarray, ...]]:
    if folds < 2:
        raise ClassifierError("cross-validation needs at least 2 folds")
    if len(keys) < folds:
        raise ClassifierError(f"{len(keys)} labelled issues cannot be split into {folds} folds")
    splitter: KFold = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    if max(Counter(keys).values()) < folds:
        # no label fills every fold (symptoms of a small study): plain shuffled folds
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # rare labels cannot be in every fold; they are still held out once, as they should be
        warnings.filterwarnings("ignore", message="The least populated class")
        return list(splitter.split(np.zeros(len(keys)), keys))


# ---- cross-validation ----------------------------------------------------------------------
Run = tuple[np.ndarray, np.ndarray, list[str], np.ndarray | None]  # rows, scores, classes, sets


def cross_validate(
    frame: pd.DataFrame,
    y: Sequence[Any],
    target: Target,
    make_systems: Callable[[], dict[str, Any]],
    folds: int = 5,
    seed: int = 0,
    classifier: str = "",
    on_progress: OnProgress | None = None,
) -> Evaluation:
    """Fit fresh systems on each training part, score its held-out part, pool the scores.

    The label set is every label of `y` and every label a system may give (a model may
    suggest a study's label no training issue has): a wrong guess of such a label counts
    against the true one as any wrong guess does."""
    splits = fold_indices(stratification_keys(target, y), folds, seed)
    scored: dict[str, list[Run]] = defaultdict(list)  # per system, one run per fold
    seconds: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    choices: list[dict[str, Any]] = []
    for done, (train, test) in enumerate(splits, 1):
        for name, system in make_systems().items():
            run, (fit_seconds, score_seconds) = fit_and_score(system, frame, y, train, test, target)
            seconds[name][0] += fit_seconds
            seconds[name][1] += score_seconds
            scored[name].append(run)
            if name == "model" and hasattr(system, "knowledge"):
                choices.append(system.knowledge())
        if on_progress:
            on_progress(done, len(splits))
    labels = label_set(target, y, scored)
    results = {}
    for name, runs in scored.items():
        pooled, chosen = pool(runs, labels, len(y), target.kind == MULTI)
        per_fold = [
            score(
                target,
                [y[i] for i in test],
                pooled[test],
                labels,
                None if chosen is None else chosen[test],
            )["macro_f1"]
            for test, *_ in runs
        ]
        results[name] = _result(name, target, y, pooled, labels, per_fold, seconds[name], chosen)
    return Evaluation(target.name, folds, seed, len(y), classifier, labels, results, choices)


def fit_and_score(
    system: Any,
    frame: pd.DataFrame,
    y: Sequence[Any],
    train: np.ndarray,
    test: np.ndarray,
    target: Target,
) -> tuple[Run, tuple[float, float]]:
    """Fit `system` on the `train` rows and score the `test` rows: the held-out run, and
    the seconds fitting and scoring took (fix-pattern decisions are not timed)."""
    started = time.perf_counter()
    system.fit(frame.iloc[train].reset_index(drop=True), [y[i] for i in train])
    fitted = time.perf_counter()
    scores = system.scores(frame.iloc[test].reset_index(drop=True))
    seconds = (fitted - started, time.perf_counter() - fitted)
    decided = _decisions(system, scores) if target.kind == MULTI else None
    return (test, scores, list(system.classes_), decided), seconds


def label_set(target: Target, y: Sequence[Any], scored: dict[str, list[Run]]) -> list[str]:
    """The labels of `y` and every label a system gave a score to."""
    given = {c for runs in scored.values() for _, _, classes, _ in runs for c in classes}
    return sorted(set(_label_set(target, y)) | given)


def pool(
    runs: list[Run], labels: list[str], n: int, multi: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """One system's held-out scores (and fix-pattern decisions) of every fold, in the
    order of `labels`, one row per issue."""
    pooled = np.zeros((n, len(labels)))
    chosen = np.zeros((n, len(labels)), dtype=bool) if multi else None
    for test, scores, classes, decided in runs:
        pooled[test] = _align(scores, classes, labels)
        if chosen is not None and decided is not None:
            chosen[test] = _align(decided.astype(float), classes, labels) > 0
    return pooled, chosen


def _label_set(target: Target, y: Sequence[Any]) -> list[str]:
    if target.kind == MULTI:
        return sorted({label for row in y for label in row})
    return sorted({str(flat(target, v)) for v in y})


def _align(scores: np.ndarray, classes: Sequence[str], labels: list[str]) -> np.ndarray:
    """Scores in the order of `labels`; a label the training part lacked scores 0."""
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((scores.shape[0], len(labels)))
    for column, label in enumerate(classes):
        out[:, index[label]] = scores[:, column]
    return out


def _decisions(system: Any, scores: np.ndarray) -> np.ndarray:
    """A system's fix-pattern choices, in the order of its classes: its own rule when it
    has one (the classifier's, chosen on its training folds), else `predicted_sets`."""
    decide = getattr(system, "decide", None)
    return decide(scores) if decide is not None else predicted_sets(scores)


def predicted_sets(scores: np.ndarray) -> np.ndarray:
    """Multi-label decisions: every label from the threshold on, and always the top one."""
    chosen = scores >= MULTILABEL_THRESHOLD
    chosen[np.arange(len(scores)), scores.argmax(axis=1)] = True
    return chosen


def reliability(probabilities: np.ndarray, correct: np.ndarray) -> list[dict[str, Any]]:
    """Per bin of claimed probability: how many, the mean claim and the share right."""
    edges = np.linspace(0, 1, RELIABILITY_BINS + 1)
    bins = np.clip(np.digitize(probabilities, edges[1:-1]), 0, RELIABILITY_BINS - 1)
    rows = []
    for b in range(RELIABILITY_BINS):
        inside = bins == b
        if inside.any():
            rows.append(
                {
                    "low": float(edges[b]),
                    "high": float(edges[b + 1]),
                    "n": int(inside.sum()),
                    "claimed": float(probabilities[inside].mean()),
                    "right": float(correct[inside].mean()),
                }
            )
    return rows


def expected_calibration_error(rows: list[dict[str, Any]]) -> float:
    total = sum(r["n"] for r in rows)
    return float(sum(r["n"] * abs(r["claimed"] - r["right"]) for r in rows) / max(total, 1))


def _top_k(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]


def score(
    target: Target,
    y: Sequence[Any],
    scores: np.ndarray,
    labels: list[str],
    chosen: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy, macro/weighted F1 and top-3 accuracy of scores against true labels.

    F1 averages over the labels that occur in `y`. For fix patterns, accuracy is the
    share of issues whose set of patterns is exactly right, and top-3 accuracy the share
    with a true pattern among the three best-scored; `chosen` are the patterns the system
    decided on (default: `predicted_sets`). Fix patterns also get the mean number of
    patterns predicted and true per issue, micro-F1, and the Brier score of the scores
    taken as per-pattern probabilities.
    """
    if target.kind == MULTI:
        return _score_multi(y, scores, labels, chosen)
    truth = [str(flat(target, v)) for v in y]
    predicted = [labels[i] for i in scores.argmax(axis=1)]
    present = sorted(set(truth))
    index = {label: i for i, label in enumerate(labels)}
    top = _top_k(scores)
    return {
        "accuracy": float(np.mean([t == p for t, p in zip(truth, predicted, strict=True)])),
        "macro_f1": _f1(truth, predicted, present, "macro"),
        "weighted_f1": _f1(truth, predicted, present, "weighted"),
        "top3_accuracy": float(
            np.mean([index[t] in row for t, row in zip(truth, top, strict=True)])
        ),
        **_calibration(_onehot(truth, index, scores.shape), scores, top_only=True),
        "truth": truth,
        "predicted": predicted,
    }


def _onehot(truth: Sequence[str], index: dict[str, int], shape: tuple[int, ...]) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    out[np.arange(len(truth)), [index[t] for t in truth]] = True
    return out


def _calibration(truth: np.ndarray, scores: np.ndarray, top_only: bool) -> dict[str, Any]:
    """Brier score (per issue: summed over labels for one label per issue, averaged over
    patterns for fix patterns) and the expected calibration error of the probabilities
    the app shows: the top label's, or every pattern's."""
    if top_only:
        brier = float(np.mean(((scores - truth) ** 2).sum(axis=1)))
        best = scores.argmax(axis=1)
        claimed, right = scores[np.arange(len(scores)), best], truth[np.arange(len(truth)), best]
    else:
        brier = float(np.mean((scores - truth) ** 2))
        claimed, right = scores.ravel(), truth.ravel()
    rows = reliability(claimed, right)
    return {"brier": brier, "ece": expected_calibration_error(rows), "reliability": rows}


def _f1(truth: Any, predicted: Any, labels: Any, average: str) -> float:
    return float(f1_score(truth, predicted, labels=labels, average=average, zero_division=0))


def _indicator(y: Sequence[Sequence[str]], labels: list[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(y), len(labels)), dtype=bool)
    for row, values in enumerate(y):
        out[row, [index[v] for v in values]] = True
    return out


def _score_multi(
    y: Sequence[Any], scores: np.ndarray, labels: list[str], chosen: np.ndarray | None
) -> dict[str, Any]:
    truth = _indicator(y, labels)
    predicted = predicted_sets(scores) if chosen is None else chosen
    present = np.flatnonzero(truth.any(axis=0))
    top = _top_k(scores)
    return {
        "accuracy": float(np.mean((truth == predicted).all(axis=1))),
        "macro_f1": _f1(truth[:, present], predicted[:, present], None, "macro"),
        "weighted_f1": _f1(truth[:, present], predicted[:, present], None, "weighted"),
        "top3_accuracy": float(np.mean([truth[i, row].any() for i, row in enumerate(top)])),
        "samples_f1": _f1(truth, predicted, None, "samples"),
        "micro_f1": _f1(truth[:, present], predicted[:, present], None, "micro"),
        "predicted_per_issue": float(predicted.sum(axis=1).mean()),
        "true_per_issue": float(truth.sum(axis=1).mean()),
        **_calibration(truth, scores, top_only=False),
        "truth": truth,
        "predicted": predicted,
    }


def _result(
    name: str,
    target: Target,
    y: Sequence[Any],
    scores: np.ndarray,
    labels: list[str],
    fold_f1: list[float],
    seconds: list[float],
    chosen: np.ndarray | None = None,
) -> SystemResult:
    metrics = score(target, y, scores, labels, chosen)
    truth, predicted = metrics.pop("truth"), metrics.pop("predicted")
    bins = metrics.pop("reliability")
    if target.kind == MULTI:
        precision, recall, f1, support = precision_recall_fscore_support(
            truth, predicted, zero_division=0
        )
        confusion = truth.T.astype(int) @ predicted.astype(int)
    else:
        precision, recall, f1, support = precision_recall_fscore_support(
            truth, predicted, labels=labels, zero_division=0
        )
        confusion = confusion_matrix(truth, predicted, labels=labels)
    per_class = [
        {
            "label": label,
            "precision": float(p),
            "recall": float(r),
            "f1": float(f),
            "support": int(s),
        }
        for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)
    ]
    extra = {k: v for k, v in metrics.items() if k not in SUMMARY_KEYS}
    return SystemResult(
        name,
        **{k: metrics[k] for k in SUMMARY_KEYS},
        fold_macro_f1=fold_f1,
        per_class=per_class,
        confusion=confusion.tolist(),
        fit_seconds=seconds[0],
        predict_seconds=seconds[1],
        extra=extra,
        reliability=bins,
    )


# ---- the figure ----------------------------------------------------------------------------
def confusion_figure(evaluation: Evaluation, path: Path | str, system: str = "model") -> Path:
    """The cross-validated confusion matrix as a PNG, rows normalised to the true label.

    For fix patterns (several per issue) a cell counts issues with that true pattern and
    that predicted pattern.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    result = evaluation.results[system]
    counts = np.asarray(result.confusion, dtype=float)
    # labels no issue has and the system never chose (the study's others) stay out
    shown = np.flatnonzero((counts.sum(axis=0) + counts.sum(axis=1)) > 0)
    counts = counts[np.ix_(shown, shown)]
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    labels = [evaluation.labels[i] for i in shown]
    side = max(MIN_FIGURE_INCHES, 0.38 * len(labels) + 2.5)
    figure = Figure(figsize=(side + 1.5, side))
    axes = figure.add_subplot()
    image = axes.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(
        range(len(labels)), labels, rotation=60, ha="right", rotation_mode="anchor", fontsize=8
    )
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.set_xlabel("predicted")
    axes.set_ylabel("final label")
    axes.set_title(
        f"{evaluation.target}: {system}\n{evaluation.folds}-fold cross-validation, "
        f"n={evaluation.n}, macro-F1 {result.macro_f1:.2f}",
        fontsize=10,
    )
    if len(labels) <= MAX_ANNOTATED_CELLS:
        for (row, column), value in np.ndenumerate(counts):
            if value:
                colour = "white" if shares[row, column] > 0.5 else "black"
                axes.text(column, row, int(value), ha="center", va="center", fontsize=7, c=colour)
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of the row")
    figure.tight_layout()
    return save_figure(figure, path)


def save_figure(figure: Any, path: Path | str) -> Path:
    """Write a matplotlib figure as a PNG, making its folder when missing."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    return path
