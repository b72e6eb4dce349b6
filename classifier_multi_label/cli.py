"""Command-line entry points shared by every package: each package's train.py, eval.py, predict.py
and export.py is a few lines naming its head and calling one of these.

User errors (bad data, a wrong path, a run folder from another package) print one clear message
and exit with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import logging
import sys

from .config import parse_config
from .data import DataError, read_examples
from .encoder import EncoderError
from .metrics import format_metrics

log = logging.getLogger("classifier_multi_label")
USER_ERRORS = (DataError, EncoderError, FileExistsError, FileNotFoundError, ValueError)


def _setup_logging():
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr, force=True)
    for noisy in ("tensorflow", "absl", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def _user_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
    return wrapper


@_user_errors
def train(head_cls, package: str, argv=None):
    """`<package>/train.py`: train, evaluate, tune thresholds, export."""
    from .run import train as train_run

    cfg = parse_config(argv, package, head_cls.options, description=f"Train a {package} model.")
    _setup_logging()
    train_run(cfg, head_cls)


def _model_dir_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model-dir", required=True, help="a run folder written by train.py")
    return parser


@_user_errors
def evaluate(head_cls, package: str, argv=None):
    """`<package>/eval.py --model-dir D --test-file F`: metrics of a trained run on a labelled file."""
    from .files import write_json
    from .run import _read, load_run

    parser = _model_dir_parser("Evaluate a trained run on a labelled file.")
    parser.add_argument("--test-file", required=True)
    parser.add_argument("--output", help="write the metrics JSON here (default: print only)")
    args = parser.parse_args(argv)
    _setup_logging()
    run = load_run(args.model_dir, head_cls, package)
    metrics = run.evaluate(_read(args.test_file, run.config))
    print(format_metrics(metrics, f"{args.test_file}"))
    if args.output:
        write_json(args.output, {"file": args.test_file, **metrics})


def read_texts(path: str, encoding: str = "utf-8") -> list:
    """Texts to predict: `-` (stdin) or a .txt file, one per line; a .jsonl/.csv/.tsv data file."""
    if path == "-":
        return [line.rstrip("\n") for line in sys.stdin if line.strip()]
    if path.endswith((".jsonl", ".csv", ".tsv", ".json")):
        try:
            return read_examples(path, encoding=encoding).texts
        except DataError:
            if not path.endswith(".csv"):
                raise
        with open(path, encoding=encoding, newline="") as fh:  # a CSV of texts with a `content` column
            rows = list(csv.DictReader(fh))
        if rows and "content" in rows[0]:
            return [r["content"] for r in rows]
        raise DataError(path, 1, "no `content` column", "give a CSV with a content column, or a .txt file")
    with open(path, encoding=encoding) as fh:
        return [line.rstrip("\n") for line in fh if line.strip()]


@_user_errors
def predict(head_cls, package: str, argv=None):
    """`<package>/predict.py --model-dir D [--input F|-]`: JSON lines of labels and scores."""
    from .run import load_run

    parser = _model_dir_parser("Predict labels for texts; prints JSON lines.")
    parser.add_argument("--input", default="-", help="a text file (one text per line), a data file, or - for stdin")
    parser.add_argument("--output", help="write JSON lines here instead of stdout")
    args = parser.parse_args(argv)
    _setup_logging()
    run = load_run(args.model_dir, head_cls, package)
    texts = read_texts(args.input)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for text, result in zip(texts, run.predict(texts)):
            out.write(json.dumps({"text": text, **result}, ensure_ascii=False) + "\n")
    finally:
        if args.output:
            out.close()


@_user_errors
def export(head_cls, package: str, argv=None):
    """`<package>/export.py --model-dir D --export-dir D [--version N]`: a TF Serving SavedModel."""
    from .run import load_run

    parser = _model_dir_parser("Export a trained run as a TF Serving SavedModel (raw text in).")
    parser.add_argument("--export-dir", required=True, help="TF Serving's model base path; versions go below it")
    parser.add_argument("--version", type=int, help="default: one more than the largest existing version")
    args = parser.parse_args(argv)
    _setup_logging()
    run = load_run(args.model_dir, head_cls, package)
    print(run.export(args.export_dir, args.version))
