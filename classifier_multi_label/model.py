"""The classifier: a keras-hub backbone composed with a head.

Example:
    >>> import keras_hub
    >>> backbone = keras_hub.models.AlbertBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
    ...     embedding_dim=8, hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
    >>> model = MultiLabelClassifier(backbone, PooledHead(num_labels=3))
    >>> x = {"token_ids": tf.ones([2, 4], "int32"), "segment_ids": tf.zeros([2, 4], "int32"),
    ...      "padding_mask": tf.ones([2, 4], "int32")}
    >>> tuple(model.scores(model(x)).shape)
    (2, 3)
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


class MultiLabelClassifier(keras.Model):
    """token ids -> backbone -> head outputs. `scores` turns outputs into per-label probabilities."""

    def __init__(self, backbone: keras.Model, head, **kwargs):
        inputs = backbone.input  # {"token_ids", "segment_ids", "padding_mask"}: [batch, length]
        outputs = head(backbone(inputs), inputs["padding_mask"])
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.backbone = backbone
        self.head = head

    def scores(self, outputs):
        return self.head.scores(outputs)  # [batch, num_labels]

    def predict_scores(self, dataset, jit_compile: bool = True) -> np.ndarray:
        """Per-label probabilities [examples, num_labels] for an ordered dataset of inputs."""
        if getattr(self, "_score_fn", None) is None or self._score_fn_jit != jit_compile:
            self._score_fn = tf.function(lambda x: self.scores(self(x, training=False)), jit_compile=jit_compile,
                                         reduce_retracing=True)
            self._score_fn_jit = jit_compile
        out = [self._score_fn(x).numpy() for x in dataset]
        return np.concatenate(out) if out else np.zeros((0, self.head.num_labels), np.float32)
