"""The systems cross-validation compares: the text classifier and two baselines.

Every system has `fit(X, y)` and `scores(X)`, where X is `features.featurize`'s frame and
`scores` gives one column per entry of `classes_` (probabilities for the classifier, rule
or frequency scores for the baselines, which rank the same way). Labels `y` are strings
(single-label), tuples of strings (fix patterns) or (stage, inner, leaf) paths (symptoms:
the baselines see the leaf only).
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.feature_selection import SelectPercentile, chi2
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC
from spacy.lang.en.stop_words import STOP_WORDS

from issueminer.analyse.classify.features import FIELDS, tokenize
from issueminer.analyse.classify.knowledge import label_texts
from issueminer.analyse.classify.multilabel import (
    DEFAULT_RULE,
    decide,
    fit_multilabel,
    multilabel_proba,
)
from issueminer.analyse.classify.priors import (
    blend,
    choose_pseudo_count,
    describe,
    prior_part,
    rule_proba,
)
from issueminer.analyse.classify.targets import (
    CLASSIFIERS,
    DEFAULT_CLASSIFIER,
    MULTI,
    PATH,
    SVM,
    Target,
    get_target,
)
from issueminer.study import DEFAULT_FIELD_WEIGHTS, thread_reading
from issueminer.taxonomy import Taxonomy

TaxonomyPath = tuple[str, str | None, str]  # stage, inner category (or None), leaf symptom

LOGREG_C = 30.0  # weak regularisation: few features survive selection, each should count
FEATURE_PERCENTILE = 3  # share of features kept by chi-squared selection (see _selected)
SVM_C = 0.5  # the SVM alternative's regularisation, not tuned further (logreg is the default)
CALIBRATION_FOLDS = 3  # sigmoid calibration of the SVM; fewer when a class is that rare
# fix patterns: chi-squared over all patterns at once favours the rare ones' words, so
# a 3 % cut leaves the common patterns without features; keep more
MULTI_FEATURE_PERCENTILE = 20
MULTI_C = 10.0  # fix patterns: calibration and the decision rule take over the balance
MAX_ITER = 2000  # ample: no convergence warning on the 10,000-issue benchmark
MULTILABEL_THRESHOLD = 0.5  # the baselines' fix patterns: from this share (the top one always)
WORD_MIN_DF = 2  # a word of one issue only is as often a name or a typo as a signal
KEYWORD_NAME_WEIGHT = 2.0  # a label's own name or alias is the strongest rule
KEYWORD_MAX_SHARE = 0.5  # a definition word shared by more labels than this tells none apart
KEYWORD_TIE_BREAK = 1e-3  # no rule fired, or a tie: the training fold's most frequent label wins
MIN_KEYWORD_CHARS = 3  # one- and two-letter tokens ("a", "of", "to") name no label


def flat(target: Target, label: Any) -> Any:
    """What the baselines and the metrics compare: the leaf of a path, else the label."""
    return label[2] if target.kind == PATH else label


# ---- the classifier ------------------------------------------------------------------------
def make_features(weights: dict[str, float] | None = None) -> ColumnTransformer:
    """TF-IDF of each field of `features.FIELDS`, each block scaled by its weight.

    Words (of the body, the replies, the resolution): uni- and bigrams of words in two
    issues or more; the title's character n-grams; error signals and template markers as
    they are. Every field is already split into space-separated terms by `features`,
    which remembers the terms of each word: much faster than the vectorisers' own
    analysers.
    """

    def words() -> TfidfVectorizer:
        return TfidfVectorizer(
            token_pattern=r"\S+",
            lowercase=False,
            ngram_range=(1, 2),
            min_df=WORD_MIN_DF,
            sublinear_tf=True,
            dtype=np.float32,
        )

    def terms(min_df: int = 1) -> TfidfVectorizer:
        return TfidfVectorizer(
            token_pattern=r"\S+",
            lowercase=False,
            min_df=min_df,
            sublinear_tf=True,
            dtype=np.float32,
        )

    vectorizers = {
        "words": words(),
        "title": terms(WORD_MIN_DF),
        "signals": terms(),
        "template": terms(),
        "replies": words(),
        "resolution": words(),
    }
    weights = {**DEFAULT_FIELD_WEIGHTS, **(weights or {})}
    used = [name for name in FIELDS if weights[name] > 0]
    return ColumnTransformer(
        [(name, vectorizers[name], name) for name in used],
        transformer_weights={name: weights[name] for name in used},
    )


def transform(features: ColumnTransformer, frame: pd.DataFrame) -> sp.csr_matrix:
    """`features.transform(frame)`, computed four to five times faster (tested equal).

    Prediction's budget is 2,000 issues/s; scikit-learn's vectorisers spend most of it in
    their per-term Python loop. Fields are already space-separated terms, so counting
    is one dictionary lookup per term; the TF-IDF weighting is the vectoriser's own.
    """
    blocks = []
    weights = features.transformer_weights or {}
    for name, vectorizer, column in features.transformers_:
        if name != "remainder":
            block = _tfidf(vectorizer, _counts(vectorizer, frame[column]))
            if weights.get(name, 1.0) != 1.0:
                block = block * np.float32(weights[name])
            blocks.append(block)
    return sp.hstack(blocks, format="csr")


def _counts(vectorizer: TfidfVectorizer, documents: Iterable[str]) -> sp.csr_matrix:
    """Term counts: every document's n-grams looked up at once (one C-level pass over
    all of them, unknown ones marked -1), then dropped with numpy."""
    lookup = vectorizer.vocabulary_.get
    low, high = vectorizer.ngram_range
    grams: list[str] = []
    lengths: list[int] = []
    for document in documents:
        before = len(grams)
        terms = document.split()
        if low == 1:
            grams += terms
        for n in range(max(2, low), high + 1):
            grams += map(" ".join, zip(*(terms[i:] for i in range(n)), strict=False))
        lengths.append(len(grams) - before)
    found = np.fromiter(map(lookup, grams, repeat(-1)), dtype=np.int64, count=len(grams))
    known = found >= 0
    rows = np.repeat(np.arange(len(lengths)), lengths)[known]
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(lengths)))])
    counts = sp.csr_matrix(
        (np.ones(int(known.sum()), dtype=vectorizer.dtype), found[known], offsets),
        shape=(len(lengths), len(vectorizer.vocabulary_)),
    )
    counts.sum_duplicates()
    return counts


def _tfidf(vectorizer: TfidfVectorizer, counts: sp.csr_matrix) -> sp.csr_matrix:
    if vectorizer.sublinear_tf:
        np.log(counts.data, counts.data)
        counts.data += 1
    if vectorizer.use_idf:
        counts.data *= vectorizer.idf_[counts.indices]
    return normalize(counts, norm=vectorizer.norm, copy=False) if vectorizer.norm else counts


def _selected(classifier: Any, percentile: float = FEATURE_PERCENTILE) -> Pipeline:
    """Keep the words that tell labels apart best (chi-squared), then the linear model.

    Issues are long and a study labels a few hundred: with every word as a feature the
    model memorises the training issues' incidental words. Cross-validated macro-F1
    without and with selection: 0.12 and 0.56 on the generated corpus's how-to topics,
    0.48 and 0.87 on its stages, 0.29 and 0.38 on the sample's stages.
    """
    select = SelectPercentile(chi2, percentile=percentile)
    return Pipeline([("select", select), ("classify", classifier)])


def _logreg(solver: str = "lbfgs") -> LogisticRegression:
    # log loss: its probabilities are calibrated as fitted, for one label or one per pattern
    return LogisticRegression(C=LOGREG_C, class_weight="balanced", max_iter=MAX_ITER, solver=solver)


def _linear(classifier: str, y: Sequence[str]) -> Pipeline:
    smallest = min(Counter(y).values())
    if classifier == SVM and smallest >= 2:
        svm = LinearSVC(C=SVM_C, class_weight="balanced")
        folds = min(CALIBRATION_FOLDS, smallest)
        return _selected(CalibratedClassifierCV(svm, method="sigmoid", cv=folds))
    # logistic regression also stands in for the SVM when a class has one example to
    # calibrate on
    return _selected(_logreg())


def _fit_single(classifier: str, matrix: Any, y: Sequence[str]) -> dict[str, Any]:
    classes = sorted(set(y))
    if len(classes) == 1:
        return {"classes": classes, "estimator": None}  # nothing to learn: always that label
    with warnings.catch_warnings():
        # scikit-learn's guess that many labels on few issues mean a regression task is
        # wrong here: a study's leaf symptoms are many labels on few issues
        warnings.filterwarnings("ignore", message="The number of unique classes is greater")
        estimator = _linear(classifier, y).fit(matrix, list(y))
    return {"classes": [str(c) for c in estimator.classes_], "estimator": estimator}


def _proba(fitted: dict[str, Any], matrix: Any) -> np.ndarray:
    """Probabilities of `fitted["classes"]`: the estimator's, then 0 for the study's labels
    it never saw (the keyword prior gives them theirs)."""
    if fitted["estimator"] is None:
        return np.ones((matrix.shape[0], 1))
    proba = fitted["estimator"].predict_proba(matrix)
    missing = len(fitted["classes"]) - proba.shape[1]
    return np.hstack([proba, np.zeros((proba.shape[0], missing))]) if missing else proba


def _fit_multi(
    matrix: Any, y: Sequence[tuple[str, ...]], rules: Any | None = None, known: Sequence[str] = ()
) -> dict[str, Any]:
    def make() -> Pipeline:
        # unweighted: class weights would inflate every rare pattern's probability;
        # liblinear: one yes/no problem per pattern, many times faster than lbfgs
        logreg = LogisticRegression(C=MULTI_C, max_iter=MAX_ITER, solver="liblinear")
        return _selected(OneVsRestClassifier(logreg), MULTI_FEATURE_PERCENTILE)

    return fit_multilabel(make, matrix, y, rules=rules, known=known)


def path_weights(paths: list[TaxonomyPath], observed: Counter[TaxonomyPath]) -> list[float]:
    """P(path | stage, leaf): 1 unless a leaf sits under two inner categories of one stage."""
    totals: Counter[tuple[str, str]] = Counter()
    for path in paths:
        totals[(path[0], path[2])] += observed[path] + 1
    return [(observed[p] + 1) / totals[(p[0], p[2])] for p in paths]


def decode(
    stage_p: np.ndarray,
    stages: list[str],
    leaf_p: np.ndarray,
    leaves: list[str],
    paths: list[TaxonomyPath],
    weights: list[float],
) -> np.ndarray:
    """Joint scores of each allowed path: P(stage) x P(leaf) x P(path | stage, leaf).

    Predicting the best path (not the best stage and the best leaf apart) keeps a leaf
    under its stage: a leaf the stage model finds unlikely loses to one that fits both.
    """
    stage_index = {s: i for i, s in enumerate(stages)}
    leaf_index = {leaf: i for i, leaf in enumerate(leaves)}
    s = [stage_index[p[0]] for p in paths]
    leaf = [leaf_index[p[2]] for p in paths]
    return stage_p[:, s] * leaf_p[:, leaf] * np.asarray(weights)


def max_marginal(joint: np.ndarray, keys: list[Any], classes: list[Any]) -> np.ndarray:
    """Per class, the score of the best path through it, rows normalised to sum to 1.

    The best path's leaf (stage, inner category) is then the top class of each level, so a
    leaf suggestion always comes with a stage it belongs to.
    """
    index = {c: i for i, c in enumerate(classes)}
    out = np.zeros((joint.shape[0], len(classes)))
    for column, key in enumerate(keys):
        i = index[key]
        out[:, i] = np.maximum(out[:, i], joint[:, column])
    return out / np.maximum(out.sum(axis=1, keepdims=True), np.finfo(float).tiny)


class TextClassifier:
    """TF-IDF features and a linear model; for symptoms a stage model and a leaf model."""

    name = "model"

    def __init__(
        self,
        target: Target,
        classifier: str = DEFAULT_CLASSIFIER,
        taxonomy_paths: Sequence[TaxonomyPath] = (),
        weights: dict[str, float] | None = None,
        rules: dict[str, dict[str, float]] | None = None,
        stage_rules: dict[str, dict[str, float]] | None = None,
        known: Sequence[str] = (),
    ) -> None:
        if classifier not in CLASSIFIERS:
            raise ValueError(f"unknown classifier '{classifier}'; choose one of {CLASSIFIERS}")
        self.target = target
        self.classifier = classifier
        self.taxonomy_paths = [tuple(p) for p in taxonomy_paths]
        self.weights = weights
        # the taxonomy's keyword rules, a prior per label (see priors); a symptom model's
        # stage part has the stages' rules
        self.rules = rules
        self.stage_rules = stage_rules
        # the study's labels of the target (leaves for symptoms): with rules, those the
        # training issues lack are still given, on the rules' word alone
        self.known = list(known)
        self.parts: dict[str, Any] = {}

    @property
    def classes_(self) -> list[str]:
        key = "leaf" if self.target.kind == PATH else "main"
        return list(self.parts[key]["classes"])

    def fit(self, frame: pd.DataFrame, y: Sequence[Any]) -> TextClassifier:
        features = make_features(self.weights)
        features.fit(frame)
        self.parts = {"features": features}
        if self.rules:
            self.parts["keyword_rules"] = self.rules
        if self.stage_rules and self.target.kind == PATH:
            self.parts["stage_keyword_rules"] = self.stage_rules
        matrix = self.matrix(frame)
        if self.target.kind == MULTI:
            rules = self._pattern_rules(frame) if self.parts.get("keyword_rules") else None
            self.parts["main"] = _fit_multi(matrix, [tuple(v) for v in y], rules, self.known)
        elif self.target.kind == PATH:
            self._fit_paths(matrix, frame, [tuple(v) for v in y])
        else:
            self.parts["main"] = self._fit_with_prior(matrix, frame, [str(v) for v in y])
        return self

    def _fit_paths(self, matrix: Any, frame: pd.DataFrame, y: list[TaxonomyPath]) -> None:
        stages = [p[0] for p in y]
        known_stages = list(dict.fromkeys(p[0] for p in self.taxonomy_paths))
        self.parts["stage"] = self._fit_with_prior(
            matrix, frame, stages, "stage_keyword_rules", known_stages
        )
        self.parts["leaf"] = self._fit_with_prior(matrix, frame, [p[2] for p in y])
        stages, leaves = set(self.parts["stage"]["classes"]), set(self.parts["leaf"]["classes"])
        observed = Counter(y)
        allowed = [p for p in self.taxonomy_paths if p[0] in stages and p[2] in leaves]
        paths = list(dict.fromkeys([*allowed, *sorted(observed, key=str)]))
        self.parts["paths"] = [list(p) for p in paths]
        self.parts["path_weights"] = path_weights(paths, observed)

    def matrix(self, frame: pd.DataFrame) -> sp.csr_matrix:
        return transform(self.parts["features"], frame)

    def _fit_with_prior(
        self,
        matrix: Any,
        frame: pd.DataFrame,
        y: list[str],
        rules_key: str = "keyword_rules",
        known: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """One label per issue, blended with the keyword rules as `priors` says; the
        study's labels without training issues follow the estimator's classes."""
        fitted = _fit_single(self.classifier, matrix, y)
        rules = self.parts.get(rules_key)
        if not rules or fitted["estimator"] is None:
            return fitted
        known = self.known if known is None else known
        unseen = [c for c in known if c in rules and c not in set(fitted["classes"])]
        fitted["classes"] = [*fitted["classes"], *unseen]

        def fit_proba(train: np.ndarray, test: np.ndarray) -> tuple[list[str], np.ndarray]:
            inner = _fit_single(self.classifier, matrix[train], [y[i] for i in train])
            return inner["classes"], _proba(inner, matrix[test])

        scorer = self._rule_scorer(rules_key)
        m = choose_pseudo_count(fit_proba, scorer, frame, y, fitted["classes"])
        fitted["prior"] = {**prior_part(fitted["classes"], y, m), "rules": rules_key}
        return fitted

    def _pattern_rules(self, frame: pd.DataFrame) -> Any:
        """Fix patterns: the keyword rules' probability of each pattern for `frame`'s rows."""
        scorer = self._rule_scorer()
        return lambda classes, counts: rule_proba(scorer, classes, counts, frame)

    def _rule_scorer(self, rules_key: str = "keyword_rules") -> Any:
        rules = self.parts[rules_key]
        return lambda labels, frame: rule_scores(rules, labels, frame)

    def _blended(self, key: str, matrix: Any, frame: pd.DataFrame) -> np.ndarray:
        fitted = self.parts[key]
        proba = _proba(fitted, matrix)
        prior = fitted.get("prior")
        if not prior:
            return proba
        counts = np.asarray(prior["counts"], dtype=float)
        scorer = self._rule_scorer(prior.get("rules", "keyword_rules"))
        rules = rule_proba(scorer, fitted["classes"], counts, frame)
        return blend(proba, rules, counts, prior["pseudo_count"])

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        matrix = self.matrix(frame)
        if self.target.kind == PATH:
            joint, paths = self.joint(matrix, frame)
            return max_marginal(joint, [p[2] for p in paths], self.classes_)
        if self.target.kind == MULTI:
            rules = self._pattern_rules(frame) if self.parts.get("keyword_rules") else None
            return multilabel_proba(self.parts["main"], matrix, rules)
        return self._blended("main", matrix, frame)

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Fix patterns: the patterns chosen from `scores` by the rule fitted with them."""
        return decide(scores, self.parts["main"].get("rule", DEFAULT_RULE))

    def joint(self, matrix: Any, frame: pd.DataFrame) -> tuple[np.ndarray, list[TaxonomyPath]]:
        """Each allowed path's joint score (symptom models only)."""
        paths = [tuple(p) for p in self.parts["paths"]]
        stage, leaf = self.parts["stage"], self.parts["leaf"]
        joint = decode(
            self._blended("stage", matrix, frame),
            stage["classes"],
            self._blended("leaf", matrix, frame),
            leaf["classes"],
            paths,
            self.parts["path_weights"],
        )
        return joint, paths

    def level_scores(self, frame: pd.DataFrame) -> dict[str, tuple[list[Any], np.ndarray]]:
        """Symptom models: classes and max-marginal scores of the stage, inner and leaf levels."""
        joint, paths = self.joint(self.matrix(frame), frame)
        levels = {}
        for level, position in (("stage", 0), ("inner_category", 1), ("leaf", 2)):
            keys = [p[position] for p in paths]
            classes = list(dict.fromkeys(keys))
            levels[level] = (classes, max_marginal(joint, keys, classes))
        return levels

    def knowledge(self) -> dict[str, dict[str, Any]]:
        """Per fitted part, what inner cross-validation chose: the model alone, the model
        and the rules (with the pseudo-count) or the rules alone; and how many of its
        labels no training issue has (the rules' alone)."""
        found = {}
        for key in ("main", "stage", "leaf"):
            part = self.parts.get(key)
            if part is None:
                continue
            prior = part.get("prior") or {}
            counts = prior.get("counts", [])
            m = float(prior.get("pseudo_count", 0.0))
            found[key] = {
                "choice": describe(m),
                "pseudo_count": None if math.isinf(m) else m,
                "labels_without_issues": sum(1 for c in counts if c == 0),
            }
        return found

    def state(self) -> dict[str, Any]:
        """What is saved: scikit-learn objects, lists and strings only."""
        return {
            "target": self.target.name,
            "classifier": self.classifier,
            "taxonomy_paths": [list(p) for p in self.taxonomy_paths],
            "parts": self.parts,
        }

    @classmethod
    def from_state(cls, target: Target, state: dict[str, Any]) -> TextClassifier:
        model = cls(target, state["classifier"], [tuple(p) for p in state["taxonomy_paths"]])
        model.parts = state["parts"]
        return model


# ---- baselines -----------------------------------------------------------------------------
class MajorityBaseline:
    """Always the training fold's most frequent label (ranked by frequency for top-3)."""

    name = "majority"

    def __init__(self, target: Target) -> None:
        self.target = target
        self.classes_: list[str] = []
        self.shares = np.zeros(0)

    def fit(self, frame: pd.DataFrame, y: Sequence[Any]) -> MajorityBaseline:
        labels = [flat(self.target, v) for v in y]
        if self.target.kind == MULTI:
            counts = Counter(label for row in labels for label in row)
        else:
            counts = Counter(labels)
        self.classes_ = sorted(counts, key=lambda c: (-counts[c], c))
        self.shares = np.array([counts[c] / len(labels) for c in self.classes_])
        return self

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        return np.tile(self.shares, (len(frame), 1))


def keyword_rules(
    taxonomy: Taxonomy, target: Target, rich: bool = True
) -> dict[str, dict[str, float]]:
    """Per label, its keywords and their weights, from what the study says of each label
    (`knowledge.label_texts`: names, aliases, definitions; with `rich` also the codebook's
    examples and a topic's sub-topics, which the model's rules read and the keyword
    baseline does not).

    Words that many labels' texts share, stop words and short tokens are left out; rarer
    words weigh more (IDF over the labels), and the label's name and aliases weigh
    `KEYWORD_NAME_WEIGHT` times more.
    """
    texts = {
        label: (_keywords(" ".join(text.named)), _keywords(" ".join(text.described)))
        for label, text in label_texts(taxonomy, target.dimension, rich).items()
    }
    documents = Counter(w for named, described in texts.values() for w in set(named + described))
    n = len(texts)
    rules = {}
    for label, (named, described) in texts.items():
        weights: dict[str, float] = {}
        for word in set(named) | set(described):
            if documents[word] > max(1, KEYWORD_MAX_SHARE * n):
                continue
            idf = math.log(1 + n / documents[word])
            weights[word] = idf * (KEYWORD_NAME_WEIGHT if word in named else 1.0)
        rules[label] = weights
    return rules


def _keywords(text: str) -> list[str]:
    return [
        w
        for w in tokenize(text.lower())
        if len(w) >= MIN_KEYWORD_CHARS and w.isalpha() and w not in STOP_WORDS
    ]


class KeywordBaseline:
    """Rules from the taxonomy: the label whose keywords occur most (weighted) in the issue."""

    name = "keywords"

    def __init__(self, target: Target, rules: dict[str, dict[str, float]]) -> None:
        self.target = target
        self.rules = rules
        self.classes_: list[str] = []
        self.prior = np.zeros(0)

    def fit(self, frame: pd.DataFrame, y: Sequence[Any]) -> KeywordBaseline:
        # the rules are fixed; training only says which labels exist and which is most common
        majority = MajorityBaseline(self.target).fit(frame, y)
        self.classes_, self.prior = majority.classes_, majority.shares
        return self

    def scores(self, frame: pd.DataFrame) -> np.ndarray:
        out = rule_scores(self.rules, self.classes_, frame)
        out += KEYWORD_TIE_BREAK * self.prior
        return out / out.sum(axis=1, keepdims=True)


def rule_scores(
    rules: dict[str, dict[str, float]], labels: Sequence[str], frame: pd.DataFrame
) -> np.ndarray:
    """Per issue and label, the summed weights of the label's keywords in the issue's
    words and signals (0 where none occurs).

    One product of sparse matrices: which keywords each issue has (a C-level set
    intersection per issue) times each keyword's weight per label, where a Python loop
    over every matched keyword and label cost a tenth of a symptom prediction.
    """
    vocabulary: dict[str, int] = {}
    keys, columns, weights = [], [], []
    for column, label in enumerate(labels):
        for word, weight in rules.get(label, {}).items():
            keys.append(vocabulary.setdefault(word, len(vocabulary)))
            columns.append(column)
            weights.append(weight)
    table = sp.csr_matrix(
        (weights, (keys, columns)), shape=(len(vocabulary), len(labels)), dtype=float
    )
    keywords = vocabulary.keys()
    found: list[int] = []
    offsets = [0]
    for words, signals in zip(frame["words"], frame["signals"], strict=True):
        found += map(vocabulary.__getitem__, keywords & {*words.split(), *signals.split()})
        offsets.append(len(found))
    presence = sp.csr_matrix(
        (np.ones(len(found)), np.asarray(found, dtype=np.int64), np.asarray(offsets)),
        shape=(len(frame), len(vocabulary)),
    )
    return np.asarray((presence @ table).todense())


def known_labels(taxonomy: Taxonomy, target: Target) -> list[str]:
    """The labels a model of `target` may give without training issues: the study's
    labels of the dimension (for symptoms the leaves its fault tree allows, so the
    reliability rounds' retired symptoms are never suggested)."""
    if target.kind == PATH:
        return list(dict.fromkeys(p[2] for p in taxonomy.leaf_paths()))
    return taxonomy.names(target.dimension)


def systems_for(
    target: Target,
    taxonomy: Taxonomy,
    classifier: str = DEFAULT_CLASSIFIER,
    weights: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Fresh, unfitted systems: the classifier first, then the baselines. The classifier
    weighs the thread's fields as `weights` say, else as the study file says."""
    rules = keyword_rules(taxonomy, target)
    stage_rules = keyword_rules(taxonomy, get_target("stage")) if target.kind == PATH else None
    if weights is None:
        weights = thread_reading(taxonomy).weights
    return {
        "model": TextClassifier(
            target,
            classifier,
            taxonomy.leaf_paths(),
            weights,
            rules,
            stage_rules,
            known_labels(taxonomy, target),
        ),
        "majority": MajorityBaseline(target),
        "keywords": KeywordBaseline(target, keyword_rules(taxonomy, target, rich=False)),
    }
