"""SharpReCL prototype contrastive training for multi-label classification (docs/algorithms.md
§3.5): trains the baseline's or the TextCNN classifier with a logit-adjusted BCE and a supervised
contrastive loss over class prototypes and per-label target sets. See model.py and README.md."""

from .model import PrototypeContrastiveHead

__all__ = ["PrototypeContrastiveHead"]
