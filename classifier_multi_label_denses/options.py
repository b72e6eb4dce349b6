"""The multi-dense head's options (see classifier_multi_label.head_options: no TensorFlow here)."""

from __future__ import annotations

from dataclasses import dataclass

from classifier_multi_label.head_options import PooledOptions


@dataclass
class DensesOptions(PooledOptions):
    """The baseline's: the same pooled text vector, then one 2-way softmax per label."""
