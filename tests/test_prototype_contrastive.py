"""contrib/prototype_contrastive (SharpReCL, multi-label): losses against their formulas, target
sets within their labels, training, and the package's commands and export."""

import json

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from conftest import REVIEWS, TINY, assert_attributions_complete, assert_export_parity, run_command

from classifier_multi_label.data import LabelVocab
from classifier_multi_label.losses import bce
from classifier_multi_label.model import MultiLabelClassifier
from contrib.prototype_contrastive import PrototypeContrastiveHead
from contrib.prototype_contrastive.model import effective_number_weights, supcon_loss, target_sets


def normalized(rng, *shape):
    x = rng.normal(size=shape)
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def test_effective_number_weights_match_the_formula():
    counts, beta = [100, 10, 1, 0], 0.99
    e = [(1 - beta ** max(n, 1)) / (1 - beta) for n in counts]
    expected = [np.mean(e) / v for v in e]
    np.testing.assert_allclose(effective_number_weights(counts, beta), expected, rtol=1e-6)


def test_supcon_equals_its_formula():
    rng = np.random.default_rng(0)
    m, labels, n_pos, n_neg, tau = 6, 3, 2, 3, 0.3
    anchors = normalized(rng, m, 4)
    y = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 0], [0, 1, 1], [1, 0, 0]], np.float32)
    pos, neg = normalized(rng, labels, n_pos, 4), normalized(rng, labels, n_neg, 4)
    w = np.array([0.5, 1.0, 2.0], np.float32)
    got = float(supcon_loss(tf.constant(anchors), tf.constant(y), tf.constant(pos), tf.constant(neg),
                            tf.constant(w), tau))
    total, pairs = 0.0, 0
    for a in range(m):
        for c in range(labels):
            if not y[a, c]:
                continue
            others = [j for j in range(m) if j != a]
            positives = [anchors[j] for j in others if y[j, c]] + list(pos[c])
            denominator = [anchors[j] for j in others] + list(pos[c]) + list(neg[c])
            log_z = np.log(sum(np.exp(anchors[a] @ s / tau) for s in denominator))
            total += w[c] * -np.mean([anchors[a] @ q / tau - log_z for q in positives])
            pairs += 1
    assert got == pytest.approx(total / pairs, rel=1e-5)


def test_target_samples_stay_within_their_label():
    # Pool item j is the unit vector e_j, so a sample's non-zero coordinates name the items it mixes.
    m, labels, n, k = 8, 3, 12, 2
    pool = tf.eye(m)
    members = np.zeros((m, labels), bool)
    members[[0, 1, 2], 0] = members[[3, 4], 1] = members[[5, 6, 7], 2] = True
    prototypes = tf.math.l2_normalize(tf.random.normal([labels, m], seed=1), axis=-1)
    seed = keras.random.SeedGenerator(3)
    for ratio in (0.0, 0.5, 1.0):
        out = target_sets(pool, tf.constant(members), prototypes, n, k, tf.constant(ratio), 0.5, True, seed).numpy()
        np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0, atol=1e-5)
        cos = prototypes.numpy()
        for c in range(labels):
            own = np.flatnonzero(members[:, c])
            hardest = own[np.argsort(cos[c, own])[:k]]  # lowest cosine to the prototype
            n_hard = int(round(ratio * n))
            for s, sample in enumerate(out[c]):
                used = np.flatnonzero(np.abs(sample) > 1e-6)
                assert set(used) <= set(own)
                if s < n_hard:
                    assert set(used) <= set(hardest)
                else:
                    assert len(used) == 1  # a plain draw, not a mixture


def test_logit_adjustment_uses_the_label_prior():
    head = PrototypeContrastiveHead(2, label_counts=[1, 3], num_train=4)
    np.testing.assert_allclose(head.prior_logit.numpy(), [np.log(1 / 3), np.log(3)], rtol=1e-6)
    opts = PrototypeContrastiveHead.resolve_options({}, [["a"], ["a", "b"], []], LabelVocab(["a", "b"]))
    assert opts["label_counts"] == [2, 1] and opts["num_train"] == 3


@pytest.mark.parametrize("inner", ["pooled", "textcnn"])
def test_training_steps_lower_the_loss(inner):
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.AlbertBackbone(vocabulary_size=40, num_layers=1, num_heads=2, embedding_dim=8,
                                               hidden_dim=8, intermediate_dim=16, max_sequence_length=32)
    head = PrototypeContrastiveHead(3, classifier=inner, dropout=0.0, filter_sizes=[2, 3], num_filters=8,
                                    label_counts=[2, 1, 2], num_train=3, n_pos=4, n_neg=4, k_pos=2, k_neg=2)
    model = MultiLabelClassifier(backbone, head)
    x = {"token_ids": np.array([[2, 5, 6, 3, 0], [2, 8, 9, 10, 3], [2, 11, 3, 0, 0]], np.int32),
         "segment_ids": np.zeros((3, 5), np.int32),
         "padding_mask": np.array([[1] * 4 + [0], [1] * 5, [1] * 3 + [0] * 2])}
    y = tf.constant([[1, 0, 0], [0, 1, 1], [1, 0, 1]], tf.float32)
    opt = keras.optimizers.Adam(1e-2)

    def classification_loss():
        return float(bce(y, model(x)["logits"] + head.prior_logit))
    before = classification_loss()
    for _ in range(5):
        views, _ = head.training_inputs(x, y)
        with tf.GradientTape() as tape:
            loss = head.compute_loss(y, model(views, training=True), bce)
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients([(g, v) for g, v in zip(grads, model.trainable_variables) if g is not None])
    assert classification_loss() < before
    assert tuple(model(views)["logits"].shape) == (6, 3)  # two views of 3 texts


@pytest.mark.slow  # about 30 s; the default suite trains both inner heads above
def test_commands_and_export(tiny_data, tmp_path):
    run_dir = tmp_path / "run"
    proc = run_command("contrib/prototype_contrastive/train.py", "--train-file", tiny_data["train"],
                       "--dev-file", tiny_data["dev"], "--test-file", tiny_data["test"], "--output-dir", run_dir,
                       *TINY, "--classifier", "textcnn", "--filter-sizes", "2", "3", "--num-filters", "8",
                       "--n-pos", "4", "--n-neg", "8", "--k-pos", "3", "--k-neg", "3")
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["package"] == "contrib.prototype_contrastive" and config["head"]["classifier"] == "textcnn"
    assert len(config["head"]["label_counts"]) == len((run_dir / "labels.txt").read_text().split())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    proc = run_command("contrib/prototype_contrastive/eval.py", "--model-dir", run_dir, "--test-file",
                       tiny_data["test"], "--output", tmp_path / "eval.json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "eval.json").read_text())["micro_f1"] == pytest.approx(metrics["micro_f1"])
    from contrib.prototype_contrastive import PrototypeContrastiveHead as head_cls
    assert_export_parity(run_dir, head_cls, "contrib.prototype_contrastive")
    from classifier_multi_label import load_run

    assert_attributions_complete(load_run(str(run_dir)), [t for t, _ in REVIEWS[:3]])  # explain supports it
