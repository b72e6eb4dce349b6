"""One optimizer step on a (global) batch, the same on one device and across replicas and workers.

The step runs through `strategy.run` (Keras' `model.fit` fails under MultiWorkerMirroredStrategy,
keras-team/keras#20585). Under a distribution strategy `--batch-size` is the global batch: each
replica takes its slice of every batch, the gradients are summed over replicas (each replica's
mean loss weighted by its share of the batch, so a ragged last batch counts each example once),
clipped by their global norm and applied once: the same update one process makes with the whole
batch. FGM's adversarial pass (`adversarial.py`) adds its gradients before the sum.
"""

from __future__ import annotations

import tensorflow as tf

from .optimization import dense_gradients


def _add_gradients(a, b):
    """a + b for two gradients of one variable, either None (unused) or, for an embedding table,
    tf.IndexedSlices (rows; concatenated, so the all-reduce sends rows, as without FGM)."""
    if a is None or b is None:
        return a if b is None else b
    if isinstance(a, tf.IndexedSlices) and isinstance(b, tf.IndexedSlices):
        return tf.IndexedSlices(tf.concat([a.values, b.values], 0), tf.concat([a.indices, b.indices], 0),
                                a.dense_shape)
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


class TrainStep:
    """`compiled(x, y)` -> (the batch's mean loss, its number of examples), after one optimizer update
    of `model` with `loss_fn`; `fgm`: an `adversarial.FGM`, or None."""

    def __init__(self, model, loss_fn, optimizer, cluster, clipnorm: float | None, jit_compile: bool, fgm=None):
        self.model, self.loss_fn, self.optimizer, self.fgm, self.clipnorm = model, loss_fn, optimizer, fgm, clipnorm
        self.strategy = cluster.strategy
        jit = bool(jit_compile and getattr(model.head, "xla_train_step", True))
        # XLA compiles a replica's update after its inputs are made: on one device the gradients,
        # clipping and optimizer step; distributed only the gradients (XLA cannot compile the
        # replicas' all-reduce). The head's training inputs (LM-MTC's random masking, SharpReCL's
        # second view) stay outside XLA: compiled with the update, LM-MTC's masking made each step
        # 5x slower (measured: 9.2 s against 1.9 s per batch of 32 at length 97).
        distributed = cluster.distributed
        self._grads_fn = tf.function(self._grads, jit_compile=True) if jit and distributed else self._grads
        self._adversarial_fn = (tf.function(self._adversarial_grads, jit_compile=True) if jit and distributed
                                else self._adversarial_grads)
        self._update_fn = tf.function(self._update, jit_compile=True) if jit and not distributed else self._update
        self.compiled = tf.function(self._step, reduce_retracing=True)

    def _step(self, x, y):
        shares, n_global = self.strategy.run(self._replica_step, args=(x, y))
        return (self.strategy.reduce(tf.distribute.ReduceOp.SUM, shares, axis=None),
                self.strategy.reduce(tf.distribute.ReduceOp.MEAN, n_global, axis=None))

    def _replica_step(self, x, y):
        ctx = tf.distribute.get_replica_context()
        n = tf.cast(tf.shape(x["token_ids"])[0], tf.float32)  # this replica's examples
        n_global = ctx.all_reduce(tf.distribute.ReduceOp.SUM, n)
        x, y = self.model.head.training_inputs(x, y)
        return self._update_fn(n, x, y, n_global), n_global

    def _share(self, n, x, y, n_global):
        """This replica's share of the batch loss."""
        outputs = self.model(x, training=True)
        loss = self.model.head.compute_loss(y, outputs, self.loss_fn)
        # Weighted by the replica's share of the examples; a replica left empty by a ragged last
        # batch (its mean is NaN) adds nothing.
        return tf.where(n > 0, loss * n / n_global, 0.0)

    def _grads(self, n, x, y, n_global):
        """This replica's share of the batch loss and its gradients (None for unused variables)."""
        with tf.GradientTape() as tape:
            share = self._share(n, x, y, n_global)
        return share, tape.gradient(share, self.model.trainable_variables)

    def _adversarial_grads(self, n, x, y, n_global, g):
        """FGM's gradients of this replica's share, the table moved along `g` (`adversarial.FGM`)."""
        return self.fgm.gradients(lambda: self._share(n, x, y, n_global), g)

    def _replica_grads(self, n, x, y, n_global):
        """This replica's share of the loss and its gradients, with FGM's added (--adversarial-epsilon)."""
        share, grads = self._grads_fn(n, x, y, n_global)
        if self.fgm is not None:
            # The whole batch's table gradient (IndexedSlices -> dense): every replica moves the table
            # the way one process would.
            ctx = tf.distribute.get_replica_context()
            table_grad = ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.convert_to_tensor(grads[self.fgm.table_index]))
            adversarial = self._adversarial_fn(n, x, y, n_global, table_grad)
            grads = [_add_gradients(a, b) for a, b in zip(grads, adversarial)]
        return share, grads

    def _update(self, n, x, y, n_global):
        """Applies the whole batch's gradient -> this replica's share of the loss."""
        share, grads = self._replica_grads(n, x, y, n_global)
        ctx = tf.distribute.get_replica_context()
        # A head may not use every backbone output (TextCNN ignores the pooler): skip those.
        pairs = [(g, v) for g, v in zip(grads, self.model.trainable_variables) if g is not None]
        # The whole batch's gradient; embedding tables' rows are summed after the all-reduce, which
        # sends only the batch's rows.
        grads = dense_gradients(ctx.all_reduce(tf.distribute.ReduceOp.SUM, [g for g, _ in pairs]))
        if self.clipnorm:
            grads, _ = tf.clip_by_global_norm(grads, self.clipnorm)
        self.optimizer.apply_gradients(zip(grads, [v for _, v in pairs]))
        return share
