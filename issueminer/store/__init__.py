"""The store: the SQLAlchemy schema, migrations and the session factory.

The names below load on first use (PEP 562), so that importing a light part of the store
(`store.revision`, `store.sqlite_reader`) does not import SQLAlchemy.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from issueminer.store.db import Store, remember_study, resolve_url
    from issueminer.store.schema import (
        ADJUDICATOR,
        ANNOTATOR,
        LABEL_CELLS,
        LABEL_FIELDS,
        RETRACTED,
        STATUSES,
        Annotation,
        CrawlItem,
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
    "Store",
    "remember_study",
    "resolve_url",
    "label_values",
    "ADJUDICATOR",
    "ANNOTATOR",
    "LABEL_CELLS",
    "LABEL_FIELDS",
    "RETRACTED",
    "STATUSES",
    "Annotation",
    "CrawlItem",
    "CrawlRun",
    "FinalLabel",
    "Issue",
    "LabelChange",
    "LabelingRound",
    "Meta",
    "Prediction",
    "Reply",
    "RoundItem",
]
_IN_DB = {"Store", "remember_study", "resolve_url"}  # the rest are the schema's


def __getattr__(name: str) -> Any:
    if name in _IN_DB:
        return getattr(import_module("issueminer.store.db"), name)
    if name in __all__:
        return getattr(import_module("issueminer.store.schema"), name)
    raise AttributeError(f"module 'issueminer.store' has no attribute {name!r}")
