"""What a finished scan reports: the counts and the bad input found (`ScanSummary`, with
line numbers counted where the scan could not), and the findings as a `Report`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from issueminer.collect.sodump.streams import DumpSource, line_numbers, open_stream
from issueminer.findings import Report

SUMMARY_FINDINGS = 5
WHOLE_FILE = ("damaged", "no-rows")  # findings about a file as a whole, always told


@dataclass
class ScanSummary:
    """What a scan kept and noticed (counts exact; findings capped at MAX_FINDINGS)."""

    questions: int = 0
    answers: int = 0
    comments: int = 0
    parsed: int = 0
    scanned_bytes: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    finding_counts: Counter[str] = field(default_factory=Counter)
    findings: list[dict[str, Any]] = field(default_factory=list)
    missing: list[int] = field(default_factory=list)  # --only-known ids not in the dump

    def file_problems(self) -> list[str]:
        """One line for each file that was damaged or had no rows."""
        return [
            f"{f['file']} line {f['line']} (byte {f['offset']}): {f['kind']}: {f['message']}"
            for f in self.findings
            if f["kind"] in WHOLE_FILE
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "questions": self.questions,
            "answers": self.answers,
            "comments": self.comments,
            "parsed": self.parsed,
            "scanned_bytes": self.scanned_bytes,
            "rejected": dict(sorted(self.rejected.items())),
            "bad_input": dict(sorted(self.finding_counts.items())),
            "first_findings": self.findings[:SUMMARY_FINDINGS],
            "not_in_dump": self.missing,
        }


def summarize(
    state: dict[str, Any],
    posts: DumpSource,
    comments: DumpSource | None,
    known: frozenset[bytes] | None,
) -> ScanSummary:
    """The summary of a finished scan's state (see `commit_policy.fresh_state`); `known`,
    the ids --only-known asked for, to list those the dump did not have."""
    summary = ScanSummary(
        questions=len(state["kept"]),
        answers=len(state["answers"]),
        comments=state["comments"],
        parsed=state["parsed"],
        scanned_bytes=state["scanned"],
        rejected=Counter(state["rejected"]),
        finding_counts=Counter(state["finding_counts"]),
        findings=_with_lines(state["findings"], posts, comments),
    )
    if known is not None:
        seen = {int(k) for k in state["kept"]}
        summary.missing = sorted(int(k) for k in known if int(k) not in seen)
    return summary


def findings_report(summary: ScanSummary) -> Report:
    """Every kept finding with its file and line, for `Report.write`."""
    report = Report()
    for f in summary.findings:
        report.add(f["kind"], f["file"], f["message"], row=f["line"], value=f["offset"])
    report.counts.update({f"bad input: {k}": n for k, n in summary.finding_counts.items()})
    return report


def _with_lines(
    findings: list[list[Any]], posts: DumpSource, comments: DumpSource | None
) -> list[dict[str, Any]]:
    """Findings sorted by place, with line numbers counted now where the scan had none."""
    unresolved: dict[str, list[int]] = {}
    for _kind, offset, line, _message, file in findings:
        if line is None:
            unresolved.setdefault(file, []).append(offset)
    lines: dict[tuple[str, int], int] = {}
    for source in filter(None, [posts, comments]):
        offsets = unresolved.get(source.name)
        if offsets and source.rereadable:
            with open_stream(source) as stream:
                lines.update({(source.name, o): n for o, n in line_numbers(stream, offsets)})
    result = [
        {
            "kind": kind,
            "file": file,
            "line": line if line is not None else lines.get((file, offset)),
            "offset": offset,
            "message": message,
        }
        for kind, offset, line, message, file in findings
    ]
    unique = {(f["file"], f["offset"], f["kind"]): f for f in result}
    return sorted(unique.values(), key=lambda f: (f["file"] != posts.name, f["offset"]))
