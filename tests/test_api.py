"""The Python API and the heads registry: heads by name, options declared once and checked, data in
memory, a run loaded from its path alone; the command line's help without TensorFlow."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest
from conftest import REVIEWS, ROOT, TINY, TINY_OPTIONS, run_command

import classifier_multi_label as cml
from classifier_multi_label import registry
from classifier_multi_label.config import SECTIONS, UnknownOptionError, make_parser
from classifier_multi_label.data import DataError, examples_from

ENTRY_SCRIPTS = [f"{folder}/{command}.py" for folder in
                 ("classifier_multi_label", "classifier_multi_label_textcnn", "classifier_multi_label_denses",
                  "classifier_multi_label_seq2seq", "contrib/label_mask", "contrib/prototype_contrastive")
                 for command in ("train", "eval", "predict", "export", "check_data")]


def test_every_head_is_registered_with_its_package_and_one_options_declaration():
    assert cml.heads() == ["sigmoid", "textcnn", "denses", "seq2seq", "label_mask", "prototype_contrastive"]
    packages = [registry.package_of(name) for name in cml.heads()]
    assert packages == ["classifier_multi_label", "classifier_multi_label_textcnn", "classifier_multi_label_denses",
                        "classifier_multi_label_seq2seq", "contrib.label_mask", "contrib.prototype_contrastive"]
    for name in cml.heads():
        head_cls = registry.head_class(name)
        assert registry.name_of(head_cls) == name
        assert head_cls.options is registry.options_class(name)  # the CLI's options are the head's own
        for f in dataclasses.fields(head_cls.options):
            assert f.metadata.get("help"), f"{name}: option {f.name} has no help text"


def test_head_classes_are_importable_from_their_packages():
    from classifier_multi_label import PooledHead, TextCNNHead
    from classifier_multi_label_textcnn import TextCNNHead as FromPackage

    assert FromPackage is TextCNNHead and registry.head_class("sigmoid") is PooledHead


def test_a_misspelt_head_option_fails_naming_the_right_one():
    with pytest.raises(UnknownOptionError, match="'num_filter' .*did you mean 'num_filters'"):
        cml.TextCNNHead(3, num_filter=64)
    head = cml.TextCNNHead(3, num_filters=64)
    assert head.num_filters == 64 and head.opts.num_filters == 64


def test_unknown_head_name_and_option_fail_before_any_work(tmp_path):
    with pytest.raises(registry.UnknownHeadError, match="did you mean 'textcnn'"):
        cml.train("textcn", output_dir=str(tmp_path / "a"))
    with pytest.raises(UnknownOptionError, match="did you mean 'max_seq_length'"):
        cml.train("textcnn", max_seq_len=64, output_dir=str(tmp_path / "b"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_examples_from_memory_and_dataframes():
    import pandas as pd

    ex = examples_from((["好用", " ", "声音大"], [["好评"], [], ["噪音", "噪音"]]), "train")
    assert ex.texts == ["好用", "声音大"] and ex.labels == [["好评"], ["噪音"]]  # as files: empty text skipped
    assert ex.report.skipped_empty_text == [2] and ex.report.repeated_labels == [3]
    frame = pd.DataFrame({"content": ["a b", "c"], "labels": [["x", "y"], []]})
    assert examples_from(frame, "dev").labels == [["x", "y"], []]
    joined = pd.DataFrame({"text": ["a b", "c"], "label": ["x,y", ""]})
    with pytest.raises(DataError, match=r"(?s)<dev>:1: the label cell is a string .*label_separator"):
        examples_from(joined, "dev")  # never split on a guessed separator
    assert examples_from(joined, "dev", label_separator=",").labels == [["x", "y"], []]
    with pytest.raises(DataError, match="<train>:2: the labels must be a list of label names, got 'x,y'"):
        examples_from((["a", "b"], [["x"], "x,y"]), "train")
    with pytest.raises(DataError, match="2 texts but 1 label lists"):
        examples_from((["a", "b"], [["x"]]), "train")


def test_train_in_memory_predict_evaluate_load_and_export(demo_run_dir, tmp_path):
    """conftest's demo_run_dir is `cml.train("textcnn", train=(texts, labels), dev=<DataFrame>, ...)`."""
    import pandas as pd

    config = json.loads((demo_run_dir / "config.json").read_text())
    assert config["head_name"] == "textcnn" and config["package"] == "classifier_multi_label_textcnn"
    assert config["head"] == {"filter_sizes": [2, 3], "num_filters": 8, "dropout": 0.5}  # all resolved options
    assert config["data"]["train_file"] == str(demo_run_dir / "data" / "train.jsonl")  # kept in the run
    assert len((demo_run_dir / "data" / "train.jsonl").read_text(encoding="utf-8").splitlines()) == 3 * len(REVIEWS)
    run = cml.load_run(str(demo_run_dir))  # the path alone
    rows = run.predict(["制热很快", "好看又便宜"])
    assert len(rows) == 2 and set(rows[0]) == {"labels", "scores"} and len(rows[0]["scores"]) == 4
    texts, labels = [t for t, _ in REVIEWS], [ls for _, ls in REVIEWS]
    from_memory = run.evaluate((texts, labels))
    assert run.evaluate(pd.DataFrame({"text": texts, "labels": labels}))["micro_f1"] == from_memory["micro_f1"]
    test_metrics = json.loads((demo_run_dir / "metrics.json").read_text())  # test: the same texts
    assert from_memory["micro_f1"] == pytest.approx(test_metrics["micro_f1"])
    version = run.export(str(tmp_path / "serving"))
    assert version == str(tmp_path / "serving" / "1") and os.path.isfile(os.path.join(version, "saved_model.pb"))


def test_every_flag_has_help_with_its_default_and_choices():
    for name in cml.heads():
        parser = make_parser("", registry.options_class(name))
        for action in parser._actions:
            if action.dest in ("help", "config"):
                continue
            assert action.help and "(default: " in action.help, f"{name}: {action.option_strings} lacks help"
    parser = make_parser("", None)
    loss = next(a for a in parser._actions if a.dest == "train.loss")
    assert loss.choices == ("bce", "focal", "asl", "class_balanced", "pos_weight", "logit_adjusted")
    assert {f.name for s in SECTIONS.values() for f in dataclasses.fields(s)} <= {
        a.dest.split(".", 1)[1] for a in parser._actions if "." in a.dest}


# What --help of each entry point imports: neither TensorFlow nor Keras.
HELP_PROBE = """
import runpy, sys
sys.argv = [sys.argv[1], "--help"]
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit:
    pass
print("LOADED", sorted({"tensorflow", "keras", "keras_hub"} & set(sys.modules)))
"""


@pytest.mark.parametrize("script", ENTRY_SCRIPTS)
def test_help_explains_every_flag_without_tensorflow(script):
    proc = subprocess.run([sys.executable, "-c", HELP_PROBE, os.path.join(ROOT, script)], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("LOADED []"), proc.stdout[-500:]
    assert proc.stderr == ""  # no start-up chatter
    assert f"usage: {script}" in proc.stdout
    expected = {"train.py": "--train-file TRAIN_FILE", "check_data.py": "--train-file FILE"}
    assert expected.get(os.path.basename(script), "--model-dir DIR") in proc.stdout


def test_module_entry_point_runs_any_head(denses_run_dir, tiny_data, tmp_path):
    """`python -m classifier_multi_label train --head NAME` (conftest's `denses_run_dir`); its eval, in a
    process of its own, refuses another package's run folder in one line, with no TensorFlow start-up lines."""
    assert json.loads((denses_run_dir / "config.json").read_text())["head_name"] == "denses"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-m", "classifier_multi_label", "eval", "--head", "textcnn",
                           "--model-dir", str(denses_run_dir), "--test-file", tiny_data["dev"]],
                          capture_output=True, text=True, timeout=600, cwd=str(tmp_path), env=env)
    assert proc.returncode == 2 and "was trained by classifier_multi_label_denses" in proc.stderr
    assert "cudart_stub" not in proc.stderr and "absl::InitializeLog" not in proc.stderr  # no TF start-up lines
    assert proc.stderr.count("\n") == 1, proc.stderr  # the error, one line


def test_an_internal_error_shows_its_traceback(monkeypatch, capsys, tiny_data, tmp_path):
    """Only the project's user errors exit 2 with one line; a bug (here a ValueError from inside)
    propagates with its traceback."""
    from classifier_multi_label import cli, run

    def broken(*args, **kwargs):
        raise ValueError("an internal shape bug")

    monkeypatch.setattr(run, "train", broken)
    with pytest.raises(ValueError, match="an internal shape bug"):
        cli.train("sigmoid", argv=["--train-file", tiny_data["train"], "--output-dir", str(tmp_path / "r")])


def _doc_code_blocks(page: str) -> list:
    import re

    text = open(os.path.join(ROOT, "docs", page), encoding="utf-8").read()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_new_head_of_the_docs_registers_and_trains(tiny_data, tmp_path, monkeypatch):
    """docs/heads.md "Writing a new head", as written: its two files, registered through an entry point
    (a dist-info folder on the path, as `pip install` would write), trained by name from the CLI."""
    blocks = _doc_code_blocks("heads.md")
    options_src, head_src = blocks[0].split("\n\n\n# my_package/__init__.py\n")
    package = tmp_path / "site" / "my_package"
    package.mkdir(parents=True)
    (package / "options.py").write_text(options_src, encoding="utf-8")
    (package / "__init__.py").write_text(head_src, encoding="utf-8")
    dist = tmp_path / "site" / "my_package-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 0.1\n", encoding="utf-8")
    entry_points = blocks[1].split("entry_points={", 1)[1].rsplit("}", 1)[0]
    groups = eval("{" + entry_points + "}")  # the dict the docs put in setup.py  # noqa: S307
    (dist / "entry_points.txt").write_text("".join(f"[{group}]\n" + "\n".join(entries) + "\n\n"
                                                   for group, entries in groups.items()), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))  # as a PYTHONPATH entry
    proc = run_command("classifier_multi_label", "train", "--head", "max_pool", "--dropout", "0.2",
                       "--train-file", tiny_data["train"], "--dev-file", tiny_data["dev"],
                       "--output-dir", tmp_path / "run", "--baseline", "none", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["head_name"] == "max_pool" and config["package"] == "my_package"
    assert config["head"] == {"dropout": 0.2}
    assert (tmp_path / "run" / "export" / "1" / "saved_model.pb").exists()  # served with no further code


@pytest.mark.parametrize("flags, message", [
    (["--batch-size", "0"], "--batch-size 0: must be at least 1"),
    (["--epochs", "-4"], "--epochs -4: must be at least 1"),
    (["--max-seq-length", "1"], "--max-seq-length 1: must be at least 3"),
    (["--learning-rate", "0"], "--learning-rate 0: must be positive"),
    (["--dev-fraction", "1.0"], "--dev-fraction 1: must be at least 0 and below 1"),
    (["--threshold-strategy", "perlabel"], "invalid choice: 'perlabel'"),
    (["--export-tokenizer", "tftext"], "invalid choice: 'tftext'"),
    (["--num-filter", "64"], "--num-filter: did you mean --num-filters?"),  # never taken as an abbreviation
])
def test_bad_flags_stop_before_any_work(flags, message, capsys, tiny_data, tmp_path):
    from classifier_multi_label import cli

    with pytest.raises(SystemExit) as e:
        cli.train("textcnn", argv=["--train-file", tiny_data["train"], "--output-dir", str(tmp_path / "run"), *flags])
    assert e.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # nothing was started


def test_a_config_file_with_a_wrong_type_is_refused(capsys, tmp_path):
    from classifier_multi_label import cli

    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"train": {"epochs": "1"}}), encoding="utf-8")
    with pytest.raises(SystemExit) as e:
        cli.train("sigmoid", argv=["--config", str(bad), "--output-dir", str(tmp_path / "run")])
    assert e.value.code == 2
    assert "option epochs (train): expected an int, got '1' (str)" in capsys.readouterr().err


def test_a_renamed_option_in_an_older_config_still_loads():
    """SharpReCL's inner classifier was the option `head` (it clashed with `--head NAME`); config.json
    files written before the rename still rebuild the same head."""
    from contrib.prototype_contrastive import PrototypeContrastiveHead

    assert PrototypeContrastiveHead.make_options(head="textcnn").classifier == "textcnn"


def test_predict_input_keeps_every_line_and_names_bad_bytes(tmp_path, monkeypatch):
    import io

    from classifier_multi_label.cli import read_texts

    path = tmp_path / "texts.txt"
    path.write_bytes("制热很快\n\n   \n声音大\n".encode("utf-8"))
    assert read_texts(str(path)) == ["制热很快", "", "   ", "声音大"]  # output row k answers input line k
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("好\n".encode() + b"\xba\xc3\n")))
    with pytest.raises(DataError, match=r"<stdin>:2: bytes b'\\xba' are not valid utf-8"):
        read_texts("-")
    with pytest.raises(DataError, match="is a folder, not a file"):
        read_texts(str(tmp_path))


@pytest.mark.parametrize("where", ["train_folder", "output_file"])
def test_paths_of_the_wrong_kind_stop_before_any_work(where, capsys, tiny_data, tmp_path):
    from classifier_multi_label import cli

    out = tmp_path / "out"
    if where == "output_file":
        out.write_text("not a folder")
    argv = ["--train-file", str(tmp_path) if where == "train_folder" else tiny_data["train"], "--output-dir", str(out)]
    with pytest.raises(SystemExit) as e:
        cli.train("sigmoid", argv=argv)
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert ("--train-file: is a folder, not a file" if where == "train_folder" else "is a file; give a folder") in err
    assert out.is_file() if where == "output_file" else not out.exists()  # nothing created or overwritten


@pytest.mark.slow
@pytest.mark.parametrize("name", ["sigmoid", "denses", "seq2seq", "label_mask", "prototype_contrastive"])
def test_the_python_snippet_runs_for_every_head(name, tmp_path):
    """README's snippet for each head name other than textcnn (the session fixture covers that one):
    train in memory, predict, evaluate, load by path, export."""
    texts, labels = [t for t, _ in REVIEWS] * 3, [ls for _, ls in REVIEWS] * 3
    options = {"encoder_layers": 1, "beam_width": 2} if name == "seq2seq" else \
        {"n_pos": 4, "n_neg": 8, "k_pos": 3, "k_neg": 3} if name == "prototype_contrastive" else {}
    run = cml.train(name, train=(texts, labels), dev=(texts[:12], labels[:12]), output_dir=str(tmp_path / "run"),
                    baseline="none", export=False, **TINY_OPTIONS, **options)
    assert set(run.predict(["制热很快"])[0]) == {"labels", "scores"}
    assert 0.0 <= run.evaluate((texts[:12], labels[:12]))["micro_f1"] <= 1.0
    loaded = cml.load_run(str(tmp_path / "run"))
    assert loaded.config.head_name == name and loaded.config.package == registry.package_of(name)
    assert os.path.isfile(os.path.join(loaded.export(str(tmp_path / "serving")), "saved_model.pb"))


def test_declared_choices_hold_for_python_keywords_too(tmp_path):
    with pytest.raises(ValueError, match="--loss 'bce2': use bce, focal, asl"):
        cml.train("textcnn", loss="bce2", output_dir=str(tmp_path / "a"))
    with pytest.raises(ValueError, match="--pooling 'sum': use auto, cls, mean, max, attention"):
        cml.train("sigmoid", pooling="sum", output_dir=str(tmp_path / "b"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_run_config_is_resolved_once_frozen_and_is_config_json(tmp_path):
    """Defaults that depend on the data or the encoder are decided before training and recorded;
    afterwards the run's config refuses changes, and the caller's options are left as given."""
    from classifier_multi_label.config import RunConfig

    texts, labels = [t for t, _ in REVIEWS], [ls for _, ls in REVIEWS]
    mine = RunConfig()
    options = {k: v for k, v in TINY_OPTIONS.items() if k not in ("max_seq_length", "learning_rate", "epochs")}
    run = cml.train("sigmoid", train=(texts * 3, labels * 3), dev=(texts, labels), config=mine, epochs=1,
                    output_dir=str(tmp_path / "run"), baseline="none", export=False, **options)
    saved = json.loads((tmp_path / "run" / "config.json").read_text(encoding="utf-8"))
    assert json.loads(run.config.to_json()) == saved
    assert saved["data"]["max_seq_length"] == 32  # the shortest length holding 99% of these short texts
    assert saved["train"]["learning_rate"] == 1e-3 and saved["head"]["pooling"] == "max"  # from scratch
    assert (saved["train"]["epochs"], saved["train"]["patience"]) == (1, 10)  # epochs given; patience: from scratch
    with pytest.raises(dataclasses.FrozenInstanceError, match="resolved and frozen"):
        run.config.train.epochs = 5
    with pytest.raises(TypeError):
        run.config.head["pooling"] = "cls"
    assert mine.data.max_seq_length is None and mine.train.learning_rate is None  # the caller's config unchanged
    assert mine.train.patience is None
