"""The data check: duplicates, leakage across splits, conflicting labels, split-only labels; its
near-duplicate search against all pairs; the command, --strict and bad input."""

import itertools
import json
import random

import pytest
from conftest import run_command, write_jsonl

from classifier_multi_label.data import examples_from
from classifier_multi_label.data_check import NEAR_JACCARD, check_data, near_pairs, normalize, shingles, summary

LONG = "这款空调制热很快，房间十分钟就暖和了，晚上运行的声音也很小，外观设计简洁大方，价格也比较实惠"


def splits():
    train = examples_from(([LONG, "声音很大", "声音很大", "外观漂亮", "没用过", "好评"],
                           [["制热"], ["噪音"], ["噪音"], ["外观"], [], ["好评"]]), "train")
    dev = examples_from(([LONG.replace("很快", "挺快"), "价格便宜", "外观漂亮"],
                         [["制热"], ["价格"], ["价格"]]), "dev")
    test = examples_from(([" 声音很大", "全新的文字"], [["噪音"], ["新"]]), "test")
    return {"train": train, "dev": dev, "test": test}


def test_findings_with_their_line_numbers():
    report = check_data(splits())
    train = report["splits"]["train"]
    assert train["rows"] == 6 and train["label_rows"]["噪音"] == 2
    assert train["labels_per_text"]["histogram"] == {0: 1, 1: 5}
    assert train["rows_without_a_label"] == {"count": 1, "lines": [5]}
    assert report["duplicates"]["train"] == {"groups": 1, "rows": 2, "lines": [[2, 3]]}
    # dev line 1 is train line 1 with one word changed; dev line 3 is train line 4.
    assert report["leakage"]["train/dev"]["exact"] == 1 and report["leakage"]["train/dev"]["near"] == 1
    assert {"train": 1, "dev": 1} == {k: v for k, v in report["leakage"]["train/dev"]["pairs"][-1].items()
                                      if k != "jaccard"}
    assert report["leakage"]["train/test"]["exact"] == 1 and report["leakage"]["dev/test"]["exact"] == 0
    # 外观漂亮 is 外观 in train and 价格 in dev: likely label noise.
    assert report["conflicting_label_groups"] == 1
    assert [(r["split"], r["line"], r["labels"]) for r in report["conflicting_labels"][0]["rows"]] == \
        [("train", 4, ["外观"]), ("dev", 3, ["价格"])]
    assert report["labels_in_one_split_only"] == {"train": ["外观", "好评"], "dev": ["价格"], "test": ["新"]}
    json.dumps(report)  # data_check.json


def test_texts_the_sequence_length_cuts():
    data = splits()
    counts = {"train": [40, 5, 5, 6, 3, 4], "dev": [41, 6, 6], "test": [5, 8]}
    report = check_data(data, token_counts=counts, max_seq_length=32)
    assert report["cut_by_max_seq_length"]["train"] == {"max_seq_length": 32, "count": 1, "lines": [1]}
    assert report["cut_by_max_seq_length"]["test"]["count"] == 0
    assert "dev: 1 texts are longer than --max-seq-length 32 tokens and are cut, e.g. line 1" in summary(report)


def test_near_duplicates_are_those_an_all_pairs_search_finds():
    rng = random.Random(0)
    alphabet = [chr(c) for c in range(0x4E00, 0x4E00 + 400)]  # 400 CJK characters
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(20, 60))) for _ in range(300)]
    for i in range(40):  # 40 edited copies: a few characters replaced
        chars = list(texts[i])
        for k in rng.sample(range(len(chars)), rng.randint(0, 2)):
            chars[k] = rng.choice(alphabet)
        texts.append("".join(chars))
    values, starts = shingles(texts)
    ends = list(starts[1:]) + [len(values)]
    sets = [set(values[a:b].tolist()) for a, b in zip(starts, ends)]
    truth = {(i, j) for i, j in itertools.combinations(range(len(texts)), 2)
             if len(sets[i] & sets[j]) / len(sets[i] | sets[j]) >= NEAR_JACCARD}
    assert len(truth) >= 20  # the edited copies that stayed close
    assert {(i, j) for i, j, _ in near_pairs(texts)} == truth


def test_normalize_and_short_texts():
    assert normalize(" Ａ  b\tC ") == "a b c"  # NFKC, case folded, whitespace collapsed
    values, starts = shingles(["好", "好吗", "好好好好"])
    assert list(starts) == [0, 1, 2] and len(values) == 3  # a short text is one gram; repeats count once


def test_command_writes_the_report_and_strict_refuses_leakage(tmp_path):
    data = splits()
    files = {name: write_jsonl(tmp_path / f"{name}.jsonl", zip(ex.texts, ex.labels)) for name, ex in data.items()}
    out = tmp_path / "check.json"
    args = ["--train-file", files["train"], "--dev-file", files["dev"], "--test-file", files["test"], "--output", out]
    proc = run_command("classifier_multi_label_textcnn/check_data.py", *args)
    assert proc.returncode == 0, proc.stderr
    assert "train/dev: 1 dev rows repeat a train text, 1 more nearly" in proc.stdout
    assert "1 texts appear with different labels" in proc.stdout
    assert json.loads(out.read_text())["leakage"]["train/test"]["exact"] == 1
    strict = run_command("classifier_multi_label_textcnn/check_data.py", *args, "--strict")
    assert strict.returncode == 1 and "--strict: train/dev: 1 exact and 1 near-duplicate" in strict.stderr
    clean = run_command("classifier_multi_label/check_data.py", "--train-file", files["train"], "--output",
                        tmp_path / "train_only.json", "--strict")
    assert clean.returncode == 0, clean.stderr  # one split: nothing can leak, and it has no conflicting labels
    module = run_command("classifier_multi_label", "check-data", "--train-file", files["train"], "--output",
                         tmp_path / "m.json")
    assert module.returncode == 0 and (tmp_path / "m.json").exists()


@pytest.mark.parametrize("problem", ["missing", "bad_row", "bad_jaccard"])
def test_bad_input_is_one_clear_line(tmp_path, problem):
    bad = tmp_path / "train.jsonl"
    bad.write_text('{"text": "好", "labels": ["a"]}\n{"text": "坏", "labels": ["a"\n', encoding="utf-8")
    args = {"missing": ["--train-file", tmp_path / "nope.jsonl"], "bad_row": ["--train-file", bad],
            "bad_jaccard": ["--train-file", bad, "--near-jaccard", "1.5"]}[problem]
    proc = run_command("classifier_multi_label/check_data.py", *args, "--output", tmp_path / "o.json")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    expected = {"missing": "nope.jsonl", "bad_row": "train.jsonl:2", "bad_jaccard": "--near-jaccard 1.5"}[problem]
    assert expected in proc.stderr, proc.stderr
    assert not (tmp_path / "o.json").exists()
