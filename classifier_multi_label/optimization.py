"""The optimizer every head trains with: AdamW (no weight decay on LayerNorm and biases) over a linear
warm-up then linear decay to zero, embedding gradients made dense, and an optional second schedule
for the head's variables (`--head-learning-rate`, `--head-warmup-ratio`).

Example:
    >>> schedule = WarmupLinearDecay(peak=1e-3, total_steps=100, warmup_steps=10)
    >>> [round(float(schedule(step)), 6) for step in (0, 5, 10, 55, 100)]
    [0.0, 0.0005, 0.001, 0.0005, 0.0]
"""

from __future__ import annotations

import keras
import tensorflow as tf

from .config import TrainConfig

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


class ReducedGradientsAdamW(keras.optimizers.AdamW):
    """AdamW given gradients already summed over replicas, embedding gradients made dense, and an
    optional second learning rate for some variables (the head's).

    The trainer all-reduces the gradients itself so that it can clip them by the norm of the whole
    batch's gradient, as one process would; Keras' own `apply` clips each replica's share, then sums.

    `head_learning_rate` (a schedule) drives the variables in `head_variables`; the others follow
    `learning_rate`. Decoupled weight decay is applied per variable at that variable's own rate (as
    PyTorch's parameter groups do), just before its Adam step, where Keras applies it to every
    variable at the one optimizer rate.
    """

    def __init__(self, *args, head_learning_rate=None, head_variables=(), **kwargs):
        super().__init__(*args, **kwargs)
        self._head_schedule = head_learning_rate
        self._head_keys = {self._var_key(v) for v in head_variables}

    def _all_reduce_sum_gradients(self, grads_and_vars):
        return grads_and_vars

    def _apply_weight_decay(self, variables):
        pass  # in update_step, at each variable's own learning rate

    def update_step(self, gradient, variable, learning_rate):
        if self._head_schedule is not None and self._var_key(variable) in self._head_keys:
            learning_rate = self._head_schedule(self.iterations)
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
                   head_learning_rate: float | None = None, head_variables=()) -> keras.optimizers.Optimizer:
    """AdamW over the warm-up/decay schedule; `head_variables` over their own (peak
    `head_learning_rate`, warm-up `cfg.head_warmup_ratio`). The trainer clips gradients itself (see
    above); `clip` makes the optimizer clip them by global norm instead, for `model.fit` on one device."""
    schedule = WarmupLinearDecay(learning_rate, total_steps, int(cfg.warmup_ratio * total_steps))
    head_schedule = None
    if head_learning_rate is not None and head_variables:
        warmup = cfg.warmup_ratio if cfg.head_warmup_ratio is None else cfg.head_warmup_ratio
        head_schedule = WarmupLinearDecay(head_learning_rate, total_steps, int(warmup * total_steps))
    opt = ReducedGradientsAdamW(learning_rate=schedule, weight_decay=cfg.weight_decay, epsilon=cfg.adam_epsilon,
                                global_clipnorm=cfg.clipnorm if clip else None,
                                head_learning_rate=head_schedule, head_variables=head_variables)
    opt.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    return opt
