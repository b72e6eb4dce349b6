"""Export a trained run as a TF Serving SavedModel that takes raw text.

Layout: ``<export_dir>/<version>/saved_model.pb`` (TF Serving's model base path convention). The
version is the next integer unless given. The write is atomic: the SavedModel is written to a
hidden temporary folder (TF Serving ignores names that are not integers) and renamed into place,
so a crash never leaves a half-written version that a server would load.

Signature ``serving_default``: input ``text`` (tf.string, [batch]); outputs

- ``scores``: [batch, num_labels] float32, per-label probabilities;
- ``decisions``: [batch, num_labels] int32, 0/1 after the per-label thresholds, or the decoded
  label set for a head that decodes one (seq2seq); then the at-least-one rule if the run uses it;
- ``labels``: [batch, num_labels] string, the predicted label names, best score first, padded
  with "";
- ``label_count``: [batch] int32, how many labels were predicted;
- ``label_names``: [batch, num_labels] string, the name of each column of ``scores`` (the same in
  every row: TF Serving's row format needs a batch dimension on every output).

These are the given labels. A run trained with ``--label-hierarchy`` adds the same four outputs for
the parent labels its names imply: ``parent_scores``, ``parent_decisions``, ``parent_labels``,
``parent_label_names``; a client asks for them by reading them (gRPC: ``output_filter``).

With ``explain_steps`` (``--export-explain``) a second signature, ``explain``, adds each predicted
label's integrated-gradients attributions (`serving_outputs` with `ig`).

Tokenization, thresholds and label names live in the graph. With ``tokenizer="auto"`` (the
default) a WordPiece vocabulary is exported with `CoreWordPieceTokenizer`, built from core
TensorFlow ops only, after checking on a probe set that it gives keras-hub's token ids; the model
then loads in a process that imports nothing but ``tensorflow``, as every TF Serving build has.
A SentencePiece vocabulary keeps tensorflow-text's ops (``tokenizer="tf_text"``). The choice is
recorded in ``assets.extra/export.json``, next to the run's config, labels, thresholds and metrics.

Example:
    >>> path = export_run(demo_run, tmp_dir + "/reviews")
    >>> out = tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(["制热很快"]))
    >>> sorted(out), tuple(out["scores"].shape) == (1, len(demo_run.labels))
    (['decisions', 'label_count', 'label_names', 'labels', 'scores'], True)
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid

import numpy as np
import tensorflow as tf

from .config import TOKENIZERS
from .core_tokenizer import PROBE_TEXTS, CoreWordPieceTokenizer
from .errors import UserError
from .files import write_json, write_text
from .thresholds import final_decisions
from .tokenization import in_graph

log = logging.getLogger(__name__)


def next_version(export_dir: str) -> int:
    if not os.path.isdir(export_dir):
        return 1
    versions = [int(d) for d in os.listdir(export_dir) if re.fullmatch(r"\d+", d)]
    return max(versions, default=0) + 1


def _ranked(scores, decisions, label_names) -> dict:
    """The label outputs of `serving_outputs` for one block of columns (the given labels or the parents)."""
    # Predicted labels first, each group by descending score (scores are in [0, 1]).
    order = tf.argsort(tf.cast(decisions, tf.float32) * 2.0 + scores, axis=-1, direction="DESCENDING",
                       stable=True)  # [batch, num_labels]
    names = tf.gather(tf.constant(label_names), order)  # [batch, num_labels]
    chosen = tf.gather(decisions, order, batch_dims=1) > 0
    columns = tf.tile(tf.constant(label_names)[None, :], [tf.shape(scores)[0], 1])  # [batch, num_labels]
    return {"scores": scores, "decisions": decisions, "labels": tf.where(chosen, names, ""),
            "label_count": tf.reduce_sum(decisions, axis=-1), "label_names": columns}


def serving_outputs(model, preprocessor, thresholds, at_least_one, label_names, texts, calibration=None,
                    ig=None, vocab=None, hierarchy=None):
    """The exported computation, also callable in-process (tests compare the two). With `ig` (an
    `explain.IntegratedGradients`) and the tokenizer's `vocab`: the `explain` signature's outputs,
    the same ones plus the integrated-gradients attributions of each text's predicted labels:

    ``tokens`` [batch, length] string, the word pieces the model saw ("" for [CLS], [SEP] and
    padding); ``attributions`` [batch, num_labels, length] float32, token attributions of each
    predicted label (zero for the others and for the empty tokens); ``logit_difference``
    [batch, num_labels] float32, each predicted label's logit minus the baseline's (what its
    attributions sum to). `explain.served_rows` turns them into `Run.explain`'s rows.

    `hierarchy` (a `LabelHierarchy`; `label_names` are its outputs): decisions by its rule, the
    outputs above on its given labels and the ``parent_*`` ones on its parents."""
    inputs = preprocessor(texts)  # {"token_ids", "segment_ids", "padding_mask"}: [batch, length]
    predicted = model.head.predict(model, inputs)  # "scores" [batch, num_labels], ...
    if calibration is not None:  # the run's per-label map to probabilities (calibration.py)
        predicted = dict(predicted, scores=calibration.apply_tf(predicted["scores"]))
    scores, values = predicted["scores"], None if thresholds is None else thresholds.values
    if hierarchy is None:
        decisions = final_decisions(predicted, values, at_least_one)  # [batch, num_labels]
    else:
        decisions = hierarchy.decide(predicted, values, at_least_one)  # [batch, outputs]
    k = len(label_names) if hierarchy is None else hierarchy.num_primary
    out = _ranked(scores[:, :k], decisions[:, :k], label_names[:k])
    if k < len(label_names):
        parents = _ranked(scores[:, k:], decisions[:, k:], label_names[k:])
        out.update({f"parent_{key}": v for key, v in parents.items() if key != "label_count"})
    decisions = out["decisions"]  # [batch, num_labels]: what explain attributes
    if ig is not None:
        attributions, differences = ig.batch(inputs, decisions)
        ids = tf.cast(inputs["token_ids"], tf.int32)  # [batch, length]
        out.update(tokens=tf.where(ig.is_special(ids), "", tf.gather(tf.constant(vocab), ids)),
                   attributions=attributions, logit_difference=differences)
    return out


def serving_preprocessor(preprocessor, tokenizer: str = "auto"):
    """(the preprocessor to export, "core" or "tf_text"): `preprocessor` over `CoreWordPieceTokenizer`
    when asked for, or with "auto" when it gives the same token ids on `PROBE_TEXTS`."""
    if tokenizer not in TOKENIZERS:
        raise UserError(f"--tokenizer must be one of {', '.join(TOKENIZERS)}, not {tokenizer!r}")
    if tokenizer == "tf_text":
        return preprocessor, "tf_text"
    try:
        core = CoreWordPieceTokenizer.from_keras_hub(preprocessor.tokenizer,
                                                     max_words=preprocessor.sequence_length)
    except ValueError as e:  # a SentencePiece model, or WordPiece options it lacks
        if tokenizer == "core":
            raise UserError(f"--tokenizer core cannot reproduce this run's tokenizer ({e}); "
                             "use --tokenizer tf_text") from e
        log.warning("export: keeping tensorflow-text tokenization, which some TF Serving builds lack (%s)", e)
        return preprocessor, "tf_text"
    candidate = preprocessor.with_tokenizer(core)
    probe = tf.constant(PROBE_TEXTS)
    expected, got = (in_graph(p)(probe)["token_ids"].numpy() for p in (preprocessor, candidate))
    if expected.shape != got.shape or not np.array_equal(expected, got):
        rows = [t for t, a, b in zip(PROBE_TEXTS, expected, got) if a.shape != b.shape or (a != b).any()]
        message = f"the core-op tokenizer differs from keras-hub's on {rows[:3]!r}"
        if tokenizer == "core":
            raise UserError(message + "; use --tokenizer tf_text")
        log.warning("export: %s; keeping tensorflow-text tokenization", message)
        return preprocessor, "tf_text"
    return candidate, "core"


def export_run(run, export_dir: str, version: int | None = None, extra_files: dict | None = None,
               tokenizer: str = "auto", explain_steps: int | None = None, explain_baseline: str = "pad") -> str:
    """Writes `run` as `<export_dir>/<version>`; returns that path. `extra_files` go to assets.extra/,
    with export.json (package, tokenizer, labels, version). `explain_steps`: also an `explain`
    signature (`serving_outputs` with `ig`) with this many integrated-gradients steps."""
    ig = None
    if explain_steps is not None:
        from .explain import IntegratedGradients, check_supported, span_options

        check_supported(run.model.head, run.config.head_name)
        ig = IntegratedGradients(run.model, run.preprocessor, explain_steps, explain_baseline)
    preprocessor, tokenizer_used = serving_preprocessor(run.preprocessor, tokenizer)
    version = next_version(export_dir) if version is None else int(version)
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final} exists: TF Serving versions are immutable; pick another --version "
                              "or leave it out to take the next one")
    os.makedirs(export_dir, exist_ok=True)
    tmp = os.path.join(export_dir, f".tmp-{version}-{uuid.uuid4().hex[:8]}")

    def serve(text, ig=None, vocab=None):
        return serving_outputs(run.model, preprocessor, run.thresholds, run.config.thresholds.at_least_one,
                               run.labels.names, text, run.calibration, ig, vocab, run.hierarchy)

    # One trace, saved as a concrete function. Keras' ExportArchive saves a tf.function instead, which
    # tf.saved_model.save traces a second time (its save context misses the first trace's cache key).
    text_spec = [tf.TensorSpec([None], tf.string, name="text")]
    signatures = {"serving_default": tf.function(serve, input_signature=text_spec,
                                                 autograph=False).get_concrete_function()}
    if ig is not None:
        vocab = run.preprocessor.tokenizer.get_vocabulary()
        signatures["explain"] = tf.function(lambda text: serve(text, ig, vocab),
                                            input_signature=text_spec).get_concrete_function()
    root = tf.Module()
    root.model, root.preprocessor = run.model, preprocessor  # their variables and lookup tables
    try:
        tf.saved_model.save(root, tmp, signatures=signatures)
        extra = os.path.join(tmp, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        for name, src in (extra_files or {}).items():
            if src and os.path.exists(src):
                shutil.copyfile(src, os.path.join(extra, name))
        outputs = ["scores", "decisions", "labels", "label_count", "label_names"]
        k, hierarchy = run.hierarchy.num_primary, {}
        if run.hierarchy.parents:
            outputs += ["parent_scores", "parent_decisions", "parent_labels", "parent_label_names"]
            hierarchy = {"label_hierarchy": run.hierarchy.separator, "parent_labels": list(run.labels.names[k:])}
        info = {"package": run.config.package, "version": version, "tokenizer": tokenizer_used,
                "signature": "serving_default", "input": "text", "outputs": outputs,
                "labels": list(run.labels.names[:k]), **hierarchy,
                "calibration": run.calibration.method if run.calibration is not None else "none"}
        if ig is not None:  # what `explain.served_rows` needs to map tokens back to the text
            info["explain"] = {"signature": "explain", "steps": ig.steps, "baseline": explain_baseline,
                               "outputs": outputs + ["tokens", "attributions", "logit_difference"],
                               **span_options(run.preprocessor.tokenizer)}
        write_json(os.path.join(extra, "export.json"), info)
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %s (%s tokenizer)", final, tokenizer_used)
    return final


def saved_model_ops(path: str) -> set:
    """Every op type in a SavedModel's graphs and function library (what a server must have)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(path, "saved_model.pb"), "rb") as fh:
        proto.ParseFromString(fh.read())
    ops = set()
    for graph in proto.meta_graphs:
        ops.update(node.op for node in graph.graph_def.node)
        for fn in graph.graph_def.library.function:
            ops.update(node.op for node in fn.node_def)
    return ops


def write_models_config(path: str, name: str, base_path: str) -> None:
    """Adds (or replaces) model `name` at `base_path` in TF Serving's `--model_config_file`, keeping
    every other entry as written; the file is replaced atomically."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise UserError(f"model name {name!r}: use letters, digits, '_', '.' or '-' (it becomes a URL path)")
    blocks = []
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        blocks = _config_blocks(text, path)
    entry = (f'  config {{\n    name: "{name}"\n    base_path: "{base_path}"\n'
             f'    model_platform: "tensorflow"\n  }}')
    blocks = [b for b in blocks if re.search(r'name:\s*"([^"]*)"', b).group(1) != name] + [entry]
    write_text(path, "model_config_list {\n" + "\n".join(blocks) + "\n}\n")


def _config_blocks(text: str, path: str) -> list:
    """The `config { ... }` blocks of a models.config, verbatim."""
    body = re.fullmatch(r"\s*model_config_list\s*\{(.*)\}\s*", text, re.S)
    if body is None:
        raise UserError(f"{path}: not a TF Serving models.config (expected `model_config_list {{ ... }}`); "
                         "give a new path or fix the file")
    rest, blocks, depth, start = body.group(1), [], 0, 0
    for i, ch in enumerate(rest):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if ch == "}" and depth == 0:
            blocks.append("  " + rest[start:i + 1].strip())
            start = i + 1
    if depth != 0 or rest[start:].strip() or not all(
            re.match(r'\s*config\s*\{', b) and re.search(r'name:\s*"[^"]*"', b) for b in blocks):
        raise UserError(f"{path}: expected only `config {{ name: ... }}` blocks with balanced braces; "
                         "fix the file or give a new path")
    return blocks
