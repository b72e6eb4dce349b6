"""The accuracy benchmark's own arithmetic (bench/accuracy.py), on hand-made inputs."""

import json
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench"))
import accuracy  # noqa: E402


def test_rare_labels_are_the_rarest_third_ties_by_name():
    counts = {"a": 50, "b": 3, "c": 7, "d": 3, "e": 90, "f": 12, "g": 1}
    assert accuracy.rare_labels(counts) == ["g", "b"]  # 7 // 3 = 2 labels: counts 1, then 3 (b before d)
    assert accuracy.rare_labels({"x": 4}) == ["x"]  # at least one


def test_rare_macro_f1_averages_only_the_rare_labels():
    result = {"per_label": [{"label": "a", "f1": 0.9}, {"label": "b", "f1": 0.2}, {"label": "g", "f1": 0.5}]}
    assert accuracy.rare_macro_f1(result, ["g", "b"]) == pytest.approx(0.35)
    with pytest.raises(KeyError):
        accuracy.rare_macro_f1(result, ["missing"])


def test_run_folders_and_row_labels_of_budget_variants():
    folder = accuracy.run_dir("runs", "duee", "classifier_multi_label_textcnn", "scratch", None, 20, "e30-len256")
    assert folder == os.path.join("runs", "duee-classifier_multi_label_textcnn-scratch-mlm20-e30-len256")
    assert accuracy.variant_label("mlm20-e30-len256") == "20 MLM epochs, e30, len256"
    assert accuracy.variant_label("e30") == "e30"
    assert accuracy.variant_label("") == ""
    assert accuracy.variant_label("mlmx") == "mlmx"  # not a count of epochs: shown as it is


def test_rows_without_a_run_folder_keep_their_last_numbers_in_package_order():
    packages = ["classifier_multi_label", "classifier_multi_label_textcnn", "contrib.prototype_contrastive"]
    previous = {"contrib.prototype_contrastive (textcnn head) (scratch)": {"micro_f1": 0.90},
                "classifier_multi_label_textcnn (scratch)": {"micro_f1": 0.80},
                "classifier_multi_label_textcnn (scratch, mlm20)": {"micro_f1": 0.79},
                "classifier_multi_label (scratch)": {"micro_f1": 0.50}}
    fresh = {"classifier_multi_label_textcnn (scratch, e30)": {"micro_f1": 0.91},  # new: last of its package
             "classifier_multi_label_textcnn (scratch)": {"micro_f1": 0.85}}  # re-collected: replaces
    rows, kept = accuracy.merge_rows(previous, fresh, packages)
    assert list(rows) == ["classifier_multi_label (scratch)", "classifier_multi_label_textcnn (scratch)",
                          "classifier_multi_label_textcnn (scratch, mlm20)",
                          "classifier_multi_label_textcnn (scratch, e30)",
                          "contrib.prototype_contrastive (textcnn head) (scratch)"]
    assert rows["classifier_multi_label_textcnn (scratch)"]["micro_f1"] == 0.85
    assert kept == ["contrib.prototype_contrastive (textcnn head) (scratch)",
                    "classifier_multi_label_textcnn (scratch, mlm20)", "classifier_multi_label (scratch)"]


def test_table_rows_name_the_code_they_ran():
    results = {"classifier_multi_label_textcnn (scratch, e6)": {"micro_f1": 0.9, "code": "65dca3b+"},
               "classifier_multi_label (scratch)": {"micro_f1": 0.5}}  # an older row: code unknown
    lines = accuracy.table("duee", results).splitlines()
    assert lines[0].endswith("| train s | infer ex/s | code |")
    assert lines[2].endswith("| 65dca3b+ |") and lines[3].endswith("|  |")
    assert {line.count("|") for line in lines} == {lines[0].count("|")}  # every row has every column


def test_rows_that_differ_only_by_seed_are_summarised():
    def row(seed, micro):
        return {"micro_f1": micro, "macro_f1": micro - 0.1, "rare_macro_f1": micro - 0.2,
                "config": {"train": {"seed": seed}}}

    results = {"textcnn (scratch, e6)": row(42, 0.90),  # the default seed, no seed tag
               "textcnn (scratch, e6, s43)": row(43, 0.88), "textcnn (scratch, e6, s44)": row(44, 0.89),
               "textcnn (scratch, e6, hier, s42)": row(42, 0.87),  # a group of one seed: no summary
               "textcnn (scratch, e15)": row(42, 0.91)}
    groups = accuracy.seed_groups(results)
    assert list(groups) == ["textcnn (scratch, e6)"] and [s for s, _ in groups["textcnn (scratch, e6)"]] == [42, 43, 44]
    lines = accuracy.seed_table("duee", results).splitlines()
    assert lines[2] == ("| textcnn (scratch, e6) | 42, 43, 44 | 0.8900 (0.8800 to 0.9000) | 0.7900 (0.7800 to 0.8000) "
                        "| 0.6900 (0.6800 to 0.7000) |")
    assert accuracy.seed_table("duee", {"textcnn (scratch)": row(42, 0.9)}) == ""


def test_resume_keeps_a_checkpointed_run_folder_and_a_fresh_run_empties_it(tmp_path):
    folder = tmp_path / "goemotions-classifier_multi_label_textcnn-minilm-loss-asl"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "history.json").write_text("[]")
    assert accuracy.fresh_or_resumed(str(folder), resume=True) is True
    assert (folder / "history.json").exists()
    assert accuracy.fresh_or_resumed(str(folder), resume=False) is False
    assert not folder.exists()  # the benchmark's own folder: a fresh run starts empty
    (folder / "logs").mkdir(parents=True)  # started, but stopped before its first checkpoint
    assert accuracy.fresh_or_resumed(str(folder), resume=True) is False and not folder.exists()


def test_a_resumed_run_counts_the_time_of_every_part(tmp_path):
    folder = str(tmp_path / "run")
    assert accuracy.add_elapsed(folder, 3600.04) == pytest.approx(3600.0)  # interrupted by Ctrl-C
    assert accuracy.add_elapsed(folder, 1200.0) == pytest.approx(4800.0)  # continued with --resume
    with open(os.path.join(folder, "bench_elapsed.json"), encoding="utf-8") as fh:
        assert fh.read() == "[3600.0, 1200.0]"


def test_plot_legends_sit_beside_the_axes_however_many_rows(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    figures = []
    monkeypatch.setattr(plt, "close", figures.append)  # keep the figures plot() would close
    results = {f"classifier_multi_label_textcnn (scratch, e{i})": {
        "history": [{"dev_micro_f1_tuned": 0.5 + 0.01 * (i + e)} for e in range(3)],
        "per_label": [{"label": "a", "f1": 0.5}, {"label": "b", "f1": 0.7}]} for i in range(40)}
    paths = accuracy.plot("duee", "scratch", results, {"a": 3, "b": 300}, str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ["duee-scratch-curves.png", "duee-scratch-per-label.png"]
    assert all(os.path.getsize(p) > 0 for p in paths) and len(figures) == 2
    for fig in figures:
        ax = fig.axes[0]
        renderer = fig.canvas.get_renderer()
        legend, axes = ax.get_legend().get_window_extent(renderer), ax.get_window_extent(renderer)
        assert legend.x0 >= axes.x1  # entirely to the right of the plotting area
        assert len(ax.get_legend().get_texts()) == 40
    # 40 rows with 10 colours: (colour, marker) still tells every curve apart
    assert len({(line.get_color(), line.get_marker()) for line in figures[0].axes[0].lines}) == 40


def test_resume_refuses_a_command_that_differs_from_the_run():
    from classifier_multi_label.config import resume_changes

    package = "classifier_multi_label_textcnn"

    def config(*flags):
        args = accuracy.parser().parse_args(["--dataset", "goemotions", "--encoder", "minilm", *flags])
        return accuracy.run_config("goemotions", package, accuracy.package_heads()[package], args, "runs")

    started = config("--epochs", "2", "--loss", "asl", "--tag", "loss-asl")
    # What the benchmark set away from train.py's defaults; unset options (None) resolve in the run.
    assert {"train.epochs", "train.loss", "encoder.encoder"} <= started.given
    assert "train.patience" not in started.given and "head.num_filters" not in started.given
    assert not started.train.export and not started.train.report  # neither is what the benchmark measures
    assert resume_changes(config("--epochs", "2", "--loss", "asl", "--tag", "loss-asl"), started) == {}
    assert resume_changes(config("--epochs", "2", "--loss", "focal", "--tag", "loss-asl"), started) == {
        "train.loss": ("focal", "asl")}
    changed = config("--epochs", "2", "--loss", "asl", "--tag", "loss-asl",
                     "--head-options", '{"num_filters": 64}')
    assert resume_changes(changed, started) == {"head.num_filters": (64, 128)}


def test_library_changes_and_only_they_invalidate_scores(tmp_path):
    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    (tmp_path / "classifier_multi_label").mkdir()
    (tmp_path / "bench").mkdir()
    (tmp_path / "classifier_multi_label" / "run.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    commit = subprocess.run(["git", "-C", str(tmp_path), "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    assert accuracy.library_unchanged_since(commit, root=str(tmp_path))
    (tmp_path / "bench" / "accuracy.py").write_text("# the benchmark itself\n")
    assert accuracy.library_unchanged_since(commit, root=str(tmp_path))
    (tmp_path / "classifier_multi_label" / "run.py").write_text("x = 2\n")  # uncommitted: counts
    assert not accuracy.library_unchanged_since(commit, root=str(tmp_path))
    assert not accuracy.library_unchanged_since(None, root=str(tmp_path))
    assert accuracy.clean_commit({"commit": commit, "dirty": False}) == commit
    assert accuracy.clean_commit({"commit": commit, "dirty": True}) is None and accuracy.clean_commit(None) is None


def test_results_and_docs_edits_leave_the_source_commit_clean(tmp_path):
    """A benchmark writes bench/results/ in the checkout it runs from: the next run in that checkout
    must still name its code by the commit alone (else every later row reads "+" and is re-scored)."""
    from classifier_multi_label.environment import source_commit

    def git(*args):
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    files = {"classifier_multi_label/run.py": "x = 1\n", "bench/results/duee.md": "| a |\n", "docs/a.md": "a\n",
             "setup.py": "# setup\n"}
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    assert source_commit(str(tmp_path))["dirty"] is False
    (tmp_path / "bench" / "results" / "duee.md").write_text("| b |\n")
    (tmp_path / "docs" / "a.md").write_text("b\n")
    (tmp_path / "notes.txt").write_text("untracked\n")
    assert source_commit(str(tmp_path))["dirty"] is False
    for name in ("classifier_multi_label/run.py", "setup.py"):  # code: dirty
        (tmp_path / name).write_text("changed = True\n")
        assert source_commit(str(tmp_path))["dirty"] is True, name
        git("checkout", "--", name)


def test_collect_scores_a_run_anew_only_when_the_library_changed(sigmoid_run_dir, tmp_path, monkeypatch):
    from classifier_multi_label import registry
    from classifier_multi_label import run as run_lib

    folder = tmp_path / "run"
    shutil.copytree(sigmoid_run_dir, folder)
    env = json.loads((folder / "environment.json").read_text())
    env["classifier_multi_label"]["source"] = {"commit": "trained", "dirty": False}
    (folder / "environment.json").write_text(json.dumps(env))
    unchanged = {"trained"}  # the commits whose library code is this checkout's
    monkeypatch.setattr(accuracy, "library_unchanged_since", lambda commit: commit in unchanged)
    monkeypatch.setattr(accuracy, "source_commit", lambda: {"commit": "now", "dirty": False})
    loaded, tuned = [], []
    load_run, tune = run_lib.load_run, run_lib.Run.tune_thresholds
    monkeypatch.setattr(run_lib, "load_run", lambda *a: loaded.append(1) or load_run(*a))
    monkeypatch.setattr(run_lib.Run, "tune_thresholds", lambda self, ex: tuned.append(1) or tune(self, ex))
    head_cls = registry.head_class("sigmoid")

    def collect(**kw):
        return accuracy.collect(str(folder), head_cls, "classifier_multi_label", **kw)

    trained_metrics = json.loads((folder / "metrics.json").read_text())
    # Trained by the current library: the run's own metrics.json, nothing re-tuned.
    first = collect(train_seconds=12.0)
    assert not tuned and first["scored_by"] == "trained" and first["train_seconds"] == 12.0
    assert first["micro_f1"] == trained_metrics["micro_f1"] and "split" not in first
    assert first["infer_examples_per_s"] > 0 and first["epochs_run"] == 2
    # Scored by the current library and newer than metrics.json: the cache as it is, no model loaded.
    assert collect() == first and loaded == [1]
    # The library changed since: thresholds re-tuned on dev and test scored anew, by "now".
    unchanged.clear()
    unchanged.add("now")
    again = collect()
    assert tuned == [1] and loaded == [1, 1] and again["scored_by"] == "now" and again["train_seconds"] == 12.0
    assert again["micro_f1"] == pytest.approx(trained_metrics["micro_f1"])  # same model, same rule
    assert collect() == again and tuned == [1]  # cached
    assert collect(rescore=True)["scored_by"] == "now" and tuned == [1, 1]
    # A run retrained (or resumed) after its last scoring: its newer metrics.json wins over the cache.
    older = os.path.getmtime(folder / "metrics.json") - 60
    os.utime(folder / "bench_result.json", (older, older))
    collect()
    assert tuned == [1, 1, 1]
    # A run the benchmark trained in two parts (stopped, then --resume): its time is both parts' wall time.
    accuracy.add_elapsed(str(folder), 100.0)
    accuracy.add_elapsed(str(folder), 50.5)
    assert collect()["train_seconds"] == 150.5 and tuned == [1, 1, 1]
