"""The multi-dense head's options (see classifier_multi_label.head_options: no TensorFlow here)."""

from __future__ import annotations

from dataclasses import dataclass

from classifier_multi_label.config import POOLINGS, option


@dataclass
class DensesOptions:
    dropout: float = option(0.1, "dropout on the pooled text vector")
    pooling: str = option("auto", "the text vector (as the baseline's --pooling); auto: cls over a pretrained "
                                  "encoder, attention from scratch", POOLINGS)
