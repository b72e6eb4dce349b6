"""Label hierarchies read from label names: the columns a model outputs and how they are scored.

With ``--label-hierarchy SEP`` a label named ``组织关系-裁员`` (SEP ``-``) has the parent ``组织关系``;
``a-b-c`` has the parents ``a`` and ``a-b``. A model then outputs the given labels first (the
*primary* columns, in labels.txt's order), then each parent that is not itself a given label (the
*auxiliary* columns, sorted). Every text is trained on its labels and their parents: a rare child
shares its parent's target, so what the encoder learns for the parent helps it.

Everything a user reads stays on the given labels: the best epoch, the thresholds' strategy,
metrics.json's top-level figures, predictions and the export's ``labels``. The parents add
per-level metrics (``levels`` in metrics.json: level 1 is the top of the tree), their own
thresholds (tuned on dev with the same rule, apart from the given labels), and, with
``--parent-consistency`` (on by default), a predicted label brings its parents into the predicted
set. Without a separator the layout is flat: the outputs are the given labels.

Example:
    >>> h = LabelHierarchy(LabelVocab(["人生-婚礼", "人生-死亡", "组织关系-裁员"]), "-")
    >>> h.outputs.names
    ['人生-婚礼', '人生-死亡', '组织关系-裁员', '人生', '组织关系']
    >>> h.expand([["人生-死亡"]])
    [['人生-死亡', '人生']]
    >>> h.close(np.array([[0, 1, 0, 0, 0]])).numpy().tolist()
    [[0, 1, 0, 1, 0]]
"""

from __future__ import annotations

import logging

import numpy as np
import tensorflow as tf

from .data import LabelVocab
from .metrics import multilabel_metrics
from .thresholds import Thresholds, final_decisions

log = logging.getLogger(__name__)

LEVEL_KEYS = ("micro_precision", "micro_recall", "micro_f1", "macro_f1", "macro_labels")


class LabelHierarchy:
    """The output columns for `labels` (a `LabelVocab`, the given labels) under `separator`."""

    def __init__(self, labels: LabelVocab, separator: str | None = None, consistent: bool = True):
        self.labels, self.separator, self.consistent = labels, separator or None, consistent
        chains = {name: self._ancestor_names(name) for name in labels.names}
        self.parents = sorted({p for chain in chains.values() for p in chain if p not in labels.index})
        self.outputs = LabelVocab(labels.names + self.parents)
        self.num_primary = len(labels)
        names = self.outputs.names
        self.levels = [len(self._ancestor_names(n)) + 1 for n in names]  # 1: a root of the tree
        # ancestors[child, parent] = 1: what a predicted child brings into the predicted set.
        self.ancestors = np.zeros((len(names), len(names)), np.float32)  # [outputs, outputs]
        for i, name in enumerate(names):
            for p in self._ancestor_names(name):
                self.ancestors[i, self.outputs.index[p]] = 1.0
        if self.separator and not self.parents and not self.ancestors.any():
            log.warning("--label-hierarchy %r: no label name contains it, so the labels stay flat", self.separator)

    def _ancestor_names(self, name: str) -> list:
        if not self.separator:
            return []
        parts = name.split(self.separator)
        prefixes = [self.separator.join(parts[:depth]) for depth in range(1, len(parts))]
        return [p for p in prefixes if p.strip()]  # "-x" has no parent named ""

    @property
    def hierarchical(self) -> bool:
        return bool(self.ancestors.any())

    def describe(self) -> str:
        counts = np.bincount(self.levels)[1:]
        return (f"label hierarchy ({self.separator!r}): {len(self.parents)} parents added to the "
                f"{self.num_primary} labels; outputs per level " + ", ".join(f"{lv + 1}: {c}" for lv, c in
                                                                             enumerate(counts)))

    def expand(self, label_lists) -> list:
        """Each label list with its labels' parents appended (the training and evaluation targets)."""
        out = []
        for labs in label_lists:
            row = list(labs)
            for lab in labs:
                row += [p for p in self._ancestor_names(lab) if p not in row]
            out.append(row)
        return out

    def multi_hot(self, label_lists) -> np.ndarray:
        """[examples, outputs] targets: the labels and their parents."""
        return self.outputs.multi_hot(self.expand(label_lists))

    def close(self, decisions):
        """0/1 decisions [batch, outputs] with each predicted label's parents set (int32 tensor)."""
        decisions = tf.cast(decisions, tf.float32)
        implied = tf.matmul(decisions, tf.constant(self.ancestors))  # [batch, outputs]: predicted children
        return tf.cast(tf.minimum(decisions + implied, 1.0), tf.int32)

    def decide(self, predicted: dict, thresholds, at_least_one: bool):
        """The run's decisions [batch, outputs] (int32): `final_decisions` on the given labels (the
        at-least-one rule looks at them only), the parents against their thresholds, then the
        parents of every predicted label when the hierarchy is kept consistent."""
        if not self.parents and not (self.consistent and self.hierarchical):
            return final_decisions(predicted, thresholds, at_least_one)
        k = self.num_primary
        primary = {key: predicted[key][:, :k] for key in ("scores", "decisions") if key in predicted}
        parents = {key: predicted[key][:, k:] for key in ("scores", "decisions") if key in predicted}
        split = (None, None) if thresholds is None else (thresholds[:k], thresholds[k:])
        decisions = tf.concat([final_decisions(primary, split[0], at_least_one),
                               final_decisions(parents, split[1], False)], axis=-1)
        return self.close(decisions) if self.consistent else decisions

    def tune(self, tune, y, scores) -> Thresholds:
        """Thresholds for every output: `tune(y, scores)` (the run's rule) on the given labels, and
        apart from them on the parents, so that the parents change no choice made for the labels."""
        k = self.num_primary
        rule = tune(y[:, :k], scores[:, :k])
        if not self.parents:
            return rule
        log.info("thresholds of the %d parent labels:", len(self.parents))
        rule.values = np.concatenate([rule.values, tune(y[:, k:], scores[:, k:]).values])
        return rule

    def metrics(self, y, scores, decisions, thresholds=None) -> dict:
        """`multilabel_metrics` on the given labels; with a hierarchy, plus ``levels``: per level of
        the tree, micro and macro figures over all of its outputs (the parents' own per-label rows
        in ``parent_labels``)."""
        y, scores, decisions = (np.asarray(a) for a in (y, scores, decisions))
        k, names = self.num_primary, self.outputs.names
        out = multilabel_metrics(y[:, :k], scores[:, :k], decisions[:, :k], names[:k],
                                 None if thresholds is None else thresholds[:k])
        if not self.hierarchical:
            return out
        levels = np.asarray(self.levels)
        out["levels"] = []
        for level in sorted(set(self.levels)):
            cols = np.flatnonzero(levels == level)
            m = multilabel_metrics(y[:, cols], scores[:, cols], decisions[:, cols], [names[c] for c in cols])
            out["levels"].append({"level": int(level), "num_labels": int(len(cols)),
                                  **{key: m[key] for key in LEVEL_KEYS}})
        if self.parents:
            m = multilabel_metrics(y[:, k:], scores[:, k:], decisions[:, k:], names[k:],
                                   None if thresholds is None else thresholds[k:])
            out["parent_labels"] = m["per_label"]
        return out


def format_levels(m: dict) -> str:
    """The per-level lines of `LabelHierarchy.metrics` ("" for flat labels)."""
    rows = m.get("levels")
    if not rows:
        return ""
    lines = ["", "  per level of the label hierarchy:"]
    lines += [f"    level {r['level']} ({r['num_labels']} labels): micro-F1 {r['micro_f1']:.4f} "
              f"(P {r['micro_precision']:.4f}, R {r['micro_recall']:.4f}), macro-F1 {r['macro_f1']:.4f}"
              for r in rows]
    return "\n".join(lines)
