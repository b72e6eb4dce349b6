"""ALBERT + seq2seq multi-label classifier: BiLSTM stacks over the encoder, an LSTM decoder with
Bahdanau attention that emits the label set as a sequence, and beam search inside the exported
model. See model.py and README.md."""

import importlib

__all__ = ["Seq2SeqHead"]


def __getattr__(name):  # the head (and TensorFlow) load on first use: `--help` and options need neither
    if name != "Seq2SeqHead":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(".model", __name__), name)
