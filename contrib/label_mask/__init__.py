"""LM-MTC label-mask training (docs/algorithms.md §2): per-label template tokens before the text, a
binary present/absent head at masked label slots, text MLM early in training. See model.py and
README.md."""

import importlib

__all__ = ["LabelMaskHead"]


def __getattr__(name):  # the head (and TensorFlow) load on first use: `--help` and options need neither
    if name != "LabelMaskHead":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(".model", __name__), name)
