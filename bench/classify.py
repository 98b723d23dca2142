"""`make bench-classify`: the classifier's training time and prediction throughput.

On a generated corpus (`bench.labelled_corpus`) of `--size` labelled issues per target,
each system is timed from documents to scores: featurising (split, spaCy tokens,
signals) is counted for every system, since every one needs it. Prediction runs on
`--size` further issues the systems never saw. Every issue is a thread: it gets two to
four replies (`THREAD_REPLIES`), one of which holds its resolution (its labels' signal
words), as the study's real threads do; `--no-replies` times title and body alone.
The issue's budget: training 10,000 issues under 60 s on 2 cores, prediction at 2,000
issues/s or more.

Usage: python -m bench.classify [--size 10000] [--targets issue_type,symptom,fix_pattern]
"""

from __future__ import annotations

import argparse
import math
import random
import time
from typing import Any

from bench.labelled_corpus import (
    DEFAULT_SEED,
    FILLER,
    ISSUE_TYPE_WEIGHTS,
    GeneratedIssue,
    generate,
    signal_words,
)
from issueminer.analyse.classify import (
    Document,
    ReplyText,
    featurize,
    get_target,
    predict,
    systems_for,
)
from issueminer.analyse.classify.model import train_model
from issueminer.analyse.classify.targets import MULTI, PATH, Target
from issueminer.taxonomy import FAULT, HOWTO, load_taxonomy

TRAIN_BUDGET_SECONDS = 60.0  # the issue's acceptance figures
PREDICT_BUDGET_PER_SECOND = 2000.0
DEFAULT_TARGETS = "issue_type,symptom,fix_pattern"
THREAD_REPLIES = (2, 4)  # replies per issue: questions back, "me too", the resolution
REPLY_WORDS = (15, 60)  # words per reply


def thread_of(issue: GeneratedIssue, rng: random.Random) -> tuple[ReplyText, ...]:
    """Replies for a generated issue: filler comments and one that resolves it, naming
    its labels' signal words (so replies carry signal, and cost, as real ones do)."""
    labels = issue.labels
    named = [labels.get("leaf_symptom"), *(labels.get("fix_patterns") or [])]
    named.append(labels.get("howto_topic"))
    resolution = [w for name in named if name for w in signal_words(str(name))]
    replies = []
    for _ in range(rng.randint(*THREAD_REPLIES) - 1):
        replies.append(
            ReplyText("comment", " ".join(rng.choices(FILLER, k=rng.randint(*REPLY_WORDS))))
        )
    words = rng.choices(FILLER, k=rng.randint(*REPLY_WORDS)) + resolution
    rng.shuffle(words)
    replies.append(ReplyText("comment", "Turned out " + " ".join(words) + ". Fixed."))
    return tuple(replies)


def _label(issue: GeneratedIssue, target: Target) -> Any:
    labels = issue.labels
    if target.kind == PATH:
        leaf = labels.get("leaf_symptom")
        return (labels["stage"], labels.get("inner_category"), leaf) if leaf else None
    if target.kind == MULTI:
        return tuple(labels.get("fix_patterns") or ()) or None
    return labels.get(target.field)


def _share(target: Target) -> float:
    if target.field == "issue_type":
        return 1.0
    return ISSUE_TYPE_WEIGHTS[HOWTO if target.field == "howto_topic" else FAULT]


def corpus(
    target: Target, size: int, seed: int, replies: bool = True
) -> tuple[list[Document], list[Any], list[Document]]:
    """`size` labelled documents for `target` and `size` unseen ones to predict."""
    wanted = math.ceil(2 * size / _share(target) * 1.1)  # a margin over the expected share
    issues = generate(wanted, seed)
    rng = random.Random(seed)
    documents = [
        Document(i.title, i.body, i.source, i.url, thread_of(i, rng) if replies else ())
        for i in issues
    ]
    labelled = [(d, _label(i, target)) for d, i in zip(documents, issues, strict=True)]
    labelled = [(d, y) for d, y in labelled if y is not None][:size]
    unseen = documents[-size:]
    return [d for d, _ in labelled], [y for _, y in labelled], unseen


def _time(action: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def bench_target(name: str, size: int, seed: int, replies: bool = True) -> list[dict[str, Any]]:
    target = get_target(name)
    taxonomy = load_taxonomy()
    documents, labels, unseen = corpus(target, size, seed, replies)
    rows = []
    model, seconds = _time(lambda: train_model(documents, labels, target, taxonomy, folds=0))
    _, predict_seconds = _time(lambda: predict(model, unseen))
    rows.append(_row(name, "model", len(documents), seconds, len(unseen), predict_seconds))
    for system_name, system in systems_for(target, taxonomy).items():
        if system_name == "model":
            continue
        _, fit_seconds = _time(lambda s=system: s.fit(featurize(documents), labels))
        _, scores_seconds = _time(lambda s=system: s.scores(featurize(unseen)))
        rows.append(
            _row(name, system_name, len(documents), fit_seconds, len(unseen), scores_seconds)
        )
    return rows


def _row(target: str, system: str, n: int, fit: float, m: int, scored: float) -> dict[str, Any]:
    return {
        "target": target,
        "system": system,
        "train_issues": n,
        "train_s": fit,
        "predict_issues": m,
        "predict_per_s": m / scored,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--targets", default=DEFAULT_TARGETS)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--no-replies", action="store_true", help="Title and body only.")
    args = parser.parse_args()
    print(f"{'target':<12} {'system':<9} {'train issues':>12} {'train s':>8} {'predict/s':>10}")
    failed = []
    for name in args.targets.split(","):
        for row in bench_target(name, args.size, args.seed, not args.no_replies):
            print(
                f"{row['target']:<12} {row['system']:<9} {row['train_issues']:>12} "
                f"{row['train_s']:>8.1f} {row['predict_per_s']:>10.0f}",
                flush=True,
            )
            if row["system"] == "model" and row["train_issues"] >= args.size:
                slow = row["train_s"] > TRAIN_BUDGET_SECONDS * args.size / 10_000
                if slow or row["predict_per_s"] < PREDICT_BUDGET_PER_SECOND:
                    failed.append(name)
    budget = f"budget: train 10,000 in {TRAIN_BUDGET_SECONDS:.0f} s, predict "
    budget += f"{PREDICT_BUDGET_PER_SECOND:.0f} issues/s"
    print(f"\n{budget}: {'missed by ' + ', '.join(failed) if failed else 'met'}")


if __name__ == "__main__":
    main()
