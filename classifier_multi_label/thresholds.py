"""Decision thresholds: tuned on dev, saved in the run folder, applied by eval, predict and export.

Strategies (``--threshold-strategy``):

- ``fixed``: every label uses ``--threshold`` (0.5 by default).
- ``global``: one threshold for all labels, the one with the best dev micro-F1.
- ``per_label``: starting from the global threshold, each label with at least
  ``--min-dev-positives`` dev positives gets the threshold that maximises dev micro-F1 given the
  others (coordinate ascent, a few passes); labels with fewer positives keep the global one (too few
  positives make a tuned threshold noise). Maximising each label's own F1 instead is a trap: for a
  label the model ranks poorly, "predict it for every text" has the best F1 (2p/(1+p) at
  prevalence p), and a few such labels wreck precision. Coordinate ascent never ends below the
  global threshold's dev micro-F1.
- ``auto`` (the default): ``per_label`` if it generalises better than ``global`` on dev itself,
  else ``global``. Dev is split in random halves 20 times; each rule is tuned on one half and
  scored (micro-F1) on the other, both ways round, and ``per_label`` must win on average.
  Per-label thresholds always score at least as well on the dev set they were tuned on. On a
  small dev set they can still fit its noise: DuEE's 1,000 dev texts over 65 labels scored 0.9211
  held out against 0.9233 for one global threshold (a 30-epoch TextCNN). The comparison is saved in
  ``thresholds.json``.

``--at-least-one`` predicts the best-scoring label for a text whose scores pass no threshold
(or, for a head that decodes label sets, whose decoded set is empty).

`decide` and `final_decisions` are written with TensorFlow ops so the exported graph applies the
very same rule.

Example:
    >>> decide(np.array([[0.3, 0.2]], "float32"), np.array([0.5, 0.5], "float32"), at_least_one=True).numpy()
    array([[1, 0]], dtype=int32)
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from .files import write_json

log = logging.getLogger(__name__)

GRID = np.round(np.arange(0.05, 0.951, 0.01), 2)


STRATEGIES = ("auto", "fixed", "global", "per_label")
HALVINGS = 20  # random halvings of dev for --threshold-strategy auto (each half is held out once)


@dataclass
class Thresholds:
    values: np.ndarray  # [num_labels]
    at_least_one: bool
    strategy: str  # the rule applied: fixed, global or per_label (auto resolves to one of the last two)
    global_threshold: float
    held_out_f1: dict | None = None  # auto: {rule: mean micro-F1 on held-out halves of dev}

    def save(self, path, label_names):
        extra = {"auto_held_out_micro_f1": self.held_out_f1} if self.held_out_f1 else {}
        write_json(path, {"strategy": self.strategy, "global_threshold": self.global_threshold,
                          "at_least_one": self.at_least_one, **extra,
                          "thresholds": {n: float(v) for n, v in zip(label_names, self.values)}})

    @classmethod
    def load(cls, path, label_names) -> "Thresholds":
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
        missing = [n for n in label_names if n not in d["thresholds"]]
        if missing:
            raise ValueError(f"{path}: no threshold for labels {missing}: the file does not match labels.txt")
        return cls(np.array([d["thresholds"][n] for n in label_names], dtype=np.float32),
                   bool(d["at_least_one"]), d["strategy"], float(d["global_threshold"]),
                   d.get("auto_held_out_micro_f1"))


def decide(scores, thresholds, at_least_one: bool):
    """scores [batch, labels], thresholds [labels] -> 0/1 decisions [batch, labels] int32."""
    scores = tf.convert_to_tensor(scores, tf.float32)
    decisions = tf.cast(scores >= tf.cast(thresholds, tf.float32), tf.int32)
    return _at_least_one(decisions, scores) if at_least_one else decisions


def _at_least_one(decisions, scores):
    top = tf.one_hot(tf.argmax(scores, axis=-1), tf.shape(scores)[-1], dtype=tf.int32)  # [batch, labels]
    none = tf.reduce_sum(decisions, axis=-1, keepdims=True) == 0  # [batch, 1]
    return tf.where(none, top, decisions)


def final_decisions(predicted: dict, thresholds, at_least_one: bool):
    """The decision rule of a run: a decoding head's own label sets ("decisions"), else the scores
    against the per-label `thresholds` [labels]; then the at-least-one rule. -> [batch, labels] int32."""
    if "decisions" not in predicted:
        return decide(predicted["scores"], thresholds, at_least_one)
    decisions = tf.cast(predicted["decisions"], tf.int32)
    return _at_least_one(decisions, tf.cast(predicted["scores"], tf.float32)) if at_least_one else decisions


def _counts(y, scores):
    """tp, fp, fn per grid threshold and label: [len(GRID), labels] each."""
    y = y.astype(bool)
    tp, fp, fn = (np.zeros((len(GRID), y.shape[1])) for _ in range(3))
    for i, t in enumerate(GRID):
        pred = scores >= t  # [n, labels]
        tp[i], fp[i], fn[i] = (pred & y).sum(0), (pred & ~y).sum(0), (~pred & y).sum(0)
    return tp, fp, fn


def _f1(tp, fp, fn):
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def _pick(f1_curve) -> float:
    # Among equally good thresholds, prefer the one nearest 0.5 (the least tuned).
    best = np.isclose(f1_curve, f1_curve.max())
    return float(min(GRID[best], key=lambda t: abs(t - 0.5)))


def _coordinate_ascent(y, scores, global_t: float, min_positives: int, passes: int = 3):
    """Per-label grid indices that (locally) maximise micro-F1, starting from `global_t` everywhere."""
    tp, fp, fn = _counts(y, scores)  # [grid, labels]
    labels = np.arange(y.shape[1])
    idx = np.full(y.shape[1], int(np.argmin(np.abs(GRID - global_t))))
    eligible = [c for c in labels if y[:, c].sum() >= min_positives]
    for _ in range(passes):
        changed = False
        for c in eligible:
            TP, FP, FN = (a[idx, labels].sum() - a[idx[c], c] for a in (tp, fp, fn))
            f1 = _f1(TP + tp[:, c], FP + fp[:, c], FN + fn[:, c])  # micro-F1 for each threshold of label c
            best = np.flatnonzero(np.isclose(f1, f1.max()))
            if not np.isclose(f1[idx[c]], f1.max()):  # move only for a real gain
                new = best[np.argmin(np.abs(GRID[best] - 0.5))]
                changed |= new != idx[c]
                idx[c] = new
        if not changed:
            break
    return GRID[idx].astype(np.float32), len(eligible)


def best_global_threshold(y, scores) -> tuple:
    """(threshold, micro-F1) of the grid threshold with the best micro-F1."""
    tp, fp, fn = _counts(np.asarray(y).astype(int), np.asarray(scores))
    f1 = _f1(tp.sum(1), fp.sum(1), fn.sum(1))
    t = _pick(f1)
    return t, float(f1[int(np.argmin(np.abs(GRID - t)))])


def _fit(y, scores, strategy: str, min_positives: int) -> tuple:
    """(thresholds [labels], global threshold, labels tuned on their own) of the "global" or
    "per_label" rule on (y, scores)."""
    global_t, _ = best_global_threshold(y, scores)
    if strategy == "global":
        return np.full(y.shape[1], global_t, np.float32), global_t, 0
    values, tuned = _coordinate_ascent(y, scores, global_t, min_positives)
    return values, global_t, tuned


def held_out_f1(y, scores, min_positives: int, at_least_one: bool, halvings: int = HALVINGS,
                seed: int = 0) -> dict:
    """{rule: mean micro-F1 of its thresholds tuned on one random half of (y, scores) and applied
    to the other}, for "global" and "per_label", over `halvings` splits, each half held out once.
    A half has about half of each label's positives, so per-label tuning asks for half as many."""
    rng = np.random.default_rng(seed)
    scored = {"global": [], "per_label": []}
    for _ in range(halvings):
        order = rng.permutation(len(y))
        halves = order[: len(y) // 2], order[len(y) // 2:]
        for fit, held in (halves, halves[::-1]):
            for rule, results in scored.items():
                values, _, _ = _fit(y[fit], scores[fit], rule, max(1, min_positives // 2))
                pred, truth = decide(scores[held], values, at_least_one).numpy(), y[held]
                tp, fp, fn = (pred * truth).sum(), (pred * (1 - truth)).sum(), ((1 - pred) * truth).sum()
                results.append(2 * tp / max(2 * tp + fp + fn, 1))
    return {rule: float(np.mean(results)) for rule, results in scored.items()}


def tune_thresholds(y_dev, dev_scores, strategy: str, default: float = 0.5, min_positives: int = 5,
                    at_least_one: bool = False) -> Thresholds:
    y_dev, dev_scores = np.asarray(y_dev).astype(int), np.asarray(dev_scores)
    num_labels = y_dev.shape[1]
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown threshold strategy {strategy!r}: use {', '.join(STRATEGIES)}")
    if strategy == "fixed":
        return Thresholds(np.full(num_labels, default, np.float32), at_least_one, strategy, default)
    held_out = None
    if strategy == "auto":
        held_out = held_out_f1(y_dev, dev_scores, min_positives, at_least_one)
        strategy = "per_label" if held_out["per_label"] > held_out["global"] else "global"
        log.info("thresholds: auto chose %s (held-out dev micro-F1 over %d halvings: global %.4f, per_label "
                 "%.4f)", strategy, HALVINGS, held_out["global"], held_out["per_label"])
    values, global_t, tuned = _fit(y_dev, dev_scores, strategy, min_positives)
    if strategy == "per_label":
        log.info("thresholds: tuned %d of %d labels on dev; the other %d use the global %.2f",
                 tuned, num_labels, num_labels - tuned, global_t)
    else:
        log.info("thresholds: global %.2f (best dev micro-F1)", global_t)
    return Thresholds(values, at_least_one, strategy, global_t, held_out)
