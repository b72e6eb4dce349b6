"""The classifier: a keras-hub backbone composed with a head.

Example:
    >>> import keras_hub
    >>> from classifier_multi_label.head import PooledHead
    >>> backbone = keras_hub.models.AlbertBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
    ...     embedding_dim=8, hidden_dim=8, intermediate_dim=16, max_sequence_length=16)
    >>> model = MultiLabelClassifier(backbone, PooledHead(num_labels=3))
    >>> x = {"token_ids": tf.ones([2, 4], "int32"), "segment_ids": tf.zeros([2, 4], "int32"),
    ...      "padding_mask": tf.ones([2, 4], "int32")}
    >>> tuple(model.head.infer(model(x))["scores"].shape)
    (2, 3)
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np
import tensorflow as tf

from .config import PRECISIONS
from .environment import cpu_info
from .errors import UserError


def cpu_has_amx_bf16() -> bool:
    """True on x86 CPUs with AMX bfloat16 tiles (Linux /proc/cpuinfo flag `amx_bf16`)."""
    return "amx_bf16" in cpu_info()[1]


def gpu_compute_capabilities() -> list:
    """(major, minor) of each visible GPU ((0, 0) when the driver does not say); [] without one."""
    return [tuple(tf.config.experimental.get_device_details(gpu).get("compute_capability") or (0, 0))
            for gpu in tf.config.list_physical_devices("GPU")]


def resolve_precision(precision: str, jit_compile, head_supports_bfloat16: bool = True) -> tuple:
    """(dtype policy, XLA on/off) for a run. "auto": mixed_bfloat16 where the hardware computes
    bfloat16 natively: on GPUs when every one has bfloat16 tensor cores (compute capability 8.0,
    Ampere, or newer), on a machine without GPUs when the CPU has AMX bfloat16 units; else float32.
    XLA defaults to on, except for mixed_bfloat16 on a CPU: XLA's CPU backend does not use the AMX
    units (measured: docs/benchmark-history.md, the speed section)."""
    if precision not in PRECISIONS:
        raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "mixed_bfloat16" and not head_supports_bfloat16:
        raise UserError("--precision mixed_bfloat16: this head trains in float32 only; use --precision float32")
    gpus = gpu_compute_capabilities()
    if precision == "auto":
        native = all(c >= (8, 0) for c in gpus) if gpus else cpu_has_amx_bf16()
        precision = "mixed_bfloat16" if head_supports_bfloat16 and native else "float32"
    if jit_compile is None:
        jit_compile = precision == "float32" or bool(gpus)
    return precision, bool(jit_compile)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Layers built inside compute under the Keras dtype policy `name`; the global one is restored."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class MultiLabelClassifier(keras.Model):
    """token ids -> backbone -> head outputs; `head.infer` turns them into scores (and decisions)."""

    def __init__(self, backbone: keras.Model, head, **kwargs):
        inputs = backbone.input  # {"token_ids", "segment_ids", "padding_mask"}: [batch, length]
        outputs = head(backbone(inputs), inputs["padding_mask"])
        # Under a mixed-precision policy the layers compute in bfloat16; losses, sigmoids and
        # thresholds get float32, as Keras' mixed-precision guide recommends for the last layer.
        outputs = keras.tree.map_structure(
            lambda t: keras.ops.cast(t, "float32") if "float" in str(t.dtype) else t, outputs)
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.backbone = backbone
        self.head = head

    def predict_outputs(self, dataset, jit_compile: bool = True) -> dict:
        """`head.predict` over ordered batches of inputs (a dataset, or a list as
        `pipeline.text_batches` gives): {"scores": [examples, num_labels], ...}."""
        if getattr(self, "_infer_fn", None) is None or self._infer_jit != jit_compile:
            self._infer_fn = tf.function(lambda x: self.head.predict(self, x),
                                         jit_compile=jit_compile, reduce_retracing=True)
            self._infer_jit = jit_compile
        spec = getattr(dataset, "element_spec", None)
        if spec is None and dataset:  # a list of batches: any batch size and length, as a dataset's spec has
            spec = {k: tf.TensorSpec([None] * v.shape.rank, v.dtype) for k, v in dataset[0].items()}
        if spec is not None:
            self._infer_fn.get_concrete_function(spec)  # one trace for any batch size and length
        parts = [{k: v.numpy() for k, v in self._infer_fn(x).items()} for x in dataset]
        if not parts:
            empty = {"scores": np.zeros((0, self.head.num_labels), np.float32)}
            if self.head.decodes_labels:
                empty["decisions"] = np.zeros((0, self.head.num_labels), np.int32)
            return empty
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
