"""The one `tf.data` pipeline: (text, multi-hot) -> shuffled, tokenized, dynamically padded batches.

Tokenization runs inside the pipeline on whole batches (a batch of strings through the keras-hub
tokenizer is an order of magnitude faster than one string at a time), in parallel with training,
and the batch is padded only to its longest text (rounded up, see `TextPreprocessor`).

Shuffling is seeded per epoch (`seed + epoch`), so a resumed run sees the same order as an
uninterrupted one.

Example:
    >>> ds = make_dataset(["好", "不好"], np.zeros((2, 3), "float32"), preprocessor, batch_size=2)  # doctest: +SKIP
    >>> x, y = next(iter(ds))  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def make_dataset(texts, targets, preprocessor, batch_size: int, shuffle: bool = False, seed: int = 0,
                 epoch: int = 0, drop_remainder: bool = False) -> tf.data.Dataset:
    """Yields (inputs, targets): inputs a dict of [batch, length] int32, targets [batch, labels]."""
    texts = np.asarray(list(texts), dtype=object)
    ds = tf.data.Dataset.from_tensor_slices((texts, np.asarray(targets, dtype=np.float32)))
    if shuffle:
        ds = ds.shuffle(len(texts), seed=seed + epoch, reshuffle_each_iteration=False)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    ds = ds.map(lambda t, y: (preprocessor(t), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def text_dataset(texts, preprocessor, batch_size: int) -> tf.data.Dataset:
    """Inputs only, in order: for prediction."""
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(list(texts), dtype=object)).batch(batch_size)
    return ds.map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
