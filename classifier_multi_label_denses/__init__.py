"""ALBERT + one 2-way softmax per label (the original's "Denses" variant). See model.py."""

from .model import DensesHead

__all__ = ["DensesHead"]
