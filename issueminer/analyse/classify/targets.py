"""What a classifier can learn (one label dimension of the final labels), and the choices
the command line offers. Light on purpose: the CLI imports it at start-up, the models'
libraries (scikit-learn, SciPy, spaCy) only load when a command trains or predicts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LOGREG = "logreg"
SVM = "svm"
CLASSIFIERS = (LOGREG, SVM)
DEFAULT_CLASSIFIER = LOGREG  # matched or beat the calibrated SVM on every target tried
DEFAULT_MODELS_DIR = Path("models")
DEFAULT_FOLDS = 5
ORDERS = ("issue", "uncertainty")  # uid order, or least certain first (the annotation queue)
SUMMARY_KEYS = ("accuracy", "macro_f1", "weighted_f1", "top3_accuracy")

# Told (steps done, steps in all) after each step of long work: a fold, the final fit, a
# batch of predictions. The command line shows it as a progress bar.
OnProgress = Callable[[int, int], None]

SINGLE = "single"  # one label per issue
MULTI = "multi"  # several labels per issue (fix patterns)
PATH = "path"  # a leaf symptom, predicted together with its stage (and inner category)


class ClassifierError(ValueError):
    """A request the classifier cannot honour (unknown target, too few labels, bad file)."""


@dataclass(frozen=True)
class Target:
    name: str  # as the command line and the evaluation JSON spell it
    field: str  # the FinalLabel column it learns from, and Prediction.target it writes
    kind: str
    dimension: str  # the taxonomy's dimension (for the keyword baseline)


TARGETS = {
    "issue_type": Target("issue_type", "issue_type", SINGLE, "issue_type"),
    "stage": Target("stage", "stage", SINGLE, "stage"),
    "symptom": Target("symptom", "leaf_symptom", PATH, "symptom"),
    "fix_pattern": Target("fix_pattern", "fix_patterns", MULTI, "fix_pattern"),
    "howto_topic": Target("howto_topic", "howto_topic", SINGLE, "howto_topic"),
}
# The field names the annotation app and the label tables use, and the brief's "leaf".
_ALIASES = {
    "leaf": "symptom",
    "leaf_symptom": "symptom",
    "fix_patterns": "fix_pattern",
    "howto": "howto_topic",
}
# A symptom model also writes the stage and inner category its leaf sits under.
INNER_FIELD = "inner_category"


def get_target(name: str) -> Target:
    """A target by its name or by the label field it learns from ('leaf_symptom', 'leaf')."""
    key = _ALIASES.get(name, name)
    if key not in TARGETS:
        raise ClassifierError(f"unknown target '{name}'; choose one of {', '.join(TARGETS)}")
    return TARGETS[key]


def prediction_field(name: str) -> str:
    """The Prediction.target value for a target name, a label field or 'inner_category'."""
    return INNER_FIELD if name == INNER_FIELD else get_target(name).field
