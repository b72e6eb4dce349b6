"""The seq2seq head's options (see classifier_multi_label.head_options: no TensorFlow here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from classifier_multi_label.config import option

LABEL_ORDERS = ("frequency", "file")


@dataclass
class Seq2SeqOptions:
    encoder_layers: int = option(3, "LSTM layers in each direction over the encoder's output")
    lstm_units: Optional[int] = option(None, "LSTM units; none: the encoder's hidden size (as the original)")
    dropout: float = option(0.5, "dropout on every LSTM output (the original: keep 0.5)")
    beam_width: int = option(5, "beam search width; 1: greedy decoding")
    label_order: str = option("frequency", "the order labels are decoded in: most frequent first, or each "
                                           "row's own order", LABEL_ORDERS)
    max_labels: Optional[int] = option(None, "longest label set decoded; none: the largest in the training data")
