"""LM-MTC label-mask training's options (see classifier_multi_label.head_options: no TensorFlow here)."""

from __future__ import annotations

from dataclasses import dataclass

from classifier_multi_label.config import option

DECODINGS = ("full", "top_p")


@dataclass
class LabelMaskOptions:
    dropout: float = option(0.1, "dropout on the label slots' states")
    label_noise: float = option(0.01, "revealed slots show the wrong value with this probability")
    mlm_epochs: int = option(10, "text masked-LM during the first epochs (the reference: 15 of 25); 0: never")
    mlm_probability: float = option(0.15, "share of text tokens masked for the masked-LM loss")
    mlm_weight: float = option(1.0, "weight of the masked-LM loss")
    decoding: str = option("full", "full: one pass with every slot masked; top_p: one pass per label, revealing "
                                   "the surest label each time", DECODINGS)
