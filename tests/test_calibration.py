"""Calibrated scores (`--calibration`): the per-label fits, their TensorFlow twin, and a run's use of them."""

import json

import numpy as np
import pytest

from classifier_multi_label.calibration import Calibration, fit_calibration
from classifier_multi_label.metrics import expected_calibration_error


def logistic_data(rng, n, slope, intercept):
    """Logits z and 0/1 targets drawn with P(y=1 | z) = sigmoid(slope * z + intercept)."""
    z = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(slope * z + intercept)))).astype(int)
    return 1.0 / (1.0 + np.exp(-z)), y


def test_temperature_is_the_maximum_likelihood_inverse_temperature_and_keeps_each_labels_order():
    rng = np.random.default_rng(0)
    p0, y0 = logistic_data(rng, 4000, 0.4, 0.0)  # over-confident scores: the right slope is 0.4
    p1, y1 = logistic_data(rng, 4000, 2.0, 0.0)  # under-confident: 2.0
    scores, y = np.stack([p0, p1], 1), np.stack([y0, y1], 1)
    cal = fit_calibration(y, scores, "temperature")
    assert cal.intercept.tolist() == [0.0, 0.0]
    z = np.log(scores) - np.log1p(-scores)
    for c in range(2):  # against a grid: the fitted 1/T has the lowest binary cross-entropy
        grid = np.exp(np.linspace(-3, 3, 601))
        nll = [np.mean(np.logaddexp(0, a * z[:, c]) - y[:, c] * a * z[:, c]) for a in grid]
        assert cal.slope[c] == pytest.approx(grid[int(np.argmin(nll))], rel=0.02)
    assert cal.slope[0] == pytest.approx(0.4, abs=0.06) and cal.slope[1] == pytest.approx(2.0, abs=0.3)
    calibrated = cal.apply(scores)
    assert expected_calibration_error(y, calibrated) < 0.5 * expected_calibration_error(y, scores)
    for c in range(2):  # increasing per label (float32 may tie scores near 0 or 1, never swap them)
        order = np.argsort(scores[:, c])
        assert np.all(np.diff(calibrated[order, c]) >= 0)


def test_platt_recovers_slope_and_intercept():
    rng = np.random.default_rng(1)
    p, y = logistic_data(rng, 20000, 0.5, -1.0)
    cal = fit_calibration(y[:, None], p[:, None], "platt")
    assert cal.slope[0] == pytest.approx(0.5, abs=0.05) and cal.intercept[0] == pytest.approx(-1.0, abs=0.08)


@pytest.mark.parametrize("method", ["temperature", "platt"])
def test_a_label_with_one_class_on_dev_keeps_its_scores(method):
    scores = np.array([[0.9, 0.2], [0.8, 0.7], [0.3, 0.1], [0.6, 0.9]])
    y = np.array([[1, 0], [1, 1], [1, 0], [1, 1]])  # label 0: positives only
    cal = fit_calibration(y, scores, method)
    assert (cal.slope[0], cal.intercept[0]) == (1.0, 0.0)
    np.testing.assert_allclose(cal.apply(scores)[:, 0], scores[:, 0], atol=1e-6)


def test_the_tensorflow_map_equals_numpys_and_the_file_round_trips(tmp_path):
    import tensorflow as tf

    cal = Calibration("platt", np.array([0.5, 2.0, 1.0]), np.array([-1.0, 0.3, 0.0]))
    scores = np.array([[0.0, 0.5, 1.0], [1e-9, 0.999999, 0.25]], np.float32)
    np.testing.assert_allclose(cal.apply_tf(tf.constant(scores)).numpy(), cal.apply(scores), atol=1e-6)
    cal.save(tmp_path / "calibration.json", ["a", "b", "c"])
    back = Calibration.load(tmp_path / "calibration.json", ["c", "a", "b"])  # by name, in the run's order
    assert back.method == "platt" and back.slope.tolist() == [1.0, 0.5, 2.0]
    with pytest.raises(ValueError, match="temperature, platt"):
        fit_calibration(np.zeros((2, 1)), np.zeros((2, 1)), "isotonic")


def review_examples():
    from conftest import REVIEWS

    from classifier_multi_label.data import examples_from

    return examples_from(([t for t, _ in REVIEWS], [ls for _, ls in REVIEWS]), "dev")


def copied_run(demo_run_dir, tmp_path, monkeypatch, slope):
    """A copy of the session's TextCNN run whose calibration fit returns `slope` for every label."""
    import shutil

    import classifier_multi_label.run as run_lib
    from classifier_multi_label import load_run

    shutil.copytree(demo_run_dir, tmp_path / "run", ignore=shutil.ignore_patterns("export"))
    run = load_run(str(tmp_path / "run"))
    n = len(run.labels)
    monkeypatch.setattr(run_lib, "fit_calibration", lambda y, s, m: Calibration(m, np.full(n, slope), np.zeros(n)))
    return run


def test_a_kept_calibration_is_in_the_metrics_and_the_export(demo_run_dir, tmp_path, monkeypatch):
    """A map the guard keeps (its dev-F1 comparison is tested below, with a map that can only lose;
    here it is told the two tie) is in metrics.json's ECE pair and in the export's scores."""
    from conftest import assert_export_parity

    import classifier_multi_label.run as run_lib
    from classifier_multi_label_textcnn import TextCNNHead

    assert json.loads((demo_run_dir / "config.json").read_text())["thresholds"]["calibration"] == "temperature"
    run = copied_run(demo_run_dir, tmp_path, monkeypatch, 0.5)
    monkeypatch.setattr(run_lib.Run, "_tuned_f1", lambda self, y, scores: 1.0)
    dev = review_examples()
    predicted = run.calibrate(dev)
    assert run.calibration is not None and (tmp_path / "run" / "calibration.json").exists()
    np.testing.assert_allclose(predicted["scores"], run.calibration.apply(predicted["uncalibrated_scores"]), atol=1e-6)
    run.tune_thresholds(dev, predicted)
    metrics = run.evaluate(dev)
    assert metrics["ece"] != metrics["ece_uncalibrated"]
    run.export(str(tmp_path / "run" / "export"))
    info = json.loads((tmp_path / "run" / "export" / "1" / "assets.extra" / "export.json").read_text())
    assert info["calibration"] == "temperature"
    assert (tmp_path / "run" / "export" / "1" / "assets.extra" / "calibration.json").exists()
    assert_export_parity(tmp_path / "run", TextCNNHead, "classifier_multi_label_textcnn")  # calibrated, served


def test_a_calibration_that_lowers_dev_f1_is_dropped(demo_run_dir, tmp_path, monkeypatch, caplog):
    run = copied_run(demo_run_dir, tmp_path, monkeypatch, -1.0)  # reverses every order: only worse
    with caplog.at_level("WARNING"):
        predicted = run.calibrate(review_examples())
    assert run.calibration is None and not (tmp_path / "run" / "calibration.json").exists()
    assert "scores stay uncalibrated" in caplog.text and "uncalibrated_scores" not in predicted
