"""The literal commands a user runs, on a hellonlp-format file as the original's users have them,
and the exported SavedModel in a clean process that imports only tensorflow and tensorflow_text."""

import importlib.metadata
import json
import os
import subprocess

import pytest
from conftest import REVIEWS, ROOT, TINY, assert_export_parity, run_command, run_script, write_hellonlp


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    d = tmp_path_factory.mktemp("e2e")
    train = write_hellonlp(d / "train.csv", REVIEWS * 4, bom=True, crlf=True)  # as exported by Excel
    test = write_hellonlp(d / "test.csv", REVIEWS, bom=True, crlf=True)
    run_dir = d / "run"
    # The README's command in its own process. XLA stays off, as in every tiny run: it compiled
    # each batch shape of this one for most of a minute; test_trainer.py checks that its compiled
    # steps train and predict as the plain ones do.
    proc = run_script("classifier_multi_label/train.py", "--train-file", train, "--test-file", test,
                      "--output-dir", run_dir, *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"dir": d, "run": run_dir, "train": train, "test": test, "proc": proc}


def test_train_writes_the_run_folder(trained):
    run = trained["run"]
    for name in ("config.json", "labels.txt", "vocab.txt", "encoder.json", "model.weights.h5", "thresholds.json",
                 "metrics.json", "dev_metrics.json", "history.json", "export/1/saved_model.pb"):
        assert (run / name).exists(), name
    assert list((run / "logs" / "train").iterdir()), "no TensorBoard events"
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("micro_f1", "macro_f1", "samples_f1", "hamming_loss", "subset_accuracy", "jaccard_samples",
                "hellonlp_f1", "per_label"):
        assert key in metrics
    assert metrics["num_examples"] == len(REVIEWS)
    # The 4-row held-out dev set is too small for per-label thresholds: the default rule (auto)
    # tunes one global threshold, and the log says why.
    thresholds = json.loads((run / "thresholds.json").read_text())
    assert thresholds["strategy"] == "global" and thresholds["objective"] == "micro"
    assert "too few to tune a threshold per label" in trained["proc"].stderr
    assert (run / "labels.txt").read_text(encoding="utf-8").split() == ["价格", "制热", "噪音", "外观"]
    err = trained["proc"].stderr
    assert "no --dev-file: holding out" in err  # the hold-out is announced, not silent
    assert "precision float32, XLA off" in err
    check = json.loads((run / "data_check.json").read_text())  # the data check ran first
    assert list(check["splits"]) == ["train", "dev", "test"] and check["splits"]["test"]["rows"] == len(REVIEWS)
    assert check["leakage"]["train/test"]["exact"] == len(REVIEWS)  # each test text is a training text too
    assert {cut["count"] for cut in check["cut_by_max_seq_length"].values()} == {0}  # short reviews, 32 tokens
    assert "data check (data_check.json)" in err and f"{len(REVIEWS)} test rows repeat a train text" in err
    assert "test:" in trained["proc"].stdout and "micro_f1" in trained["proc"].stdout
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    config = json.loads((run / "config.json").read_text())  # options resolved from the encoder, recorded
    head = config["head"]  # --pooling auto, from scratch: max over 768 features of 3-token windows
    assert (head["pooling"], head["projection"], head["projection_width"]) == ("max", 768, 3)
    assert config["train"]["head_learning_rate"] == config["train"]["learning_rate"]
    baseline = json.loads((run / "baseline_metrics.json").read_text())  # --baseline auto: small data
    assert {"dev", "test", "verdict", "seconds"} <= set(baseline)
    assert baseline["test"]["num_examples"] == len(REVIEWS)
    assert baseline["verdict"] in trained["proc"].stdout + err  # said in the run's own output
    env = json.loads((run / "environment.json").read_text())  # the code and libraries it ran on
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert env["classifier_multi_label"]["source"]["commit"] == head.strip()  # the tests run in the checkout
    assert env["libraries"]["tensorflow"] == importlib.metadata.version("tensorflow")
    assert env["devices"] and "resumed" not in env


def test_eval_predict_export_commands(trained):
    run, test = trained["run"], trained["test"]
    proc = run_command("classifier_multi_label/eval.py", "--model-dir", run, "--test-file", test,
                       "--output", trained["dir"] / "eval.json")
    assert proc.returncode == 0, proc.stderr[-2000:]
    evaluated = json.loads((trained["dir"] / "eval.json").read_text())
    assert evaluated["micro_f1"] == pytest.approx(json.loads((run / "metrics.json").read_text())["micro_f1"])

    proc = run_command("classifier_multi_label/predict.py", "--model-dir", run, input="制热很快\n声音很大\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["text"] for r in rows] == ["制热很快", "声音很大"]
    assert set(rows[0]["scores"]) == {"价格", "制热", "噪音", "外观"}
    assert all(set(r["labels"]) <= set(r["scores"]) for r in rows)

    proc = run_command("classifier_multi_label/export.py", "--model-dir", run, "--export-dir", run / "export")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith(os.path.join("export", "2"))  # versions auto-increment
    assert not [d for d in os.listdir(run / "export") if d.startswith(".tmp")]  # nothing half-written left
    proc = run_command("classifier_multi_label/export.py", "--model-dir", run, "--export-dir", run / "export",
                       "--version", "2")
    assert proc.returncode == 2 and "immutable" in proc.stderr
    assert (run / "export" / "2" / "assets.extra" / "environment.json").read_text() == (
        run / "environment.json").read_text()
    # --export-explain through the command: test_explain.py's served-signature test
    assert "explain" not in json.loads((run / "export" / "2" / "assets.extra" / "export.json").read_text())


def test_export_parity_in_a_clean_process(trained):
    from classifier_multi_label import PooledHead

    assert_export_parity(trained["run"], PooledHead, "classifier_multi_label")


def test_bad_input_is_a_clear_error_not_a_traceback(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("content,label\n好,价格\n坏,质量,多余\n", encoding="utf-8")
    proc = run_command("classifier_multi_label/train.py", "--train-file", bad, "--output-dir", tmp_path / "r", *TINY)
    assert proc.returncode == 2
    assert "bad.csv:3" in proc.stderr and "fix:" in proc.stderr and "Traceback" not in proc.stderr


def test_run_folder_of_another_package_is_refused(trained, tmp_path):
    from classifier_multi_label import PooledHead, load_run

    with pytest.raises(ValueError, match="was trained by classifier_multi_label; use"):
        load_run(str(trained["run"]), PooledHead, "classifier_multi_label_textcnn")


def test_layering_core_imports_no_sibling():
    import ast

    packages = ["classifier_multi_label", "classifier_multi_label_textcnn", "classifier_multi_label_denses",
                "classifier_multi_label_seq2seq", "contrib"]
    bad = []
    for pkg in packages:
        for dirpath, _, files in os.walk(os.path.join(ROOT, pkg)):
            for f in files:
                if not f.endswith(".py"):
                    continue
                tree = ast.parse(open(os.path.join(dirpath, f), encoding="utf-8").read())
                for node in ast.walk(tree):
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                        [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
                    for name in names:
                        top = name.split(".")[0]
                        if top in packages and top != pkg and (pkg == "classifier_multi_label" or
                                                               top != "classifier_multi_label"):
                            bad.append(f"{dirpath}/{f} imports {name}")
    assert bad == []


def test_precision_resolution(monkeypatch):
    from classifier_multi_label import model as model_lib

    monkeypatch.setattr(model_lib, "cpu_has_amx_bf16", lambda: True)
    assert model_lib.resolve_precision("auto", None) == ("mixed_bfloat16", False)  # XLA off in bfloat16
    monkeypatch.setattr(model_lib, "cpu_has_amx_bf16", lambda: False)
    assert model_lib.resolve_precision("auto", None) == ("float32", True)
    assert model_lib.resolve_precision("mixed_bfloat16", True) == ("mixed_bfloat16", True)  # explicit wins
    with pytest.raises(ValueError, match="--precision must be one of"):
        model_lib.resolve_precision("float16", None)
    monkeypatch.setattr(model_lib, "cpu_has_amx_bf16", lambda: True)
    assert model_lib.resolve_precision("auto", None, head_supports_bfloat16=False) == ("float32", True)
    # GPUs decide, not the CPU: bfloat16 where every GPU has bfloat16 tensor cores (8.0+), XLA on.
    for capabilities, expected in (([(8, 0), (9, 0)], "mixed_bfloat16"), ([(8, 6), (7, 5)], "float32"),
                                   ([(7, 0)], "float32"), ([(0, 0)], "float32")):
        monkeypatch.setattr(model_lib, "gpu_compute_capabilities", lambda c=capabilities: c)
        assert model_lib.resolve_precision("auto", None) == (expected, True), capabilities
    assert model_lib.resolve_precision("auto", None, head_supports_bfloat16=False) == ("float32", True)
    with pytest.raises(ValueError, match="trains in float32 only"):
        model_lib.resolve_precision("mixed_bfloat16", None, head_supports_bfloat16=False)


@pytest.mark.slow  # about 70 s; bfloat16 is emulated (slow) on CPUs without bfloat16 units
def test_mixed_bfloat16_trains_and_exports(tmp_path):
    from classifier_multi_label import PooledHead
    from classifier_multi_label_seq2seq import Seq2SeqHead

    train = write_hellonlp(tmp_path / "train.csv", REVIEWS * 4)
    flags = [f for f in TINY if f not in ("--precision", "float32")]
    for package, head_cls in (("classifier_multi_label", PooledHead), ("classifier_multi_label_seq2seq", Seq2SeqHead)):
        run_dir = tmp_path / package
        proc = run_script(f"{package}/train.py", "--train-file", train, "--output-dir", run_dir,
                          "--precision", "mixed_bfloat16", *flags)
        assert proc.returncode == 0, proc.stderr[-3000:]
        cfg = json.loads((run_dir / "config.json").read_text())["train"]
        assert (cfg["precision"], cfg["jit_compile"]) == ("mixed_bfloat16", False)
        assert "precision mixed_bfloat16, XLA off" in proc.stderr
        # bfloat16 keeps about 3 significant digits: the export must agree with the loaded run to that.
        assert_export_parity(run_dir, head_cls, package, atol=5e-3)
    proc = run_script("contrib/label_mask/train.py", "--train-file", train, "--output-dir", tmp_path / "lm",
                      "--precision", "mixed_bfloat16", *flags)
    assert proc.returncode == 2 and "trains in float32 only" in proc.stderr
