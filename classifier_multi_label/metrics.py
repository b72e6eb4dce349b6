"""Honest multi-label metrics, computed with scikit-learn on decisions after thresholds.

`multilabel_metrics` returns micro, macro and samples precision/recall/F1, Hamming loss, subset
accuracy, sample-averaged Jaccard, P@k on the scores, a per-label table with support, and the
TF1 original's per-sample union-normalised P/R/F1 (docs/algorithms.md §1.9) so numbers can be set
beside its README. Rows with no true and no predicted label count as a perfect match in samples F1
and Jaccard (scikit-learn's zero_division=1).

Macro averages run over the labels that occur in the evaluated set: a label with no true example
and no prediction there has no defined F1 and is left out (``macro_labels`` says how many labels
were averaged, ``macro_f1_all_labels`` is the average with those labels counted as 0, as
scikit-learn's plain ``average="macro"`` does). A label predicted on a set where it never occurs
still counts, with F1 0: those are false positives.

``ece`` is the expected calibration error of the scores as probabilities: every (text, label)
score falls into one of `ECE_BINS` equal-width bins, and the bins' gaps between mean score and
share of positives are averaged, weighted by their sizes (0: a score of 0.8 is right 80% of the
time). For seq2seq the scores are beam marginals, reported as they are.

Example:
    >>> y = np.array([[1, 0, 1], [0, 1, 0]])
    >>> m = multilabel_metrics(y, scores=np.array([[.9, .2, .7], [.1, .4, .6]]),
    ...                        decisions=np.array([[1, 0, 1], [0, 0, 1]]), label_names=["a", "b", "c"])
    >>> round(m["micro_f1"], 4), m["subset_accuracy"]
    (0.6667, 0.5)
"""

from __future__ import annotations

import numpy as np
from sklearn import metrics as skm


def union_normalised_prf(y_true: np.ndarray, y_pred: np.ndarray) -> tuple:
    """hellonlp's EvalMultiLabel: each sample's TP/FP/FN divided by |Y ∪ Ŷ|, summed, then P/R/F1."""
    tp = fp = fn = 0.0
    for t, p in zip(y_true.astype(bool), y_pred.astype(bool)):
        union = np.sum(t | p)
        if union == 0:
            continue
        tp += np.sum(t & p) / union
        fp += np.sum(p & ~t) / union
        fn += np.sum(t & ~p) / union
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return float(precision), float(recall), float(f1)


def precision_at_k(y_true: np.ndarray, scores: np.ndarray, k: int) -> float:
    """Mean over rows with at least one true label of (true labels among the k best scores) / k."""
    rows = y_true.sum(axis=1) > 0
    if not rows.any():
        return 0.0
    top = np.argsort(-scores[rows], axis=1, kind="stable")[:, :k]
    return float(np.take_along_axis(y_true[rows], top, axis=1).sum(axis=1).mean() / k)


def present_labels(y_true, y_pred) -> np.ndarray:
    """Indices of the labels with at least one true or predicted example: those macro averages count."""
    return np.flatnonzero((np.asarray(y_true).sum(0) + np.asarray(y_pred).sum(0)) > 0)


def indicator(y) -> np.ndarray:
    """`y` [examples, num_labels] as scikit-learn reads a multi-label indicator. It reads one column
    as binary classes 0/1 (micro over both, no samples average); an all-zero second column keeps it
    multi-label and changes no metric of column 0."""
    y = np.asarray(y).astype(int)
    return np.pad(y, ((0, 0), (0, 1))) if y.shape[1] == 1 else y


def macro_f1(y_true, y_pred) -> float:
    """Macro-F1 over the labels present in truth or prediction (0 when none is)."""
    present = present_labels(y_true, y_pred)
    if not len(present):
        return 0.0
    return float(skm.f1_score(indicator(y_true), indicator(y_pred), labels=present, average="macro",
                              zero_division=0.0))


ECE_BINS = 15


def expected_calibration_error(y_true, scores, bins: int = ECE_BINS) -> float:
    """Expected calibration error over every (text, label) pair: sum over equal-width score bins of
    (pairs in the bin / all pairs) * |mean score - share of positives|.

    >>> expected_calibration_error(np.array([[1, 0], [1, 0]]), np.array([[0.9, 0.1], [0.7, 0.3]]))
    0.2
    """
    y = np.asarray(y_true, dtype=np.float64).ravel()  # [pairs]
    p = np.asarray(scores, dtype=np.float64).ravel()  # [pairs]
    if not len(p):
        return 0.0
    which = np.minimum((p * bins).astype(int), bins - 1)  # [pairs] bin index; a score of 1.0 in the last
    counts = np.bincount(which, minlength=bins)
    gap = np.abs(np.bincount(which, p, bins) - np.bincount(which, y, bins))  # per bin: |sum p - sum y|
    return round(float(gap.sum() / len(p)), 6) if counts.any() else 0.0


def multilabel_metrics(y_true, scores, decisions, label_names, thresholds=None) -> dict:
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(decisions).astype(int)
    scores = np.asarray(scores, dtype=np.float64)
    out: dict = {"num_examples": int(len(y_true))}
    present = present_labels(y_true, y_pred)
    columns = list(range(y_true.shape[1]))
    yt, yp = indicator(y_true), indicator(y_pred)
    for avg in ("micro", "macro", "samples"):
        labels = present if avg == "macro" and len(present) else columns
        p, r, f, _ = skm.precision_recall_fscore_support(yt, yp, average=avg, labels=labels,
                                                         zero_division=1.0 if avg == "samples" else 0.0)
        out.update({f"{avg}_precision": float(p), f"{avg}_recall": float(r), f"{avg}_f1": float(f)})
    out["macro_labels"] = int(len(present))
    out["macro_f1_all_labels"] = float(skm.f1_score(yt, yp, labels=columns, average="macro", zero_division=0.0))
    out["hamming_loss"] = float(skm.hamming_loss(y_true, y_pred))
    out["subset_accuracy"] = float(skm.accuracy_score(yt, yp))
    out["jaccard_samples"] = float(skm.jaccard_score(yt, yp, average="samples", zero_division=1.0))
    for k in (1, 3, 5):
        if k <= y_true.shape[1]:
            out[f"precision_at_{k}"] = precision_at_k(y_true, scores, k)
    out["ece"] = expected_calibration_error(y_true, scores)
    p, r, f = union_normalised_prf(y_true, y_pred)
    out.update({"hellonlp_precision": p, "hellonlp_recall": r, "hellonlp_f1": f})
    lp, lr, lf, support = skm.precision_recall_fscore_support(yt, yp, labels=columns, average=None,
                                                              zero_division=0.0)
    out["per_label"] = [
        {"label": name, "precision": float(lp[i]), "recall": float(lr[i]), "f1": float(lf[i]),
         "support": int(support[i]), "predicted": int(y_pred[:, i].sum()),
         **({"threshold": float(thresholds[i])} if thresholds is not None else {})}
        for i, name in enumerate(label_names)]
    return out


SUMMARY_KEYS = ("micro_f1", "macro_f1", "samples_f1", "micro_precision", "micro_recall", "jaccard_samples",
                "hamming_loss", "subset_accuracy", "precision_at_1", "hellonlp_f1")


def format_metrics(m: dict, title: str = "metrics") -> str:
    """A plain-text table: the summary, then one line per label."""
    lines = [f"{title} ({m['num_examples']} examples)"]
    lines += [f"  {k:<18} {m[k]:.4f}" for k in SUMMARY_KEYS if k in m]
    rows = m.get("per_label", [])
    if "macro_labels" in m and m["macro_labels"] < len(rows):
        lines.append(f"  (macro averages over the {m['macro_labels']} of {len(rows)} labels that occur here or are "
                     f"predicted; counting the others as 0: macro_f1 {m['macro_f1_all_labels']:.4f})")
    if rows:
        width = max(12, max(len(r["label"]) for r in rows) + 2)
        lines.append(f"  {'label':<{width}} {'prec':>6} {'rec':>6} {'f1':>6} {'support':>8} {'pred':>6}"
                     + ("  thresh" if "threshold" in rows[0] else ""))
        for r in rows:
            lines.append(f"  {r['label']:<{width}} {r['precision']:6.3f} {r['recall']:6.3f} {r['f1']:6.3f} "
                         f"{r['support']:8d} {r['predicted']:6d}"
                         + (f"  {r['threshold']:6.2f}" if "threshold" in r else ""))
    return "\n".join(lines)
