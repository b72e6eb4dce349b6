"""Shared test helpers: tiny data files, tiny model flags, command runners (in-process and subprocess)."""

import atexit
import contextlib
import io
import json
import logging
import os
import pathlib
import runpy
import select
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

# The modules with the longest single tests go first: pytest-xdist hands whole modules (`--dist
# loadscope`) to whichever worker is free, in collection order (with --no-loadscope-reorder, as the
# Makefile runs it), so a long module collected last kept one worker busy for a minute after the
# other had finished.
FIRST = ("test_end_to_end.py", "test_resume_and_sentencepiece.py", "test_distributed.py", "test_siblings.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))  # stable: the rest keep their order


# A model small enough that a subprocess trains, evaluates and exports in seconds. TINY leaves
# report.html out (a few seconds of figures per run); the session's shared runs write it.
TINY_MODEL = ["--embedding-dim", "16", "--hidden-dim", "16", "--num-layers", "1", "--num-heads", "2",
        "--intermediate-dim", "32", "--vocab-size", "300", "--max-seq-length", "32", "--batch-size", "8",
        "--epochs", "2", "--learning-rate", "1e-3",
        "--precision", "float32",  # the same numbers on any CPU (auto picks bfloat16 where AMX exists)
        "--no-jit-compile"]  # XLA compiles each batch shape: most of a tiny run (test_trainer.py checks XLA)
TINY = TINY_MODEL + ["--no-report"]

# TINY as keyword arguments of the Python API.
TINY_OPTIONS = dict(embedding_dim=16, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32, vocab_size=300,
                    max_seq_length=32, batch_size=8, epochs=2, learning_rate=1e-3, precision="float32",
                    jit_compile=False, report=False)

REVIEWS = [  # (text, labels): a small hellonlp-style set
    ("制热很快，房间很暖和", ["制热"]), ("声音很大，晚上睡不着", ["噪音"]), ("外观漂亮，颜值高", ["外观"]),
    ("制热快，声音也小", ["制热", "噪音"]), ("价格便宜，外观好看", ["价格", "外观"]), ("还没用", []),
    ("很贵，不值", ["价格"]), ("加热慢，噪音大", ["制热", "噪音"]), ("好看又便宜", ["外观", "价格"]),
    ("收到了", []), ("暖和，安静", ["制热", "噪音"]), ("样子丑", ["外观"]),
]


def write_hellonlp(path, rows, bom=False, crlf=False, none_marker="|"):
    nl = "\r\n" if crlf else "\n"
    lines = ["content,label"] + [f"{t},{'/'.join(ls) if ls else none_marker}" for t, ls in rows]
    data = nl.join(lines) + nl
    with open(path, "wb") as fh:
        fh.write((b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8"))
    return str(path)


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as fh:
        for t, ls in rows:
            fh.write(json.dumps({"text": t, "labels": ls}, ensure_ascii=False) + "\n")
    return str(path)


def run_script(script, *args, timeout=600, cwd=None, input=None):
    """Runs `python <script> args...` the way a user would; returns the CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *map(str, args)], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or ROOT, env=env, input=input)


def run_command(script, *args, input=None):
    """`python <script> args...` (or `python -m <script> args...` for a module name, no ".py") inside
    this process (no second TensorFlow start-up): the script runs as `__main__` with its argv, stdin,
    stdout and stderr; returns a CompletedProcess with its exit status (an uncaught exception
    propagates with its traceback, as it would fail the test anyway). Use `run_script` where the
    process itself is under test (start-up, signals, a clean import)."""
    argv = [str(a) for a in args]
    out, err = io.StringIO(), io.StringIO()
    stdin = io.TextIOWrapper(io.BytesIO((input or "").encode("utf-8")), encoding="utf-8")
    saved = sys.argv, sys.stdin, list(sys.path)
    code = 0
    try:
        is_module = not script.endswith(".py")
        sys.argv, sys.stdin = [script if is_module else os.path.join(ROOT, script), *argv], stdin
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                if is_module:
                    runpy.run_module(script, run_name="__main__", alter_sys=True)
                else:
                    runpy.run_path(os.path.join(ROOT, script), run_name="__main__")
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else int(e.code is not None)
    finally:
        sys.argv, sys.stdin = saved[0], saved[1]
        sys.path[:] = saved[2]
        logging.getLogger().handlers.clear()  # the command's log handler wrote to `err`, now closed
    return subprocess.CompletedProcess([script, *argv], code, out.getvalue(), err.getvalue())


@pytest.fixture(autouse=True)
def root_logging_restored():
    """The root logger's handlers as they were before each test. A command called in-process points
    them at the test's captured stderr, which is closed once the test ends: any later log line
    would print a "Logging error" traceback instead of the message."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def tiny_data(tmp_path):
    """train/dev/test hellonlp CSVs of the small review set (train repeated for some signal)."""
    train = write_hellonlp(tmp_path / "train.csv", REVIEWS * 3)
    dev = write_hellonlp(tmp_path / "dev.csv", REVIEWS)
    test = write_hellonlp(tmp_path / "test.csv", REVIEWS)
    return {"train": train, "dev": dev, "test": test, "dir": tmp_path}


# A process that imports only tensorflow, as TF Serving has it: one JSON request per line on stdin
# ([export path, texts, signature]), one JSON answer per line on stdout (every output of the
# signature as lists, strings decoded). One such process serves the session.
SERVE = """
import json, sys, traceback
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.framework import op_def_registry
for line in sys.stdin:
    path, texts, signature = json.loads(line)
    try:
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString(open(path + "/saved_model.pb", "rb").read())
        ops = {n.op for g in proto.meta_graphs for n in g.graph_def.node}
        ops |= {n.op for g in proto.meta_graphs for f in g.graph_def.library.function for n in f.node_def}
        out = tf.saved_model.load(path).signatures[signature](text=tf.constant(texts))
        loaded = sorted({m.split(".")[0] for m in sys.modules} & {"classifier_multi_label", "keras_hub",
                                                                  "tensorflow_text"})
        answer = {name: [[v.decode() for v in row] for row in value.numpy().tolist()] if value.dtype == tf.string
                  else value.numpy().tolist() for name, value in out.items()}  # string outputs: [batch, n]
        answer.update(loaded=loaded, unregistered_ops=sorted(op for op in ops if op_def_registry.get(op) is None))
    except Exception:
        answer = {"error": traceback.format_exc()}
    print(json.dumps(answer), flush=True)
"""


class CleanProcess:
    """The SERVE process, started on first use (about 8 s of TensorFlow start-up, paid once)."""

    proc = None

    @classmethod
    def ask(cls, path, texts, timeout=300, signature="serving_default"):
        if cls.proc is None or cls.proc.poll() is not None:
            env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
            cls.stderr = tempfile.TemporaryFile("w+")
            # cwd: an empty folder, so nothing of this project is importable by accident.
            cls.proc = subprocess.Popen([sys.executable, "-c", SERVE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=cls.stderr, text=True, env=env, cwd=tempfile.mkdtemp())
            atexit.register(cls.proc.kill)
        cls.proc.stdin.write(json.dumps([str(path), texts, signature]) + "\n")
        cls.proc.stdin.flush()
        ready, _, _ = select.select([cls.proc.stdout], [], [], timeout)
        line = cls.proc.stdout.readline() if ready else ""
        if not line:
            cls.proc.kill()
            cls.stderr.seek(0)
            raise AssertionError(f"the TensorFlow-only process gave no answer: {cls.stderr.read()[-3000:]}")
        answer = json.loads(line)
        assert "error" not in answer, answer.get("error")
        return answer


PARITY_TEXTS = ["制热很快，声音也小", "", "好看又便宜" * 3, "x" * 100_000, "🔥 emoji 和 English mixed\t\n"]


def assert_export_parity(run_dir, head_cls, package, atol=1e-5):
    """export/1 of `run_dir`, loaded in a process importing only tensorflow, gives the in-process
    model's scores (1e-5), decisions and label names on awkward texts; its graph holds core
    TensorFlow ops only (the core-op tokenizer, chosen by default for a WordPiece vocabulary)."""
    from classifier_multi_label import load_run

    run = load_run(str(run_dir), head_cls, package)
    predicted = run.infer(PARITY_TEXTS)
    expected = predicted["scores"]
    served = CleanProcess.ask(run_dir / "export" / "1", PARITY_TEXTS)
    assert served["loaded"] == []  # neither this project nor keras-hub nor tensorflow-text was needed
    assert served["unregistered_ops"] == []  # every op is core TensorFlow: any TF Serving build runs it
    export_info = json.loads((run_dir / "export" / "1" / "assets.extra" / "export.json").read_text())
    assert export_info["tokenizer"] == "core" and export_info["package"] == package
    np.testing.assert_allclose(np.array(served["scores"]), expected, atol=atol)
    decisions = np.array(served["decisions"])
    if atol > 1e-5:  # bfloat16: a score this close to its threshold may land on either side
        return
    np.testing.assert_array_equal(decisions, run.decisions(predicted))
    for row, dec, labels, count in zip(expected, decisions, served["labels"], served["label_count"]):
        chosen = sorted(np.flatnonzero(dec), key=lambda i: -row[i])
        assert labels[:count] == [run.labels.names[i] for i in chosen] and set(labels[count:]) <= {""}


def assert_attributions_complete(run, texts):
    """Integrated gradients of every label (predicted or not) of each text sum to the label's logit
    difference from the baseline, and the spans are the original string's."""
    rows = run.explain(texts, labels=run.labels.names, steps=64)
    for text, row in zip(texts, rows):
        assert row["text"] == text and [lab["label"] for lab in row["labels"]] == run.labels.names
        for lab in row["labels"]:
            total = sum(s["attribution"] for s in lab["spans"])
            # the midpoint rule's error: 2% of the difference (with a floor for differences near 0)
            assert abs(total - lab["logit_difference"]) <= 0.02 * abs(lab["logit_difference"]) + 2e-3
            assert abs(lab["completeness_error"] - abs(total - lab["logit_difference"])) < 1e-4
            assert all(text[s["start"]:s["end"]] == s["span"] for s in lab["spans"])
        if text.isascii() is False and " " not in text:  # a Chinese text: one span per character, in order
            assert [s["span"] for s in row["labels"][0]["spans"]] == list(text)


REPORT_SECTIONS = ("summary", "curves", "labels", "pr", "calibration", "cooccurrence", "confused", "losses",
                   "explained", "label-errors", "lengths", "data")


def assert_report(run_dir, path=None) -> str:
    """The run's report.html (or `path`): every section, every figure a PNG that decodes, the CJK font
    inline, the label names in the page. -> its text."""
    import base64
    import re

    from matplotlib import image

    html = (pathlib.Path(path) if path else pathlib.Path(run_dir) / "report.html").read_text(encoding="utf-8")
    assert all(f'id="{s}"' in html for s in REPORT_SECTIONS)
    pngs = re.findall(r'<img alt="[^"]+" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(pngs) >= 5 and len(pngs) == html.count("<img ")
    for png in pngs:
        assert image.imread(io.BytesIO(base64.b64decode(png)), format="png").shape[0] > 50
    names = (pathlib.Path(run_dir) / "labels.txt").read_text(encoding="utf-8").split()
    assert all(name in html for name in names)
    assert '@font-face { font-family: "Report Sans SC"; src: url(data:font/otf;base64,' in html
    assert "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html  # nothing fetched
    return html


def review_splits(d) -> tuple:
    """(train, dev, test) hellonlp CSVs of the small review set in folder `d`, train repeated 3 times."""
    return tuple(write_hellonlp(d / f"{split}.csv", REVIEWS * (3 if split == "train" else 1))
                 for split in ("train", "dev", "test"))


def built_once(tmp_path_factory, name: str, build) -> pathlib.Path:
    """The folder `name`, filled by `build(folder)` once per test session, however many pytest-xdist
    workers ask: the first builds it (a file lock held), the others wait and share it. Training
    a run takes a worker tens of seconds; without this each worker trains its own copy. Tests
    only read the folder (those that change a run work on a copy)."""
    from filelock import FileLock

    if not os.environ.get("PYTEST_XDIST_WORKER"):  # one process: its own temporary folder
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    folder = tmp_path_factory.getbasetemp().parent / f"shared-{name}"  # the workers' common parent
    with FileLock(f"{folder}.lock"):
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)  # a build that failed part-way in another worker
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


@pytest.fixture(scope="session")
def sigmoid_run_dir(tmp_path_factory):
    """One tiny baseline (sigmoid head) run, trained once per test session by its train.py command on
    train, dev and test files of the small review set: two epochs (two checkpoints), exported. Tests
    that change a run folder work on a copy. It writes report.html, as train.py does by default."""
    def build(d):
        train, dev, test = review_splits(d)
        proc = run_command("classifier_multi_label/train.py", "--train-file", train, "--dev-file", dev,
                           "--test-file", test, "--output-dir", d / "run", *TINY_MODEL)
        assert proc.returncode == 0, proc.stderr[-3000:]

    return built_once(tmp_path_factory, "sigmoid", build) / "run"


@pytest.fixture(scope="session")
def denses_run_dir(tmp_path_factory):
    """One tiny multi-dense run, trained once per test session by the module entry point
    (`python -m classifier_multi_label train --head denses`) on the small review set, exported."""
    def build(d):
        train, dev, test = review_splits(d)
        proc = run_command("classifier_multi_label", "train", "--head", "denses", "--train-file", train,
                           "--dev-file", dev, "--test-file", test, "--output-dir", d / "run", *TINY_MODEL)
        assert proc.returncode == 0, proc.stderr[-3000:]

    return built_once(tmp_path_factory, "denses", build) / "run"


@pytest.fixture(scope="session")
def demo_run_dir(tmp_path_factory):
    """One tiny TextCNN run on the small review set, trained once per test session through the Python
    API (its encoder pre-trained first, exported, its report written), for tests and docstring
    examples that need a trained run and do not change it."""
    def build(d):
        import pandas as pd

        import classifier_multi_label as cml

        texts, labels = [t for t, _ in REVIEWS], [ls for _, ls in REVIEWS]
        dev = pd.DataFrame({"text": texts, "labels": labels})  # each shape the API accepts: lists, a DataFrame
        cml.train("textcnn", train=(texts * 3, labels * 3), dev=dev, test=(texts, labels),
                  output_dir=str(d / "run"), filter_sizes=[2, 3], num_filters=8, baseline="none",
                  pretrain_epochs=2, **dict(TINY_OPTIONS, report=True))

    return built_once(tmp_path_factory, "demo", build) / "run"
