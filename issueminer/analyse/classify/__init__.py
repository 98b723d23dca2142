"""A classifier that suggests labels, trained on a study's final labels, measured honestly.

Modules: `features` (thread -> text fields, code and logs handled on purpose), `thread`
(template stripping, resolving replies, log normalisation), `multilabel` (fix patterns:
calibrated probabilities and a decision rule chosen by inner cross-validation), `knowledge`
(what the study says of each label: names, aliases, definitions, the codebook's examples),
`priors` (the keyword rules built from it as a prior the model can outvote, or follow
alone when inner cross-validation says so), `splits` (hold-outs and
exclusions, predictions compared with held-out labels), `curves` (learning curve,
reliability figure), `systems`
(the TF-IDF + linear classifier, hierarchy-aware for symptoms, and the majority and
keyword-rule baselines), `evaluation` (stratified k-fold cross-validation, metrics, the
confusion-matrix figure), `model` (training, the safe model file, prediction) and
`database` (examples from final labels, predictions to the prediction table).

For the annotation app, two functions read stored predictions and nothing else:

* ``suggestions(session, issue_uid, target="symptom")`` -> ``[(label, probability), ...]``:
  the top three labels of the newest prediction for the issue; ``target`` is a target
  name, a label field (``leaf_symptom``, ``fix_patterns``) or ``"leaf"``; ``[]`` when no
  model has predicted the issue.
* ``uncertainty_order(session, uids, target=None)`` -> ``[uid, ...]``: the same uids,
  least certain prediction first (margin sampling), unpredicted ones last in their order.

Example:
    >>> from issueminer.analyse.classify import suggestions
    >>> with store.session() as session:
    ...     suggestions(session, uid, target="leaf")
    [('out of memory', 0.71), ('memory issue', 0.12), ('others', 0.05)]
"""

import importlib
from typing import Any

from issueminer.analyse.classify.targets import (
    CLASSIFIERS,
    DEFAULT_CLASSIFIER,
    DEFAULT_FOLDS,
    DEFAULT_MODELS_DIR,
    TARGETS,
    ClassifierError,
    Target,
    get_target,
)

# The rest loads on first use (scikit-learn, SciPy and spaCy take seconds to import, and
# every `issueminer` command imports this package for its option choices).
_LAZY = {
    "Examples": "database",
    "classify_unlabelled": "database",
    "load_examples": "database",
    "prediction_queue": "database",
    "store_predictions": "database",
    "suggestions": "database",
    "uncertainty": "database",
    "uncertainty_order": "database",
    "unlabelled_documents": "database",
    "with_replies": "database",
    "issue_urls": "database",
    "LearningCurve": "curves",
    "curve_figure": "curves",
    "evaluate_learning_curve": "curves",
    "reliability_figure": "curves",
    "Split": "splits",
    "exclude": "splits",
    "hold_out": "splits",
    "held_out_agreement": "splits",
    "read_exclusions": "splits",
    "Evaluation": "evaluation",
    "confusion_figure": "evaluation",
    "cross_validate": "evaluation",
    "Document": "features",
    "featurize": "features",
    "tokenize": "features",
    "ModelFileError": "model",
    "PredictedLabel": "model",
    "TrainedModel": "model",
    "evaluate_model": "model",
    "load_model": "model",
    "newest_model_file": "model",
    "predict": "model",
    "save_model": "model",
    "train_model": "model",
    "ReplyText": "thread",
    "KeywordBaseline": "systems",
    "MajorityBaseline": "systems",
    "TextClassifier": "systems",
    "systems_for": "systems",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [  # the light names imported above, and every lazy one
    "CLASSIFIERS",
    "DEFAULT_CLASSIFIER",
    "DEFAULT_FOLDS",
    "DEFAULT_MODELS_DIR",
    "TARGETS",
    "ClassifierError",
    "Target",
    "get_target",
    *_LAZY,
]
