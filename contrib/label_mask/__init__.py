"""LM-MTC label-mask training (docs/algorithms.md §2): per-label template tokens before the text, a
binary present/absent head at masked label slots, text MLM early in training. See model.py and
README.md."""

from .model import LabelMaskHead

__all__ = ["LabelMaskHead"]
