"""The sample to label for an estimate: how many, which, and with what weight.

`round create --for-estimate` draws from the population's issues that have no final
label, are in no round and have text (the frame), at random or stratified by the
classifier's predicted issue type. The design is recorded in the round's settings
(`settings["estimate"]`: the frame's and the sample's size per stratum, each issue's
stratum), so an issue's weight, its stratum's frame size over its sample size, is known
when the estimate is made (`sample_weights`). No schema change: settings is a JSON column.

Size from a target width: a 95% interval of half-width h around a share p needs, from a
simple random sample of a frame of N issues (the normal approximation with the finite
population correction; Cochran, Sampling Techniques, 1977, eq. 4.2),

    n0 = z^2 p (1 - p) / h^2,   n = n0 / (1 + (n0 - 1) / N)

with p the largest share's distance from 1/2 planned from the predictions (p = 1/2 when
there are none). The labelled-sample estimator's intervals are narrower than this when
the classifier is good, so the size is on the safe side.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from issueminer.label.draw import candidate_rows
from issueminer.label.rounds import LabelingError
from issueminer.store import LabelingRound, RoundItem

ESTIMATE_KIND = "estimate"  # LabelingRound.kind of a round drawn for an estimate
RANDOM = "random"
BY_PREDICTION = "prediction"
DESIGNS = (RANDOM, BY_PREDICTION)
NO_PREDICTION = "(no prediction)"
Z95 = 1.959963984540054


def sample_size(width: float, frame: int, share: float = 0.5) -> int:
    """Issues to label so that a 95% interval of a share near `share` is `width` wide."""
    if not 0 < width < 1:
        raise LabelingError(f"--width is an interval's width, between 0 and 1, not {width}")
    if frame < 1:
        raise LabelingError("no unlabelled issue with text to draw from")
    half = width / 2
    n0 = Z95**2 * share * (1 - share) / half**2
    return min(frame, max(2, math.ceil(n0 / (1 + (n0 - 1) / frame))))


def planning_share(predicted: dict[str, str]) -> float:
    """The predicted share of issue types closest to 1/2 (the one that needs most labels)."""
    if not predicted:
        return 0.5
    counts: dict[str, int] = defaultdict(int)
    for label in predicted.values():
        counts[label] += 1
    shares = [c / len(predicted) for c in counts.values()]
    return min(shares, key=lambda s: abs(s - 0.5))


@dataclass
class Drawn:
    round: str
    design: str
    frame: int
    size: int
    width: float | None
    strata: dict[str, dict[str, int]]
    uids: list[str]
    planning_share: float | None = None  # the share the size was planned for (--width)

    def as_json(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "design": self.design,
            "frame": self.frame,
            "size": self.size,
            "width": self.width,
            "planning_share": self.planning_share,
            "strata": self.strata,
            "issues": self.uids,
        }


def estimate_frame(session: Session, population: tuple[str, ...]) -> list[str]:
    """The population's issues a sample may draw: no final label, in no round, with text."""
    members = set(population)
    return [uid for uid, _, has_text in candidate_rows(session) if has_text and uid in members]


def _allocate(strata: dict[str, list[str]], size: int) -> dict[str, int]:
    """Proportional allocation, largest remainders, at least one issue per stratum that
    the size allows (a stratum with no sampled issue would have no weight)."""
    total = sum(len(v) for v in strata.values())
    quotas = {h: size * len(v) / total for h, v in strata.items()}
    counts = {h: min(len(strata[h]), max(1, int(q))) for h, q in quotas.items()}
    order = sorted(quotas, key=lambda h: quotas[h] - int(quotas[h]), reverse=True)
    while sum(counts.values()) < size:
        grew = False
        for h in order:
            if sum(counts.values()) < size and counts[h] < len(strata[h]):
                counts[h] += 1
                grew = True
        if not grew:
            break
    return counts


def draw_for_estimate(
    session: Session,
    name: str,
    annotators: list[str],
    frame: list[str],
    size: int,
    predicted: dict[str, str],
    design: str = RANDOM,
    seed: int = 0,
    width: float | None = None,
) -> Drawn:
    """Draw and store the round; `predicted`: each frame issue's predicted issue type."""
    if design not in DESIGNS:
        raise LabelingError(f"unknown design '{design}'; choose {', '.join(DESIGNS)}")
    if session.get(LabelingRound, name) is not None:
        raise LabelingError(f"round '{name}' already exists")
    if not annotators:
        raise LabelingError("a round needs at least one annotator")
    if size > len(frame):
        raise LabelingError(f"only {len(frame):,} unlabelled issues with text ({size:,} asked for)")
    rng = random.Random(seed)
    strata: dict[str, list[str]] = defaultdict(list)
    for uid in frame:
        strata[predicted.get(uid, NO_PREDICTION) if design == BY_PREDICTION else "all"].append(uid)
    counts = _allocate(strata, size)
    chosen: dict[str, str] = {}
    for stratum in sorted(strata):
        for uid in rng.sample(strata[stratum], counts[stratum]):
            chosen[uid] = stratum
    order = list(chosen)
    rng.shuffle(order)
    summary = {h: {"frame": len(strata[h]), "sample": counts[h]} for h in sorted(strata)}
    settings = {
        "size": len(order),
        "seed": seed,
        "stratify": None,
        ESTIMATE_KIND: {"design": design, "width": width, "strata": summary, "stratum": chosen},
    }
    session.add(
        LabelingRound(name=name, kind=ESTIMATE_KIND, annotators=annotators, settings=settings)
    )
    session.flush()
    session.add_all(RoundItem(round=name, issue_uid=u, position=i) for i, u in enumerate(order))
    session.flush()
    return Drawn(name, design, len(frame), len(order), width, summary, order)


def sample_weights(session: Session) -> dict[str, float]:
    """Every issue drawn for an estimate, with its design weight (frame / sample of its
    stratum): 1/inclusion probability, so the labelled sample stands for its frame."""
    weights: dict[str, float] = {}
    rounds = session.scalars(select(LabelingRound).where(LabelingRound.kind == ESTIMATE_KIND))
    for labeling_round in rounds:
        design = (labeling_round.settings or {}).get(ESTIMATE_KIND) or {}
        strata = design.get("strata") or {}
        for uid, stratum in (design.get("stratum") or {}).items():
            sizes = strata.get(stratum) or {}
            if sizes.get("sample"):
                weights[uid] = sizes["frame"] / sizes["sample"]
    return weights
