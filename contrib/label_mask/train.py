"""Train the LM-MTC label-mask classifier (no arguments: the bundled demo data)."""
import pathlib
import sys

sys.path[0] = str(pathlib.Path(__file__).resolve().parents[2])  # import the project, not this folder

from classifier_multi_label import cli  # noqa: E402
from contrib.label_mask import LabelMaskHead  # noqa: E402

if __name__ == "__main__":
    cli.train(LabelMaskHead, "contrib.label_mask")
