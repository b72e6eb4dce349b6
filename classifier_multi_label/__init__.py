"""Multi-label text classification on Keras 3 / TensorFlow: the shared core and the ALBERT +
sigmoid baseline. See README.md.

Example:
    >>> from classifier_multi_label import PooledHead, load_run  # doctest: +SKIP
    >>> run = load_run("runs/classifier_multi_label/<timestamp>", PooledHead, "classifier_multi_label")  # doctest: +SKIP
    >>> run.predict(["制热很快，就是声音有点大"])  # doctest: +SKIP
"""

import os

# Before TensorFlow/Keras are imported anywhere: this toolkit runs Keras on TensorFlow, and the C++
# start-up chatter of TensorFlow hides the messages users need.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .heads import Head, PooledHead  # noqa: E402
from .run import Run, load_run, train  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Head", "PooledHead", "Run", "load_run", "train"]
