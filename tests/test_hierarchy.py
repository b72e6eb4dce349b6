"""--label-hierarchy: parents read from label names, trained as extra targets, scored per level,
kept out of what a user reads unless asked for (predictions, the export, labels.txt)."""

import json
import os

import numpy as np
import pytest
from conftest import REVIEWS, TINY_OPTIONS, CleanProcess, run_command
from sklearn import metrics as skm

from classifier_multi_label.data import LabelVocab
from classifier_multi_label.hierarchy import LabelHierarchy
from classifier_multi_label.thresholds import final_decisions

NAMES = ["事件-婚礼", "事件-死亡", "组织-裁员", "组织-融资-A轮", "其他"]


def test_outputs_are_the_labels_then_the_parents_their_names_imply():
    h = LabelHierarchy(LabelVocab(NAMES), "-")
    assert h.outputs.names == NAMES + ["事件", "组织", "组织-融资"]
    assert h.num_primary == len(NAMES)
    assert h.levels == [2, 2, 2, 3, 1, 1, 1, 2]
    assert h.expand([["组织-融资-A轮"], ["其他"], []]) == [["组织-融资-A轮", "组织", "组织-融资"], ["其他"], []]
    y = h.multi_hot([["组织-融资-A轮"]])
    assert y.tolist() == [[0, 0, 0, 1, 0, 0, 1, 1]]


def test_flat_without_a_separator_or_when_no_name_has_it():
    for h in (LabelHierarchy(LabelVocab(NAMES)), LabelHierarchy(LabelVocab(["a", "b"]), "-")):
        assert h.outputs.names == h.labels.names and not h.hierarchical and not h.parents
        assert h.expand([["a"]]) == [["a"]]


def test_a_given_label_can_be_a_parent_and_an_empty_prefix_is_none():
    h = LabelHierarchy(LabelVocab(["体育", "体育-足球", "-x"]), "-")
    assert h.parents == [] and h.hierarchical  # 体育 is given: no auxiliary column; "-x" has no parent ""
    assert h.close(np.array([[0, 1, 0], [0, 0, 1]])).numpy().tolist() == [[1, 1, 0], [0, 0, 1]]


def test_decisions_keep_at_least_one_on_the_given_labels_and_bring_parents_in():
    h = LabelHierarchy(LabelVocab(["a-x", "a-y", "b-z"]), "-")  # outputs a-x, a-y, b-z, a, b
    scores = np.array([[0.9, 0.1, 0.2, 0.1, 0.1],    # a-x passes: its parent a comes in
                       [0.2, 0.3, 0.1, 0.95, 0.1],   # nothing given passes; the top score is the parent a
                       [0.1, 0.1, 0.1, 0.1, 0.8]], np.float32)  # b passes on its own
    thresholds = np.full(5, 0.5, np.float32)
    got = h.decide({"scores": scores}, thresholds, at_least_one=True).numpy()
    # Row 2: at-least-one picks a-y (the best given label), not the parent a. Row 3: b passes on its
    # own; the forced given label is the first of the tied ones, a-x, which brings a.
    assert got.tolist() == [[1, 0, 0, 1, 0], [0, 1, 0, 1, 0], [1, 0, 0, 1, 1]]
    loose = LabelHierarchy(LabelVocab(["a-x", "a-y", "b-z"]), "-", consistent=False)
    plain = final_decisions({"scores": scores}, thresholds, False).numpy()
    np.testing.assert_array_equal(loose.decide({"scores": scores}, thresholds, False).numpy(), plain)


def test_metrics_are_on_the_given_labels_with_one_row_per_level():
    h = LabelHierarchy(LabelVocab(["a-x", "a-y", "b-z"]), "-")
    rng = np.random.default_rng(0)
    y = h.multi_hot([[n] for n in rng.choice(["a-x", "a-y", "b-z"], 40)])  # [40, 5]
    scores = np.clip(y * 0.6 + rng.uniform(0, 0.5, y.shape), 0, 1)
    decisions = (scores >= 0.5).astype(int)
    m = h.metrics(y, scores, decisions)
    assert m["micro_f1"] == pytest.approx(skm.f1_score(y[:, :3], decisions[:, :3], average="micro"))
    [top, child] = m["levels"]
    assert (top["level"], top["num_labels"], child["level"], child["num_labels"]) == (1, 2, 2, 3)
    assert top["micro_f1"] == pytest.approx(skm.f1_score(y[:, 3:], decisions[:, 3:], average="micro"))
    assert child["micro_f1"] == pytest.approx(m["micro_f1"])
    assert [r["label"] for r in m["parent_labels"]] == ["a", "b"]
    assert "levels" not in LabelHierarchy(LabelVocab(["a", "b"])).metrics(y[:, :2], scores[:, :2], decisions[:, :2])


HIER = {"制热": "功能-制热", "噪音": "功能-噪音", "外观": "外观-颜值", "价格": "价格"}


@pytest.fixture(scope="module")
def hierarchy_run(tmp_path_factory):
    """A tiny baseline run with --label-hierarchy - on the review set, labels renamed into a tree."""
    import classifier_multi_label as cml

    texts, labels = [t for t, _ in REVIEWS], [[HIER[lab] for lab in ls] for _, ls in REVIEWS]
    run_dir = tmp_path_factory.mktemp("hierarchy") / "run"
    run = cml.train("sigmoid", train=(texts * 3, labels * 3), dev=(texts, labels), test=(texts, labels),
                    output_dir=str(run_dir), label_hierarchy="-", baseline="none", pooling="mean",
                    **dict(TINY_OPTIONS, epochs=3))
    return run, run_dir, texts


def test_a_hierarchy_run_trains_parents_and_reports_per_level(hierarchy_run):
    run, run_dir, texts = hierarchy_run
    assert run.labels.names == ["价格", "功能-制热", "功能-噪音", "外观-颜值", "功能", "外观"]
    with open(run_dir / "labels.txt", encoding="utf-8") as fh:
        assert fh.read().split() == ["价格", "功能-制热", "功能-噪音", "外观-颜值"]  # the given labels only
    metrics = json.loads((run_dir / "metrics.json").read_text("utf-8"))
    assert len(metrics["per_label"]) == 4 and [lv["num_labels"] for lv in metrics["levels"]] == [3, 3]
    assert [r["label"] for r in metrics["parent_labels"]] == ["功能", "外观"]
    thresholds = json.loads((run_dir / "thresholds.json").read_text("utf-8"))["thresholds"]
    assert set(thresholds) == set(run.labels.names)  # the parents have their own
    rows = run.predict(texts, parents=True)
    for row in rows:
        assert set(row["labels"]) <= set(run.labels.names[:4]) and set(row["scores"]) == set(run.labels.names[:4])
        for label in row["labels"]:  # consistency: a predicted child brings its parent
            if "-" in label:
                assert label.split("-")[0] in row["parents"]
    assert "parents" not in run.predict(texts[:1])[0]
    with open(run.report(), encoding="utf-8") as fh:  # the report's summary has the per-level rows
        page = fh.read()
    assert "test level 1 of the label hierarchy" in page and "test level 2 of the label hierarchy" in page


def test_a_hierarchy_export_returns_the_given_labels_and_the_parents_apart(hierarchy_run):
    run, run_dir, texts = hierarchy_run
    [version] = os.listdir(run_dir / "export")
    answer = CleanProcess.ask(run_dir / "export" / version, texts)
    local = run.predict(texts, parents=True)
    assert answer["label_names"][0] == run.labels.names[:4] and answer["parent_label_names"][0] == ["功能", "外观"]
    assert [[n for n in row if n] for row in answer["labels"]] == [row["labels"] for row in local]
    assert [[n for n in row if n] for row in answer["parent_labels"]] == [row["parents"] for row in local]
    info = json.loads((run_dir / "export" / version / "assets.extra" / "export.json").read_text("utf-8"))
    assert info["label_hierarchy"] == "-" and info["parent_labels"] == ["功能", "外观"]


def test_predict_parents_from_the_command_line(hierarchy_run, sigmoid_run_dir):
    run, run_dir, texts = hierarchy_run
    proc = run_command("classifier_multi_label/predict.py", "--model-dir", run_dir, "--parents", input=texts[0])
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = json.loads(proc.stdout)
    assert row["parents"] == run.predict(texts[:1], parents=True)[0]["parents"]
    flat = run_command("classifier_multi_label/predict.py", "--model-dir", sigmoid_run_dir, "--parents", input="x")
    assert flat.returncode != 0 and "not trained with --label-hierarchy" in flat.stderr


@pytest.mark.parametrize("request_format", ["row", "columnar"])
def test_a_rest_client_asks_for_the_parents(hierarchy_run, sigmoid_run_dir, request_format):
    from test_serving import TFServingRestStandIn, assert_rows_match

    from classifier_multi_label.client import RestClient, ServingError

    run, run_dir, texts = hierarchy_run
    stand_in = TFServingRestStandIn({"tree": str(run_dir / "export"), "flat": str(sigmoid_run_dir / "export")})
    try:
        client = RestClient(stand_in.url, "tree", request_format)
        rows, local = client.predict(texts, parents=True), run.predict(texts, parents=True)
        assert_rows_match(rows, local)
        assert [r["parents"] for r in rows] == [r["parents"] for r in local]
        assert_rows_match(client.predict(texts), run.predict(texts))
        with pytest.raises(ServingError, match="not trained with --label-hierarchy"):
            RestClient(stand_in.url, "flat", request_format).predict(texts, parents=True)
    finally:
        stand_in.close()
