"""Integrated gradients: completeness for every head scored in one pass, spans of the original
string, the heads it refuses, and predict.py --explain."""

import json

import pytest
from conftest import REVIEWS, run_command

from classifier_multi_label import load_run
from classifier_multi_label.errors import UserError
from classifier_multi_label.explain import check_supported, token_spans
from classifier_multi_label_seq2seq import Seq2SeqHead
from contrib.label_mask import LabelMaskHead

TEXTS = [t for t, _ in REVIEWS[:3]] + ["Nice heater, très bien 好看"]


@pytest.mark.parametrize("fixture", ["sigmoid_run_dir", "demo_run_dir", "denses_run_dir"])
def test_attributions_sum_to_the_logit_difference_for_each_one_pass_head(fixture, request):
    run = load_run(str(request.getfixturevalue(fixture)))
    rows = run.explain(TEXTS, labels=run.labels.names, steps=64)  # every label, predicted or not
    for text, row in zip(TEXTS, rows):
        assert row["text"] == text and [lab["label"] for lab in row["labels"]] == run.labels.names
        for lab in row["labels"]:
            total = sum(s["attribution"] for s in lab["spans"])
            # the midpoint rule's error: 2% of the difference (with a floor for differences near 0)
            assert abs(total - lab["logit_difference"]) <= 0.02 * abs(lab["logit_difference"]) + 2e-3
            assert abs(lab["completeness_error"] - abs(total - lab["logit_difference"])) < 1e-4
            assert all(text[s["start"]:s["end"]] == s["span"] for s in lab["spans"])
        if text.isascii() is False and " " not in text:  # a Chinese text: one span per character, in order
            assert [s["span"] for s in row["labels"][0]["spans"]] == list(text)


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
