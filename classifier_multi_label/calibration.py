"""Calibrated scores: a per-label map from the model's score to a probability, fitted on dev.

Both methods rescale each label's logit, `p' = sigmoid(slope_c * logit(p) + intercept_c)`:

- ``temperature`` (Guo et al. 2017, per label): `intercept_c = 0`, `slope_c = 1 / T_c`, the T_c that
  minimises the label's binary cross-entropy on dev;
- ``platt`` (Platt 1999): slope and intercept of a logistic regression of the label's dev targets on
  its logit (scikit-learn, almost unregularised).

Each is increasing per label, so a label's ranking of texts (and its precision-recall curve) is
unchanged; what changes is what a score of 0.8 means, and, where one global threshold serves every
label, which labels pass it. A label whose dev split holds only positives or only negatives keeps
its scores (slope 1, intercept 0). The map is saved in the run folder (calibration.json) and is
part of the export's graph, so served scores are the calibrated ones.

Example:
    >>> y = np.array([[1], [1], [0], [0], [1], [0]])
    >>> scores = np.array([[0.99], [0.95], [0.9], [0.05], [0.97], [0.2]])  # over-confident
    >>> cal = fit_calibration(y, scores, "temperature")
    >>> bool(cal.slope[0] < 1.0)  # softened: T > 1
    True
    >>> bool(np.all(np.diff(cal.apply(np.array([[0.1], [0.5], [0.9]]))[:, 0]) > 0))  # order kept
    True
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

from .config import CALIBRATIONS

_EPS = 1e-6  # scores are clipped to [eps, 1 - eps] before the logit


def _logit(scores):
    p = np.clip(np.asarray(scores, np.float64), _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


@dataclass(frozen=True)
class Calibration:
    method: str
    slope: np.ndarray  # [num_labels]
    intercept: np.ndarray  # [num_labels]

    def apply(self, scores: np.ndarray) -> np.ndarray:
        """scores [examples, num_labels] -> calibrated scores, float32."""
        z = self.slope[None, :] * _logit(scores) + self.intercept[None, :]
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)

    def apply_tf(self, scores):
        """The same map in TensorFlow (core ops, for the export): scores [batch, num_labels] float32."""
        import tensorflow as tf

        p = tf.clip_by_value(tf.cast(scores, tf.float32), _EPS, 1.0 - _EPS)
        z = tf.constant(self.slope, tf.float32) * (tf.math.log(p) - tf.math.log1p(-p)) \
            + tf.constant(self.intercept, tf.float32)
        return tf.sigmoid(z)

    def save(self, path: str, names):
        from .files import write_json

        write_json(path, {"method": self.method, "labels": {
            n: {"slope": float(a), "intercept": float(b)} for n, a, b in zip(names, self.slope, self.intercept)}})

    @classmethod
    def load(cls, path: str, names) -> "Calibration":
        with open(path, encoding="utf-8") as fh:
            spec = json.load(fh)
        rows = [spec["labels"][n] for n in names]
        return cls(spec["method"], np.array([r["slope"] for r in rows]), np.array([r["intercept"] for r in rows]))


def fit_calibration(y_true: np.ndarray, scores: np.ndarray, method: str) -> Calibration:
    """Fits `method` per label on dev targets y_true [examples, num_labels] (0/1) and scores."""
    if method not in CALIBRATIONS[1:]:
        raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS[1:])}, not {method!r}")
    y, z = np.asarray(y_true, np.float64), _logit(scores)
    slope, intercept = np.ones(y.shape[1]), np.zeros(y.shape[1])
    for c in range(y.shape[1]):
        if y[:, c].min() == y[:, c].max():  # one class only on dev: nothing to fit
            continue
        if method == "temperature":
            slope[c] = _inverse_temperature(y[:, c], z[:, c])
        else:
            from sklearn.linear_model import LogisticRegression

            lr = LogisticRegression(C=1e4, max_iter=1000).fit(z[:, c:c + 1], y[:, c].astype(int))
            slope[c], intercept[c] = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    return Calibration(method, slope, intercept)


def _inverse_temperature(y, z) -> float:
    """1/T minimising the mean binary cross-entropy of sigmoid(z / T) on (y, z); T in [1/20, 20]."""
    from scipy.optimize import minimize_scalar

    def loss(log_a):
        t = np.exp(log_a) * z
        return float(np.mean(np.logaddexp(0.0, t) - y * t))  # BCE with logits, stable

    return float(np.exp(minimize_scalar(loss, bounds=(-np.log(20.0), np.log(20.0)), method="bounded").x))
