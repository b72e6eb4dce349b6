"""contrib/label_mask (LM-MTC): template construction, label and text masking, the loss, and the
package's commands and export."""

import json

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from conftest import TINY_MODEL, assert_export_parity, assert_report, run_command

from classifier_multi_label.model import MultiLabelClassifier
from classifier_multi_label.tokenization import TextPreprocessor
from contrib.label_mask import LabelMaskHead
from contrib.label_mask.model import LE, LS, MASK, NO, YES

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "好", "看", "便", "宜", "快"]
V, C = len(VOCAB), 3


def setup(**options):
    keras.utils.set_random_seed(0)
    pre = TextPreprocessor.from_vocabulary(VOCAB, sequence_length=12, pad_to_multiple_of=4)
    backbone = keras_hub.models.AlbertBackbone(vocabulary_size=V, num_layers=1, num_heads=2, embedding_dim=8,
                                               hidden_dim=8, intermediate_dim=16, max_sequence_length=12)
    head = LabelMaskHead(C, **options)
    backbone, pre = head.adapt_encoder(backbone, pre)
    return MultiLabelClassifier(backbone, head), pre


def test_template_after_cls_with_every_slot_masked():
    model, pre = setup()
    x = {k: v.numpy() for k, v in pre(tf.constant(["好看", "便宜快快快"])).items()}
    template = [V + 5 * i + t for i in range(C) for t in (LS, MASK, LE)]
    # the batch's text part is [CLS] + 7 tokens (the longer text), rounded up to 8
    assert x["token_ids"][0].tolist() == [2] + template + [5, 6, 3, 0, 0, 0, 0]
    assert x["token_ids"][1].tolist() == [2] + template + [7, 8, 9, 9, 9, 3, 0]
    assert x["segment_ids"][0].tolist() == [0] + [2, 2, 2, 3, 3, 3, 4, 4, 4] + [0] * 7
    assert x["padding_mask"][0].tolist() == [1] * (1 + 3 * C) + [1, 1, 1, 0, 0, 0, 0]
    assert model.backbone.vocabulary_size == V + 5 * C
    assert tuple(model.backbone.get_layer("segment_embedding").embeddings.shape)[0] == 2 + C


def masked_batch(head, pre, y, texts=("好看便宜快", "好好好", "看")):
    x = pre(tf.constant(list(texts)))
    return x, head.training_inputs(x, tf.constant(y, tf.float32))


def test_label_slots_reveal_the_truth_and_mask_k_per_text():
    model, pre = setup(label_noise=0.0, mlm_epochs=0)
    head = model.head
    y = [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    for _ in range(5):
        x, (xm, t) = masked_batch(head, pre, y)
        ids, masked = xm["token_ids"].numpy(), t["slot_masked"].numpy()
        counts = masked.sum(1)
        assert (counts == counts[0]).all() and 1 <= counts[0] <= C  # the same k for the whole batch
        for row in range(3):
            for i in range(C):
                base = V + 5 * i
                assert ids[row, 1 + 3 * i] == base + LS and ids[row, 3 + 3 * i] == base + LE
                want = base + MASK if masked[row, i] else base + (YES if y[row][i] else NO)
                assert ids[row, 2 + 3 * i] == want
        np.testing.assert_array_equal(ids[:, 1 + 3 * C:], x["token_ids"].numpy()[:, 1 + 3 * C:])  # no MLM
        assert t["mlm_weights"].numpy().sum() == 0


def test_label_noise_flips_revealed_values():
    model, pre = setup(label_noise=1.0, mlm_epochs=0)
    y = [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    _, (xm, t) = masked_batch(model.head, pre, y)
    ids, masked = xm["token_ids"].numpy(), t["slot_masked"].numpy()
    for row in range(3):
        for i in range(C):
            if not masked[row, i]:
                assert ids[row, 2 + 3 * i] == V + 5 * i + (NO if y[row][i] else YES)


def test_text_mlm_masks_only_real_text_and_keeps_targets():
    model, pre = setup(mlm_probability=1.0, mlm_epochs=1)
    head = model.head
    head.max_predictions = 12
    x, (xm, t) = masked_batch(head, pre, [[1, 0, 0]] * 3)
    before, after = x["token_ids"].numpy(), xm["token_ids"].numpy()
    real = x["padding_mask"].numpy() > 0
    assert (after[~real] == before[~real]).all()  # padding untouched
    w, pos, tgt = t["mlm_weights"].numpy(), t["mlm_positions"].numpy(), t["mlm_targets"].numpy()
    for row in range(3):
        chosen = pos[row][w[row] > 0]
        assert set(chosen) == set(np.flatnonzero(real[row])[1 + 3 * C:])  # p = 1: every real text token
        np.testing.assert_array_equal(tgt[row][w[row] > 0], before[row, chosen])
    changed = (after != before)[:, 1 + 3 * C:]
    assert changed.any() and (after[:, 1 + 3 * C:][changed] != 0).all()
    head.on_epoch_begin(1)  # MLM switches off after mlm_epochs
    x, (xm, t) = masked_batch(head, pre, [[1, 0, 0]] * 3)
    assert t["mlm_weights"].numpy().sum() == 0
    np.testing.assert_array_equal(xm["token_ids"].numpy()[:, 1 + 3 * C:], x["token_ids"].numpy()[:, 1 + 3 * C:])


def test_loss_is_bce_on_masked_slots_plus_mlm():
    model, pre = setup(mlm_weight=0.5)
    head = model.head
    rng = np.random.default_rng(0)
    seq = tf.constant(rng.normal(size=(2, 1 + 3 * C + 4, 8)), tf.float32)
    logits = tf.constant(rng.normal(size=(2, C)), tf.float32)
    y = {"labels": tf.constant([[1, 0, 1], [0, 1, 0]], tf.float32),
         "slot_masked": tf.constant([[1, 0, 1], [0, 0, 1]], tf.float32),
         "mlm_positions": tf.constant([[10, 11], [12, 10]]), "mlm_targets": tf.constant([[5, 6], [7, 8]]),
         "mlm_weights": tf.constant([[1, 0], [1, 1]], tf.float32)}
    got = float(head.compute_loss(y, {"logits": logits, "sequence_output": seq}))
    z, lab, m = logits.numpy(), y["labels"].numpy(), y["slot_masked"].numpy()
    bce = np.log1p(np.exp(-z)) * lab + np.log1p(np.exp(z)) * (1 - lab)
    mtc = (bce * m).sum() / m.sum()
    kernel, bias = head.mlm_dense.kernel.numpy(), head.mlm_dense.bias.numpy()
    ces = []
    for row, (p, tg, wt) in enumerate(zip([[10, 11], [12, 10]], [[5, 6], [7, 8]], [[1, 0], [1, 1]])):
        for pi, ti, wi in zip(p, tg, wt):
            if wi:
                lg = seq.numpy()[row, pi] @ kernel + bias
                ces.append(np.log(np.exp(lg - lg.max()).sum()) + lg.max() - lg[ti])
    assert got == pytest.approx(mtc + 0.5 * np.mean(ces), rel=1e-5)


def test_top_p_decoding_commits_the_most_confident_label_each_pass():
    """Against a plain loop: each pass scores the masked labels, the one furthest from 0.5 keeps
    that pass' score and is revealed as YES/NO for the next passes."""
    model, pre = setup(decoding="top_p")
    x = pre(tf.constant(["好看", "便宜快", "看"]))
    got = model.head.predict(model, x)["scores"].numpy()
    ids = x["token_ids"].numpy().copy()
    expected = np.zeros((3, C), np.float32)
    open_ = np.ones((3, C), bool)
    for _ in range(C):
        p = tf.sigmoid(model(dict(x, token_ids=tf.constant(ids)), training=False)["logits"]).numpy()
        for row in range(3):
            i = int(np.argmax(np.where(open_[row], np.abs(p[row] - 0.5), -1.0)))
            expected[row, i], open_[row, i] = p[row, i], False
            ids[row, 3 * i + 2] = V + 5 * i + (YES if p[row, i] > 0.5 else NO)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert not open_.any()
    # The first committed label's score is the one-pass ("full") score: nothing was revealed yet.
    full = tf.sigmoid(model(x, training=False)["logits"]).numpy()
    first = np.argmax(np.abs(full - 0.5), axis=1)
    np.testing.assert_allclose(got[np.arange(3), first], full[np.arange(3), first], atol=1e-6)
    with pytest.raises(ValueError, match="--decoding 'beam'"):
        LabelMaskHead(C, decoding="beam")


@pytest.mark.slow  # about 30 s; the default suite covers the head's steps and decoding above
def test_commands_and_export(tiny_data, tmp_path):
    """Trained with top-p decoding, so the export runs the iterative passes in the graph."""
    run_dir = tmp_path / "run"
    proc = run_command("contrib/label_mask/train.py", "--train-file", tiny_data["train"], "--dev-file",
                       tiny_data["dev"], "--test-file", tiny_data["test"], "--output-dir", run_dir, *TINY_MODEL,
                       "--decoding", "top_p")
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["package"] == "contrib.label_mask" and config["head"]["decoding"] == "top_p"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    proc = run_command("contrib/label_mask/eval.py", "--model-dir", run_dir, "--test-file", tiny_data["test"],
                       "--output", tmp_path / "eval.json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads((tmp_path / "eval.json").read_text())["micro_f1"] == pytest.approx(metrics["micro_f1"])
    assert_export_parity(run_dir, LabelMaskHead, "contrib.label_mask")
    html = assert_report(run_dir)  # its scores come from the iterative decoding passes
    assert "No attributions: explain: the label_mask head decodes its labels over several passes" in html


def test_over_a_pretrained_encoder_the_slot_head_learns_at_the_encoders_rate():
    """LM-MTC's head is one Dense over slot states the encoder must learn to fill: its default rate is
    the encoder's, where other heads get PRETRAINED_HEAD_LR over a pretrained encoder."""
    from classifier_multi_label.head import TextCNNHead
    from classifier_multi_label.run import PRETRAINED_HEAD_LR, default_head_learning_rate

    assert PRETRAINED_HEAD_LR != 5e-5
    assert default_head_learning_rate(LabelMaskHead, True, 5e-5) == 5e-5
    assert default_head_learning_rate(TextCNNHead, True, 5e-5) == PRETRAINED_HEAD_LR
    from_scratch = default_head_learning_rate(LabelMaskHead, False, 1e-3)
    assert from_scratch == 1e-3 == default_head_learning_rate(TextCNNHead, False, 1e-3)
