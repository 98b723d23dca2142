"""A classifier that suggests labels, trained on a study's final labels, measured honestly.

Modules: `features` (issue -> text fields, code and logs handled on purpose), `systems`
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
    >>> from issueminer.classify import suggestions
    >>> with store.session() as session:
    ...     suggestions(session, uid, target="leaf")
    [('out of memory', 0.71), ('memory issue', 0.12), ('others', 0.05)]
"""

from issueminer.classify.database import (
    Examples,
    classify_unlabelled,
    load_examples,
    prediction_queue,
    store_predictions,
    suggestions,
    uncertainty,
    uncertainty_order,
    unlabelled_documents,
)
from issueminer.classify.evaluation import Evaluation, confusion_figure, cross_validate
from issueminer.classify.features import Document, featurize, tokenize
from issueminer.classify.model import (
    DEFAULT_MODELS_DIR,
    ModelFileError,
    PredictedLabel,
    TrainedModel,
    load_model,
    newest_model_file,
    predict,
    save_model,
    train_model,
)
from issueminer.classify.systems import (
    CLASSIFIERS,
    DEFAULT_CLASSIFIER,
    KeywordBaseline,
    MajorityBaseline,
    TextClassifier,
    systems_for,
)
from issueminer.classify.targets import TARGETS, ClassifierError, Target, get_target

__all__ = [
    "CLASSIFIERS",
    "ClassifierError",
    "DEFAULT_CLASSIFIER",
    "DEFAULT_MODELS_DIR",
    "TARGETS",
    "Document",
    "Evaluation",
    "Examples",
    "KeywordBaseline",
    "MajorityBaseline",
    "ModelFileError",
    "PredictedLabel",
    "Target",
    "TextClassifier",
    "TrainedModel",
    "classify_unlabelled",
    "confusion_figure",
    "cross_validate",
    "featurize",
    "get_target",
    "load_examples",
    "load_model",
    "newest_model_file",
    "predict",
    "prediction_queue",
    "save_model",
    "store_predictions",
    "suggestions",
    "systems_for",
    "tokenize",
    "train_model",
    "uncertainty",
    "uncertainty_order",
    "unlabelled_documents",
]
