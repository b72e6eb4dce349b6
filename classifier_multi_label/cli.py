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
import os
import sys

from .config import parse_config
from .data import DataError, read_examples
from .client import ServingError
from .encoder import EncoderError
from .metrics import format_metrics

log = logging.getLogger("classifier_multi_label")
USER_ERRORS = (DataError, EncoderError, FileExistsError, FileNotFoundError, ServingError, ValueError)


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
    """`<package>/predict.py --model-dir D | --server URL | --grpc HOST:PORT [--input F|-]`: JSON lines
    of labels and scores, from a run folder in this process or from a model TF Serving serves."""
    parser = argparse.ArgumentParser(description="Predict labels for texts; prints JSON lines.")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--model-dir", help="a run folder written by train.py")
    where.add_argument("--server", help="TF Serving's REST address, e.g. http://localhost:8501")
    where.add_argument("--grpc", help="TF Serving's gRPC address, e.g. localhost:8500 (pip install -e '.[serving]')")
    parser.add_argument("--model-name", help="the served model's name (with --server/--grpc)")
    parser.add_argument("--model-version", type=int, help="a version to ask for (default: the server's latest)")
    parser.add_argument("--request-format", choices=("row", "columnar"), default="row",
                        help="REST body: instances (row) or inputs (columnar)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per request")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per request")
    parser.add_argument("--retries", type=int, default=3, help="retries after a connection failure or 5xx/UNAVAILABLE")
    parser.add_argument("--input", default="-", help="a text file (one text per line), a data file, or - for stdin")
    parser.add_argument("--output", help="write JSON lines here instead of stdout")
    args = parser.parse_args(argv)
    _setup_logging()
    if args.model_dir:
        from .run import load_run

        predictor = load_run(args.model_dir, head_cls, package)
    else:
        from .client import GrpcClient, RestClient

        if not args.model_name:
            parser.error("--server and --grpc need --model-name (the name TF Serving serves the model under)")
        options = dict(version=args.model_version, timeout=args.timeout, retries=args.retries,
                       batch_size=args.batch_size)
        predictor = (RestClient(args.server, args.model_name, args.request_format, **options) if args.server
                     else GrpcClient(args.grpc, args.model_name, **options))
    texts = read_texts(args.input)
    rows = predictor.predict(texts)
    out = open(args.output, "w", encoding="utf-8") if args.output else sys.stdout
    try:
        for text, result in zip(texts, rows):
            out.write(json.dumps({"text": text, **result}, ensure_ascii=False) + "\n")
    finally:
        if args.output:
            out.close()


@_user_errors
def export(head_cls, package: str, argv=None):
    """`<package>/export.py --model-dir D --export-dir D [--version N]`: a TF Serving SavedModel."""
    from .run import load_run
    from .serving import TOKENIZERS, write_models_config

    parser = _model_dir_parser("Export a trained run as a TF Serving SavedModel (raw text in).")
    parser.add_argument("--export-dir", required=True, help="TF Serving's model base path; versions go below it")
    parser.add_argument("--version", type=int, help="default: one more than the largest existing version")
    parser.add_argument("--tokenizer", choices=TOKENIZERS,
                        help="auto (default: core TensorFlow ops when they give the same token ids), core, tf_text")
    parser.add_argument("--models-config", help="add this model to a TF Serving --model_config_file (created if absent)")
    parser.add_argument("--model-name", help="its name there (default: the export folder's name)")
    parser.add_argument("--base-path", help="its base_path as the server sees it (default: /models/<model-name>)")
    args = parser.parse_args(argv)
    _setup_logging()
    run = load_run(args.model_dir, head_cls, package)
    print(run.export(args.export_dir, args.version, args.tokenizer))
    if args.models_config:
        name = args.model_name or os.path.basename(os.path.normpath(args.export_dir))
        write_models_config(args.models_config, name, args.base_path or f"/models/{name}")
        print(f"{args.models_config}: model {name!r}")
