"""The train step: embedding gradients reach AdamW summed per row (dense); XLA's compiled steps
equal the plain ones; FGM adversarial training
(--adversarial-epsilon): the gradients it adds, computed again by hand with the embedding table really
moved; dropout's random state; the flag's error."""

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from classifier_multi_label.config import TrainConfig
from classifier_multi_label.head import TextCNNHead
from classifier_multi_label.losses import bce
from classifier_multi_label.model import MultiLabelClassifier
from classifier_multi_label.trainer import Trainer

X = {"token_ids": tf.constant([[2, 5, 6, 7, 3, 0], [2, 8, 9, 10, 11, 3], [2, 12, 5, 3, 0, 0]]),  # 5 twice
     "segment_ids": tf.zeros([3, 6], tf.int32),
     "padding_mask": tf.constant([[1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])}
Y = tf.constant([[1, 0, 0], [0, 1, 1], [1, 0, 1]], tf.float32)
N = tf.constant(3.0)


def tiny_model(dropout: float):
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.AlbertBackbone(vocabulary_size=20, num_layers=1, num_heads=2, embedding_dim=8,
                                               hidden_dim=8, intermediate_dim=16, max_sequence_length=16,
                                               dropout=dropout)
    return MultiLabelClassifier(backbone, TextCNNHead(3, filter_sizes=[2, 3], num_filters=4, dropout=dropout))


def trainer(model, epsilon: float, **cfg) -> Trainer:
    cfg = TrainConfig(adversarial_epsilon=epsilon, **{"epochs": 1, "patience": 0, **cfg})
    return Trainer(model, bce, cfg, steps_per_epoch=1, learning_rate=1e-3)


def test_a_trainer_needs_the_epochs_and_patience_a_run_resolves():
    with pytest.raises(ValueError, match="epochs and patience must be numbers"):
        Trainer(tiny_model(dropout=0.0), bce, TrainConfig(), steps_per_epoch=1, learning_rate=1e-3)


def test_embedding_rows_get_adamws_update_of_their_summed_gradient():
    """Token 5 occurs twice in the batch: its table row must be updated by AdamW on the row's summed
    gradient, clipped by the true global norm (Keras' Adam given the unsummed rows steps otherwise)."""
    model = tiny_model(dropout=0.0)
    variables = model.trainable_variables
    start = [v.numpy().copy() for v in variables]
    with tf.GradientTape() as tape:
        loss = bce(Y, model(X, training=True))
    grads = tape.gradient(loss, variables)
    assert isinstance(grads[0], tf.IndexedSlices) and variables[0] is model.backbone.token_embedding.embeddings

    def one_step(gradients):
        """A plain Keras AdamW step (the trainer's settings, no warm-up) from the start weights."""
        for v, value in zip(variables, start):
            v.assign(value)
        opt = keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=0.01, epsilon=1e-6)
        opt.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        opt.apply_gradients([(g, v) for g, v in zip(gradients, variables) if g is not None])
        return variables[0].numpy().copy()

    clipped, _ = tf.clip_by_global_norm([tf.convert_to_tensor(g) for g in grads if g is not None], 1.0)
    it = iter(clipped)
    expected = one_step([None if g is None else next(it) for g in grads])
    unsummed = one_step(grads)  # what Keras does with the IndexedSlices as they come
    assert np.abs(unsummed - expected).max() > 1e-5  # the batch does tell the two apart

    for v, value in zip(variables, start):
        v.assign(value)
    trainer(model, epsilon=0.0, warmup_ratio=0.0).train_step(X, Y)
    np.testing.assert_allclose(variables[0].numpy(), expected, rtol=1e-5, atol=1e-7)


def test_the_xla_steps_train_and_predict_as_the_plain_ones_do():
    """XLA (`--jit-compile`, on by default in float32 where no AMX runs bfloat16): the compiled update
    (gradients, clipping, AdamW) and the compiled prediction give what the plain ones give. Two
    steps, so the second runs on the optimizer state the first left."""
    weights, scores = {}, {}
    for jit in (False, True):
        model = tiny_model(dropout=0.0)
        start = [v.numpy().copy() for v in model.trainable_variables]
        t = trainer(model, epsilon=0.0, warmup_ratio=0.0, jit_compile=jit)
        assert getattr(t.step._update_fn, "_jit_compile", False) is jit  # XLA where asked, not elsewhere
        for _ in range(2):
            t.train_step(X, Y)
        weights[jit] = [v.numpy() for v in model.trainable_variables]
        assert max(np.abs(w - s).max() for w, s in zip(weights[jit], start)) > 1e-4  # it trained
        scores[jit] = model.predict_outputs([X], jit_compile=jit)["scores"]  # [3, 3]
    for plain, compiled in zip(weights[False], weights[True]):
        np.testing.assert_allclose(compiled, plain, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(scores[True], scores[False], rtol=1e-5, atol=1e-6)


def test_fgm_adds_the_gradients_of_the_loss_with_the_table_moved_uphill():
    model = tiny_model(dropout=0.0)  # no dropout: both computations see the same network
    table = model.backbone.token_embedding.embeddings
    variables = model.trainable_variables
    before = table.numpy().copy()

    share, grads = trainer(model, epsilon=0.5).step._replica_grads(N, X, Y, N)
    np.testing.assert_array_equal(table.numpy(), before)  # the step wrote no variable

    def loss_and_grads():
        with tf.GradientTape() as tape:
            loss = bce(Y, model(X, training=True))
        return float(loss), [None if g is None else tf.convert_to_tensor(g) for g in tape.gradient(loss, variables)]

    clean, clean_grads = loss_and_grads()
    g = clean_grads[[v is table for v in variables].index(True)]
    table.assign(before + (0.5 * g / tf.norm(g)).numpy())  # by hand: really move the table
    moved, moved_grads = loss_and_grads()
    table.assign(before)

    assert float(share) == pytest.approx(clean, rel=1e-6)  # the step reports the clean loss
    assert moved > clean  # the direction is uphill
    for got, a, b in zip(grads, clean_grads, moved_grads):
        if a is None:
            assert got is None
            continue
        np.testing.assert_allclose(tf.convert_to_tensor(got).numpy(), (a + b).numpy(), rtol=1e-4, atol=1e-6)


def test_fgm_pass_advances_dropouts_random_state():
    """Both passes draw dropout masks; the second pass's draw must not come back at the next step."""
    model = tiny_model(dropout=0.3)
    states = [v for v in model.variables if "seed_generator_state" in v.path]
    assert states
    start = [s.numpy().copy() for s in states]
    model(X, training=True)
    model(X, training=True)
    after_two_passes = [s.numpy().copy() for s in states]
    for s, value in zip(states, start):
        s.assign(value)
    trainer(model, epsilon=1.0).step._replica_grads(N, X, Y, N)
    for s, expected in zip(states, after_two_passes):
        np.testing.assert_array_equal(s.numpy(), expected)


def test_negative_epsilon_is_a_clear_error():
    with pytest.raises(ValueError, match="--adversarial-epsilon -1.0: use a positive norm"):
        trainer(tiny_model(dropout=0.0), epsilon=-1.0)


def test_the_head_learns_at_its_own_rate_and_decays_at_it():
    """--head-learning-rate: Adam's first step moves each weight by about its group's rate (the
    step is lr * g / |g|); decoupled weight decay shrinks each weight at its own group's rate."""
    lr, head_lr = 1e-4, 1e-2

    def first_step(weight_decay):
        model = tiny_model(dropout=0.0)
        start = {v.path: v.numpy().copy() for v in model.trainable_variables}
        cfg = TrainConfig(warmup_ratio=0.0, weight_decay=weight_decay, epochs=1, patience=0, adam_epsilon=1e-15)
        Trainer(model, bce, cfg, steps_per_epoch=1, learning_rate=lr, head_learning_rate=head_lr).train_step(X, Y)
        return model, {v.path: v.numpy() - start[v.path] for v in model.trainable_variables}, start

    model, moved, _ = first_step(weight_decay=0.0)
    head = {v.path for v in model.head.trainable_variables}
    kernel = model.head.dense.kernel.path
    assert kernel in head and model.backbone.token_embedding.embeddings.path not in head
    encoder = [model.backbone.token_embedding.embeddings.path,
               next(v.path for v in model.backbone.trainable_variables if "intermediate" in v.path)]
    for path in [kernel, model.head.convs[0].kernel.path] + encoder:  # weights with gradients well above 0
        step = np.abs(moved[path][np.abs(moved[path]) > 0])
        np.testing.assert_allclose(step.max(), head_lr if path in head else lr, rtol=0.05, err_msg=path)

    model, with_decay, start = first_step(weight_decay=0.5)
    decay = with_decay[kernel] - moved[kernel]  # what decay adds: -wd * head_lr * w
    np.testing.assert_allclose(decay, -0.5 * head_lr * start[kernel], rtol=1e-3, atol=1e-9)
    encoder_kernel = next(v.path for v in model.backbone.trainable_variables if v.path.endswith("kernel"))
    decay = with_decay[encoder_kernel] - moved[encoder_kernel]
    np.testing.assert_allclose(decay, -0.5 * lr * start[encoder_kernel], rtol=1e-3, atol=1e-9)


def test_layer_decay_slows_each_encoder_layer_below_the_top():
    """--layer-decay D: Adam's first step moves a weight by about its rate, so the top block moves
    by lr, the block below by D * lr, the embeddings by D^2 * lr (two blocks here) and the head by
    its own rate, untouched by the decay."""
    lr, head_lr, decay = 1e-4, 1e-2, 0.5
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=20, num_layers=2, num_heads=2, hidden_dim=8,
                                             intermediate_dim=16, max_sequence_length=16, dropout=0.0)
    model = MultiLabelClassifier(backbone, TextCNNHead(3, filter_sizes=[2, 3], num_filters=4, dropout=0.0))
    start = {v.path: v.numpy().copy() for v in model.trainable_variables}
    cfg = TrainConfig(warmup_ratio=0.0, weight_decay=0.0, epochs=1, patience=0, adam_epsilon=1e-15,
                      layer_decay=decay)
    Trainer(model, bce, cfg, steps_per_epoch=1, learning_rate=lr, head_learning_rate=head_lr).train_step(X, Y)
    expected = {"token_embedding/embeddings": decay ** 2 * lr,
                "transformer_layer_0/feedforward_intermediate_dense/kernel": decay * lr,
                "transformer_layer_1/feedforward_intermediate_dense/kernel": lr,
                model.head.dense.kernel.path: head_lr}
    after = {v.path: v.numpy() for v in model.trainable_variables}
    for suffix, rate in expected.items():
        path = next(p for p in start if p.endswith(suffix))
        np.testing.assert_allclose(np.abs(after[path] - start[path]).max(), rate, rtol=0.05, err_msg=path)


def test_layer_decay_needs_an_encoder_with_named_layers():
    from classifier_multi_label.optimization import layer_decay_scales
    dense = keras.layers.Dense(2)
    dense.build((None, 3))
    with pytest.raises(ValueError, match="--layer-decay: the encoder has no variables named transformer_layer"):
        layer_decay_scales(dense.trainable_variables, 0.8)
