"""Port a Google-format TF1 ALBERT checkpoint into a keras-hub `AlbertBackbone`.

The port is a declarative table: each row names a TF1 variable (relative to the top scope
``bert/`` or ``albert/``), the keras-hub weight it fills and how the array is reshaped. Every
value is shape-checked and logged. Any checkpoint variable left unported (optimizer slots and the
pretraining heads under ``cls/`` aside, which are logged as skipped) and any backbone weight left
unset is a loud error: the TF1 original skipped mismatches silently and trained from random init.

Example:
    >>> backbone = albert_backbone_from_config(json.load(open("albert_config.json")))  # doctest: +SKIP
    >>> port_albert_checkpoint("albert_small_zh_google/albert_model.ckpt", backbone)  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import re

import keras_hub
import numpy as np
import tensorflow as tf

from .errors import UserError

log = logging.getLogger(__name__)


class CheckpointError(UserError):
    pass


# Google albert_config.json key -> AlbertBackbone argument.
CONFIG_KEYS = {
    "vocab_size": "vocabulary_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "embedding_size": "embedding_dim",
    "hidden_size": "hidden_dim",
    "intermediate_size": "intermediate_dim",
    "num_hidden_groups": "num_groups",
    "inner_group_num": "num_inner_repetitions",
    "hidden_dropout_prob": "dropout",
    "max_position_embeddings": "max_sequence_length",
    "type_vocab_size": "num_segments",
}


def albert_backbone_from_config(config: dict, path: str = "albert_config.json") -> keras_hub.models.AlbertBackbone:
    act = config.get("hidden_act", "gelu")
    if act not in ("gelu", "gelu_new"):
        raise CheckpointError(f"{path}: hidden_act {act!r} is not supported (keras-hub ALBERT uses tanh-GELU)")
    missing = [k for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                           "intermediate_size") if k not in config]
    if missing:
        raise CheckpointError(f"{path}: missing keys {missing}; is this an albert_config.json?")
    kwargs = {CONFIG_KEYS[k]: v for k, v in config.items() if k in CONFIG_KEYS}
    kwargs.setdefault("embedding_dim", config["hidden_size"])
    return keras_hub.models.AlbertBackbone(**kwargs)


# --- the name table -------------------------------------------------------------------------

# Reshapes, given the backbone (for head counts). Each maps a checkpoint array to the keras shape.
def _heads_in(b):  # [hidden, hidden] -> [hidden, heads, head_dim]
    return lambda a: a.reshape(a.shape[0], b.num_heads, -1)


def _heads_bias(b):  # [hidden] -> [heads, head_dim]
    return lambda a: a.reshape(b.num_heads, -1)


def _heads_out(b):  # [hidden, hidden] -> [heads, head_dim, hidden]
    return lambda a: a.reshape(b.num_heads, -1, a.shape[-1])


EMBEDDING_TABLE = [
    # (TF1 name under the scope, keras layer, keras weight attribute, reshape)
    ("embeddings/word_embeddings", "token_embedding", "embeddings", None),
    ("embeddings/position_embeddings", "position_embedding", "position_embeddings", None),
    ("embeddings/token_type_embeddings", "segment_embedding", "embeddings", None),
    ("embeddings/LayerNorm/gamma", "embeddings_layer_norm", "gamma", None),
    ("embeddings/LayerNorm/beta", "embeddings_layer_norm", "beta", None),
    ("encoder/embedding_hidden_mapping_in/kernel", "embedding_projection", "kernel", None),
    ("encoder/embedding_hidden_mapping_in/bias", "embedding_projection", "bias", None),
    ("pooler/dense/kernel", "pooled_dense", "kernel", None),
    ("pooler/dense/bias", "pooled_dense", "bias", None),
]

# Inside encoder/transformer/group_{g}/inner_group_{i}/ -> layer group_{g}_inner_layer_{i}.
LAYER_TABLE = [
    ("attention_1/self/query/kernel", "_self_attention_layer._query_dense", "kernel", _heads_in),
    ("attention_1/self/query/bias", "_self_attention_layer._query_dense", "bias", _heads_bias),
    ("attention_1/self/key/kernel", "_self_attention_layer._key_dense", "kernel", _heads_in),
    ("attention_1/self/key/bias", "_self_attention_layer._key_dense", "bias", _heads_bias),
    ("attention_1/self/value/kernel", "_self_attention_layer._value_dense", "kernel", _heads_in),
    ("attention_1/self/value/bias", "_self_attention_layer._value_dense", "bias", _heads_bias),
    ("attention_1/output/dense/kernel", "_self_attention_layer._output_dense", "kernel", _heads_out),
    ("attention_1/output/dense/bias", "_self_attention_layer._output_dense", "bias", None),
    ("LayerNorm/gamma", "_self_attention_layer_norm", "gamma", None),
    ("LayerNorm/beta", "_self_attention_layer_norm", "beta", None),
    ("ffn_1/intermediate/dense/kernel", "_feedforward_intermediate_dense", "kernel", None),
    ("ffn_1/intermediate/dense/bias", "_feedforward_intermediate_dense", "bias", None),
    ("ffn_1/intermediate/output/dense/kernel", "_feedforward_output_dense", "kernel", None),
    ("ffn_1/intermediate/output/dense/bias", "_feedforward_output_dense", "bias", None),
    ("LayerNorm_1/gamma", "_feedforward_layer_norm", "gamma", None),
    ("LayerNorm_1/beta", "_feedforward_layer_norm", "beta", None),
]

# Present in Google checkpoints, not part of a classifier: skipped, each with a log line.
OPTIMIZER_SLOT = re.compile(r"(^global_step$|/adam_[mv]$|/Adam(_1)?$|/Momentum$|/lamb_[mv]$|^beta[12]_power)")
PRETRAINING_HEAD = re.compile(r"^cls/")


def _attr(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def detect_scope(names) -> str:
    scopes = [s for s in ("bert", "albert") if f"{s}/embeddings/word_embeddings" in names]
    if len(scopes) != 1:
        raise CheckpointError(
            "cannot find the ALBERT variables: expected exactly one of bert/embeddings/word_embeddings "
            f"or albert/embeddings/word_embeddings; found scopes {sorted({n.split('/')[0] for n in names})}")
    return scopes[0]


def name_table(backbone) -> list:
    """(checkpoint name relative to the scope, keras variable, reshape or None) for every weight."""
    rows = []
    for name, layer, attr, reshape in EMBEDDING_TABLE:
        rows.append((name, getattr(backbone.get_layer(layer), attr), reshape and reshape(backbone)))
    for g in range(backbone.num_groups):
        for i in range(backbone.num_inner_repetitions):
            layer = backbone.get_layer(f"group_{g}_inner_layer_{i}")
            for name, path, attr, reshape in LAYER_TABLE:
                rows.append((f"encoder/transformer/group_{g}/inner_group_{i}/{name}",
                             getattr(_attr(layer, path), attr), reshape and reshape(backbone)))
    return rows


def port_albert_checkpoint(ckpt_path: str, backbone) -> dict:
    """Assigns every backbone weight from the checkpoint; returns {checkpoint name: keras path}."""
    try:
        reader = tf.train.load_checkpoint(ckpt_path)
    except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
        raise CheckpointError(f"{ckpt_path}: cannot read the checkpoint ({str(e).splitlines()[0]})") from None
    shapes = reader.get_variable_to_shape_map()
    scope = detect_scope(shapes)
    ported, unset = {}, []
    for rel, variable, reshape in name_table(backbone):
        name = f"{scope}/{rel}"
        if name not in shapes:
            unset.append(f"{variable.path} (expected checkpoint variable {name})")
            continue
        try:
            value = reader.get_tensor(name)
        except (tf.errors.OpError, RuntimeError, ValueError, IndexError) as e:  # IndexError: truncated file
            raise CheckpointError(f"{ckpt_path}: cannot read {name} ({str(e).splitlines()[0]}); the checkpoint "
                                  "files are damaged or incomplete: download them again") from None
        if reshape is not None:
            try:
                value = reshape(value)
            except ValueError:
                raise CheckpointError(f"{name}: shape {list(shapes[name])} cannot be reshaped for "
                                      f"{variable.path} {list(variable.shape)}") from None
        if tuple(value.shape) != tuple(variable.shape):
            raise CheckpointError(f"{name}: shape {list(value.shape)} does not match {variable.path} "
                                  f"{list(variable.shape)}; does albert_config.json match the checkpoint?")
        variable.assign(value.astype(np.float32))
        ported[name] = variable.path
        log.info("ported %-75s -> %s %s", name, variable.path, list(variable.shape))
    if unset:
        raise CheckpointError(f"{ckpt_path}: {len(unset)} backbone weights have no checkpoint value: "
                              + "; ".join(unset[:5]))
    leftover = []
    for name in sorted(shapes):
        if name in ported:
            continue
        if OPTIMIZER_SLOT.search(name):
            log.info("skipped %s (optimizer state)", name)
        elif PRETRAINING_HEAD.search(name):
            log.info("skipped %s (pretraining head, not used by a classifier)", name)
        else:
            leftover.append(f"{name} {list(shapes[name])}")
    if leftover:
        raise CheckpointError(f"{ckpt_path}: {len(leftover)} checkpoint variables were not ported: "
                              + "; ".join(leftover[:8]) + ("; ..." if len(leftover) > 8 else "")
                              + ". Does albert_config.json (num_hidden_groups, inner_group_num) match?")
    log.info("ported %d variables from %s (scope %s/)", len(ported), ckpt_path, scope)
    return ported
