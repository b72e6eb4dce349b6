"""The TextCNN and multi-dense heads: shapes, masking, learning; every sibling's commands, save/load
and export."""

import json

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_MODEL, assert_export_parity, assert_report, run_command

from classifier_multi_label.losses import bce
from classifier_multi_label.model import MultiLabelClassifier
from classifier_multi_label_denses import DensesHead
from classifier_multi_label_seq2seq import Seq2SeqHead
from classifier_multi_label_textcnn import TextCNNHead


def tiny_model(head):
    keras.utils.set_random_seed(1)
    backbone = keras_hub.models.AlbertBackbone(vocabulary_size=40, num_layers=1, num_heads=2, embedding_dim=8,
                                               hidden_dim=8, intermediate_dim=16, max_sequence_length=32)
    return MultiLabelClassifier(backbone, head)


def inputs(ids, lengths):
    ids = np.array(ids, np.int32)
    mask = (np.arange(ids.shape[1])[None] < np.array(lengths)[:, None]).astype(np.int32)
    return {"token_ids": ids * mask, "segment_ids": np.zeros_like(ids), "padding_mask": mask}


def tiny_model_with(make_head):
    keras.utils.set_random_seed(1)  # before the head exists: its dropout's seed comes from here
    return tiny_model(make_head())


@pytest.mark.parametrize("make_head, shape", [(lambda: TextCNNHead(3, filter_sizes=[2, 3, 7], num_filters=4), (2, 3)),
                                              (lambda: DensesHead(3), (2, 3, 2))])
def test_output_shapes_and_scores(make_head, shape):
    model = tiny_model_with(make_head)
    out = model(inputs([[2, 5, 6, 3, 0, 0], [2, 7, 3, 0, 0, 0]], [4, 3]))
    assert tuple(out.shape) == shape
    scores = model.head.infer(out)["scores"].numpy()
    assert scores.shape == (2, 3) and ((scores > 0) & (scores < 1)).all()


def test_textcnn_padding_cannot_change_the_output():
    model = tiny_model(TextCNNHead(3, filter_sizes=[2, 3, 4], num_filters=5, dropout=0.0))
    base = inputs([[2, 5, 6, 9, 3, 0, 0, 0]], [5])
    ref = model(base).numpy()
    noisy = dict(base, token_ids=np.array([[2, 5, 6, 9, 3, 17, 33, 12]], np.int32))  # other ids at pad positions
    np.testing.assert_allclose(model(noisy).numpy(), ref, atol=1e-6)
    longer = inputs([[2, 5, 6, 9, 3] + [0] * 11], [5])  # more padding (another batch's length)
    np.testing.assert_allclose(model(longer).numpy(), ref, atol=1e-6)


def test_textcnn_text_shorter_than_the_largest_filter():
    model = tiny_model(TextCNNHead(2, filter_sizes=[2, 7], num_filters=3, dropout=0.0))
    out = model(inputs([[2, 3]], [2]))  # [CLS] [SEP] only: 2 tokens, largest filter 7
    assert np.isfinite(out.numpy()).all()


def test_denses_loss_is_the_two_way_categorical_cross_entropy():
    head = DensesHead(3)
    z = tf.constant(np.random.default_rng(0).normal(size=(4, 3, 2)), tf.float32)
    y = tf.constant([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]], tf.float32)
    cce = keras.losses.CategoricalCrossentropy(from_logits=True)(tf.one_hot(tf.cast(y, tf.int32), 2), z)
    assert float(head.compute_loss(y, z, bce)) == pytest.approx(float(cce), rel=1e-5)
    np.testing.assert_allclose(head.scores(z).numpy(), tf.nn.softmax(z)[..., 1].numpy(), atol=1e-6)


# Dropout off: a single step on a dropout-noised gradient need not lower the clean loss.
@pytest.mark.parametrize("make_head", [lambda: TextCNNHead(3, filter_sizes=[2, 3], num_filters=8, dropout=0.0),
                                       lambda: DensesHead(3, dropout=0.0)])
def test_one_training_step_lowers_the_loss(make_head):
    model = tiny_model_with(make_head)
    x = inputs([[2, 5, 6, 3, 0], [2, 8, 9, 10, 3], [2, 11, 3, 0, 0]], [4, 5, 3])
    y = tf.constant([[1, 0, 0], [0, 1, 1], [0, 0, 1]], tf.float32)
    opt = keras.optimizers.Adam(1e-2)

    def loss():
        return model.head.compute_loss(y, model(x, training=False), bce)
    before = float(loss())
    with tf.GradientTape() as tape:
        value = model.head.compute_loss(y, model(x, training=True), bce)
    opt.apply_gradients(zip(tape.gradient(value, model.trainable_variables), model.trainable_variables))
    assert float(loss()) < before


# TextCNN and multi-dense are trained once per session by conftest's fixtures (`demo_run_dir`, which
# pre-trains its encoder too, and `denses_run_dir`); seq2seq here.
SIBLINGS = {"classifier_multi_label_seq2seq": (Seq2SeqHead, ["--encoder-layers", "1", "--beam-width", "3"])}


def check_commands(package, head_cls, run_dir, test_file, tmp_path):
    """eval.py, predict.py and export of a trained run folder of `package`, and another package's
    eval.py refusing it."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    proc = run_command(f"{package}/eval.py", "--model-dir", run_dir, "--test-file", test_file,
                       "--output", tmp_path / "eval.json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # save/load round trip: the reloaded run scores the test set exactly as training's final evaluation did
    assert json.loads((tmp_path / "eval.json").read_text())["micro_f1"] == pytest.approx(metrics["micro_f1"])
    proc = run_command(f"{package}/predict.py", "--model-dir", run_dir, input="制热很快\n")
    assert proc.returncode == 0 and json.loads(proc.stdout)["text"] == "制热很快"
    other = "classifier_multi_label_denses" if package.endswith("textcnn") else "classifier_multi_label_textcnn"
    proc = run_command(f"{other}/eval.py", "--model-dir", run_dir, "--test-file", test_file)
    assert proc.returncode == 2 and f"was trained by {package}" in proc.stderr
    assert_export_parity(run_dir, head_cls, package)
    html = assert_report(run_dir)  # written by train.py by default
    assert ("beam" in html) == head_cls.decodes_labels  # seq2seq's scores are its beam's marginals, said so


@pytest.mark.parametrize("package", SIBLINGS)
def test_package_commands_save_load_and_export(package, tiny_data, tmp_path):
    head_cls, extra = SIBLINGS[package]
    run_dir = tmp_path / "run"
    proc = run_command(f"{package}/train.py", "--train-file", tiny_data["train"], "--dev-file", tiny_data["dev"],
                       "--test-file", tiny_data["test"], "--output-dir", run_dir, *TINY_MODEL, *extra)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads((run_dir / "config.json").read_text())["package"] == package
    check_commands(package, head_cls, run_dir, tiny_data["test"], tmp_path)


def test_textcnn_commands_and_pretraining_on_the_session_run(demo_run_dir, tiny_data, tmp_path):
    """The session's TextCNN run (trained on the review set, tested on it: tiny_data's test file holds
    the same rows), whose encoder was pre-trained first (`pretrain_epochs=2`)."""
    config = json.loads((demo_run_dir / "config.json").read_text())
    assert config["package"] == "classifier_multi_label_textcnn" and config["encoder"]["pretrain_epochs"] == 2
    history = json.loads((demo_run_dir / "pretrain_history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and all(np.isfinite(h["mlm_loss"]) for h in history)
    check_commands("classifier_multi_label_textcnn", TextCNNHead, demo_run_dir, tiny_data["test"], tmp_path)


def test_denses_commands_on_the_session_run(denses_run_dir, tiny_data, tmp_path):
    assert json.loads((denses_run_dir / "config.json").read_text())["package"] == "classifier_multi_label_denses"
    check_commands("classifier_multi_label_denses", DensesHead, denses_run_dir, tiny_data["test"], tmp_path)
