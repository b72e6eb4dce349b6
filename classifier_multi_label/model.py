"""The classifier: a keras-hub backbone composed with a head.

Example:
    >>> import keras_hub
    >>> backbone = keras_hub.models.AlbertBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
    ...     embedding_dim=8, hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
    >>> model = MultiLabelClassifier(backbone, PooledHead(num_labels=3))
    >>> x = {"token_ids": tf.ones([2, 4], "int32"), "segment_ids": tf.zeros([2, 4], "int32"),
    ...      "padding_mask": tf.ones([2, 4], "int32")}
    >>> tuple(model.head.infer(model(x))["scores"].shape)
    (2, 3)
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf


class MultiLabelClassifier(keras.Model):
    """token ids -> backbone -> head outputs; `head.infer` turns them into scores (and decisions)."""

    def __init__(self, backbone: keras.Model, head, **kwargs):
        inputs = backbone.input  # {"token_ids", "segment_ids", "padding_mask"}: [batch, length]
        outputs = head(backbone(inputs), inputs["padding_mask"])
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.backbone = backbone
        self.head = head

    def predict_outputs(self, dataset, jit_compile: bool = True) -> dict:
        """`head.infer` over an ordered dataset of inputs: {"scores": [examples, num_labels], ...}."""
        if getattr(self, "_infer_fn", None) is None or self._infer_jit != jit_compile:
            self._infer_fn = tf.function(lambda x: self.head.infer(self(x, training=False)),
                                         jit_compile=jit_compile, reduce_retracing=True)
            self._infer_jit = jit_compile
        parts = [{k: v.numpy() for k, v in self._infer_fn(x).items()} for x in dataset]
        if not parts:
            empty = {"scores": np.zeros((0, self.head.num_labels), np.float32)}
            if self.head.decodes_labels:
                empty["decisions"] = np.zeros((0, self.head.num_labels), np.int32)
            return empty
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
