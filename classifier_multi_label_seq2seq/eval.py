"""Evaluate a trained run: python classifier_multi_label_seq2seq/eval.py --model-dir D --test-file F"""
import pathlib
import sys

sys.path[0] = str(pathlib.Path(__file__).resolve().parents[1])  # import the project, not this folder

from classifier_multi_label import cli  # noqa: E402
from classifier_multi_label_seq2seq import Seq2SeqHead  # noqa: E402

if __name__ == "__main__":
    cli.evaluate(Seq2SeqHead, "classifier_multi_label_seq2seq")
