"""The strong cheap baseline every run is compared with: TF-IDF + one-vs-rest logistic regression.

A neural model that does not beat this on the user's data is not worth serving, and on many-label
or rare-label data with a short budget it often does not. `train` fits it beside the model
(``--baseline``), tunes its thresholds on dev with the run's own rule and objective, scores it on
test, writes ``baseline_metrics.json`` and says in the log which of the two wins.

Features: for texts that are mostly CJK characters, character 1-3-grams; otherwise word 1-2-grams
plus character 2-5-grams within words. Both with sublinear TF. One logistic regression per label
(C=10, balanced class weights): the recipe of the published TF-IDF rows in ../shared/data.

Example:
    >>> texts = ["good sound", "bad sound", "good price", "bad price"] * 5
    >>> y = np.array([[1, 0], [1, 0], [0, 1], [0, 1]] * 5)
    >>> scores = TfidfBaseline().fit(texts, y).scores(["the sound"])
    >>> bool(scores[0, 0] > scores[0, 1])
    True
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from .config import BASELINES as CHOICES
from .errors import UserError

log = logging.getLogger(__name__)

AUTO_MAX_CELLS = 2_000_000  # --baseline auto: fit it when train rows x labels is at most this (about a minute)


def mostly_cjk(texts, sample: int = 2000) -> bool:
    """True when most letters of (a sample of) `texts` are CJK ideographs."""
    chars = "".join(texts[:sample])
    letters = [c for c in chars if c.isalpha()]
    cjk = sum(1 for c in letters if "\u3400" <= c <= "\u9fff" or "\uf900" <= c <= "\ufaff")
    return bool(letters) and cjk / len(letters) > 0.5


def wanted(choice: str, num_train: int, num_labels: int) -> bool:
    """Whether `--baseline choice` fits the baseline for this data."""
    if choice not in CHOICES:
        raise UserError(f"--baseline {choice!r}: use {', '.join(CHOICES)}")
    return choice == "tfidf" or (choice == "auto" and num_train * num_labels <= AUTO_MAX_CELLS)


class TfidfBaseline:
    """TF-IDF features + one logistic regression per label; `scores` are probabilities."""

    def __init__(self, C: float = 10.0, max_iter: int = 2000):
        self.C, self.max_iter = C, max_iter

    def fit(self, texts, y) -> "TfidfBaseline":
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.multiclass import OneVsRestClassifier
        from sklearn.pipeline import make_union

        from .metrics import indicator

        texts = list(texts)
        if mostly_cjk(texts):
            self.vectorizer = TfidfVectorizer(analyzer="char", ngram_range=(1, 3), sublinear_tf=True)
        else:
            min_df = 2 if len(texts) >= 1000 else 1
            self.vectorizer = make_union(
                TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=min_df),
                TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=min_df))
        x = self.vectorizer.fit_transform(texts)
        self.num_labels = np.shape(y)[1]
        y = indicator(y)  # one label stays one label, not scikit-learn's two binary classes
        # Labels in parallel on every core (training has not started), unless worker start-up would cost more.
        n_jobs = -1 if y.size > 100_000 else 1
        self.classifier = OneVsRestClassifier(
            LogisticRegression(C=self.C, class_weight="balanced", max_iter=self.max_iter), n_jobs=n_jobs)
        with warnings.catch_warnings():  # a label with no training positive gets a constant 0: fine
            warnings.filterwarnings("ignore", message="Label .* is present in all training examples")
            warnings.filterwarnings("ignore", message="Label not .* is present in all training examples")
            self.classifier.fit(x, y)
        return self

    def scores(self, texts) -> np.ndarray:
        """[len(texts), num_labels] probabilities."""
        return self.classifier.predict_proba(self.vectorizer.transform(list(texts)))[:, :self.num_labels]
