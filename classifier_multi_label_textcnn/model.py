"""The TextCNN head (docs/algorithms.md §1.6), with padding masked out of the max-pool.

It lives in the core (`classifier_multi_label.head.TextCNNHead`) because contrib's prototype
contrastive training trains it too; this package is its entry points.
"""

from classifier_multi_label.head import TextCNNHead

__all__ = ["TextCNNHead"]
