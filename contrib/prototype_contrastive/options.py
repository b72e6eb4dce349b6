"""SharpReCL prototype contrastive training's options (see classifier_multi_label.head_options: no
TensorFlow here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from classifier_multi_label.config import POOLINGS, option

CLASSIFIERS = ("pooled", "textcnn")
# label-wise pooling gives a vector per text and label; the prototypes compare one vector per text
POOLINGS_ONE_VECTOR = tuple(p for p in POOLINGS if p != "label")


@dataclass
class PrototypeContrastiveOptions:
    classifier: str = option("pooled", "the classifier trained: the baseline's pooled head or TextCNN",
                             CLASSIFIERS)
    dropout: Optional[float] = option(None, "the classifier's dropout; none: its default (pooled 0.1, textcnn 0.5)")
    pooling: str = option("auto", "pooled classifier only: as the baseline's --pooling (one vector per "
                                  "text, so not label)", POOLINGS_ONE_VECTOR)
    projection: Optional[int] = option(None, "pooled classifier only: as the baseline's --projection",
                                       minimum=0)
    projection_width: Optional[int] = option(None, "pooled classifier only: as the baseline's "
                                                   "--projection-width", minimum=1)
    filter_sizes: list[int] = option(help="textcnn classifier only: convolution widths",
                                     factory=lambda: [2, 3, 4, 5, 6, 7])
    num_filters: int = option(128, "textcnn classifier only: filters per width")
    temperature: float = option(0.3, "temperature of the contrastive loss")
    contrastive_weight: float = option(1.0, "weight of the contrastive loss")
    proj_dim: int = option(100, "size of the projected features and prototypes")
    n_pos: int = option(20, "positive targets per label and step")
    n_neg: int = option(60, "negative targets per label and step")
    k_pos: int = option(20, "hard positives mixed from")
    k_neg: int = option(20, "hard negatives mixed from")
    mix_alpha: float = option(0.5, "mixup weight ~ Beta(mix_alpha, mix_alpha)")
    hard_ratio_start: float = option(0.5, "share of hard mixups in the first epoch")
    hard_ratio_epochs: int = option(30, "the share of hard mixups reaches 1 after this many epochs")
    effective_beta: float = option(0.9999, "class weights by effective number: beta")
    logit_adjustment: bool = option(True, "train the BCE on z + log(prior / (1 - prior))")
    label_counts: Optional[list[int]] = option(None, "training positives per label; none: counted from the data")
    num_train: Optional[int] = option(None, "training texts; none: counted from the data")
