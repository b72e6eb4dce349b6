"""Every row of the bad-input table in docs/data-and-encoders.md, through the command-line entry points:
a one-line error
naming the file (and line) and the fix, exit status 2, no traceback; or, for a huge text, a result."""

import json
import os
import shutil

import pytest
from conftest import REVIEWS, TINY, write_hellonlp

from classifier_multi_label import PooledHead, cli
from classifier_multi_label_textcnn import TextCNNHead

BASE = "classifier_multi_label"


def fails(capsys, entry, argv, *expected, head=PooledHead, package=BASE):
    """Runs `entry` (cli.train, cli.evaluate, ...) and returns its error output, checking the contract."""
    with pytest.raises(SystemExit) as e:
        entry(head, package, [str(a) for a in argv])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "Traceback" not in err, err
    assert "\nerror: " in "\n" + err, err
    for piece in expected:
        assert piece in err, f"{piece!r} not in {err!r}"
    return err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    return {"dir": d, "train": write_hellonlp(d / "train.csv", REVIEWS * 3),
            "dev": write_hellonlp(d / "dev.csv", REVIEWS),
            "test": write_hellonlp(d / "test.csv", REVIEWS)}


@pytest.fixture(scope="module")
def trained(sigmoid_run_dir):
    return sigmoid_run_dir  # trained on files with the content of `files`; tests that change it copy it


def train_args(files, tmp_path, **override):
    paths = {"train": files["train"], "dev": files["dev"], "test": files["test"], **override}
    return ["--train-file", paths["train"], "--dev-file", paths["dev"], "--test-file", paths["test"],
            "--output-dir", tmp_path / "run", *TINY, "--no-export"]


@pytest.mark.parametrize("content, expected", [
    ("content,label\n好,价格\n坏,质量,多余\n", ["bad.csv:3", "expected 2 fields", "fix:"]),  # malformed row
    ("body,label\n好,价格\n", ["bad.csv:1", "no text column 'content'", "--text-column"]),  # missing column
    ("", ["bad.csv", "the file is empty", "fix:"]),  # empty file
    (b"content,label\n\xe5\xa5\xbd,a\n\xba\xdc\xba\xc3,b\n", ["bad.csv:3", "not valid utf-8", "--encoding"]),
])
def test_bad_training_file(capsys, files, tmp_path, content, expected):
    bad = tmp_path / "bad.csv"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    fails(capsys, cli.train, train_args(files, tmp_path, train=bad), *expected)
    assert not (tmp_path / "run" / "model.weights.h5").exists()


@pytest.mark.parametrize("split", ["dev", "test"])
def test_unknown_label_in_dev_or_test(capsys, files, tmp_path, split):
    bad = write_hellonlp(tmp_path / f"{split}.csv", [("好", ["价格"]), ("坏", ["质量"])])
    fails(capsys, cli.train, train_args(files, tmp_path, **{split: bad}), f"{split}.csv:3", "'质量'", "fix:")


def test_label_file_that_lacks_a_training_label(capsys, files, tmp_path):
    label_file = tmp_path / "labels.txt"
    label_file.write_text("制热\n噪音\n外观\n", encoding="utf-8")  # the training data also has 价格
    fails(capsys, cli.train, [*train_args(files, tmp_path), "--label-file", label_file],
          "train.csv:", "'价格'", str(label_file))


def test_wrong_encoder_path(capsys, files, tmp_path):
    fails(capsys, cli.train, [*train_args(files, tmp_path), "--encoder", tmp_path / "no" / "such" / "albert"],
          str(tmp_path / "no" / "such" / "albert"), "not found")


def test_damaged_weights_file(capsys, trained, tmp_path, files):
    run_dir = tmp_path / "copy"
    shutil.copytree(trained, run_dir)
    (run_dir / "model.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 100)
    fails(capsys, cli.evaluate, ["--model-dir", run_dir, "--test-file", files["test"]],
          str(run_dir / "model.weights.h5"), "cannot load the weights", "Retrain, or resume")


def damage(checkpoint_prefix):
    for data in checkpoint_prefix.parent.glob(checkpoint_prefix.name + ".data-*"):
        data.write_bytes(b"not a checkpoint" * 10)


def test_damaged_newest_checkpoint_resumes_from_the_one_before(capsys, trained, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(trained, run_dir)
    damage(run_dir / "checkpoints" / "ckpt-2")
    cli.train(PooledHead, BASE, ["--output-dir", str(run_dir), "--resume", "--no-export"])
    err = capsys.readouterr().err
    assert "ckpt-2 cannot be restored" in err and "resumed from" in err and "ckpt-1" in err
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    original, resumed = (json.loads((d / "metrics.json").read_text()) for d in (trained, run_dir))
    for key in ("micro_f1", "macro_f1", "hamming_loss"):
        assert resumed[key] == pytest.approx(original[key], abs=1e-6)  # epoch 2 redone, same result


def test_all_checkpoints_damaged(capsys, trained, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(trained, run_dir)
    for n in (1, 2):
        damage(run_dir / "checkpoints" / f"ckpt-{n}")
    fails(capsys, cli.train, ["--output-dir", run_dir, "--resume"], "no checkpoint in", "can be restored",
          f"delete {run_dir / 'checkpoints'}")


def test_run_folder_of_another_package(capsys, trained, files):
    fails(capsys, cli.evaluate, ["--model-dir", trained, "--test-file", files["test"]],
          "was trained by classifier_multi_label", "classifier_multi_label/<script>.py",
          head=TextCNNHead, package="classifier_multi_label_textcnn")


def test_not_a_run_folder(capsys, tmp_path, files):
    fails(capsys, cli.evaluate, ["--model-dir", tmp_path, "--test-file", files["test"]], "no config.json")


@pytest.mark.slow  # about 21 s; by default export parity runs a 100,000-character text (conftest.PARITY_TEXTS)
def test_a_text_of_a_million_characters(capsys, files, tmp_path):
    """Accepted, not an error: the CSV reader takes the field and the tokenizer keeps the first
    --max-seq-length tokens, in training and in prediction."""
    huge = "制热很快" * 250_000  # 1,000,000 characters
    train = write_hellonlp(tmp_path / "train.csv", [(huge, ["制热"])] + REVIEWS * 3)
    cli.train(PooledHead, BASE, [str(a) for a in train_args(files, tmp_path, train=train)])
    capsys.readouterr()
    texts = tmp_path / "texts.txt"
    texts.write_text(huge + "\n声音很大\n", encoding="utf-8")
    cli.predict(PooledHead, BASE, ["--model-dir", str(tmp_path / "run"), "--input", str(texts),
                                   "--output", str(tmp_path / "out.jsonl")])
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 2 and len(rows[0]["text"]) == 1_000_000 and set(rows[0]["scores"]) == {
        "制热", "噪音", "外观", "价格"}


def test_loading_reads_no_code_or_pickle():
    """Run folders hold JSON, text and weight files; nothing in the packages unpickles or loads a
    Keras model file, which could run code (Keras refuses lambdas only in safe mode)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    risky = ("import pickle", "pickle.load", "allow_pickle=True", "safe_mode=False", "load_model(", "torch.load(")
    found = []
    for pkg in ("classifier_multi_label", "classifier_multi_label_textcnn", "classifier_multi_label_denses",
                "classifier_multi_label_seq2seq", "contrib"):
        for dirpath, _, names in os.walk(os.path.join(root, pkg)):
            for name in names:
                if name.endswith(".py"):
                    text = open(os.path.join(dirpath, name), encoding="utf-8").read()
                    found += [f"{dirpath}/{name}: {r}" for r in risky if r in text]
    assert found == []


@pytest.mark.parametrize("rows, expected", [
    ([("好", ["价格"]), ("坏", ["价格"])] * 5, ["train.csv: every row has the label '价格', the only label", "fix:"]),
    ([("好", []), ("坏", [])] * 5, ["train.csv: no row has a label", "fix:"]),
    ([("好", ["价格"])], ["train.csv: 1 training row: too few to hold out a dev set", "--dev-file"]),
])
def test_training_data_nothing_can_be_learned_from(capsys, tmp_path, rows, expected):
    train = write_hellonlp(tmp_path / "train.csv", rows)
    fails(capsys, cli.train, ["--train-file", train, "--output-dir", tmp_path / "run", *TINY, "--no-export"],
          *expected)
    assert not (tmp_path / "run").exists()  # found before the run folder is made


def test_one_label_with_unlabelled_rows_trains_and_scores(capsys, tmp_path):
    """Binary classification is a one-label multi-label problem: metrics, thresholds and the
    TF-IDF guard keep one label (scikit-learn alone would read it as two classes). A 4-row dev set
    tunes one global threshold, and says so."""
    rows = [("声音很大", ["噪音"]), ("很安静", []), ("吵得睡不着", ["噪音"]), ("外观好看", [])] * 6
    train, dev = write_hellonlp(tmp_path / "train.csv", rows), write_hellonlp(tmp_path / "dev.csv", rows[:4])
    cli.train(PooledHead, BASE, [str(a) for a in ["--train-file", train, "--dev-file", dev, "--test-file", dev,
                                                  "--output-dir", tmp_path / "run", *TINY, "--no-export",
                                                  "--baseline", "tfidf"]])
    err = capsys.readouterr().err
    assert "dev.csv: 4 dev rows, too few to tune a threshold per label" in err, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [p["label"] for p in metrics["per_label"]] == ["噪音"] and metrics["per_label"][0]["support"] == 2
    assert metrics["micro_f1"] == metrics["per_label"][0]["f1"]  # micro over the one label, not over 0/1 classes
    assert json.loads((tmp_path / "run" / "thresholds.json").read_text())["strategy"] == "global"
    baseline = json.loads((tmp_path / "run" / "baseline_metrics.json").read_text())
    assert [p["label"] for p in baseline["test"]["per_label"]] == ["噪音"]


def test_resume_refuses_a_changed_training_option_and_applies_a_changed_threshold_rule(capsys, trained, tmp_path):
    run_dir = tmp_path / "copy"
    shutil.copytree(trained, run_dir)
    before = (run_dir / "config.json").read_text()
    fails(capsys, cli.train, ["--output-dir", run_dir, "--resume", "--batch-size", "4", "--epochs", "2"],
          "--resume: --batch-size 4 (the run has 8)", "leave this flag out", "another --output-dir")
    assert (run_dir / "config.json").read_text() == before  # nothing written
    cli.train(PooledHead, BASE, ["--output-dir", str(run_dir), "--resume", "--threshold-strategy", "fixed",
                                 "--epochs", "2", "--no-export"])  # --epochs as the run has it: not a change
    assert "--resume: --threshold-strategy 'fixed' replaces the run's 'global'" in capsys.readouterr().err
    assert json.loads((run_dir / "config.json").read_text())["thresholds"]["threshold_strategy"] == "fixed"
    assert json.loads((run_dir / "thresholds.json").read_text())["strategy"] == "fixed"


def test_output_paths_that_cannot_be_written(capsys, trained, files, tmp_path, monkeypatch):
    """Each output flag is checked before any work: a folder where a file goes, a file where a
    folder goes or inside a path, and a folder that is not writable (simulated: tests run as root)."""
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    model = ["--model-dir", trained]
    fails(capsys, cli.predict, [*model, "--input", files["test"], "--output", tmp_path],
          f"--output {tmp_path}: is a folder; give a file path, e.g. {tmp_path / 'predictions.jsonl'}")
    fails(capsys, cli.evaluate, [*model, "--test-file", files["test"], "--output", a_file / "m.json"],
          f"{a_file} is a file, so nothing can be made inside it")
    fails(capsys, cli.export, [*model, "--export-dir", a_file], f"--export-dir {a_file}: is a file; give a folder")
    fails(capsys, cli.train, ["--train-file", files["train"], "--output-dir", a_file / "run", *TINY],
          f"--output-dir {a_file / 'run'}: {a_file} is a file")
    monkeypatch.setattr("os.access", lambda path, mode: str(path) != str(tmp_path))
    fails(capsys, cli.predict, [*model, "--input", files["test"], "--output", tmp_path / "new" / "p.jsonl"],
          f"{tmp_path} is not writable", "choose a path you can write to")
    assert not (tmp_path / "new").exists()


def test_predict_output_in_a_new_folder(capsys, trained, files, tmp_path):
    out = tmp_path / "new" / "deeper" / "p.jsonl"
    cli.predict(PooledHead, BASE, ["--model-dir", str(trained), "--input", str(files["test"]), "--output", str(out)])
    assert len(out.read_text(encoding="utf-8").splitlines()) == len(REVIEWS)
