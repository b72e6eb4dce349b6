"""The multi-dense head (docs/algorithms.md §1.7): one 2-way softmax per label.

pooled text vector [batch, hidden] (`--pooling`, as the baseline's) -> dropout -> Dense(2 * num_labels)
-> reshape [batch, num_labels, 2] (with `--pooling label`, one vector per label, each scored by its own
Dense(2)).
Training minimises the 2-way categorical cross-entropy of every label, averaged over labels. Since
softmax([z0, z1])[1] = sigmoid(z1 - z0), that is exactly binary cross-entropy on the per-label logit
z1 - z0, which `logits` returns; so the positive-class probability feeds the same metrics,
thresholds, losses (focal, ASL, ... apply to z1 - z0) and export as every other head.

Example:
    >>> head = DensesHead(num_labels=3)
    >>> out = head({"pooled_output": tf.zeros([2, 8]), "sequence_output": tf.zeros([2, 4, 8])},
    ...            tf.ones([2, 4], "int32"))
    >>> tuple(out.shape), tuple(head.scores(out).shape)
    ((2, 3, 2), (2, 3))
"""

from __future__ import annotations

import keras
from keras import ops

from classifier_multi_label.head import Head, LabelwiseDense, logits_layer, pooling_layer

from .options import DensesOptions


class DensesHead(Head):
    options = DensesOptions

    def __init__(self, num_labels: int, **options):
        super().__init__(num_labels, **options)
        self.pooling = pooling_layer(self.opts.pooling, num_labels, self.opts.projection,
                                     self.opts.projection_width)
        self.dropout = keras.layers.Dropout(self.opts.dropout)
        self.dense = LabelwiseDense(2) if self.pooling.mode == "label" else logits_layer(2 * num_labels)

    def call(self, encoder_outputs, padding_mask, training=None):
        h = self.dropout(self.pooling(encoder_outputs, padding_mask), training=training)  # [batch, (labels,) hidden]
        if self.pooling.mode == "label":
            return self.dense(h)  # [batch, num_labels, 2]: each label from its own vector
        return ops.reshape(self.dense(h), (-1, self.num_labels, 2))  # [batch, num_labels, 2]

    def logits(self, outputs):
        # log-odds of the positive class: softmax(z)[..., 1] == sigmoid(z1 - z0)
        return outputs[..., 1] - outputs[..., 0]  # [batch, num_labels]
