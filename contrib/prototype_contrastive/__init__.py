"""SharpReCL prototype contrastive training for multi-label classification (docs/algorithms.md
§3.5): trains the baseline's or the TextCNN classifier with a logit-adjusted BCE and a supervised
contrastive loss over class prototypes and per-label target sets. See model.py and README.md."""

import importlib

__all__ = ["PrototypeContrastiveHead"]


def __getattr__(name):  # the head (and TensorFlow) load on first use: `--help` and options need neither
    if name != "PrototypeContrastiveHead":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(".model", __name__), name)
