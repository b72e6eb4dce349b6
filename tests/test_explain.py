"""Integrated gradients: completeness for every head scored in one pass, spans of the original
string, the heads it refuses, and predict.py --explain."""

import json
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REVIEWS, assert_attributions_complete, run_command

from classifier_multi_label import load_run
from classifier_multi_label.errors import UserError
from classifier_multi_label.explain import check_supported, token_spans
from classifier_multi_label_seq2seq import Seq2SeqHead
from contrib.label_mask import LabelMaskHead

TEXTS = [t for t, _ in REVIEWS[:3]] + ["Nice heater, très bien 好看"]


@pytest.mark.parametrize("fixture", ["sigmoid_run_dir", "demo_run_dir", "denses_run_dir"])
def test_attributions_sum_to_the_logit_difference_for_each_one_pass_head(fixture, request):
    assert_attributions_complete(load_run(str(request.getfixturevalue(fixture))), TEXTS)


def test_spans_merge_word_pieces_and_cover_unknown_words():
    assert token_spans("Hello WORLD", ["hello", "world"]) == [((0, 5), [0]), ((6, 11), [1])]
    # NFKC case folding: the full-width comma is the token ","
    assert token_spans("好，的", ["好", ",", "的"]) == [((0, 1), [0]), ((1, 2), [1]), ((2, 3), [2])]
    # a token the text does not spell as modelled here still lands on a character: no attribution is lost
    assert token_spans("Hello", ["hello"], lowercase=False) == [((0, 1), [0])]
    assert token_spans("unaffable!", ["un", "##aff", "##able", "!"]) == [((0, 9), [0, 1, 2]), ((9, 10), [3])]
    assert token_spans("café 咖啡", ["cafe", "咖", "啡"]) == [((0, 4), [0]), ((5, 6), [1]), ((6, 7), [2])]
    assert token_spans("a ☃☃ b", ["a", "[UNK]", "b"]) == [((0, 1), [0]), ((2, 4), [1]), ((5, 6), [2])]


def test_heads_that_decode_over_several_passes_are_refused():
    for head, name in ((Seq2SeqHead(3), "seq2seq"), (LabelMaskHead(3), "label_mask")):
        with pytest.raises(UserError, match=f"the {name} head decodes its labels over several passes"):
            check_supported(head, name)


def test_predict_explain_adds_the_predicted_labels_attributions(demo_run_dir):
    proc = run_command("classifier_multi_label_textcnn/predict.py", "--model-dir", demo_run_dir, "--explain",
                       "--ig-steps", "8", input="制热很快，声音也小\n还没用\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert [e["label"] for e in row["explanations"]] == row["labels"]
        for e in row["explanations"]:
            assert e["score"] == pytest.approx(row["scores"][e["label"]], abs=1e-6)
            assert [s["span"] for s in e["spans"]] == list(row["text"])
    proc = run_command("classifier_multi_label_textcnn/predict.py", "--server", "http://localhost:1", "--model-name",
                       "m", "--explain", input="x\n")
    assert proc.returncode == 2 and "--explain needs --model-dir" in proc.stderr
    proc = run_command("classifier_multi_label_textcnn/predict.py", "--model-dir", demo_run_dir, "--explain",
                       "--ig-steps", "0", input="x\n")
    assert proc.returncode == 2 and "--ig-steps 0: give at least 1" in proc.stderr


@pytest.mark.parametrize("fixture", ["demo_run_dir", "denses_run_dir"])
def test_served_explain_signature_gives_run_explain_attributions_with_core_ops_only(fixture, request, tmp_path):
    """The demo run's export is written by its export.py command (--export-explain), the other's by
    the Python API."""
    from conftest import CleanProcess

    from classifier_multi_label.explain import served_rows

    run_dir = request.getfixturevalue(fixture)
    run = load_run(str(run_dir))
    if fixture == "demo_run_dir":
        proc = run_command("classifier_multi_label_textcnn/export.py", "--model-dir", run_dir, "--export-dir",
                           tmp_path / "export", "--export-explain", "--ig-steps", "16")
        assert proc.returncode == 0, proc.stderr[-2000:]
        path = proc.stdout.strip()
        assert (tmp_path / "export" / "1" / "assets.extra" / "environment.json").read_text() == (
            run_dir / "environment.json").read_text()  # the export records the code it was trained on
    else:
        path = run.export(str(tmp_path / "export"), explain=True, ig_steps=16)
    assert path == str(tmp_path / "export" / "1")
    texts = TEXTS + ["", "好看又便宜" * 3]  # the batch pads the shorter texts: padding must not change a thing
    served = CleanProcess.ask(path, texts, signature="explain")
    assert served["loaded"] == [] and served["unregistered_ops"] == []  # any TF Serving build runs it
    info = json.loads((tmp_path / "export" / "1" / "assets.extra" / "export.json").read_text())
    assert info["tokenizer"] == "core" and (info["explain"]["signature"], info["explain"]["steps"]) == ("explain", 16)
    # serving_default of the same export is unchanged by the second signature
    plain = CleanProcess.ask(path, texts)
    assert plain["scores"] == served["scores"] and plain["decisions"] == served["decisions"]
    local = run.explain(texts, steps=16)
    remote = served_rows(texts, served, info)
    assert sum(1 for row in local if row["labels"]) >= 2  # some texts have predicted labels to compare
    for mine, theirs in zip(local, remote):
        assert [lab["label"] for lab in theirs["labels"]] == [lab["label"] for lab in mine["labels"]]
        for a, b in zip(mine["labels"], theirs["labels"]):
            assert b["logit_difference"] == pytest.approx(a["logit_difference"], abs=1e-4)
            assert [(s["span"], s["start"], s["end"]) for s in b["spans"]] == \
                [(s["span"], s["start"], s["end"]) for s in a["spans"]]
            for s, t in zip(a["spans"], b["spans"]):
                assert t["attribution"] == pytest.approx(s["attribution"], abs=1e-4)
    # attributions of labels not predicted are zero, as are those of [CLS], [SEP] and padding
    attributions, decisions = np.array(served["attributions"]), np.array(served["decisions"])
    assert np.all(attributions[decisions == 0] == 0)
    empty = np.array(served["tokens"])[:, None, :] == ""  # [batch, 1, length]
    assert np.all(np.where(empty, attributions, 0) == 0) and empty.sum() > 0


def test_export_explain_refuses_heads_without_one_logit_per_label(tmp_path):
    from classifier_multi_label.serving import export_run

    run = SimpleNamespace(model=SimpleNamespace(head=Seq2SeqHead(3)), config=SimpleNamespace(head_name="seq2seq"))
    with pytest.raises(UserError, match="the seq2seq head decodes its labels over several passes"):
        export_run(run, str(tmp_path / "export"), explain_steps=8)
    assert not (tmp_path / "export").exists()  # refused before anything is written
