"""The TF1 ALBERT converter: tiny Google-format checkpoints in both scopes, every value lands where
it belongs, the converted model computes what the checkpoint's weights imply (a NumPy ALBERT),
and every kind of mismatch is a loud error."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from classifier_multi_label.albert_checkpoint import (
    CheckpointError,
    albert_backbone_from_config,
    port_albert_checkpoint,
)
from classifier_multi_label.config import EncoderConfig
from classifier_multi_label.encoder import load_encoder

CONFIG = {"vocab_size": 30, "embedding_size": 8, "hidden_size": 12, "num_hidden_layers": 2,
          "num_attention_heads": 3, "intermediate_size": 20, "num_hidden_groups": 1, "inner_group_num": 1,
          "hidden_act": "gelu", "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
          "max_position_embeddings": 16, "type_vocab_size": 2, "initializer_range": 0.02}


def tf1_arrays(cfg, scope, seed=0):
    """Random arrays under the TF1 names of modeling.py, for every group and inner group."""
    rng = np.random.default_rng(seed)
    E, H, F = cfg["embedding_size"], cfg["hidden_size"], cfg["intermediate_size"]

    def r(*shape):
        return rng.normal(0, 0.3, shape).astype(np.float32)

    a = {
        f"{scope}/embeddings/word_embeddings": r(cfg["vocab_size"], E),
        f"{scope}/embeddings/token_type_embeddings": r(cfg["type_vocab_size"], E),
        f"{scope}/embeddings/position_embeddings": r(cfg["max_position_embeddings"], E),
        f"{scope}/embeddings/LayerNorm/gamma": 1 + r(E), f"{scope}/embeddings/LayerNorm/beta": r(E),
        f"{scope}/encoder/embedding_hidden_mapping_in/kernel": r(E, H),
        f"{scope}/encoder/embedding_hidden_mapping_in/bias": r(H),
        f"{scope}/pooler/dense/kernel": r(H, H), f"{scope}/pooler/dense/bias": r(H),
    }
    for g in range(cfg["num_hidden_groups"]):
        for i in range(cfg["inner_group_num"]):
            p = f"{scope}/encoder/transformer/group_{g}/inner_group_{i}/"
            for n in ("query", "key", "value"):
                a[p + f"attention_1/self/{n}/kernel"], a[p + f"attention_1/self/{n}/bias"] = r(H, H), r(H)
            a[p + "attention_1/output/dense/kernel"], a[p + "attention_1/output/dense/bias"] = r(H, H), r(H)
            a[p + "LayerNorm/gamma"], a[p + "LayerNorm/beta"] = 1 + r(H), r(H)
            a[p + "ffn_1/intermediate/dense/kernel"], a[p + "ffn_1/intermediate/dense/bias"] = r(H, F), r(F)
            a[p + "ffn_1/intermediate/output/dense/kernel"] = r(F, H)
            a[p + "ffn_1/intermediate/output/dense/bias"] = r(H)
            a[p + "LayerNorm_1/gamma"], a[p + "LayerNorm_1/beta"] = 1 + r(H), r(H)
    return a


def write_tf1_checkpoint(path, arrays):
    """A real TF1 checkpoint (tf.compat.v1 Saver), as Google's ALBERT releases are."""
    graph = tf.Graph()
    with graph.as_default():
        for name, value in arrays.items():
            tf.compat.v1.get_variable(name, initializer=tf.constant(value))
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, str(path))
    return str(path)


def numpy_albert(a, cfg, scope, ids, mask):
    """The ALBERT forward pass of google-research/albert modeling.py, in NumPy."""
    def ln(x, g, b):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-12) * g + b

    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    s = scope + "/"
    B, L = ids.shape
    nh, H = cfg["num_attention_heads"], cfg["hidden_size"]
    d = H // nh
    x = a[s + "embeddings/word_embeddings"][ids] + a[s + "embeddings/position_embeddings"][:L] \
        + a[s + "embeddings/token_type_embeddings"][np.zeros_like(ids)]
    x = ln(x, a[s + "embeddings/LayerNorm/gamma"], a[s + "embeddings/LayerNorm/beta"])
    h = x @ a[s + "encoder/embedding_hidden_mapping_in/kernel"] + a[s + "encoder/embedding_hidden_mapping_in/bias"]
    per_group = cfg["num_hidden_layers"] // cfg["num_hidden_groups"]
    for layer in range(cfg["num_hidden_layers"]):
        g = layer // per_group
        for i in range(cfg["inner_group_num"]):
            p = s + f"encoder/transformer/group_{g}/inner_group_{i}/"

            def proj(n):
                return (h @ a[p + f"attention_1/self/{n}/kernel"] + a[p + f"attention_1/self/{n}/bias"]
                        ).reshape(B, L, nh, d).transpose(0, 2, 1, 3)  # [B, heads, L, d]
            q, k, v = proj("query"), proj("key"), proj("value")
            logits = q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + (1 - mask[:, None, None, :]) * -1e9
            w = np.exp(logits - logits.max(-1, keepdims=True))
            w /= w.sum(-1, keepdims=True)
            ctx = (w @ v).transpose(0, 2, 1, 3).reshape(B, L, H)
            att = ctx @ a[p + "attention_1/output/dense/kernel"] + a[p + "attention_1/output/dense/bias"]
            h = ln(h + att, a[p + "LayerNorm/gamma"], a[p + "LayerNorm/beta"])
            ff = gelu(h @ a[p + "ffn_1/intermediate/dense/kernel"] + a[p + "ffn_1/intermediate/dense/bias"])
            ff = ff @ a[p + "ffn_1/intermediate/output/dense/kernel"] + a[p + "ffn_1/intermediate/output/dense/bias"]
            h = ln(h + ff, a[p + "LayerNorm_1/gamma"], a[p + "LayerNorm_1/beta"])
    pooled = np.tanh(h[:, 0] @ a[s + "pooler/dense/kernel"] + a[s + "pooler/dense/bias"])
    return h, pooled


@pytest.mark.parametrize("scope, groups", [("bert", 1), ("albert", 1), ("bert", 2)])
def test_port_lands_every_value_and_matches_numpy(tmp_path, scope, groups):
    cfg = dict(CONFIG, num_hidden_groups=groups)
    arrays = tf1_arrays(cfg, scope)
    extras = {"global_step": np.array(7, np.int64),  # optimizer state and pretraining heads: skipped
              f"{scope}/embeddings/word_embeddings/adam_m": np.zeros((30, 8), np.float32),
              "cls/predictions/output_bias": np.zeros(30, np.float32)}
    ckpt = write_tf1_checkpoint(tmp_path / "model.ckpt", {**arrays, **extras})
    backbone = albert_backbone_from_config(cfg)
    ported = port_albert_checkpoint(ckpt, backbone)
    assert set(ported) == set(arrays)  # each checkpoint weight used once
    assert len(set(ported.values())) == len(backbone.weights)  # each backbone weight set once

    # Spot-check placement, including the attention reshapes.
    layer = backbone.get_layer("group_0_inner_layer_0")
    q = arrays[f"{scope}/encoder/transformer/group_0/inner_group_0/attention_1/self/query/kernel"]
    np.testing.assert_array_equal(layer._self_attention_layer._query_dense.kernel.numpy(), q.reshape(12, 3, 4))
    o = arrays[f"{scope}/encoder/transformer/group_0/inner_group_0/attention_1/output/dense/kernel"]
    np.testing.assert_array_equal(layer._self_attention_layer._output_dense.kernel.numpy(), o.reshape(3, 4, 12))

    ids = np.array([[2, 5, 9, 3, 0, 0], [2, 7, 7, 7, 11, 3]], np.int32)
    mask = (np.arange(6)[None] < np.array([[4], [6]])).astype(np.int32)
    out = backbone({"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask})
    seq_ref, pooled_ref = numpy_albert(arrays, cfg, scope, ids, mask)
    np.testing.assert_allclose(out["pooled_output"].numpy(), pooled_ref, atol=1e-4)
    real = mask.astype(bool)
    np.testing.assert_allclose(out["sequence_output"].numpy()[real], seq_ref[real], atol=1e-4)


def test_unported_variable_is_an_error(tmp_path):
    arrays = tf1_arrays(CONFIG, "bert")
    arrays["bert/encoder/transformer/group_0/inner_group_0/attention_1/self/rel_pos/kernel"] = np.ones(3, np.float32)
    ckpt = write_tf1_checkpoint(tmp_path / "model.ckpt", arrays)
    with pytest.raises(CheckpointError, match="1 checkpoint variables were not ported.*rel_pos"):
        port_albert_checkpoint(ckpt, albert_backbone_from_config(CONFIG))


def test_missing_variable_is_an_error(tmp_path):
    arrays = tf1_arrays(CONFIG, "albert")
    del arrays["albert/pooler/dense/bias"]
    ckpt = write_tf1_checkpoint(tmp_path / "model.ckpt", arrays)
    with pytest.raises(CheckpointError, match="1 backbone weights have no checkpoint value.*pooler/dense/bias"):
        port_albert_checkpoint(ckpt, albert_backbone_from_config(CONFIG))


def test_shape_mismatch_is_an_error(tmp_path):
    ckpt = write_tf1_checkpoint(tmp_path / "model.ckpt", tf1_arrays(CONFIG, "bert"))
    with pytest.raises(CheckpointError, match="word_embeddings: shape \\[30, 8\\] does not match"):
        port_albert_checkpoint(ckpt, albert_backbone_from_config(dict(CONFIG, vocab_size=31)))


def test_no_albert_scope_is_an_error(tmp_path):
    ckpt = write_tf1_checkpoint(tmp_path / "model.ckpt", {"foo/bar": np.ones(2, np.float32)})
    with pytest.raises(CheckpointError, match="cannot find the ALBERT variables"):
        port_albert_checkpoint(ckpt, albert_backbone_from_config(CONFIG))


def test_google_albert_folder_through_encoder_flag(tmp_path):
    folder = tmp_path / "albert_tiny_zh"
    folder.mkdir()
    (folder / "albert_config.json").write_text(json.dumps(CONFIG))
    vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list("制热很快声音大外观漂亮价格便宜")
             + list("好坏用了一个月真的") + ["##a"])
    (folder / "vocab_chinese.txt").write_text("\n".join(vocab[:30]) + "\n", encoding="utf-8")
    arrays = tf1_arrays(CONFIG, "albert")
    write_tf1_checkpoint(folder / "albert_model.ckpt", arrays)
    enc = load_encoder(EncoderConfig(encoder=str(folder)), max_seq_length=16)
    assert enc.pretrained and enc.preprocessor.vocabulary_size == 30
    np.testing.assert_array_equal(enc.backbone.get_layer("pooled_dense").kernel.numpy(),
                                  arrays["albert/pooler/dense/kernel"])
    # A corrupt checkpoint file is a clear error, not a crash deep in TensorFlow.
    data_file = [f for f in os.listdir(folder) if ".data-" in f][0]
    (folder / data_file).write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="albert_model.ckpt.*damaged"):
        load_encoder(EncoderConfig(encoder=str(folder)), max_seq_length=16)
