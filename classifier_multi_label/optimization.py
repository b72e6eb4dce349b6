"""The optimizer every head trains with: AdamW (no weight decay on LayerNorm and biases) over a linear
warm-up then linear decay to zero, embedding gradients made dense, an optional second schedule
for the head's variables (`--head-learning-rate`, `--head-warmup-ratio`) and optional layer-wise
decay of the encoder's rate (`--layer-decay`).

Example:
    >>> schedule = WarmupLinearDecay(peak=1e-3, total_steps=100, warmup_steps=10)
    >>> [round(float(schedule(step)), 6) for step in (0, 5, 10, 55, 100)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0]
"""

from __future__ import annotations

import re

import keras
import tensorflow as tf

from .config import TrainConfig
from .errors import UserError

NO_WEIGHT_DECAY = ["bias", "gamma", "beta"]  # Keras names LayerNorm's scale/offset gamma/beta


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = peak * step / warmup, then peak * (total - step) / (total - warmup), down to 0."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int):
        self.peak, self.total, self.warmup = float(peak), int(max(total_steps, 1)), int(warmup_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = self.peak * step / max(self.warmup, 1)
        decay = self.peak * (self.total - step) / max(self.total - self.warmup, 1)
        return tf.maximum(tf.where(step < self.warmup, warm, decay), 0.0)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total, "warmup_steps": self.warmup}


def dense_gradients(grads) -> list:
    """`grads` with every tf.IndexedSlices (an embedding table's gradient: one row per token of the
    batch, a row index repeated for every repeated token) made a dense tensor, its rows summed.

    Keras 3's Adam squares an IndexedSlices row by row for its second moment, so a token seen twice
    with gradient g adds 2g^2 instead of (2g)^2 (measured: Adam(0.1) stepped 0.141 instead of 0.100),
    and tf.clip_by_global_norm takes the norm of the unsummed rows. Dense, both are the AdamW and
    clipping of BERT's TF1 optimizer and of PyTorch's dense embedding gradients.
    """
    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]


# keras-hub's backbones name their blocks transformer_layer_<i> (BERT, DistilBERT, RoBERTa, ...) or,
# with ALBERT's sharing, group_<g>_inner_layer_<j> (the group's weights serve every layer of the group).
_BLOCK = re.compile(r"(?:^|/)(?:transformer_layer_(\d+)|group_(\d+)_inner_layer_\d+)/")
_EMBEDDINGS = re.compile(r"(?:^|/)(?:token|position|segment)_embedding/|(?:^|/)embeddings_(?:layer_norm|dropout)/"
                         r"|(?:^|/)embedding_projection/")


def layer_decay_scales(variables, decay: float) -> dict:
    """{variable path: learning-rate factor} for layer-wise decay over an encoder's variables.

    The top block learns at the encoder's rate, each block below at `decay` times the one above it,
    the embeddings at `decay` times the lowest block (ELECTRA's and BEiT's rule); variables above the
    blocks (a pooler) keep the full rate. ALBERT's shared groups count as blocks.

    Example:
        >>> import keras_hub
        >>> bert = keras_hub.models.BertBackbone(vocabulary_size=20, num_layers=2, num_heads=1,
        ...                                      hidden_dim=4, intermediate_dim=8, max_sequence_length=8)
        >>> scales = layer_decay_scales(bert.trainable_variables, 0.5)
        >>> [scales[p] for p in ("token_embedding/embeddings", "transformer_layer_0/self_attention_layer/query/kernel",
        ...                      "transformer_layer_1/feedforward_output_dense/bias", "pooled_dense/kernel")]
        [0.25, 0.5, 1.0, 1.0]
    """
    blocks = {}
    for v in variables:
        m = _BLOCK.search(v.path)
        blocks[v.path] = int(m.group(1) or m.group(2)) if m else None
    depths = [b for b in blocks.values() if b is not None]
    if not depths:
        raise UserError("--layer-decay: the encoder has no variables named transformer_layer_<i> or "
                         "group_<g>_inner_layer_<j>, so its layers cannot be told apart; use --layer-decay 1")
    top = max(depths)
    scales = {}
    for path, block in blocks.items():
        if block is not None:
            scales[path] = decay ** (top - block)
        elif _EMBEDDINGS.search(path):
            scales[path] = decay ** (top + 1)
        else:
            scales[path] = 1.0
    return scales


class ReducedGradientsAdamW(keras.optimizers.AdamW):
    """AdamW given gradients already summed over replicas, embedding gradients made dense, and an
    optional second learning rate for some variables (the head's).

    The trainer all-reduces the gradients itself so that it can clip them by the norm of the whole
    batch's gradient, as one process would; Keras' own `apply` clips each replica's share, then sums.

    `head_learning_rate` (a schedule) drives the variables in `head_variables`; the others follow
    `learning_rate`, times their factor in `scales` ((variable, factor) pairs: layer-wise decay) when
    they have one. Decoupled weight decay is applied per variable at that variable's own rate (as
    PyTorch's parameter groups do), just before its Adam step, where Keras applies it to every
    variable at the one optimizer rate.
    """

    def __init__(self, *args, head_learning_rate=None, head_variables=(), scales=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._head_schedule = head_learning_rate
        self._head_keys = {self._var_key(v) for v in head_variables}
        self._scales = {self._var_key(v): factor for v, factor in (scales or ()) if factor != 1.0}

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return grads_and_vars

    def _apply_weight_decay(self, variables):
        pass  # in update_step, at each variable's own learning rate

    def update_step(self, gradient, variable, learning_rate):
        if self._head_schedule is not None and self._var_key(variable) in self._head_keys:
            learning_rate = self._head_schedule(self.iterations)
        elif self._var_key(variable) in self._scales:
            learning_rate = learning_rate * self._scales[self._var_key(variable)]
        if self.weight_decay is not None and self._use_weight_decay(variable):
            lr = keras.ops.cast(learning_rate, variable.dtype)
            variable.assign(variable - variable * keras.ops.cast(self.weight_decay, variable.dtype) * lr)
        super().update_step(gradient, variable, learning_rate)

    def apply(self, grads, trainable_variables=None):
        return super().apply(dense_gradients(grads), trainable_variables)


if not hasattr(keras.optimizers.AdamW, "_all_reduce_sum_gradients"):  # a Keras that renamed its hook
    raise ImportError(f"keras {keras.__version__}: AdamW has no _all_reduce_sum_gradients; "
                      "classifier_multi_label.optimization needs updating for this Keras version")


def make_optimizer(cfg: TrainConfig, learning_rate: float, total_steps: int, clip: bool = False,
                   head_learning_rate: float | None = None, head_variables=(),
                   encoder_variables=()) -> keras.optimizers.Optimizer:
    """AdamW over the warm-up/decay schedule; `head_variables` over their own (peak
    `head_learning_rate`, warm-up `cfg.head_warmup_ratio`); `encoder_variables` decayed layer by
    layer when `cfg.layer_decay` < 1. The trainer clips gradients itself (see above); `clip` makes the
    optimizer clip them by global norm instead, for `model.fit` on one device."""
    schedule = WarmupLinearDecay(learning_rate, total_steps, int(cfg.warmup_ratio * total_steps))
    head_schedule = None
    if head_learning_rate is not None and head_variables:
        warmup = cfg.warmup_ratio if cfg.head_warmup_ratio is None else cfg.head_warmup_ratio
        head_schedule = WarmupLinearDecay(head_learning_rate, total_steps, int(warmup * total_steps))
    scales = None
    if cfg.layer_decay < 1.0 and encoder_variables:
        factors = layer_decay_scales(encoder_variables, cfg.layer_decay)
        scales = [(v, factors[v.path]) for v in encoder_variables]
    opt = ReducedGradientsAdamW(learning_rate=schedule, weight_decay=cfg.weight_decay, epsilon=cfg.adam_epsilon,
                                global_clipnorm=cfg.clipnorm if clip else None,
                                head_learning_rate=head_schedule, head_variables=head_variables, scales=scales)
    opt.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    return opt
