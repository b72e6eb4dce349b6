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
- ``label_count``: [batch] int32, how many labels were predicted.

Tokenization, thresholds and label names live in the graph. The model loads in a process that
imports only ``tensorflow`` and ``tensorflow_text``, which is what a TF Serving binary has.

Example:
    >>> path = export_run(run, "exports/reviews")  # doctest: +SKIP
    >>> tf.saved_model.load(path).signatures["serving_default"](text=tf.constant(["很好"]))  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import uuid

import keras
import tensorflow as tf

from .thresholds import final_decisions

log = logging.getLogger(__name__)


def next_version(export_dir: str) -> int:
    if not os.path.isdir(export_dir):
        return 1
    versions = [int(d) for d in os.listdir(export_dir) if re.fullmatch(r"\d+", d)]
    return max(versions, default=0) + 1


def serving_outputs(model, preprocessor, thresholds, at_least_one, label_names, texts):
    """The exported computation, also callable in-process (tests compare the two)."""
    inputs = preprocessor(texts)  # {"token_ids", "segment_ids", "padding_mask"}: [batch, length]
    predicted = model.head.infer(model(inputs, training=False))  # "scores" [batch, num_labels], ...
    scores = predicted["scores"]
    decisions = final_decisions(predicted, None if thresholds is None else thresholds.values,
                                at_least_one)  # [batch, num_labels]
    # Predicted labels first, each group by descending score (scores are in [0, 1]).
    order = tf.argsort(tf.cast(decisions, tf.float32) * 2.0 + scores, axis=-1, direction="DESCENDING",
                       stable=True)  # [batch, num_labels]
    names = tf.gather(tf.constant(label_names), order)  # [batch, num_labels]
    chosen = tf.gather(decisions, order, batch_dims=1) > 0
    return {"scores": scores, "decisions": decisions, "labels": tf.where(chosen, names, ""),
            "label_count": tf.reduce_sum(decisions, axis=-1)}


def export_run(run, export_dir: str, version: int | None = None, extra_files: dict | None = None) -> str:
    """Writes `run` as `<export_dir>/<version>`; returns that path. `extra_files` go to assets.extra/."""
    version = next_version(export_dir) if version is None else int(version)
    final = os.path.join(export_dir, str(version))
    if os.path.exists(final):
        raise FileExistsError(f"{final} exists: TF Serving versions are immutable; pick another --version "
                              "or leave it out to take the next one")
    os.makedirs(export_dir, exist_ok=True)
    tmp = os.path.join(export_dir, f".tmp-{version}-{uuid.uuid4().hex[:8]}")

    def serve(text):
        return serving_outputs(run.model, run.preprocessor, run.thresholds, run.config.thresholds.at_least_one,
                               run.labels.names, text)

    archive = keras.export.ExportArchive()
    archive.track(run.model)
    archive.track(run.preprocessor)
    archive.add_endpoint("serving_default", serve, input_signature=[tf.TensorSpec([None], tf.string, name="text")])
    try:
        archive.write_out(tmp, verbose=False)
        extra = os.path.join(tmp, "assets.extra")
        os.makedirs(extra, exist_ok=True)
        for name, src in (extra_files or {}).items():
            if src and os.path.exists(src):
                shutil.copyfile(src, os.path.join(extra, name))
        os.rename(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("exported %s", final)
    return final
