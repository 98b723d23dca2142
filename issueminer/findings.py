"""What an import or crawl noticed: every case with its place, and a summary by kind."""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Finding:
    kind: str  # e.g. duplicate, placeholder, shifted-cells, normalised, unknown-label, no-link
    file: str
    message: str
    sheet: str | None = None
    row: int | None = None
    column: str | None = None
    value: Any = None

    @property
    def place(self) -> str:
        parts = [self.file]
        if self.sheet:
            parts.append(f"sheet '{self.sheet}'")
        if self.row:
            parts.append(f"row {self.row}")
        if self.column:
            parts.append(f"column '{self.column}'")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.place}: {self.message}"


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)  # what was loaded, by kind

    def add(self, kind: str, file: str, message: str, **where: Any) -> None:
        self.findings.append(Finding(kind, file, message, **where))

    def by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(f.kind for f in self.findings).items()))

    def of_kind(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    def as_dict(self) -> dict[str, Any]:
        return {"loaded": dict(self.counts), "findings": self.by_kind()}

    def write(self, path: Path | str) -> None:
        """Every finding, as CSV when the name ends in .csv, else as JSON."""
        path = Path(path)
        rows = [asdict(f) for f in self.findings]
        if path.suffix.lower() == ".csv":
            with path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(
                    handle,
                    fieldnames=["kind", "file", "sheet", "row", "column", "value", "message"],
                )
                writer.writeheader()
                writer.writerows(rows)
        else:
            payload = {**self.as_dict(), "cases": rows}
            path.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")


class ImportFailure(Exception):
    """Input that cannot be imported; nothing was written. `problems` says what and where."""

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else problems
        super().__init__("\n".join(self.problems))
