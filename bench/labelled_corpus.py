"""A generated, labelled issue corpus whose labels depend on known signal words.

Every label of the study's taxonomy (issue type, stage, leaf symptom, fix pattern, how-to
topic) gets two invented signal words, derived from its name, so they occur nowhere else.
An issue carries its labels' signal words most of the time (`SIGNAL_RATE`), sometimes a
word of its label's taxonomy definition, filler made of words from every definition (so
keyword rules have something to trip over), a distractor signal of another label, and a
code block: a long log whose noise lines name other labels' signals, ending in an
exception whose name is the leaf's signal. A classifier that learns the signals and
keeps a log's error lines apart from its noise scores far above chance; one that sees
shuffled labels cannot.

The same seed and size always give the same corpus. `write_files` writes it in the
sample's formats (issues.jsonl, labels.csv), so tests load it through the importers.

Usage: python -m bench.labelled_corpus OUT_DIR [--size 600] [--seed 7] [--unlabelled 40]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from issueminer.taxonomy import FAULT, HOWTO, NOT_RELEVANT, Taxonomy, load_taxonomy

DEFAULT_SEED = 7
SIGNAL_RATE = 0.85  # an issue names its label's signal words this often; the rest are hard
DEFINITION_WORD_RATE = 0.3  # ... and a content word of its label's definition this often
DISTRACTOR_RATE = 0.35  # ... and another label's signal word in its prose this often
LOG_NOISE_LINES = (6, 30)  # a pasted log's length: its noise is what a classifier must ignore
ISSUE_TYPE_WEIGHTS = {FAULT: 0.55, HOWTO: 0.35, NOT_RELEVANT: 0.10}
FIXES_PER_LEAF = 3  # each leaf has its usual fixes; an issue takes one or two of them
FIX_PATTERNS_USED = 16  # a study's fix patterns are heavy-tailed: a few cover most faults
SYLLABLES = [c + v for c in "bdfgklmnprstvz" for v in "aeiou"]
FILLER_TEXT = (
    "I we our the a when after before then it is was not but with on in for to of and run "
    "script job cluster node nodes machine workers worker rank ranks process processes gpu "
    "gpus server code example version trying tried see seems works anyone help thanks"
)
FILLER = FILLER_TEXT.split()
WORD = re.compile(r"[a-z]{4,}")


def signal_words(label: str, count: int = 2) -> tuple[str, ...]:
    """Invented words that belong to `label` alone (stable across runs and machines)."""
    digest = hashlib.sha256(label.encode()).digest()
    words = []
    for index in range(count):
        part = digest[index * 4 : index * 4 + 4]
        words.append("".join(SYLLABLES[b % len(SYLLABLES)] for b in part[:3]))
    return tuple(words)


def exception_name(label: str) -> str:
    return signal_words(label, 1)[0].capitalize() + "Error"


@dataclass
class GeneratedIssue:
    url: str
    source: str
    title: str
    body: str
    labels: dict[str, object] = field(default_factory=dict)  # empty: unlabelled


class _Generator:
    def __init__(self, taxonomy: Taxonomy, seed: int) -> None:
        self.taxonomy = taxonomy
        self.rng = random.Random(seed)
        self.paths = taxonomy.leaf_paths()
        self.topics = taxonomy.names("howto_topic")
        fixes = taxonomy.names("fix_pattern")[:FIX_PATTERNS_USED]
        self.usual_fixes = {
            leaf: [fixes[(i * 7 + j * 3) % len(fixes)] for j in range(FIXES_PER_LEAF)]
            for i, leaf in enumerate(sorted({leaf for *_, leaf in self.paths}))
        }
        self.filler = FILLER + sorted(
            {w for nodes in taxonomy.nodes.values() for n in nodes.values() for w in _words(n)}
        )
        self.all_labels = [n for nodes in taxonomy.nodes.values() for n in nodes]

    def labels(self) -> dict[str, object]:
        kinds, weights = zip(*ISSUE_TYPE_WEIGHTS.items(), strict=True)
        kind = self.rng.choices(kinds, weights)[0]
        labels: dict[str, object] = {"issue_type": kind}
        if kind == FAULT:
            stage, inner, leaf = self.rng.choice(self.paths)
            usual = self.usual_fixes[leaf]
            fixes = self.rng.sample(usual, self.rng.choice((1, 1, 2)))
            labels.update(stage=stage, inner_category=inner, leaf_symptom=leaf, fix_patterns=fixes)
        elif kind == HOWTO:
            labels["howto_topic"] = self.rng.choice(self.topics)
        return labels

    def signals(self, labels: dict[str, object]) -> list[str]:
        """The words that give the labels away (some of them, most of the time)."""
        names = [labels["issue_type"], labels.get("stage"), labels.get("leaf_symptom")]
        names += [*labels.get("fix_patterns", []), labels.get("howto_topic")]
        words = []
        for name in filter(None, names):
            if self.rng.random() < SIGNAL_RATE:
                words.append(self.rng.choice(signal_words(str(name))))
            if self.rng.random() < DEFINITION_WORD_RATE:
                words += self.definition_words(str(name))[:1]
        return words

    def definition_words(self, name: str) -> list[str]:
        for dimension in ("issue_type", "stage", "symptom", "fix_pattern", "howto_topic"):
            node = self.taxonomy.node(dimension, name)
            if node is not None:
                return self.rng.sample(_words(node), k=min(2, len(_words(node))))
        return []

    def sentence(self, extra: list[str]) -> str:
        words = self.rng.choices(self.filler, k=self.rng.randint(8, 16)) + extra
        self.rng.shuffle(words)
        return " ".join(words).capitalize() + "."

    def log(self, labels: dict[str, object]) -> str:
        lines = []
        for step in range(self.rng.randint(*LOG_NOISE_LINES)):
            noise = self.rng.choice(signal_words(self.rng.choice(self.all_labels)))
            lines.append(
                f"[2023-05-0{step % 9 + 1} 12:{step:02d}:07] INFO step {step * 50} "
                f"loss {self.rng.random():.4f} {noise} {self.rng.choice(self.filler)}"
            )
        leaf = labels.get("leaf_symptom")
        if leaf and self.rng.random() < SIGNAL_RATE:
            lines += [
                "Traceback (most recent call last):",
                '  File "train.py", line 42, in <module>',
                f"{exception_name(str(leaf))}: {self.sentence([])}",
            ]
        return "\n".join(lines)

    def issue(self, index: int, labelled: bool) -> GeneratedIssue:
        labels = self.labels()
        words = self.signals(labels)
        distractor = self.rng.random() < DISTRACTOR_RATE
        if distractor:
            words.append(self.rng.choice(signal_words(self.rng.choice(self.all_labels))))
        title_words = words[:1]
        sentences = [self.sentence(words[i : i + 2]) for i in range(0, max(len(words), 3), 2)]
        title = self.sentence(title_words).rstrip(".")
        log = self.log(labels) if labels["issue_type"] == FAULT or self.rng.random() < 0.3 else ""
        source = "stackoverflow" if index % 2 else "github"
        if source == "stackoverflow":
            url = f"https://stackoverflow.com/questions/{70_000_000 + index}"
            body = "".join(f"<p>{s}</p>\n" for s in sentences)
            body += f"<pre><code>{log}\n</code></pre>\n" if log else ""
        else:
            url = f"https://github.com/example/generated/issues/{index + 1}"
            body = "\n\n".join(sentences) + (f"\n\n```\n{log}\n```\n" if log else "\n")
        return GeneratedIssue(url, source, title, body, labels if labelled else {})


def _words(node) -> list[str]:
    return sorted(set(WORD.findall(node.definition.lower())))


def generate(
    size: int, seed: int = DEFAULT_SEED, unlabelled: int = 0, taxonomy: Taxonomy | None = None
) -> list[GeneratedIssue]:
    """`size` labelled issues, then `unlabelled` issues without labels."""
    generator = _Generator(taxonomy or load_taxonomy(), seed)
    return [generator.issue(i, labelled=i < size) for i in range(size + unlabelled)]


def write_files(issues: list[GeneratedIssue], out_dir: Path) -> tuple[Path, Path]:
    """issues.jsonl and labels.csv (final labels only) in the sample corpus's formats."""
    out_dir.mkdir(parents=True, exist_ok=True)
    issues_path, labels_path = out_dir / "issues.jsonl", out_dir / "labels.csv"
    with issues_path.open("w", encoding="utf-8") as handle:
        for issue in issues:
            record = {"url": issue.url, "source": issue.source, "title": issue.title}
            handle.write(json.dumps({**record, "body": issue.body, "state": "closed"}) + "\n")
    columns = ["url", "kind", "annotator", "round", "issue_type", "specific"]
    columns += ["stage", "inner_category", "leaf_symptom", "fix_patterns", "howto_topic"]
    with labels_path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*columns, "howto_subtopic", "memo"])
        writer.writeheader()
        for issue in (i for i in issues if i.labels):
            labels = dict(issue.labels)
            labels["fix_patterns"] = " & ".join(labels.get("fix_patterns", []))
            fault = labels["issue_type"] == FAULT
            writer.writerow(
                {
                    **labels,
                    "url": issue.url,
                    "kind": "final",
                    "annotator": "generator",
                    "specific": "1" if fault else "",
                }
            )
    return issues_path, labels_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--size", type=int, default=600)
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--unlabelled", type=int, default=40)
    args = parser.parse_args()
    paths = write_files(generate(args.size, args.seed, args.unlabelled), args.out_dir)
    print(*paths, sep="\n")


if __name__ == "__main__":
    main()
