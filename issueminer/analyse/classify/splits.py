"""Honest splits: train on part of the final labels, compare predictions with the rest.

`hold_out` keeps a seeded, stratified share of the labelled issues out of training (the
model file lists them), `exclude` leaves out the issues a file names; `held_out_agreement`
compares a model's predictions for its held-out issues with their final labels.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn.model_selection import train_test_split

from issueminer.analyse.classify.features import Document
from issueminer.analyse.classify.model import FIX_PATTERN_JOIN, PredictedLabel
from issueminer.analyse.classify.targets import MULTI, PATH, ClassifierError, Target


@dataclass
class Split:
    documents: list[Document]
    labels: list[Any]
    held_out: list[str]  # uids of the labelled issues kept out of training


def hold_out(
    documents: Sequence[Document], labels: Sequence[Any], target: Target, fraction: float, seed: int
) -> Split:
    """Keep `fraction` of the issues out of training, stratified by label where every
    label has two issues or more (else a plain seeded shuffle)."""
    if not 0 < fraction < 1:
        raise ClassifierError(f"--holdout {fraction}: give a fraction between 0 and 1")
    keys = [_key(target, label) for label in labels]
    held = max(1, round(fraction * len(labels)))
    if len(labels) - held < 2:
        raise ClassifierError(f"holding out {held} of {len(labels)} issues leaves too few to train")
    stratify = keys if min(Counter(keys).values()) >= 2 and held >= len(set(keys)) else None
    train, test = train_test_split(
        list(range(len(labels))), test_size=held, random_state=seed, stratify=stratify
    )
    train.sort()
    return Split(
        [documents[i] for i in train],
        [labels[i] for i in train],
        sorted(documents[i].uid for i in test),
    )


def read_exclusions(path: Path) -> set[str]:
    """Issue uids or URLs, one a line (blank lines and '#' comments skipped, indented or
    not). utf-8-sig: a list saved by a Windows editor starts with a byte-order mark, which
    would otherwise make its first line name no issue."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClassifierError(f"--exclude-labels {path}: cannot be read ({exc})") from exc
    lines = (line.strip() for line in text.splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def exclude(
    documents: Sequence[Document], labels: Sequence[Any], excluded: set[str], urls: dict[str, str]
) -> Split:
    """The issues `excluded` names (by uid or URL) left out of training."""
    out = {uid for uid, url in urls.items() if uid in excluded or url in excluded}
    unknown = excluded - out - {urls[u] for u in out}
    if unknown:
        example = sorted(unknown)[0]
        raise ClassifierError(
            f"--exclude-labels names {len(unknown)} issue(s) without a final label here, "
            f"e.g. {example!r}"
        )
    kept = [(d, y) for d, y in zip(documents, labels, strict=True) if d.uid not in out]
    return Split([d for d, _ in kept], [y for _, y in kept], sorted(out))


def _key(target: Target, label: Any) -> str:
    if target.kind == PATH:
        return str(label[2])
    if target.kind == MULTI:
        return FIX_PATTERN_JOIN.join(sorted(label))
    return str(label)


def held_out_agreement(
    predicted: Sequence[PredictedLabel], truth: dict[str, Any], target: Target
) -> dict[str, Any]:
    """How the predictions of held-out issues compare with their final labels: the share
    predicted exactly (fix patterns: the exact set), per issue."""
    rows = []
    for p in predicted:
        if p.uid not in truth or p.field != target.field:
            continue
        expected = _key(target, truth[p.uid])
        got = (
            FIX_PATTERN_JOIN.join(sorted(p.label.split(FIX_PATTERN_JOIN)))
            if target.kind == MULTI
            else p.label
        )
        rows.append({"uid": p.uid, "final": expected, "predicted": got, "agrees": expected == got})
    agreeing = sum(r["agrees"] for r in rows)
    return {
        "n": len(rows),
        "accuracy": agreeing / len(rows) if rows else None,
        "issues": rows,
    }
