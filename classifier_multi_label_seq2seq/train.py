"""Train the ALBERT + seq2seq (attention decoder, beam search) multi-label classifier (no arguments: the bundled demo data)."""
import pathlib
import sys

sys.path[0] = str(pathlib.Path(__file__).resolve().parents[1])  # import the project, not this folder

from classifier_multi_label import cli  # noqa: E402
from classifier_multi_label_seq2seq import Seq2SeqHead  # noqa: E402

if __name__ == "__main__":
    cli.train(Seq2SeqHead, "classifier_multi_label_seq2seq")
