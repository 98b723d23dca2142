"""The store: SQLAlchemy models, migrations and the session factory."""

from issueminer.store.db import Store, remember_study, resolve_url
from issueminer.store.models import (
    ADJUDICATOR,
    ANNOTATOR,
    LABEL_CELLS,
    LABEL_FIELDS,
    RETRACTED,
    Annotation,
    CrawlRun,
    FinalLabel,
    Issue,
    LabelChange,
    LabelingRound,
    Meta,
    Prediction,
    Reply,
    RoundItem,
    label_values,
)

__all__ = [
    "label_values",
    "remember_study",
    "ADJUDICATOR",
    "ANNOTATOR",
    "LABEL_CELLS",
    "LABEL_FIELDS",
    "RETRACTED",
    "Annotation",
    "CrawlRun",
    "FinalLabel",
    "Issue",
    "LabelChange",
    "LabelingRound",
    "Meta",
    "Prediction",
    "Reply",
    "RoundItem",
    "Store",
    "resolve_url",
]
