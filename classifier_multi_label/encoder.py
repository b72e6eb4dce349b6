"""Encoder loading: every `--encoder SPEC` becomes a keras-hub backbone plus its preprocessor.

SPEC may be:

- nothing: a small ALBERT (sizes in `EncoderConfig`) trained from scratch, on a WordPiece
  vocabulary built from the training texts (or `--vocab-file`);
- a Google ALBERT folder: `albert_config.json`, `*.ckpt*` (TF1, scope `bert/` or `albert/`) and
  `vocab*.txt` or `*.model`;
- a bare `albert_config.json`: that architecture, randomly initialised;
- a keras-hub preset directory or handle, or a Hugging Face format directory (`config.json` +
  `model.safetensors`) of a text backbone keras-hub loads (ALBERT, BERT, ...).

The run folder keeps `encoder.json` (the backbone's Keras config and the tokenizer settings) and
the vocabulary, so a trained model is rebuilt without the original encoder files.

Example:
    >>> enc = load_encoder(EncoderConfig(vocab_size=100), max_seq_length=64, train_texts=["很好", "不错"])
    >>> enc.backbone.hidden_dim, enc.pretrained
    (128, False)
"""

from __future__ import annotations

import glob
import json
import logging
import os
from dataclasses import dataclass
from typing import Optional

import keras
import keras_hub
import tensorflow as tf

from .albert_checkpoint import CheckpointError, albert_backbone_from_config, port_albert_checkpoint
from .config import EncoderConfig
from .errors import UserError
from .files import write_json
from .tokenization import AUTO_LENGTH_RANGE, TextPreprocessor, build_vocabulary, fitting_length

log = logging.getLogger(__name__)


class EncoderError(UserError):
    pass


@dataclass
class Encoder:
    backbone: keras.Model
    preprocessor: TextPreprocessor
    pretrained: bool  # weights came from a checkpoint or preset
    description: str
    vocab_source: Optional[str] = None  # a SentencePiece file to copy into the run folder

    def save(self, run_dir: str):
        """Writes encoder.json and the vocabulary into the run folder."""
        vocab_name = self.preprocessor.save_vocabulary(run_dir, self.vocab_source)
        tok = self.preprocessor.tokenizer
        spec = {
            "description": self.description,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            # WordPiece's options, so a reloaded run (and its export) tokenizes as training did.
            "tokenizer": {"file": vocab_name, "lowercase": bool(getattr(tok, "lowercase", False)),
                          "strip_accents": bool(getattr(tok, "strip_accents", False)),
                          "split_on_cjk": bool(getattr(tok, "split_on_cjk", True)),
                          "suffix_indicator": getattr(tok, "suffix_indicator", "##"),
                          "oov_token": getattr(tok, "oov_token", "[UNK]")},
        }
        write_json(os.path.join(run_dir, "encoder.json"), spec)


def preprocessor_from_run(run_dir: str, sequence_length: int, pad_to_multiple_of: int) -> TextPreprocessor:
    with open(os.path.join(run_dir, "encoder.json"), encoding="utf-8") as fh:
        tok = json.load(fh)["tokenizer"]
    path = os.path.join(run_dir, tok["file"])
    if path.endswith(".model"):
        return TextPreprocessor.from_file(path, sequence_length, pad_to_multiple_of=pad_to_multiple_of)
    with open(path, encoding="utf-8") as fh:
        vocabulary = [line.rstrip("\n") for line in fh if line.rstrip("\n")]
    tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
        vocabulary=vocabulary, lowercase=tok["lowercase"], strip_accents=tok["strip_accents"],
        split_on_cjk=tok.get("split_on_cjk", True), suffix_indicator=tok.get("suffix_indicator", "##"),
        oov_token=tok.get("oov_token", "[UNK]"))  # runs from before these were recorded: the defaults then
    return TextPreprocessor(tokenizer, sequence_length, pad_to_multiple_of=pad_to_multiple_of)


def backbone_from_run(run_dir: str) -> keras.Model:
    """Rebuilds the backbone architecture (random weights; the model's weights file fills them)."""
    with open(os.path.join(run_dir, "encoder.json"), encoding="utf-8") as fh:
        spec = json.load(fh)["backbone"]
    return keras.saving.deserialize_keras_object(spec, safe_mode=True)


def with_precision(backbone: keras.Model, precision: str, copy: bool = False) -> keras.Model:
    """`backbone` computing under the Keras dtype policy `precision` (weights stay float32). `copy`
    rebuilds it even when the policy matches: its variables are then created in the current
    distribution strategy's scope."""
    if backbone.dtype_policy.name == precision and not copy:
        return backbone
    return grow_backbone(backbone, dtype=precision)


def _find_vocab(folder: str, vocab_file: Optional[str]) -> Optional[str]:
    if vocab_file:
        return vocab_file
    found = sorted(glob.glob(os.path.join(folder, "vocab*.txt")) + glob.glob(os.path.join(folder, "*.model")))
    if len(found) > 1:
        raise EncoderError(f"{folder}: several vocabularies {found}; pass the right one with --vocab-file")
    return found[0] if found else None


def _find_checkpoint(folder: str) -> Optional[str]:
    latest = tf.train.latest_checkpoint(folder)
    if latest:
        return latest
    found = sorted(p[: -len(".index")] for p in glob.glob(os.path.join(folder, "*.index")))
    if len(found) > 1:
        raise EncoderError(f"{folder}: several checkpoints {found}; keep one, or add a `checkpoint` file naming it")
    return found[0] if found else None


def _check_vocab_size(backbone, pre: TextPreprocessor, where: str):
    if backbone.vocabulary_size != pre.vocabulary_size:
        raise EncoderError(f"{where}: the encoder expects {backbone.vocabulary_size} tokens but the vocabulary "
                           f"has {pre.vocabulary_size}; pass the vocabulary it was trained with (--vocab-file)")


def load_encoder(cfg: EncoderConfig, max_seq_length: Optional[int], train_texts=(),
                 pad_to_multiple_of: int = 16) -> Encoder:
    """Resolves `cfg.encoder` (see the module docstring) to a backbone and its preprocessor.
    `max_seq_length` None: the length that holds 99% of `train_texts` (`tokenization.fitting_length`),
    read back from `Encoder.preprocessor.sequence_length`."""
    spec, kw = cfg.encoder, dict(pad_to_multiple_of=pad_to_multiple_of)
    provisional = max_seq_length or AUTO_LENGTH_RANGE[1]

    def sized(pre, limit=None):
        if max_seq_length:
            return pre
        length, held = fitting_length(pre, train_texts, limit)
        log.info("--max-seq-length %d: holds %.1f%% of the training texts whole%s", length, 100 * held,
                 "" if held == 1 else " (the longer ones are cut; pass --max-seq-length to choose)")
        return pre.with_sequence_length(length)

    def vocab_preprocessor(vocab_file, limit=None, size=True):
        if vocab_file:
            if not os.path.isfile(vocab_file):
                raise EncoderError(f"{vocab_file}: no such vocabulary file (--vocab-file)")
            pre = TextPreprocessor.from_file(vocab_file, provisional, lowercase=cfg.lowercase, **kw)
        else:
            vocab = build_vocabulary(train_texts, cfg.vocab_size, lowercase=cfg.lowercase)
            pre = TextPreprocessor.from_vocabulary(vocab, provisional, lowercase=cfg.lowercase, **kw)
        return sized(pre, limit) if size else pre

    def sp_source(vocab_file):
        return vocab_file if vocab_file and vocab_file.endswith(".model") else None

    if not spec:
        pre = vocab_preprocessor(cfg.vocab_file)
        backbone = keras_hub.models.AlbertBackbone(
            vocabulary_size=pre.vocabulary_size, num_layers=cfg.num_layers, num_heads=cfg.num_heads,
            embedding_dim=cfg.embedding_dim, hidden_dim=cfg.hidden_dim, intermediate_dim=cfg.intermediate_dim,
            dropout=cfg.encoder_dropout, max_sequence_length=pre.sequence_length)
        return Encoder(backbone, pre, False, f"ALBERT from scratch ({cfg.num_layers} layers, hidden "
                       f"{cfg.hidden_dim}, vocabulary {pre.vocabulary_size})", sp_source(cfg.vocab_file))

    if os.path.isfile(spec) and spec.endswith(".json"):  # a bare albert_config.json: random init
        pre = vocab_preprocessor(cfg.vocab_file, size=False)
        overrides = {}
        if not cfg.vocab_file:  # the vocabulary was built from the data: its size wins
            overrides["vocab_size"] = pre.vocabulary_size
            log.info("%s: vocab_size set to %d, the size of the vocabulary built from training texts",
                     spec, pre.vocabulary_size)
        backbone = _albert_from_json(spec, overrides)
        _check_vocab_size(backbone, pre, spec)
        pre = sized(pre, _positions(backbone))
        return Encoder(backbone, pre, False, f"ALBERT from {spec}, random init", sp_source(cfg.vocab_file))

    if os.path.isdir(spec) and os.path.isfile(os.path.join(spec, "albert_config.json")):
        backbone = _albert_from_json(os.path.join(spec, "albert_config.json"))
        vocab_file = _find_vocab(spec, cfg.vocab_file)
        if vocab_file is None:
            raise EncoderError(f"{spec}: no vocab*.txt or *.model next to albert_config.json; pass --vocab-file")
        pre = vocab_preprocessor(vocab_file, _positions(backbone))
        _check_vocab_size(backbone, pre, spec)
        ckpt = _find_checkpoint(spec)
        if ckpt is None:
            log.warning("%s: no checkpoint found; the ALBERT encoder starts from random weights", spec)
            return Encoder(backbone, pre, False, f"ALBERT from {spec}, random init", sp_source(vocab_file))
        port_albert_checkpoint(ckpt, backbone)
        return Encoder(backbone, pre, True, f"Google ALBERT checkpoint {ckpt}", sp_source(vocab_file))

    # keras-hub preset directory or handle, or a Hugging Face format directory.
    if os.path.isdir(spec) or "://" in spec or os.path.sep not in spec:
        try:
            backbone = keras_hub.models.Backbone.from_preset(spec)
            tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(spec)
        except Exception as e:  # keras-hub raises many types here; name the spec and the cause
            raise EncoderError(f"--encoder {spec}: keras-hub cannot load it as a preset or Hugging Face "
                               f"directory ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})") from e
        pre = sized(TextPreprocessor(tokenizer, provisional, **kw), _positions(backbone))
        return Encoder(backbone, pre, True, f"{type(backbone).__name__} from preset {spec}")
    raise EncoderError(f"--encoder {spec}: not found. Give a Google ALBERT folder, an albert_config.json, "
                       "a keras-hub preset or a Hugging Face model directory")


def _positions(backbone) -> Optional[int]:
    """How many token positions a pretrained backbone has (keras-hub backbones record it)."""
    return getattr(backbone, "max_sequence_length", None)


def _albert_from_json(path: str, overrides: dict | None = None):
    try:
        with open(path, encoding="utf-8") as fh:
            config = {**json.load(fh), **(overrides or {})}
    except (OSError, json.JSONDecodeError) as e:
        raise EncoderError(f"{path}: cannot read the ALBERT config ({e})") from None
    try:
        return albert_backbone_from_config(config, path)
    except (CheckpointError, TypeError) as e:
        raise EncoderError(str(e)) from None


def grow_backbone(backbone: keras.Model, extra_tokens: int = 0, num_segments: Optional[int] = None,
                  max_sequence_length: Optional[int] = None, dtype: Optional[str] = None) -> keras.Model:
    """The same backbone with `extra_tokens` more token-embedding rows, at least `num_segments` token
    types and at least `max_sequence_length` positions (a from-scratch backbone only: a pretrained
    one keeps its position table), computing in `dtype` (a Keras dtype policy) if given. Every weight
    is copied; new rows keep their fresh initialisation.

    Example:
        >>> bigger = grow_backbone(backbone, extra_tokens=10, num_segments=5)
        >>> bigger.vocabulary_size - backbone.vocabulary_size, bigger.num_segments
        (10, 5)
    """
    config = backbone.get_config()
    config["vocabulary_size"] += int(extra_tokens)
    config["num_segments"] = max(config.get("num_segments", 2), int(num_segments or 0))
    if max_sequence_length and max_sequence_length > config["max_sequence_length"]:
        config["max_sequence_length"] = int(max_sequence_length)
    if dtype:
        config["dtype"] = dtype
    grown = type(backbone).from_config(config)
    old = {w.path: w for w in backbone.weights}
    for w in grown.weights:
        src = old.get(w.path)
        if src is None:
            raise EncoderError(f"cannot grow the encoder: no weight {w.path} in the original")
        if tuple(src.shape) == tuple(w.shape):
            w.assign(src)
        elif len(src.shape) == 2 and src.shape[1] == w.shape[1] and src.shape[0] < w.shape[0]:
            w.assign(tf.concat([src, w[src.shape[0]:]], axis=0))  # old rows, then the new ones
            log.info("encoder: %s grows from %d to %d rows", w.path, src.shape[0], w.shape[0])
        else:
            raise EncoderError(f"cannot grow the encoder: {w.path} is {tuple(src.shape)}, wanted {tuple(w.shape)}")
    return grown
