"""ALBERT + TextCNN multi-label classifier: the encoder's sequence output through Conv1D banks,
max-pooled over real tokens only, then sigmoid per label. See model.py and README.md."""

import importlib

__all__ = ["TextCNNHead"]


def __getattr__(name):  # the head (and TensorFlow) load on first use: `--help` and options need neither
    if name != "TextCNNHead":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("classifier_multi_label.head", __name__), name)
