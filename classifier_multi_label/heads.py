"""Heads: small layers from the encoder's outputs to per-label outputs.

A head is all that differs between the sibling packages. It declares its options as a dataclass
(`options`, whose fields become command-line flags), builds its layers, and says how its outputs
become per-label logits (`logits`), scores (`scores`) and a training loss (`compute_loss`).
Everything else (data, encoder, training, metrics, thresholds, export) is shared.

A head that decodes the label set itself (seq2seq) sets `decodes_labels`, returns "decisions"
from `infer` (thresholds are then not tuned for it), may encode its training targets its own way
(`targets`) and derive options from the training labels (`resolve_options`).

Example:
    >>> head = PooledHead(num_labels=3, dropout=0.1)
    >>> out = head({"pooled_output": tf.zeros([2, 8]), "sequence_output": tf.zeros([2, 5, 8])},
    ...            tf.ones([2, 5], "int32"))
    >>> tuple(out.shape)
    (2, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops


class Head(keras.layers.Layer):
    """Base class: encoder outputs -> per-label outputs."""

    @dataclass
    class options:  # noqa: N801 - the options dataclass of a head; fields become CLI flags
        pass

    decodes_labels = False  # True: `infer` returns the label sets ("decisions"); no thresholds
    uses_core_loss = True  # False: `compute_loss` ignores the core's --loss, which must stay "bce"
    xla_train_step = True  # False: the train step runs without XLA even with --jit-compile (measured slower)

    def __init__(self, num_labels: int, **options):
        super().__init__(name=options.pop("name", "head"))
        self.num_labels = int(num_labels)

    @classmethod
    def resolve_options(cls, options: dict, train_label_lists) -> dict:
        """Options whose default depends on the training labels, filled in before the head is built
        (the result is saved in config.json, so a loaded run rebuilds the same head)."""
        return options

    def targets(self, label_lists, labels) -> np.ndarray:
        """Training targets [examples, num_labels] for `compute_loss`: multi-hot by default."""
        return labels.multi_hot(label_lists)

    def call(self, encoder_outputs: dict, padding_mask, training=None):
        raise NotImplementedError

    def logits(self, outputs):
        """Per-label binary logits [batch, num_labels]: sigmoid(logits) is the label's probability."""
        return outputs

    def scores(self, outputs):
        """Per-label probabilities [batch, num_labels]."""
        return ops.sigmoid(self.logits(outputs))

    def infer(self, outputs) -> dict:
        """Inference outputs: {"scores": [batch, num_labels]}, plus "decisions" [batch, num_labels]
        for a head that decodes the label set itself."""
        return {"scores": self.scores(outputs)}

    def compute_loss(self, y_true, outputs, loss_fn):
        """The training loss; `loss_fn(y_true, logits)` is the core's selected multi-label loss."""
        return loss_fn(y_true, self.logits(outputs))


def logits_layer(units: int) -> keras.layers.Dense:
    """The output projection every head ends with (BERT's truncated-normal 0.02 init, zero bias)."""
    return keras.layers.Dense(units, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                              name="logits")


class PooledHead(Head):
    """The baseline: pooled [CLS] -> dropout -> Dense(num_labels) logits (sigmoid outside the loss)."""

    @dataclass
    class options:  # noqa: N801
        dropout: float = 0.1

    def __init__(self, num_labels: int, dropout: float = 0.1, **kw):
        super().__init__(num_labels, **kw)
        self.dropout = keras.layers.Dropout(dropout)
        self.dense = logits_layer(num_labels)

    def call(self, encoder_outputs, padding_mask, training=None):
        h = encoder_outputs["pooled_output"]  # [batch, hidden]
        return self.dense(self.dropout(h, training=training))  # logits: [batch, num_labels]
