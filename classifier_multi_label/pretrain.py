"""Masked-LM pre-training of the encoder on the training texts (`--pretrain-epochs N`).

An encoder trained from scratch otherwise learns only from the labels. A few epochs of BERT-style
masked language modelling on the same training texts first (task-adaptive pre-training; no other
data, never dev or test) teach it which characters and words go together, before the classifier
is trained as usual. It works with any encoder that has a token embedding (a pretrained one is
then adapted at its own, smaller learning rate).

Masking is keras-hub's `MaskedLMMaskGenerator` inside the `tf.data` pipeline: 15% of the real
tokens (never [CLS], [SEP] or padding), at most `ceil(1.5 * 0.15 * max_seq_length)` per text, as
BERT's max_predictions_per_seq; of those 80% become [MASK], 10% a random token, 10% stay. The
prediction head is keras-hub's `MaskedLMHead`, tied to the token embedding, and is thrown away
afterwards: only the encoder's weights carry over. Optimizer and schedule are the run's (AdamW,
warm-up then linear decay, clipping by global norm).

Example:
    >>> texts = ["制热很快，声音很小", "外观漂亮，价格便宜"] * 4
    >>> quick = TrainConfig(jit_compile=False)  # XLA's compile time does not pay off on eight texts
    >>> history = pretrain_mlm(backbone, preprocessor, texts, quick, 1e-3, epochs=2)
    >>> [h["epoch"] for h in history], 0.0 <= history[-1]["mlm_accuracy"] <= 1.0
    ([1, 2], True)
"""

from __future__ import annotations

import logging
import math
import time

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from .config import TrainConfig
from .errors import UserError
from .model import resolve_precision
from .optimization import make_optimizer
from .pipeline import text_dataset
from .tokenization import special_token_id

log = logging.getLogger(__name__)

MASK_RATE = 0.15


def mlm_masker(preprocessor):
    """BERT's masking of a batch of inputs -> (inputs with "mask_positions", mask_ids, mask_weights),
    as one `tf.function`: made once, it is traced once for every epoch's dataset."""
    try:
        mask_id = special_token_id(preprocessor.tokenizer, "mask")
    except ValueError as e:
        raise UserError(f"--pretrain-epochs: {e}; a vocabulary built from the training texts has one") from None
    generator = keras_hub.layers.MaskedLMMaskGenerator(
        vocabulary_size=preprocessor.vocabulary_size, mask_selection_rate=MASK_RATE, mask_token_id=mask_id,
        mask_selection_length=math.ceil(1.5 * MASK_RATE * preprocessor.sequence_length),
        unselectable_token_ids=[preprocessor.cls_id, preprocessor.sep_id, preprocessor.pad_id])

    @tf.function
    def mask(x):
        m = generator(x["token_ids"])  # token_ids [batch, length]; the rest [batch, predictions]
        inputs = dict(x, token_ids=tf.cast(m["token_ids"], tf.int32),
                      mask_positions=tf.cast(m["mask_positions"], tf.int32))
        return inputs, tf.cast(m["mask_ids"], tf.int32), tf.cast(m["mask_weights"], tf.float32)

    return mask


def masked_lm_dataset(texts, preprocessor, batch_size: int, seed: int, epoch: int, masker=None) -> tf.data.Dataset:
    """Yields (inputs with "mask_positions", mask_ids, mask_weights): [batch, length] inputs and
    [batch, predictions] targets; the texts in a seeded order per epoch. `masker`: `mlm_masker`'s,
    made once for all epochs."""
    texts = np.asarray(list(texts), dtype=object)[np.random.default_rng([seed, epoch]).permutation(len(texts))]
    masker = masker or mlm_masker(preprocessor)
    return text_dataset(texts, preprocessor, batch_size).map(masker, num_parallel_calls=tf.data.AUTOTUNE)


def masked_lm_model(backbone: keras.Model) -> keras.Model:
    """backbone + a fresh `MaskedLMHead` tied to its token embedding: logits [batch, predictions, vocabulary]."""
    inputs = {name: keras.Input((None,), dtype="int32", name=name)
              for name in ("token_ids", "segment_ids", "padding_mask", "mask_positions")}
    sequence = backbone({k: inputs[k] for k in ("token_ids", "segment_ids", "padding_mask")})["sequence_output"]
    head = keras_hub.layers.MaskedLMHead(vocabulary_size=backbone.vocabulary_size,
                                         token_embedding=backbone.token_embedding,
                                         intermediate_activation="gelu", name="mlm_head")
    return keras.Model(inputs, head(sequence, mask_positions=inputs["mask_positions"]))


def pretrain_mlm(backbone: keras.Model, preprocessor, texts, cfg: TrainConfig, learning_rate: float,
                 epochs: int, batch_size: int = 32) -> list:
    """Trains `backbone` in place with masked LM on `texts`; returns one record per epoch."""
    # The [CLS] pooler gets no masked-LM gradient: frozen meanwhile (Keras would warn every step).
    pooler = [layer for layer in backbone.layers if layer.name == "pooled_dense" and layer.trainable]
    for layer in pooler:
        layer.trainable = False
    model = masked_lm_model(backbone)
    steps = -(-len(texts) // batch_size)
    opt = make_optimizer(cfg, learning_rate, steps * epochs, clip=True)  # model.fit: Keras clips
    # The mean over real predictions only (Keras' default divides by every slot, padding included).
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
    _, jit_compile = resolve_precision(cfg.precision, cfg.jit_compile)  # as the classifier's train step
    model.compile(optimizer=opt, loss=loss, jit_compile=jit_compile,
                  weighted_metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
    log.info("masked-LM pre-training on %d training texts for %d epochs (%d steps each)", len(texts), epochs, steps)
    history, masker = [], mlm_masker(preprocessor)
    try:
        for epoch in range(epochs):
            start = time.time()
            data = masked_lm_dataset(texts, preprocessor, batch_size, cfg.seed, epoch, masker)
            fit = model.fit(data, epochs=1, verbose=0, shuffle=False)
            record = {"epoch": epoch + 1, "mlm_loss": float(fit.history["loss"][-1]),
                      "mlm_accuracy": float(fit.history["accuracy"][-1]), "seconds": round(time.time() - start, 2)}
            log.info("pre-training epoch %d/%d: masked-LM loss %.4f, accuracy %.4f (%.0f s)", epoch + 1, epochs,
                     record["mlm_loss"], record["mlm_accuracy"], record["seconds"])
            history.append(record)
    finally:
        for layer in pooler:
            layer.trainable = True
    return history
