"""How many more issues must we label? Macro-F1 against the number of training issues.

Each outer fold's training part is cut to a share of itself (the same seeded cut for
every system), the systems are fitted on the cut and scored on the untouched test fold;
the pooled held-out scores give one macro-F1 per share and system. The figure shows the
model's curve beside the baselines', and a reliability figure shows whether the model's
top probabilities are as often right as they claim.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from issueminer.analyse.classify.evaluation import (
    Run,
    fit_and_score,
    fold_indices,
    label_set,
    pool,
    save_figure,
    score,
    stratification_keys,
)
from issueminer.analyse.classify.targets import MULTI, OnProgress, Target

SHARES = (0.2, 0.4, 0.6, 0.8, 1.0)


@dataclass
class LearningCurve:
    target: str
    folds: int
    seed: int
    rows: list[dict[str, Any]]  # share, train_issues, then one macro-F1 per system

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows)

    def as_json(self) -> dict[str, Any]:
        return {"target": self.target, "folds": self.folds, "seed": self.seed, "rows": self.rows}


def learning_curve(
    frame: pd.DataFrame,
    y: Sequence[Any],
    target: Target,
    make_systems: Callable[[], dict[str, Any]],
    folds: int = 5,
    seed: int = 0,
    shares: Sequence[float] = SHARES,
    on_progress: OnProgress | None = None,
) -> LearningCurve:
    """Cross-validated macro-F1 of every system, trained on growing shares of each fold."""
    splits = fold_indices(stratification_keys(target, y), folds, seed)
    rng = np.random.default_rng(seed)
    # one seeded order per fold: a smaller share is always a prefix of a larger one
    orders = [rng.permutation(train) for train, _ in splits]
    rows = []
    for step, share in enumerate(shares, 1):
        scored: dict[str, list[Run]] = {}
        sizes = []
        for order, (_, test) in zip(orders, splits, strict=True):
            part = np.sort(order[: max(2, round(share * len(order)))])
            sizes.append(len(part))
            for name, system in make_systems().items():
                run, _ = fit_and_score(system, frame, y, part, test, target)
                scored.setdefault(name, []).append(run)
        labels = label_set(target, y, scored)
        row: dict[str, Any] = {"share": share, "train_issues": round(float(np.mean(sizes)))}
        for name, runs in scored.items():
            pooled, chosen = pool(runs, labels, len(y), target.kind == MULTI)
            row[name] = score(target, y, pooled, labels, chosen)["macro_f1"]
        rows.append(row)
        if on_progress:
            on_progress(step, len(shares))
    return LearningCurve(target.name, folds, seed, rows)


def curve_figure(curve: LearningCurve, path: Path | str) -> Path:
    """Macro-F1 against training issues, one line per system, as a PNG."""
    from matplotlib.figure import Figure

    frame = curve.frame()
    figure = Figure(figsize=(6, 4))
    axes = figure.add_subplot()
    for name in frame.columns[2:]:
        style = "-o" if name == "model" else "--"
        axes.plot(frame["train_issues"], frame[name], style, label=name)
    axes.set_xlabel("training issues per fold")
    axes.set_ylabel("macro-F1 (cross-validated)")
    axes.set_ylim(0, 1)
    axes.set_title(f"{curve.target}: learning curve, {curve.folds}-fold", fontsize=10)
    axes.legend()
    figure.tight_layout()
    return save_figure(figure, path)


def reliability_figure(rows: list[dict[str, Any]], title: str, path: Path | str) -> Path:
    """Claimed probability against the share of right predictions (the diagonal is
    perfect calibration); marker sizes follow the number of predictions."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.5, 4.5))
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], ":", color="grey")
    sizes = [20 + 200 * r["n"] / max(1, max(x["n"] for x in rows)) for r in rows]
    axes.scatter([r["claimed"] for r in rows], [r["right"] for r in rows], s=sizes)
    axes.plot([r["claimed"] for r in rows], [r["right"] for r in rows], "-")
    axes.set_xlabel("claimed probability")
    axes.set_ylabel("share right")
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_title(title, fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)


def evaluate_learning_curve(
    documents: Sequence[Any],
    y: Sequence[Any],
    target: Target,
    taxonomy: Any,
    classifier: str,
    folds: int = 5,
    seed: int = 0,
    on_progress: OnProgress | None = None,
) -> LearningCurve:
    """`learning_curve` of the model and its baselines on the features training uses."""
    from issueminer.analyse.classify.model import study_systems

    frame, systems = study_systems(documents, target, taxonomy, classifier)
    return learning_curve(frame, y, target, systems, folds, seed, on_progress=on_progress)
