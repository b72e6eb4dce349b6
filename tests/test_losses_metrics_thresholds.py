"""Losses against their formulas, metrics against hand computation, threshold tuning."""

import numpy as np
import pytest
import tensorflow as tf

from classifier_multi_label import losses as L
from classifier_multi_label.losses import bce, make_loss
from classifier_multi_label.metrics import format_metrics, multilabel_metrics, precision_at_k, union_normalised_prf
from classifier_multi_label.thresholds import Thresholds, decide, tune_thresholds

Y = np.array([[1, 0, 1], [0, 0, 1]], np.float32)
Z = np.array([[2.0, -1.0, 0.5], [0.3, -2.0, -0.7]], np.float32)
P = 1 / (1 + np.exp(-Z))


def t(x):
    return tf.constant(x)


def test_bce_matches_formula():
    ref = -(Y * np.log(P) + (1 - Y) * np.log(1 - P)).mean()
    assert float(L.make_loss("bce", [1, 1, 2], 2)(t(Y), t(Z))) == pytest.approx(ref, rel=1e-5)


def test_focal_matches_formula():
    pt = np.where(Y == 1, P, 1 - P)
    ref = (-(1 - pt) ** 2 * np.log(pt)).mean()
    assert float(L.focal(t(Y), t(Z), gamma=2.0)) == pytest.approx(ref, rel=1e-5)
    alpha_t = np.where(Y == 1, 0.25, 0.75)
    assert float(L.focal(t(Y), t(Z), 2.0, 0.25)) == pytest.approx((alpha_t * -(1 - pt) ** 2 * np.log(pt)).mean(),
                                                                  rel=1e-5)
    # gamma 0, no alpha: plain BCE
    assert float(L.focal(t(Y), t(Z), 0.0)) == pytest.approx(float(L.bce(t(Y), t(Z))), rel=1e-6)


def test_asl_matches_formula():
    pm = np.maximum(P - 0.05, 0)
    ref = -(Y * (1 - P) ** 1 * np.log(P) + (1 - Y) * pm ** 4 * np.log(1 - pm)).mean()
    assert float(L.asl(t(Y), t(Z), gamma_pos=1.0, gamma_neg=4.0, clip=0.05)) == pytest.approx(ref, rel=1e-5)


def test_class_balanced_weights_follow_effective_number():
    counts, beta = np.array([100, 10, 1]), 0.99
    w = L.class_balanced_weights(counts, beta)
    raw = (1 - beta) / (1 - beta ** counts)
    np.testing.assert_allclose(w, raw / raw.sum() * 3, rtol=1e-6)
    assert w.sum() == pytest.approx(3) and w[2] > w[1] > w[0]
    loss = L.make_loss("class_balanced", counts[:3], 200, cb_beta=beta)
    terms = -(Y * np.log(P) + (1 - Y) * np.log(1 - P))
    assert float(loss(t(Y), t(Z))) == pytest.approx((terms * w).mean(), rel=1e-5)


def test_pos_weight_matches_torch_semantics():
    counts, n = np.array([1, 4, 2]), 10
    pw = np.minimum((n - counts) / counts, 50)
    ref = -(pw * Y * np.log(P) + (1 - Y) * np.log(1 - P)).mean()
    assert float(L.make_loss("pos_weight", counts, n)(t(Y), t(Z))) == pytest.approx(ref, rel=1e-5)


def test_unknown_loss():
    with pytest.raises(ValueError, match="choose one of"):
        L.make_loss("hinge", [1], 1)


def test_hellonlp_metric_on_its_own_example():
    # algorithms.md §1.9: [['a','b','c'],['a','f','c','h']] vs [['a','d'],['a','d']] -> P .5, R .2903, F1 .3673
    names = list("abcdfh")
    def hot(sets):
        return np.array([[n in s for n in names] for s in sets], int)
    p, r, f = union_normalised_prf(hot([["a", "b", "c"], ["a", "f", "c", "h"]]), hot([["a", "d"], ["a", "d"]]))
    assert (round(p, 4), round(r, 4), round(f, 4)) == (0.5, 0.2903, 0.3673)


def test_metrics_by_hand():
    y = np.array([[1, 0, 1], [0, 1, 0], [0, 0, 0]])
    pred = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0]])
    scores = np.array([[.9, .1, .4], [.2, .8, .7], [.1, .2, .3]])
    m = multilabel_metrics(y, scores, pred, ["a", "b", "c"])
    # micro: tp 2, fp 1, fn 1
    assert m["micro_precision"] == pytest.approx(2 / 3) and m["micro_recall"] == pytest.approx(2 / 3)
    assert m["hamming_loss"] == pytest.approx(2 / 9)
    assert m["subset_accuracy"] == pytest.approx(1 / 3)
    # Jaccard per row: 1/2, 1/2, and 1 for the empty/empty row
    assert m["jaccard_samples"] == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert m["macro_f1"] == pytest.approx((1 + 1 + 0) / 3)  # a: perfect, b: perfect, c: one fp and one fn
    assert m["precision_at_1"] == pytest.approx(1.0)  # top label of rows 1-2 is true; row 3 has none
    assert [r["support"] for r in m["per_label"]] == [1, 1, 1]


def test_precision_at_k():
    y = np.array([[1, 0, 1, 0]])
    assert precision_at_k(y, np.array([[.9, .8, .7, .1]]), 2) == pytest.approx(0.5)


def test_thresholds_per_label_global_and_fallback():
    rng = np.random.default_rng(0)
    y = np.zeros((200, 3), int)
    y[:100, 0] = 1
    y[:40, 1] = 1
    y[:2, 2] = 1  # too few positives for its own threshold
    scores = np.where(y == 1, 0.35, 0.2) + rng.uniform(-0.02, 0.02, y.shape)
    scores[:, 1] = np.where(y[:, 1] == 1, 0.75, 0.6) + rng.uniform(-0.02, 0.02, 200)
    th = tune_thresholds(y, scores, "per_label", min_positives=5)
    assert 0.21 < th.values[0] <= 0.33
    assert 0.61 < th.values[1] <= 0.73
    assert th.values[2] == th.global_threshold
    fixed = tune_thresholds(y, scores, "fixed", default=0.4)
    np.testing.assert_allclose(fixed.values, [0.4] * 3)


def test_decide_and_at_least_one():
    s = np.array([[0.2, 0.4], [0.9, 0.1]], np.float32)
    np.testing.assert_array_equal(decide(s, np.array([0.5, 0.5]), False).numpy(), [[0, 0], [1, 0]])
    np.testing.assert_array_equal(decide(s, np.array([0.5, 0.5]), True).numpy(), [[0, 1], [1, 0]])


def test_per_label_thresholds_never_lose_micro_f1_to_a_weak_label():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(1)
    n = 600
    y = np.zeros((n, 3), int)
    y[:, 0] = rng.random(n) < 0.4
    y[:, 1] = rng.random(n) < 0.3
    y[:, 2] = rng.random(n) < 0.15
    scores = np.stack([0.3 * y[:, 0] + rng.uniform(0, 0.6, n),  # good
                       0.2 * y[:, 1] + rng.uniform(0, 0.7, n),  # fair
                       rng.uniform(0, 0.3, n)], axis=1)  # weak: random scores for a rare label
    per_label = tune_thresholds(y, scores, "per_label", min_positives=5)
    global_ = tune_thresholds(y, scores, "global")
    def micro(th):
        return f1_score(y, decide(scores, th.values, False).numpy(), average="micro")
    assert micro(per_label) >= micro(global_) - 1e-12
    # "predict it for every text" would maximise the weak label's own F1; micro-F1 does not reward that
    assert (scores[:, 2] >= per_label.values[2]).mean() < 0.5


def test_auto_keeps_per_label_thresholds_where_labels_need_their_own():
    """Two labels scored on different scales: no one threshold serves both, and held-out halves show it."""
    rng = np.random.default_rng(2)
    y = (rng.random((400, 2)) < 0.3).astype(int)
    scores = np.stack([np.where(y[:, 0] == 1, 0.9, 0.6), np.where(y[:, 1] == 1, 0.3, 0.05)], axis=1)
    scores = scores + rng.uniform(-0.08, 0.08, scores.shape)
    th = tune_thresholds(y, scores, "auto", min_positives=5)
    assert th.strategy == "per_label"
    assert th.held_out_f1["per_label"] > th.held_out_f1["global"] + 0.05
    assert th.values[0] > 0.6 > 0.3 > th.values[1]


def test_auto_falls_back_to_one_threshold_where_per_label_ones_fit_noise(tmp_path):
    """Forty labels scored alike, a handful of dev positives each: a label's own best threshold is
    noise. Per-label thresholds still win on the set they were tuned on, not on held-out halves."""
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(3)
    y = (rng.random((300, 40)) < 0.04).astype(int)
    scores = np.clip(np.where(y == 1, rng.normal(0.55, 0.2, y.shape), rng.normal(0.2, 0.15, y.shape)), 0, 1)
    th = tune_thresholds(y, scores, "auto", min_positives=5)
    per_label = tune_thresholds(y, scores, "per_label", min_positives=5)
    micro = {name: f1_score(y, decide(scores, t.values, False).numpy(), average="micro")
             for name, t in (("auto", th), ("per_label", per_label))}
    assert micro["per_label"] > micro["auto"]  # on the tuning set itself, per-label looks better...
    assert th.strategy == "global" and th.held_out_f1["global"] > th.held_out_f1["per_label"]  # ...held out, not
    np.testing.assert_array_equal(th.values, np.full(40, th.global_threshold, np.float32))
    th.save(tmp_path / "thresholds.json", [f"l{i}" for i in range(40)])
    loaded = Thresholds.load(tmp_path / "thresholds.json", [f"l{i}" for i in range(40)])
    assert loaded.strategy == "global" and loaded.held_out_f1 == pytest.approx(th.held_out_f1)


def test_unknown_threshold_strategy_names_the_choices():
    with pytest.raises(ValueError, match="use auto, fixed, global, per_label"):
        tune_thresholds(np.ones((4, 2), int), np.ones((4, 2)), "best")


def test_macro_averages_leave_out_labels_absent_from_truth_and_prediction():
    """Five of eight labels have no test positive and no prediction: they have no F1 to average."""
    y = np.zeros((6, 8), int)
    y[:3, 0] = 1
    y[3:, 1] = 1
    y[0, 2] = 1
    pred = y.copy()
    pred[0, 2] = 0  # label 2: missed (F1 0)
    pred[1, 3] = 1  # label 3: predicted where it never occurs (F1 0, false positive)
    m = multilabel_metrics(y, pred.astype(float), pred, [f"l{i}" for i in range(8)])
    assert m["macro_labels"] == 4  # labels 0, 1, 2 (true) and 3 (predicted)
    assert m["macro_f1"] == pytest.approx((1 + 1 + 0 + 0) / 4)
    assert m["macro_f1_all_labels"] == pytest.approx(2 / 8)  # scikit-learn's plain average
    assert "macro averages over the 4 of 8 labels" in format_metrics(m)


def _rare_label_set(seed):
    """Two frequent labels scored well around 0.5; four rare ones the model scores low (0.1-0.3)."""
    rng = np.random.default_rng(seed)
    n = 800
    y = np.zeros((n, 6), int)
    y[:, 0], y[:, 1] = rng.random(n) < 0.4, rng.random(n) < 0.3
    for c in range(2, 6):
        y[:, c] = rng.random(n) < 0.03
    scores = np.where(y == 1, rng.normal(0.7, 0.12, y.shape), rng.normal(0.3, 0.12, y.shape))
    scores[:, 2:] = np.where(y[:, 2:] == 1, rng.normal(0.3, 0.05, (n, 4)), rng.normal(0.12, 0.05, (n, 4)))
    return y, np.clip(scores, 0, 1)


def test_macro_objective_lifts_macro_f1_on_held_out_texts():
    from sklearn.metrics import f1_score

    y, scores = _rare_label_set(4)
    y_test, test_scores = _rare_label_set(5)
    results = {}
    for objective in ("micro", "macro"):
        th = tune_thresholds(y, scores, "per_label", min_positives=5, objective=objective, prior_positives=10)
        pred = decide(test_scores, th.values, False).numpy()
        results[objective] = (f1_score(y_test, pred, average="micro"), f1_score(y_test, pred, average="macro"))
        assert th.objective == objective
    assert results["macro"][1] > results["micro"][1] + 0.05  # rare labels get thresholds of their own scale


def test_samples_objective_is_the_mean_per_text_f1():
    from sklearn.metrics import f1_score

    from classifier_multi_label.thresholds import GRID, best_global_threshold, score

    y, scores = _rare_label_set(6)
    pred = (scores >= 0.4).astype(int)
    assert score(y, pred, "samples") == pytest.approx(f1_score(y, pred, average="samples", zero_division=1.0))
    assert score(y, pred, "macro") == pytest.approx(f1_score(y, pred, average="macro"))
    t, best = best_global_threshold(y, scores, "samples")
    by_hand = [f1_score(y, (scores >= g).astype(int), average="samples", zero_division=1.0) for g in GRID]
    assert best == pytest.approx(max(by_hand)) and by_hand[int(np.argmin(np.abs(GRID - t)))] == pytest.approx(best)
    th = tune_thresholds(y, scores, "per_label", min_positives=5, objective="samples")
    assert score(y, decide(scores, th.values, False).numpy(), "samples") >= best - 1e-12  # ascent never loses


def test_per_label_thresholds_shrink_towards_the_global_one_by_their_evidence():
    from classifier_multi_label.thresholds import shrink

    out = shrink([0.8, 0.8, 0.8], 0.4, positives=[10, 90, 0], prior_positives=10)
    np.testing.assert_allclose(out, [0.6, 0.76, 0.4], atol=1e-6)  # half-way, 90%, none
    np.testing.assert_allclose(shrink([0.8], 0.4, [3], prior_positives=0), [0.8])  # 0: no shrinkage


def test_logit_adjusted_loss_is_bce_on_logits_shifted_by_the_label_prior():
    counts, n = [10, 90], 100
    loss = make_loss("logit_adjusted", counts, n)
    y, z = tf.constant([[1.0, 0.0]]), tf.constant([[0.3, -0.2]])
    shift = np.log(np.array([0.1, 0.9]) / np.array([0.9, 0.1]))
    expected = bce(y, z + tf.constant(shift, tf.float32))
    assert float(loss(y, z)) == pytest.approx(float(expected), rel=1e-5)
    assert float(loss(y, z)) != pytest.approx(float(bce(y, z)), rel=1e-3)


def test_expected_calibration_error_tells_calibrated_from_overconfident_scores():
    from classifier_multi_label.metrics import expected_calibration_error

    rng = np.random.default_rng(0)
    p = rng.uniform(size=(20_000, 3))  # [texts, labels]
    y = (rng.uniform(size=p.shape) < p).astype(int)  # each label drawn with probability p: calibrated
    assert expected_calibration_error(y, p) < 0.01
    overconfident = np.where(p > 0.5, 1.0, 0.0)  # certainty where the truth is a coin with bias p
    assert expected_calibration_error(y, overconfident) == pytest.approx(0.25, abs=0.01)
    m = multilabel_metrics(y[:50], p[:50], (p[:50] > 0.5).astype(int), ["a", "b", "c"])
    assert m["ece"] == expected_calibration_error(y[:50], p[:50])


def test_the_threshold_grid_reaches_the_tails_a_reweighting_loss_needs():
    """pos_weight and logit adjustment lift every score: negatives at 0.965, positives at 0.985 are
    told apart only by a threshold above 0.965 (the grid once stopped at 0.95, where all are positive)."""
    from classifier_multi_label.thresholds import best_global_threshold
    y = np.array([[1, 0], [0, 1], [0, 0], [1, 1]], np.float32)
    scores = np.where(y > 0, 0.985, 0.965).astype(np.float32)
    t, f1 = best_global_threshold(y, scores, "micro")
    assert 0.965 < t <= 0.985 and f1 == 1.0
    low = np.where(y > 0, 0.004, 0.0015).astype(np.float32)  # and the low tail, for scores pushed down
    t, f1 = best_global_threshold(y, low, "micro")
    assert 0.0015 < t <= 0.004 and f1 == 1.0
