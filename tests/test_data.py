"""Readers for the four formats, the label vocabulary, and every bad input named in the issue."""

import logging

import numpy as np
import pytest
from conftest import REVIEWS, SHARED_DATA, write_hellonlp, write_jsonl

from classifier_multi_label.data import DataError, LabelVocab, check_dev, check_training_data, read_examples


def test_hellonlp_csv_with_bom_and_crlf(tmp_path):
    path = write_hellonlp(tmp_path / "t.csv", REVIEWS, bom=True, crlf=True)
    ex = read_examples(path)
    assert ex.texts[0] == "制热很快，房间很暖和"  # no BOM glued to the first text or header
    assert ex.labels[3] == ["制热", "噪音"]
    assert ex.labels[5] == []  # "|" is "no label"
    assert not any(t.endswith("\r") for t in ex.texts)
    assert ex.lines[:2] == [2, 3]


def test_hellonlp_empty_cell_means_no_label(tmp_path):
    path = write_hellonlp(tmp_path / "t.csv", [("好", []), ("坏", ["a"])], none_marker="")
    assert read_examples(path).labels == [[], ["a"]]


def test_quoted_text_with_comma_and_newline(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text('content,label\n"好用,便宜\n第二行",价格\n坏,质量\n', encoding="utf-8")
    ex = read_examples(str(path))
    assert ex.texts == ["好用,便宜\n第二行", "坏"]
    assert ex.lines == [2, 4]  # physical line numbers survive multi-line fields


def test_onehot_csv_ignores_no_label_column(tmp_path):
    path = tmp_path / "train_onehot.csv"
    path.write_text("content,|,价格,外观\n便宜,0,1,0\n好看又便宜,0,1,1\n还没用,1,0,0\n", encoding="utf-8")
    ex = read_examples(str(path))
    assert ex.header_labels == ["价格", "外观"]
    assert ex.labels == [["价格"], ["价格", "外观"], []]
    assert LabelVocab.from_examples(ex).names == ["价格", "外观"]  # header order kept


def test_jsonl_and_tsv(tmp_path):
    ex = read_examples(write_jsonl(tmp_path / "t.jsonl", REVIEWS))
    assert ex.labels[4] == ["价格", "外观"]
    tsv = tmp_path / "t.tsv"
    tsv.write_text("text\tlabels\n好看又便宜\t外观,价格\n还没用\t\n", encoding="utf-8")
    ex = read_examples(str(tsv))
    assert ex.texts == ["好看又便宜", "还没用"] and ex.labels == [["外观", "价格"], []]


def test_repeated_labels_collapse_and_are_counted(tmp_path):
    path = write_hellonlp(tmp_path / "t.csv", [("热", ["制热", "制热"]), ("吵", ["噪音"])])
    ex = read_examples(path)
    assert ex.labels[0] == ["制热"]
    assert ex.report.repeated_labels == [2]


def test_empty_text_rows_are_skipped_and_counted(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("content,label\n好,a\n,b\n   ,c\n坏,d\n", encoding="utf-8")
    ex = read_examples(str(path))
    assert ex.texts == ["好", "坏"]
    assert ex.report.skipped_empty_text == [3, 4]


@pytest.mark.parametrize("content, expect", [
    ("body,label\n好,a\n", "no text column 'content'"),  # missing column
    ("content,label\n好,a,extra\n", "expected 2 fields"),  # malformed row
    ("", "the file is empty"),
    ("content,label\n", "no rows with text"),
    ('content,label\n"unterminated,a\n', "fields"),
])
def test_bad_csv_names_file_line_and_fix(tmp_path, content, expect):
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_examples(str(path))
    msg = str(e.value)
    assert str(path) in msg and expect in msg and "fix:" in msg


def test_malformed_row_reports_its_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("content,label\n好,a\n坏,b\n又,c,d\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.csv:4: expected 2 fields"):
        read_examples(str(path))


def test_undecodable_bytes(tmp_path):
    path = tmp_path / "gbk.csv"
    path.write_bytes("content,label\n好,a\n".encode("utf-8") + "很好,b\n".encode("gbk"))
    with pytest.raises(DataError, match=r"gbk\.csv:3: .* not valid utf-8") as e:
        read_examples(str(path))
    assert "--encoding" in str(e.value)
    path2 = tmp_path / "all_gbk.csv"
    path2.write_bytes("content,label\n很好,价格\n".encode("gbk"))
    assert read_examples(str(path2), encoding="gbk").labels == [["价格"]]


def test_bad_jsonl(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": "x"\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid JSON"):
        read_examples(str(path))
    path.write_text('{"text": "a", "labels": [1]}\n', encoding="utf-8")
    with pytest.raises(DataError, match="must be a list of strings"):
        read_examples(str(path))


def test_onehot_cell_not_binary(tmp_path):
    path = tmp_path / "oh.csv"
    path.write_text("content,a,b\nx,1,2\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"oh\.csv:2: column 'b' holds '2'"):
        read_examples(str(path))


def test_unknown_label_lists_the_labels(tmp_path):
    vocab = LabelVocab(["价格", "外观"])
    ex = read_examples(write_hellonlp(tmp_path / "dev.csv", [("好", ["价格"]), ("坏", ["质量"])]))
    with pytest.raises(DataError) as e:
        vocab.check(ex, fix="add it to --label-file")
    assert "dev.csv:3" in str(e.value) and "'质量'" in str(e.value) and "价格, 外观" in str(e.value)


def test_label_vocab_file_and_multi_hot(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("|\n价格\n外观\n", encoding="utf-8")  # hellonlp's label files start with "|"
    vocab = LabelVocab.load(str(path))
    assert vocab.names == ["价格", "外观"]
    np.testing.assert_array_equal(vocab.multi_hot([["外观"], [], ["外观", "价格"]]),
                                  [[0, 1], [0, 0], [1, 1]])
    path.write_text("a\nb\na\n", encoding="utf-8")
    with pytest.raises(DataError, match="repeat"):
        LabelVocab.load(str(path))


@pytest.mark.parametrize("name", ["duee", "semeval_ec"])
def test_shared_data_sets_read(name):
    import os
    path = os.path.join(SHARED_DATA, name, "dev.jsonl")
    if not os.path.exists(path):
        pytest.skip("shared data not beside the project")
    ex = read_examples(path)
    vocab = LabelVocab.load(os.path.join(SHARED_DATA, name, "labels.txt"))
    vocab.check(ex, fix="")
    assert len(ex) in (1000, 886)


JOINED = [("声音大", ["声音"]), ("外观好", ["外观"]), ("又吵又丑", ["声音", "外观"]), ("还行", [])]


@pytest.mark.parametrize("name, content, line, sep", [
    ("t.tsv", "声音大\t声音\n外观好\t外观\n又吵又丑\t声音/外观\n", 3, "/"),  # TSV's separator is ","
    ("t.csv", 'content,label\n声音大,声音\n外观好,外观\n又吵又丑,"声音,外观"\n', 4, ","),  # hellonlp's is "/"
    ("t.jsonl", '{"text": "声音大", "labels": ["声音"]}\n{"text": "外观好", "labels": ["外观"]}\n'
                '{"text": "又吵又丑", "labels": ["声音|外观"]}\n', 3, "|"),
])
def test_labels_joined_by_another_separator_are_refused(tmp_path, name, content, line, sep):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_examples(str(path))
    msg = str(e.value)
    assert f"{name}:{line}:" in msg and f"joined by {sep!r}" in msg and f"--label-separator {sep!r}" in msg, msg
    assert read_examples(str(path), label_separator=sep).labels[2] == ["声音", "外观"]  # the fix it names works


def test_a_label_holding_a_separator_is_kept_when_its_parts_are_not_labels(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("好\t输入/输出\n坏\t价格\n", encoding="utf-8")
    assert read_examples(str(path)).labels == [["输入/输出"], ["价格"]]


def test_jsonl_label_string_is_refused_unless_a_separator_is_given(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": "x/y"}\n', encoding="utf-8")
    with pytest.raises(DataError) as e:
        read_examples(str(path))
    assert "t.jsonl:2:" in str(e.value) and "not a list" in str(e.value) and "--label-separator" in str(e.value)
    assert read_examples(str(path), label_separator="/").labels == [["x"], ["x", "y"]]


@pytest.mark.parametrize("header", ["text,labels", "Text,Label", "sentence,tags"])
def test_a_text_and_labels_header_is_the_hellonlp_layout_not_one_hot(tmp_path, header):
    path = tmp_path / "t.csv"
    path.write_text(f"{header}\n好看又便宜,外观/价格\n还没用,\n", encoding="utf-8")
    ex = read_examples(str(path))
    assert ex.texts == ["好看又便宜", "还没用"] and ex.labels == [["外观", "价格"], []] and ex.header_labels is None


def test_the_originals_decoder_markers_are_dropped_from_a_label_file(tmp_path, caplog):
    path = tmp_path / "vocabulary_label.txt"
    path.write_text("S\nE\n|\n价格\n外观\n", encoding="utf-8")
    assert LabelVocab.load(str(path)).names == ["价格", "外观"]
    assert "decoder markers" in caplog.text and "vocabulary_label.txt" in caplog.text


def examples(path, rows):
    return read_examples(write_jsonl(path, rows))


def test_training_data_nothing_can_be_learned_from(tmp_path):
    with pytest.raises(DataError, match=r"t\.jsonl: no row has a label(?s:.*)fix:"):
        LabelVocab.from_examples(examples(tmp_path / "t.jsonl", [("a", []), ("b", [])]))
    only = examples(tmp_path / "o.jsonl", [("a", ["x"]), ("b", ["x"])])
    with pytest.raises(DataError, match=r"o\.jsonl: every row has the label 'x', the only label(?s:.*)fix:"):
        check_training_data(only, LabelVocab.from_examples(only))
    none = examples(tmp_path / "n.jsonl", [("a", []), ("b", [])])
    with pytest.raises(DataError, match=r"n\.jsonl: no row has a label"):  # a --label-file names labels
        check_training_data(none, LabelVocab(["x", "y"]), "labels.txt")


def test_training_data_warnings(tmp_path, caplog):
    rows = [("a", ["x", "y"]), ("b", ["x"]), ("c", ["x", "y"])]
    train = examples(tmp_path / "t.jsonl", rows)
    check_training_data(train, LabelVocab(["x", "y", "z", "w"]), "labels.txt")
    assert "t.jsonl: x on every training row" in caplog.text
    assert "labels.txt: 2 label(s) have no training example (z, w)" in caplog.text
    caplog.clear()
    check_training_data(examples(tmp_path / "u.jsonl", rows + [("d", ["z"])]), LabelVocab(["x", "y", "z"]))
    assert "u.jsonl: 1 label(s) occur on one training row only (z)" in caplog.text


def test_dev_too_small_or_without_positives(tmp_path, caplog):
    labels = LabelVocab(["x", "y", "z"])
    assert check_dev(examples(tmp_path / "d.jsonl", [("a", ["x"])] * 4), labels)  # -> one global threshold
    assert "d.jsonl: 4 dev rows, too few" in caplog.text and "2 of 3 labels have no dev positive (y, z)" in caplog.text
    caplog.clear()
    assert not check_dev(examples(tmp_path / "e.jsonl", [("a", ["x"]), ("b", ["y", "z"])] * 30), labels)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []  # (the reader logs INFO)
