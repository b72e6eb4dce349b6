"""Evaluate a trained run: python contrib/label_mask/eval.py --model-dir D --test-file F"""
import pathlib
import sys

sys.path[0] = str(pathlib.Path(__file__).resolve().parents[2])  # import the project, not this folder

from classifier_multi_label import cli  # noqa: E402
from contrib.label_mask import LabelMaskHead  # noqa: E402

if __name__ == "__main__":
    cli.evaluate(LabelMaskHead, "contrib.label_mask")
