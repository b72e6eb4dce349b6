"""Command-line entry points shared by every package: each package's train.py, eval.py, predict.py,
export.py, report.py and check_data.py is a few lines naming its head and calling one of these; ``python -m
classifier_multi_label {train,eval,predict,export,report,check-data} --head NAME ...`` (or the
``classifier-multi-label`` console script) reaches the same functions for any registered head.

Parsing and ``--help`` import no TensorFlow. Errors of the project's user-error type
(`errors.UserError`: bad data, options, paths, a run folder from another package) and missing or
unwritable files print one clear message and exit with status 2; any other exception is a bug and
shows its traceback.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import logging
import os
import re
import sys
import tempfile

from . import registry
from .config import IG_BASELINES, IG_STEPS, TOKENIZERS, Parser, parse_config
from .errors import TrainingInterrupted, UserError
from .files import check_output_dir, check_output_file, open_output

log = logging.getLogger("classifier_multi_label")
USER_ERRORS = (UserError, FileExistsError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)
COMMANDS = ("train", "eval", "predict", "export", "report", "check-data")
# TensorFlow's C++ start-up lines (absl logs them before TF_CPP_MIN_LOG_LEVEL applies): not for users.
TF_CHATTER = re.compile(r"absl::InitializeLog|cudart_stub|cuda_platform|cuda_executor|cuInit|cpu_feature_guard|"
                        r"oneDNN custom operations|TF-TRT|Unable to register cu|computation_placer|"
                        r"rebuild TensorFlow with the appropriate compiler flags|This TensorFlow binary is optimized")


def load_tensorflow():
    """Imports TensorFlow (and looks for devices, which logs too) with its C++ start-up lines removed
    from standard error; any other line it writes there is passed on."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode("utf-8", "replace").splitlines(keepends=True):
                if not TF_CHATTER.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


def _setup_logging(tensorflow: bool = True):
    if tensorflow:
        load_tensorflow()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr, force=True)
    for noisy in ("tensorflow", "absl", "h5py"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def user_errors(fn):
    """`fn` as a command-line entry point: a user error prints its message (status 2), Ctrl-C its
    checkpoint and how to continue (status 130), without a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:  # Ctrl-C outside training, or a second one during it
            print("\ninterrupted", file=sys.stderr)
            sys.exit(130)
        except TrainingInterrupted as e:
            print(str(e), file=sys.stderr)
            sys.exit(130)
    return wrapper


def _head(head, package=None):
    """(head class or None, its registered name, its package) from a class or a name; the class is
    imported only when it is one already (a name stays a name until the work starts)."""
    if isinstance(head, str):
        return None, head, registry.package_of(head)
    name = registry.name_of(head)
    return head, name, package or registry.package_of(name)


def _prog(package: str, command: str) -> str:
    return f"{package.replace('.', '/')}/{command}.py"


@user_errors
def train(head, package: str | None = None, argv=None):
    """`<package>/train.py`: train, evaluate, tune thresholds, export. `head`: its name or class."""
    head_cls, name, package = _head(head, package)
    options = head_cls.options if head_cls is not None else registry.options_class(name)
    cfg = parse_config(argv, package, options, description=f"Train a {package} model ({name} head): train, "
                       "tune thresholds on dev, evaluate on test, export a SavedModel.", prog=_prog(package, "train"))
    _setup_logging()
    from .run import train as train_run

    train_run(cfg, head_cls or registry.head_class(name))


def _model_dir_parser(head, package, command: str, description: str) -> tuple:
    """(a parser with --model-dir for `command`, the package) of eval.py and export.py."""
    _, _, package = _head(head, package)
    parser = Parser(description=description, prog=_prog(package, command))
    parser.add_argument("--model-dir", required=True, metavar="DIR", help="a run folder written by train.py")
    return parser, package


def _load(model_dir: str, package: str):
    from .run import load_run

    return load_run(model_dir, package=package)


@user_errors
def evaluate(head, package: str | None = None, argv=None):
    """`<package>/eval.py --model-dir D --test-file F`: metrics of a trained run on a labelled file."""
    parser, package = _model_dir_parser(head, package, "eval", "Evaluate a trained run on a labelled file "
                                        "(thresholds as tuned on dev).")
    parser.add_argument("--test-file", required=True, metavar="FILE",
                        help="labelled data in the run's format (hellonlp CSV, one-hot CSV, jsonl or tsv)")
    parser.add_argument("--output", metavar="FILE", help="write the metrics JSON here (default: print only)")
    args = parser.parse_args(argv)
    if args.output:
        check_output_file(args.output, "--output", "metrics.json")
    _setup_logging()
    from .files import write_json
    from .hierarchy import format_levels
    from .metrics import format_metrics
    from .run import _read

    run = _load(args.model_dir, package)
    metrics = run.evaluate(_read(args.test_file, run.config))
    print(format_metrics(metrics, f"{args.test_file}") + format_levels(metrics))
    if args.output:
        write_json(args.output, {"file": args.test_file, **metrics})


@user_errors
def report(head, package: str | None = None, argv=None):
    """`<package>/report.py --model-dir D [--test-file F] [--output FILE]`: rebuild a run's report.html."""
    parser, package = _model_dir_parser(head, package, "report", "Build a trained run's report.html: learning "
                                        "curves, per-label metrics and thresholds, precision-recall, calibration, "
                                        "co-occurrence, confused pairs, largest errors, likely label errors.")
    parser.add_argument("--test-file", metavar="FILE",
                        help="labelled data to report on (default: the run's --test-file, if it had one)")
    parser.add_argument("--output", metavar="FILE", help="where to write the page (default: <model-dir>/report.html)")
    args = parser.parse_args(argv)
    if args.output:
        check_output_file(args.output, "--output", "report.html")
    _setup_logging()
    run = _load(args.model_dir, package)
    print(run.report(test=args.test_file, out=args.output))


def read_texts(path: str, encoding: str = "utf-8") -> list:
    """Texts to predict: `-` (stdin) or a .txt file, one per line, every line kept (a blank line is an
    empty text, so output row k answers input line k); or a .jsonl/.csv/.tsv data file."""
    from .data import DataError, decode, read_examples

    if path == "-":
        return decode(sys.stdin.buffer.read(), "<stdin>", encoding).splitlines()
    if os.path.isdir(path):
        raise DataError(path, None, "is a folder, not a file", "give a text file (one text per line), a data file, "
                        "or - for standard input")
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
    if not os.path.isfile(path):
        raise DataError(path, None, "no such file", "check the path, or give - for standard input")
    with open(path, "rb") as fh:
        return decode(fh.read(), path, encoding).splitlines()


@user_errors
def predict(head, package: str | None = None, argv=None):
    """`<package>/predict.py --model-dir D | --server URL | --grpc HOST:PORT [--input F|-]`: JSON lines
    of labels and scores, from a run folder in this process or from a model TF Serving serves."""
    _, _, package = _head(head, package)
    parser = Parser(description="Predict labels for texts; prints one JSON line per text.",
                                     prog=_prog(package, "predict"))
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--model-dir", metavar="DIR", help="a run folder written by train.py")
    where.add_argument("--server", metavar="URL", help="TF Serving's REST address, e.g. http://localhost:8501")
    where.add_argument("--grpc", metavar="HOST:PORT",
                       help="TF Serving's gRPC address, e.g. localhost:8500 (pip install -e '.[serving]')")
    parser.add_argument("--model-name", help="the served model's name (with --server/--grpc)")
    parser.add_argument("--model-version", type=int, metavar="N",
                        help="a version to ask for (default: the server's latest)")
    parser.add_argument("--request-format", choices=("row", "columnar"), default="row",
                        help="REST body: instances (row) or inputs (columnar) (default: row)")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="texts per request (default: 64)")
    parser.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                        help="seconds per request (default: 30)")
    parser.add_argument("--retries", type=int, default=3, metavar="N",
                        help="retries after a connection failure or 5xx/UNAVAILABLE (default: 3)")
    parser.add_argument("--input", default="-", metavar="FILE",
                        help="a text file (one text per line), a data file, or - for stdin (default: -)")
    parser.add_argument("--output", metavar="FILE", help="write JSON lines here (default: standard output)")
    parser.add_argument("--explain", action="store_true",
                        help="with --model-dir: add each predicted label's integrated-gradients attributions over "
                             "the text's words (\"explanations\"; docs/explain.md)")
    _ig_options(parser, "--explain")
    parser.add_argument("--parents", action="store_true",
                        help="a model trained with --label-hierarchy: add the predicted parent labels (\"parents\") "
                             "and their scores")
    args = parser.parse_args(argv)
    if args.explain and not args.model_dir:
        parser.error("--explain needs --model-dir (a model exported with --export-explain answers TF Serving's "
                     "`explain` signature instead; docs/explain.md)")
    if args.output:
        check_output_file(args.output, "--output", "predictions.jsonl")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr, force=True)
    if args.model_dir:
        _setup_logging()
        predictor = _load(args.model_dir, package)
    else:
        from .client import GrpcClient, RestClient

        if not args.model_name:
            parser.error("--server and --grpc need --model-name (the name TF Serving serves the model under)")
        options = dict(version=args.model_version, timeout=args.timeout, retries=args.retries,
                       batch_size=args.batch_size)
        predictor = (RestClient(args.server, args.model_name, args.request_format, **options) if args.server
                     else GrpcClient(args.grpc, args.model_name, **options))
    texts = read_texts(args.input)
    if args.parents and args.model_dir and not predictor.hierarchy.parents:
        raise UserError(f"--parents: {args.model_dir} was not trained with --label-hierarchy, so it has no parent "
                        "labels; leave --parents out")
    rows = predictor.predict(texts, parents=args.parents)
    if args.explain:  # the attributions of each text's predicted labels, in the order of "labels"
        for row, explained in zip(rows, predictor.explain(texts, steps=args.ig_steps, baseline=args.ig_baseline)):
            row["explanations"] = explained["labels"]
    out = open_output(args.output) if args.output else sys.stdout
    try:
        for text, result in zip(texts, rows):
            out.write(json.dumps({"text": text, **result}, ensure_ascii=False) + "\n")
    finally:
        if args.output:
            out.close()


def _ig_options(parser, flag: str):
    """--ig-steps and --ig-baseline, which take effect with `flag`."""
    parser.add_argument("--ig-steps", type=int, default=IG_STEPS, metavar="N",
                        help=f"with {flag}: interpolation steps of integrated gradients (default: {IG_STEPS})")
    parser.add_argument("--ig-baseline", choices=IG_BASELINES, default=IG_BASELINES[0],
                        help=f"with {flag}: the token that replaces the text in the baseline "
                             f"(default: {IG_BASELINES[0]})")


@user_errors
def export(head, package: str | None = None, argv=None):
    """`<package>/export.py --model-dir D --export-dir D [--version N]`: a TF Serving SavedModel."""
    parser, package = _model_dir_parser(head, package, "export", "Export a trained run as a TF Serving SavedModel "
                                        "(raw text in, label names out).")
    parser.add_argument("--export-dir", required=True, metavar="DIR",
                        help="TF Serving's model base path; versions go below it")
    parser.add_argument("--version", type=int, metavar="N",
                        help="the version folder (default: one more than the largest existing version)")
    parser.add_argument("--tokenizer", choices=TOKENIZERS,
                        help="the graph's tokenizer (default: the run's --export-tokenizer; auto: core TensorFlow "
                             "ops when they give the same token ids)")
    parser.add_argument("--export-explain", action=argparse.BooleanOptionalAction, default=None,
                        help="also an `explain` signature: integrated-gradients attributions of each predicted "
                             "label, core ops only (default: the run's --export-explain; docs/explain.md)")
    _ig_options(parser, "--export-explain")
    parser.add_argument("--models-config", metavar="FILE",
                        help="add this model to a TF Serving --model_config_file (created if absent)")
    parser.add_argument("--model-name", help="its name there (default: the export folder's name)")
    parser.add_argument("--base-path", metavar="PATH",
                        help="its base_path as the server sees it (default: /models/<model-name>)")
    args = parser.parse_args(argv)
    check_output_dir(args.export_dir, "--export-dir")
    if args.models_config:
        check_output_file(args.models_config, "--models-config", "models.config")
    _setup_logging()
    from .serving import write_models_config

    run = _load(args.model_dir, package)
    print(run.export(args.export_dir, args.version, args.tokenizer, explain=args.export_explain,
                     ig_steps=args.ig_steps, ig_baseline=args.ig_baseline))
    if args.models_config:
        name = args.model_name or os.path.basename(os.path.normpath(args.export_dir))
        write_models_config(args.models_config, name, args.base_path or f"/models/{name}")
        print(f"{args.models_config}: model {name!r}")


@user_errors
def check_data(head=None, package: str | None = None, argv=None):
    """`<package>/check_data.py --train-file F [--dev-file F] [--test-file F]`: what the data hides
    (`data_check.check_data`), a summary on stdout and the full report in --output. No TensorFlow."""
    from .config import DataConfig, add_options

    prog = _prog(_head(head, package)[2], "check_data") if head else "check_data"
    parser = Parser(prog=prog, description="Check labelled data before training: rows, labels per text, label "
                    "frequencies per split, labels found in one split only, exact and near-duplicate texts within "
                    "and across splits (leakage, with line numbers), identical texts with different labels.")
    for split in ("train", "dev", "test"):
        parser.add_argument(f"--{split}-file", dest=f"data.{split}_file", metavar="FILE", required=split == "train",
                            help=f"{split} data (hellonlp CSV, one-hot CSV, jsonl or tsv)"
                                 + (" (required)" if split == "train" else " (default: none)"))
    add_options(parser, DataConfig, "data", only=("data_format", "text_column", "label_column", "label_separator",
                                                  "encoding"))
    parser.add_argument("--near-jaccard", type=float, default=0.8, metavar="J",
                        help="character 3-gram Jaccard similarity from which two texts are near-duplicates "
                             "(default: 0.8)")
    parser.add_argument("--output", default="data_check.json", metavar="FILE",
                        help="the full report, JSON (default: data_check.json)")
    parser.add_argument("--strict", action="store_true",
                        help="exit with status 1 on leakage across splits or on identical texts with different labels")
    args = vars(parser.parse_args(argv))
    data = {k.split(".", 1)[1]: v for k, v in args.items() if k.startswith("data.")}
    if not 0 < args["near_jaccard"] <= 1:
        parser.error(f"--near-jaccard {args['near_jaccard']}: give a similarity in (0, 1]")
    check_output_file(args["output"], "--output", "data_check.json")
    _setup_logging(tensorflow=False)
    from .data import read_split
    from .data_check import check_data as check
    from .data_check import problems, summary
    from .files import write_json

    d = DataConfig(**data)  # the format options as training reads them, defaults included
    splits = {split: read_split(getattr(d, f"{split}_file"), d) for split in ("train", "dev", "test")
              if getattr(d, f"{split}_file")}
    report = check(splits, args["near_jaccard"])
    write_json(args["output"], report, indent=1)
    print(summary(report))
    print(f"full report: {args['output']}")
    found = problems(report)
    if args["strict"] and found:
        print("--strict: " + "; ".join(found), file=sys.stderr)
        sys.exit(1)


def main(argv=None):
    """`python -m classifier_multi_label {train,eval,predict,export,report,check-data} --head NAME ...`: any
    registered head's commands (eval, predict, export and report read the head from the run folder; --head is
    checked against it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m classifier_multi_label", add_help=False, allow_abbrev=False,
                                     description="Train, evaluate, predict with and export multi-label text "
                                                 "classifiers. Add --help after a command for its options.")
    parser.add_argument("command", choices=COMMANDS)
    parser.add_argument("--head", default="sigmoid", help="the head, by name (default: sigmoid): "
                        "sigmoid, textcnn, denses, seq2seq, label_mask, prototype_contrastive, or a registered one")
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return
    args, rest = parser.parse_known_args(argv)
    try:
        package = registry.package_of(args.head)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    entry = {"train": train, "eval": evaluate, "predict": predict, "export": export, "report": report,
             "check-data": check_data}[args.command]
    entry(args.head, package, rest)
