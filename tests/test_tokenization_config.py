"""Tokenization inside the graph, the vocabulary builder, and typed configuration."""

import json

import numpy as np
import pytest
import tensorflow as tf

from classifier_multi_label.config import RunConfig, parse_config
from classifier_multi_label.head import PooledHead
from classifier_multi_label.tokenization import TextPreprocessor, build_vocabulary

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "好", "用", "hello", "##s", "a"]


def test_packing_dynamic_padding_and_truncation():
    pre = TextPreprocessor.from_vocabulary(VOCAB, sequence_length=8, pad_to_multiple_of=4)
    x = pre(tf.constant(["好用", "", "Hellos 好"]))
    ids = x["token_ids"].numpy()
    assert ids.shape == (3, 8)  # longest row has 5 tokens -> rounded up to 8
    assert ids[0].tolist() == [2, 5, 6, 3, 0, 0, 0, 0]
    assert ids[1].tolist()[:2] == [2, 3]  # an empty text is [CLS] [SEP]
    assert ids[2].tolist()[:5] == [2, 7, 8, 5, 3]  # lower-cased WordPiece
    np.testing.assert_array_equal(x["padding_mask"].numpy().sum(1), [4, 2, 5])
    long = pre(tf.constant(["好" * 1000]))
    assert long["token_ids"].shape == (1, 8) and long["token_ids"].numpy()[0, -1] == 3  # truncated, ends [SEP]
    short = pre(tf.constant(["好"]))
    assert short["token_ids"].shape == (1, 4)


def test_vocabulary_builder_keeps_chinese_characters_whole():
    vocab = build_vocabulary(["制热很快", "声音很大", "hello world hello"], vocabulary_size=100)
    assert vocab[:5] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    for ch in "制热很快声音大":
        assert ch in vocab
    pre = TextPreprocessor.from_vocabulary(vocab, sequence_length=16)
    ids = pre(tf.constant(["很快"]))["token_ids"].numpy()[0]
    assert 1 not in ids  # no [UNK]


def test_flags_override_config_file(tmp_path):
    cfg = RunConfig()
    cfg.train.epochs = 7
    cfg.data.batch_size = 4
    path = tmp_path / "c.json"
    path.write_text(cfg.to_json())
    out = parse_config(["--config", str(path), "--epochs", "3", "--no-jit-compile", "--dropout", "0.3"],
                       "classifier_multi_label", PooledHead.options)
    assert out.train.epochs == 3 and out.data.batch_size == 4 and out.train.jit_compile is False
    # pooling, projection and its width are resolved when training starts
    assert out.head == {"dropout": 0.3, "pooling": "auto", "projection": None, "projection_width": None}
    assert RunConfig.from_dict(json.loads(out.to_json())) == out  # JSON round trip


def test_unknown_config_key_is_an_error(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": {"epoch": 3}}))
    with pytest.raises(ValueError, match=r"unknown option 'epoch' in 'train' \(did you mean 'epochs'\?\)"):
        parse_config(["--config", str(path)], "classifier_multi_label")


def test_epoch_order_is_a_seeded_length_bucketed_permutation():
    from classifier_multi_label.pipeline import epoch_order

    texts = ["x" * n for n in np.random.default_rng(0).integers(1, 200, 1000)]
    a = epoch_order(texts, batch_size=10, seed=1, epoch=3)
    assert sorted(a.tolist()) == list(range(1000))  # every example once
    np.testing.assert_array_equal(a, epoch_order(texts, 10, 1, 3))  # same seed and epoch: same order
    assert not np.array_equal(a, epoch_order(texts, 10, 1, 4))  # a new epoch reshuffles
    spread = [np.ptp([len(texts[i]) for i in a[k:k + 10]]) for k in range(0, 1000, 10)]
    assert np.mean(spread) < 100  # batches hold texts of similar length (random batches: ~180)
    batch_sets = [frozenset(epoch_order(texts, 10, 1, e)[:10].tolist()) for e in range(5)]
    assert len(set(batch_sets)) == 5  # within a length quartile, batches are still random


def test_token_dropout_masks_text_tokens_only_and_replays_by_seed():
    from classifier_multi_label.pipeline import TokenDropout, make_dataset

    pre = TextPreprocessor.from_vocabulary(VOCAB, sequence_length=64, pad_to_multiple_of=4)
    drop = TokenDropout.for_preprocessor(pre, rate=0.3)
    assert (drop.mask_id, drop.vocabulary_size, sorted(drop.keep_ids)) == (4, 10, [0, 2, 3])
    texts = ["好用" * n for n in range(1, 31)]  # 2 to 60 text tokens, then [SEP] and padding
    x = pre(tf.constant(texts))
    ids = x["token_ids"].numpy()
    ids[:, 5] = np.where(x["padding_mask"].numpy()[:, 5] > 0, 12, ids[:, 5])  # a head's own token (id >= 10)
    x = dict(x, token_ids=tf.constant(ids))
    out = drop(x, seed=[7, 0])["token_ids"].numpy()
    changed = out != ids
    assert np.all(out[changed] == 4)  # replaced tokens become [MASK]
    text = (x["padding_mask"].numpy() > 0) & (ids >= 4) & (ids < 10)
    assert not changed[~text].any()  # [CLS], [SEP], padding and the head's token never change
    assert 0.25 < changed[text].mean() < 0.35  # about `rate` of the text tokens (930 of them)
    np.testing.assert_array_equal(out, drop(x, seed=[7, 0])["token_ids"].numpy())  # same seed, same masks
    assert not np.array_equal(out, drop(x, seed=[7, 1])["token_ids"].numpy())

    y = np.zeros((len(texts), 2), "float32")
    def epoch_ids(epoch, token_dropout):
        return [b[0]["token_ids"].numpy() for b in make_dataset(texts, y, pre, 8, shuffle=True, seed=1, epoch=epoch,
                                                                token_dropout=token_dropout)]
    plain = epoch_ids(0, None)
    for a, b in zip(plain, epoch_ids(0, TokenDropout.for_preprocessor(pre, rate=0.0))):
        np.testing.assert_array_equal(a, b)  # rate 0 leaves the batches alone
    masked = epoch_ids(0, drop)
    assert all(a.shape == b.shape for a, b in zip(plain, masked)) and any((a != b).any() for a, b in zip(plain, masked))
    for a, b in zip(masked, epoch_ids(0, drop)):
        np.testing.assert_array_equal(a, b)  # an epoch's masks are reproducible (what --resume relies on)


def test_token_dropout_bad_rate_and_vocabulary_without_mask_are_clear_errors():
    from classifier_multi_label.pipeline import TokenDropout

    with pytest.raises(ValueError, match=r"--token-dropout 1.0: use a probability in \[0, 1\)"):
        TokenDropout.for_preprocessor(TextPreprocessor.from_vocabulary(VOCAB, sequence_length=8), rate=1.0)
    no_mask = TextPreprocessor.from_vocabulary([t for t in VOCAB if t != "[MASK]"], sequence_length=8)
    with pytest.raises(ValueError, match="--token-dropout: the vocabulary has no mask token"):
        TokenDropout.for_preprocessor(no_mask, rate=0.1)


def test_a_nul_character_tokenizes_alike_in_tf_data_and_eagerly():
    """keras-hub's tokenizer inside a graph cut texts at a NUL; eager calls and the export did not."""
    pre = TextPreprocessor.from_vocabulary(build_vocabulary(["a b ctrl"] * 3, 50), sequence_length=16)
    texts = ["a\x00b ctrl", "\x00\x01\x07\x1b[31m\x7f ctrl"]
    eager = pre(tf.constant(texts))["token_ids"].numpy()
    from classifier_multi_label.pipeline import text_dataset

    in_data = np.concatenate([x["token_ids"].numpy() for x in text_dataset(texts, pre, 2)])
    np.testing.assert_array_equal(in_data, eager)
    np.testing.assert_array_equal(eager[0], pre(tf.constant(["a b ctrl"]))["token_ids"].numpy()[0])  # NUL: a space
