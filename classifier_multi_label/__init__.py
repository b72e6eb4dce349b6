"""Multi-label text classification on Keras 3 / TensorFlow: the shared core and the ALBERT +
sigmoid baseline. See README.md and docs/.

    import classifier_multi_label as cml
    run = cml.train("textcnn", train="data/train.csv", dev="data/dev.csv", epochs=10)
    run.predict(["制热很快，就是声音有点大"])  # [{"labels": [...], "scores": {label: p}}]
    run = cml.load_run("runs/classifier_multi_label_textcnn/<timestamp>")

Importing the package is cheap: TensorFlow loads when a name that needs it is first used.
"""

import importlib
import os

# Before TensorFlow/Keras are imported anywhere: this toolkit runs Keras on TensorFlow, and the C++
# start-up chatter of TensorFlow hides the messages users need.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# name -> the module that defines it, imported on first use (PEP 562)
_LAZY = {
    "train": "api", "load_run": "run", "heads": "api", "read_examples": "data", "Examples": "data",
    "Run": "run", "RunConfig": "config", "Head": "head", "PooledHead": "head", "TextCNNHead": "head",
}
__all__ = sorted(_LAZY)


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
