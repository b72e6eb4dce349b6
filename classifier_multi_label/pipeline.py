"""The one `tf.data` pipeline: (text, multi-hot) -> shuffled, tokenized, dynamically padded batches.

Tokenization runs inside the pipeline on whole batches (a batch of strings through the keras-hub
tokenizer is an order of magnitude faster than one string at a time), in parallel with training,
and the batch is padded only to its longest text (rounded up, see `TextPreprocessor`).

Training batches are length-bucketed and shuffled with a seed per epoch (`epoch_order`), so a
resumed run sees the same order as an uninterrupted one.

Example:
    >>> ds = make_dataset(["好", "不好"], np.zeros((2, 3), "float32"), preprocessor, batch_size=2)  # doctest: +SKIP
    >>> x, y = next(iter(ds))  # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def epoch_order(texts, batch_size: int, seed: int, epoch: int, pool_batches: int = 50,
                num_buckets: int = 4) -> np.ndarray:
    """A seeded shuffle with coarse length bucketing.

    Within pools of `pool_batches` batches, examples are split into `num_buckets` length quartiles;
    each quartile is shuffled and cut into batches, and all batches are shuffled. A batch holds
    texts of similar length (dynamic padding wastes little) yet stays random within its quartile:
    a full sort would make batches homogeneous in anything length correlates with (often the
    number of labels). The order depends only on (seed, epoch), so a resumed run replays it.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(texts))
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    pool = batch_size * pool_batches
    batches = []
    for start in range(0, len(order), pool):
        chunk = order[start:start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        for bucket in np.array_split(chunk, num_buckets):
            bucket = rng.permutation(bucket)
            batches += [bucket[i:i + batch_size] for i in range(0, len(bucket), batch_size)]
    return np.concatenate([batches[i] for i in rng.permutation(len(batches))]) if batches else order


def make_dataset(texts, targets, preprocessor, batch_size: int, shuffle: bool = False, seed: int = 0,
                 epoch: int = 0) -> tf.data.Dataset:
    """Yields (inputs, targets): inputs a dict of [batch, length] int32, targets [batch, labels].

    With `shuffle`, the epoch's order comes from `epoch_order` (seeded, length-bucketed)."""
    texts = np.asarray(list(texts), dtype=object)
    targets = np.asarray(targets, dtype=np.float32)
    if shuffle:
        order = epoch_order(texts, batch_size, seed, epoch)
        texts, targets = texts[order], targets[order]
    ds = tf.data.Dataset.from_tensor_slices((texts, targets)).batch(batch_size)
    ds = ds.map(lambda t, y: (preprocessor(t), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def text_dataset(texts, preprocessor, batch_size: int) -> tf.data.Dataset:
    """Inputs only, in order: for prediction."""
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(list(texts), dtype=object)).batch(batch_size)
    return ds.map(preprocessor, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).prefetch(tf.data.AUTOTUNE)
