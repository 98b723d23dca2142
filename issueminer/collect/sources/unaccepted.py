"""Stack Overflow questions waiting for an accepted answer, asked for again now and then.

The crawl follows last activity, and on the Stack Exchange sites accepting an answer does
not move it (a new question, a new answer and an edit do; votes, comments and acceptance do
not). With `require_accepted_answer`, a question refused only for want of an accepted answer
and accepted later would never come back on the activity listing: it would be lost for good.
So each such question waits in the crawl's checkpoint (carried from run to run, like the
tags' cursors) with its creation date and when it was last read, and is asked for again by
id (`/questions/{ids}`, 100 ids a call) once that read is older than the recheck interval.
A question still unaccepted long after it was asked is given up, so the list stays short:
most answers that are ever accepted are accepted within days.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from issueminer.collect.selection import Reason, Selection

RECHECK_DAYS = 7.0  # how old the last read of a waiting question may get before a recheck
GIVE_UP_DAYS = 180.0  # after this long since it was asked, a question waits no more
DAY = 86400  # seconds
# a stand-in accepted answer id: asks the selection whether anything else refuses a question
_ANY_ANSWER = -1


@dataclass(frozen=True)
class RecheckPolicy:
    """When a waiting question is asked for again: its last read older than `recheck_days`,
    or at once with `force` (`--recheck-pending`); given up `give_up_days` after creation."""

    recheck_days: float = RECHECK_DAYS
    give_up_days: float = GIVE_UP_DAYS
    force: bool = False

    def __post_init__(self) -> None:
        for name in ("recheck_days", "give_up_days"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name} must be a number of days, 0 or more; got {value!r}")


@dataclass
class Waiting:
    """The waiting questions, {question id: [creation, last read]} in Unix seconds, and the
    run's recheck counts."""

    entries: dict[str, list[int]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, checkpoint: dict[str, Any], previous: dict[str, Any] | None) -> Waiting:
        """The run's list: its own checkpoint's (a resumed run), else the last finished
        run's (a new run takes it over), else none. Counts belong to this run only."""
        source = checkpoint if "waiting" in checkpoint else previous or {}
        entries = {str(k): [int(v[0]), int(v[1])] for k, v in (source.get("waiting") or {}).items()}
        counts = dict(checkpoint.get("recheck") or {})
        return cls(entries, counts)

    def read(
        self,
        selection: Selection,
        question: dict[str, Any],
        kept: bool,
        now: int,
        policy: RecheckPolicy,
    ) -> None:
        """A question just read (listing or recheck) and the selection's verdict: it waits
        (again) if only an accepted answer is missing and it is young enough, else it does
        not wait any more."""
        qid = str(question["question_id"])
        created = int(question.get("creation_date") or now)
        if (
            not kept
            and waits_for_acceptance(selection, question)
            and not _too_old(created, now, policy)
        ):
            self.entries[qid] = [created, now]
        else:
            self.entries.pop(qid, None)

    def give_up(self, now: int, policy: RecheckPolicy) -> int:
        """Drops the questions waited for too long; how many."""
        old = [q for q, (created, _) in self.entries.items() if _too_old(created, now, policy)]
        for qid in old:
            del self.entries[qid]
        return len(old)

    def due(self, now: int, policy: RecheckPolicy, started: int) -> list[int]:
        """The questions to ask for again, oldest read first: read before this run started
        (forced), else read longer than the interval ago."""
        cutoff = started if policy.force else now - policy.recheck_days * DAY
        due = [(read, int(q)) for q, (_, read) in self.entries.items() if read < cutoff]
        if not policy.force:  # an interval of 0 still reads each question once a run
            due = [(read, q) for read, q in due if read < started]
        return [q for _, q in sorted(due)]

    def count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def checkpoint(self) -> dict[str, Any]:
        """What the crawl's checkpoint keeps of it."""
        return {"waiting": dict(self.entries), "recheck": dict(self.counts)}


def policy_from(
    stackoverflow: dict[str, Any], recheck_after: float | None = None, force: bool = False
) -> RecheckPolicy:
    """The study file's `selection.stackoverflow` intervals (`recheck_after_days`,
    `give_up_after_days`), `recheck_after` (the command line's) over the first; ValueError
    naming the key whose value is not a number of days."""
    days: dict[str, float] = {}
    for key, name, default in (
        ("recheck_after_days", "recheck_days", RECHECK_DAYS),
        ("give_up_after_days", "give_up_days", GIVE_UP_DAYS),
    ):
        value = stackoverflow.get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ValueError(
                f"selection.stackoverflow.{key} in the study file must be a number of days, "
                f"0 or more, not {value!r}"
            )
        days[name] = float(value)
    if recheck_after is not None:
        days["recheck_days"] = recheck_after
    return RecheckPolicy(days["recheck_days"], days["give_up_days"], force)


def waits_for_acceptance(selection: Selection, question: dict[str, Any]) -> bool:
    """Whether an accepted answer is all the question lacks to be kept."""
    if not selection.require_accepted_answer or question.get("accepted_answer_id"):
        return False
    decision = selection.stackoverflow(question)
    if decision.code != Reason.NO_ACCEPTED_ANSWER:
        return False
    return selection.stackoverflow({**question, "accepted_answer_id": _ANY_ANSWER}).kept


def _too_old(created: int, now: int, policy: RecheckPolicy) -> bool:
    return now - created > policy.give_up_days * DAY


def summary(checkpoint: dict[str, Any]) -> dict[str, int]:
    """The recheck figures of a run, for its summary and `crawl status`."""
    counts = checkpoint.get("recheck") or {}
    return {
        "waiting_for_acceptance": len(checkpoint.get("waiting") or {}),
        "rechecked": counts.get("rechecked", 0),
        "kept_on_recheck": counts.get("kept", 0),
        "given_up": counts.get("given_up", 0),
    }
