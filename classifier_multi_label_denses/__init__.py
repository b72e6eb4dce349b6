"""ALBERT + one 2-way softmax per label (the original's "Denses" variant). See model.py."""

import importlib

__all__ = ["DensesHead"]


def __getattr__(name):  # the head (and TensorFlow) load on first use: `--help` and options need neither
    if name != "DensesHead":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(".model", __name__), name)
