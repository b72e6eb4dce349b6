"""Build a trained run's report.html: python classifier_multi_label_denses/report.py --model-dir D [--test-file F]"""
import pathlib
import sys

# Python puts this script's folder first on sys.path; its modules (model.py, ...) must not shadow
# libraries, so the project root takes its place (the installed package is the same code).
sys.path[0] = str(pathlib.Path(__file__).resolve().parents[1])

from classifier_multi_label import cli  # noqa: E402

if __name__ == "__main__":
    cli.report("denses")
