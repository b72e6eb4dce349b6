"""ALBERT + seq2seq multi-label classifier: BiLSTM stacks over the encoder, an LSTM decoder with
Bahdanau attention that emits the label set as a sequence, and beam search inside the exported
model. See model.py and README.md."""

from .model import Seq2SeqHead

__all__ = ["Seq2SeqHead"]
