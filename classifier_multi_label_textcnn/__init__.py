"""ALBERT + TextCNN multi-label classifier: the encoder's sequence output through Conv1D banks,
max-pooled over real tokens only, then sigmoid per label. See model.py and README.md."""

from .model import TextCNNHead

__all__ = ["TextCNNHead"]
