"""Decision thresholds: tuned on dev, saved in the run folder, applied by eval, predict and export.

What tuning maximises (``--threshold-objective``): ``micro`` F1 (the default), ``macro`` F1 (every
label counts alike: rare labels get lower thresholds) or ``samples`` F1 (the mean per-text F1).
Macro-F1 leaves out labels with no true and no predicted dev example (`metrics.macro_f1`).

Strategies (``--threshold-strategy``):

- ``fixed``: every label uses ``--threshold`` (0.5 by default).
- ``global``: one threshold for all labels, the one with the best dev objective.
- ``per_label``: starting from the global threshold, each label with at least
  ``--min-dev-positives`` dev positives gets the threshold that maximises the dev objective given
  the others (coordinate ascent, a few passes; for macro-F1, each label's own F1); labels with fewer
  positives keep the global one. Then every tuned threshold is pulled towards the global one by the
  evidence behind it (`shrink`, ``--threshold-prior-positives`` k): a label with n dev positives
  moves n / (n + k) of the way to its own optimum. For micro-F1, maximising each label's own F1
  instead would be a trap: for a label the model ranks poorly, "predict it for every text" has the
  best F1 (2p/(1+p) at prevalence p), and a few such labels wreck precision.
- ``auto`` (the default): ``per_label`` if it generalises better than ``global`` on dev itself,
  else ``global``. Dev is split in random halves 20 times; each rule is tuned on one half and
  scored (on the objective) on the other, both ways round, and ``per_label`` must win on average.
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

from .config import OBJECTIVES
from .config import THRESHOLD_STRATEGIES as STRATEGIES
from .errors import UserError
from .files import write_json

log = logging.getLogger(__name__)

# 0.01..0.99 by 0.01, and finer in the tails: losses that reweight positives (pos_weight, logit
# adjustment) push the best thresholds of a 65-label set past 0.95, where the grid once stopped.
GRID = np.unique(np.round(np.concatenate([[0.001, 0.002, 0.005], np.arange(0.01, 0.991, 0.01),
                                          [0.995, 0.998, 0.999]]), 3))



HALVINGS = 20  # random halvings of dev for --threshold-strategy auto (each half is held out once)


@dataclass
class Thresholds:
    values: np.ndarray  # [num_labels]
    at_least_one: bool
    strategy: str  # the rule applied: fixed, global or per_label (auto resolves to one of the last two)
    global_threshold: float
    held_out_f1: dict | None = None  # auto: {rule: mean objective F1 on held-out halves of dev}
    objective: str = "micro"  # what tuning maximised: micro, macro or samples F1

    def save(self, path, label_names):
        extra = {"auto_held_out_f1": self.held_out_f1} if self.held_out_f1 else {}
        write_json(path, {"strategy": self.strategy, "objective": self.objective,
                          "global_threshold": self.global_threshold, "at_least_one": self.at_least_one, **extra,
                          "thresholds": {n: float(v) for n, v in zip(label_names, self.values)}})

    @classmethod
    def load(cls, path, label_names) -> "Thresholds":
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
        missing = [n for n in label_names if n not in d["thresholds"]]
        if missing:
            raise UserError(f"{path}: no threshold for labels {missing}: the file does not match labels.txt")
        return cls(np.array([d["thresholds"][n] for n in label_names], dtype=np.float32),
                   bool(d["at_least_one"]), d["strategy"], float(d["global_threshold"]),
                   d.get("auto_held_out_f1", d.get("auto_held_out_micro_f1")), d.get("objective", "micro"))


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
    return np.divide(2 * tp, denom, out=np.zeros_like(tp, dtype=np.float64), where=denom > 0)


def _macro(tp, fp, fn):
    """Macro-F1 over the last axis (labels), leaving out labels with no true and no predicted
    example (metrics.macro_f1's convention): tp, fp, fn [..., labels] -> [...]."""
    present = (tp + fp + fn) > 0
    return np.divide((_f1(tp, fp, fn) * present).sum(-1), present.sum(-1),
                     out=np.zeros(present.shape[:-1]), where=present.sum(-1) > 0)


def _samples(tp, fp, fn):
    """Samples-F1 over the last axis (rows): a row with no true and no predicted label scores 1."""
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.ones_like(tp, dtype=np.float64), where=denom > 0).mean(-1)


def score(y, pred, objective: str = "micro") -> float:
    """`objective` (micro, macro or samples F1) of 0/1 decisions `pred` against `y`, both [n, labels]."""
    y, pred = np.asarray(y).astype(bool), np.asarray(pred).astype(bool)
    axis = 1 if objective == "samples" else 0  # samples: counts per row; micro/macro: per label
    tp, fp, fn = ((pred & y).sum(axis), (pred & ~y).sum(axis), (~pred & y).sum(axis))
    if objective == "micro":
        return float(_f1(tp.sum(), fp.sum(), fn.sum()))
    return float(_macro(tp, fp, fn) if objective == "macro" else _samples(tp, fp, fn))


def _pick(f1_curve) -> int:
    """Grid index of the best value; among equally good thresholds the one nearest 0.5 (the least tuned)."""
    best = np.flatnonzero(np.isclose(f1_curve, f1_curve.max()))
    return int(best[np.argmin(np.abs(GRID[best] - 0.5))])


def _global_curve(y, scores, objective: str):
    """The objective at one threshold for every label, for each grid threshold: [len(GRID)]."""
    if objective == "samples":
        yb = y.astype(bool)
        curve = []
        for t in GRID:
            pred = scores >= t
            curve.append(_samples((pred & yb).sum(1), (pred & ~yb).sum(1), (~pred & yb).sum(1)))
        return np.array(curve)
    tp, fp, fn = _counts(y, scores)  # [grid, labels]
    return _f1(tp.sum(1), fp.sum(1), fn.sum(1)) if objective == "micro" else _macro(tp, fp, fn)


def best_global_threshold(y, scores, objective: str = "micro") -> tuple:
    """(threshold, objective value) of the grid threshold with the best `objective` F1."""
    curve = _global_curve(np.asarray(y).astype(int), np.asarray(scores), objective)
    i = _pick(curve)
    return float(GRID[i]), float(curve[i])


def _label_curves(y, scores, idx, c, objective, tp, fp, fn):
    """The objective for each grid threshold of label c, the other labels at grid indices `idx`."""
    labels = np.arange(y.shape[1])
    if objective == "macro":  # labels are independent: label c's own F1 decides
        return _f1(tp[:, c], fp[:, c], fn[:, c])
    if objective == "micro":
        TP, FP, FN = (a[idx, labels].sum() - a[idx[c], c] for a in (tp, fp, fn))
        return _f1(TP + tp[:, c], FP + fp[:, c], FN + fn[:, c])
    yb = y.astype(bool)  # samples: per-row counts without label c, plus label c at each threshold
    pred = scores >= GRID[idx]  # [n, labels]
    pred[:, c] = False
    rows = [(pred & yb).sum(1), (pred & ~yb).sum(1), (~pred & yb).sum(1) - yb[:, c]]
    mine = scores[None, :, c] >= GRID[:, None]  # [grid, n]
    return _samples(rows[0] + (mine & yb[:, c]), rows[1] + (mine & ~yb[:, c]), rows[2] + (~mine & yb[:, c]))


def _coordinate_ascent(y, scores, global_t: float, min_positives: int, objective: str = "micro",
                       passes: int = 3):
    """Per-label grid indices that (locally) maximise `objective`, starting from `global_t` everywhere."""
    tp, fp, fn = _counts(y, scores)  # [grid, labels]
    idx = np.full(y.shape[1], int(np.argmin(np.abs(GRID - global_t))))
    eligible = [c for c in range(y.shape[1]) if y[:, c].sum() >= min_positives]
    for _ in range(1 if objective == "macro" else passes):
        changed = False
        for c in eligible:
            curve = _label_curves(y, scores, idx, c, objective, tp, fp, fn)
            if not np.isclose(curve[idx[c]], curve.max()):  # move only for a real gain
                new = _pick(curve)
                changed |= new != idx[c]
                idx[c] = new
        if not changed:
            break
    return idx, eligible


def shrink(values, global_t: float, positives, prior_positives: float) -> np.ndarray:
    """Per-label thresholds pulled towards the global one by the evidence behind them:
    t_c = t + n_c / (n_c + k) * (t_c' - t), n_c the label's dev positives, k = `prior_positives`
    (as if the global threshold were backed by k positives of the label), snapped to the grid.

    A label's best threshold on dev is an estimate whose noise falls with its positives; with few
    of them the F1 curve is a staircase whose top step is often luck. The weight is the usual
    precision-weighted mean of a noisy estimate and a prior (here, the global threshold)."""
    positives = np.asarray(positives, np.float64)
    weight = positives / (positives + prior_positives) if prior_positives > 0 else np.ones_like(positives)
    moved = global_t + weight * (np.asarray(values, np.float64) - global_t)
    return GRID[np.abs(GRID[None, :] - moved[:, None]).argmin(1)].astype(np.float32)


def _fit(y, scores, strategy: str, min_positives: int, objective: str = "micro",
         prior_positives: float = 0.0) -> tuple:
    """(thresholds [labels], global threshold, labels tuned on their own) of the "global" or
    "per_label" rule on (y, scores)."""
    global_t, _ = best_global_threshold(y, scores, objective)
    if strategy == "global":
        return np.full(y.shape[1], global_t, np.float32), global_t, 0
    idx, eligible = _coordinate_ascent(y, scores, global_t, min_positives, objective)
    values = shrink(GRID[idx], global_t, y.sum(0), prior_positives)
    return values, global_t, len(eligible)


def held_out_f1(y, scores, min_positives: int, at_least_one: bool, halvings: int = HALVINGS,
                seed: int = 0, objective: str = "micro", prior_positives: float = 0.0) -> dict:
    """{rule: mean `objective` F1 of its thresholds tuned on one random half of (y, scores) and
    applied to the other}, for "global" and "per_label", over `halvings` splits, each half held out
    once. A half has about half of each label's positives, so per-label tuning asks for half as many."""
    rng = np.random.default_rng(seed)
    scored = {"global": [], "per_label": []}
    for _ in range(halvings):
        order = rng.permutation(len(y))
        halves = order[: len(y) // 2], order[len(y) // 2:]
        for fit, held in (halves, halves[::-1]):
            for rule, results in scored.items():
                values, _, _ = _fit(y[fit], scores[fit], rule, max(1, min_positives // 2), objective,
                                    prior_positives / 2)
                results.append(score(y[held], decide(scores[held], values, at_least_one).numpy(), objective))
    return {rule: float(np.mean(results)) for rule, results in scored.items()}


def tune_thresholds(y_dev, dev_scores, strategy: str, default: float = 0.5, min_positives: int = 5,
                    at_least_one: bool = False, objective: str = "micro", prior_positives: float = 0.0) -> Thresholds:
    y_dev, dev_scores = np.asarray(y_dev).astype(int), np.asarray(dev_scores)
    num_labels = y_dev.shape[1]
    if strategy not in STRATEGIES:
        raise UserError(f"unknown threshold strategy {strategy!r}: use {', '.join(STRATEGIES)}")
    if objective not in OBJECTIVES:
        raise UserError(f"unknown threshold objective {objective!r}: use {', '.join(OBJECTIVES)}")
    if strategy == "fixed":
        return Thresholds(np.full(num_labels, default, np.float32), at_least_one, strategy, default,
                          objective=objective)
    held_out = None
    if strategy == "auto":
        held_out = held_out_f1(y_dev, dev_scores, min_positives, at_least_one, objective=objective,
                               prior_positives=prior_positives)
        strategy = "per_label" if held_out["per_label"] > held_out["global"] else "global"
        log.info("thresholds: auto chose %s (held-out dev %s-F1 over %d halvings: global %.4f, per_label "
                 "%.4f)", strategy, objective, HALVINGS, held_out["global"], held_out["per_label"])
    values, global_t, tuned = _fit(y_dev, dev_scores, strategy, min_positives, objective, prior_positives)
    if strategy == "per_label":
        log.info("thresholds: tuned %d of %d labels on dev for %s-F1; the other %d use the global %.2f",
                 tuned, num_labels, objective, num_labels - tuned, global_t)
    else:
        log.info("thresholds: global %.2f (best dev %s-F1)", global_t, objective)
    return Thresholds(values, at_least_one, strategy, global_t, held_out, objective)
