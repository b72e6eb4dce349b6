"""The options of the core's heads (the baseline's pooled head and TextCNN), declared once with
their defaults, help and choices, in a module without TensorFlow so that `--help` answers at once.
The head classes (`head.py`) use these dataclasses; config.json records their resolved values."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .config import POOLINGS, option


@dataclass
class PooledOptions:
    dropout: float = option(0.1, "dropout on the pooled text vector")
    pooling: str = option("auto", "the text vector: the [CLS] state, the mean or per-dimension max of the "
                                  "tokens, a learned attention over them, or one attention per label "
                                  "(label); auto: cls over a pretrained encoder, max from scratch",
                          POOLINGS)
    projection: Optional[int] = option(None, "token pooling only: map each token state to this many ReLU "
                                             "features before pooling (detectors the pooling picks from); 0: "
                                             "pool the states; none: 768 when --pooling auto takes max (from "
                                             "scratch), 0 otherwise", minimum=0)
    projection_width: Optional[int] = option(None, "with --projection: the features come from windows of this "
                                                   "many tokens around each token (a convolution), so a detector "
                                                   "can fire on a word of several characters; 1: each token alone; "
                                                   "none: 3 when --pooling auto takes max (from scratch), 1 "
                                                   "otherwise", minimum=1)


@dataclass
class TextCNNOptions:
    filter_sizes: list[int] = option(help="convolution widths, in tokens", factory=lambda: [2, 3, 4, 5, 6, 7])
    num_filters: int = option(128, "filters per width")
    dropout: float = option(0.5, "dropout on the concatenated max-pooled features")
