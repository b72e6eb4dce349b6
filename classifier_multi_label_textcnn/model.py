"""The TextCNN head (docs/algorithms.md §1.6), with padding masked out of the max-pool.

sequence output [batch, length, hidden] -> for each filter size k: Conv1D(num_filters, k, ReLU)
-> max over the windows that lie inside the text -> concat [batch, len(filter_sizes) * num_filters]
-> dropout -> Dense(num_labels) logits -> sigmoid (in the loss and in `scores`).

The TF1 original max-pooled over padding too, so a text's scores depended on how much padding its
batch had. Here the encoder output at padded positions is zeroed and a window counts only if it
lies inside the real tokens; the first window always counts, so a text shorter than the largest
filter still works (the input is padded to the largest filter size).

Example:
    >>> head = TextCNNHead(num_labels=3, filter_sizes=[2, 3], num_filters=4)
    >>> out = head({"sequence_output": tf.random.normal([2, 5, 8]), "pooled_output": tf.zeros([2, 8])},
    ...            tf.constant([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]))
    >>> tuple(out.shape)
    (2, 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import keras
import tensorflow as tf

from classifier_multi_label.heads import Head, logits_layer


class TextCNNHead(Head):
    @dataclass
    class options:  # noqa: N801
        filter_sizes: list[int] = field(default_factory=lambda: [2, 3, 4, 5, 6, 7])
        num_filters: int = 128
        dropout: float = 0.5

    def __init__(self, num_labels: int, filter_sizes=(2, 3, 4, 5, 6, 7), num_filters: int = 128,
                 dropout: float = 0.5, **kw):
        super().__init__(num_labels, **kw)
        self.filter_sizes = [int(k) for k in filter_sizes]
        self.convs = [keras.layers.Conv1D(num_filters, k, padding="valid", activation="relu", name=f"conv_{k}")
                      for k in self.filter_sizes]
        self.dropout = keras.layers.Dropout(dropout)
        self.dense = logits_layer(num_labels)

    def call(self, encoder_outputs, padding_mask, training=None):
        x = encoder_outputs["sequence_output"]  # [batch, length, hidden]
        mask = tf.cast(padding_mask, x.dtype)  # [batch, length]
        x = x * mask[:, :, None]  # padded positions contribute zeros, whatever the encoder put there
        longest = max(self.filter_sizes)
        short = tf.maximum(longest - tf.shape(x)[1], 0)
        x = tf.pad(x, [[0, 0], [0, short], [0, 0]])  # [batch, max(length, longest), hidden]
        n_real = tf.reduce_sum(tf.cast(padding_mask, tf.int32), axis=1)  # [batch]
        pooled = []
        for k, conv in zip(self.filter_sizes, self.convs):
            h = conv(x)  # [batch, windows, num_filters], ReLU >= 0
            start = tf.range(tf.shape(h)[1])[None, :]  # [1, windows]
            inside = (start + k <= n_real[:, None]) | (start == 0)  # [batch, windows]
            # Outputs are >= 0 and the first window always counts, so zeroing the others is a masked max.
            h = h * tf.cast(inside, h.dtype)[:, :, None]
            pooled.append(tf.reduce_max(h, axis=1))  # [batch, num_filters]
        features = tf.concat(pooled, axis=-1)  # [batch, len(filter_sizes) * num_filters]
        return self.dense(self.dropout(features, training=training))  # logits: [batch, num_labels]
