"""The one `tf.data` pipeline: (text, multi-hot) -> shuffled, tokenized, dynamically padded batches.

Tokenization runs inside the pipeline on whole batches (a batch of strings through the keras-hub
tokenizer is an order of magnitude faster than one string at a time), in parallel with training,
and the batch is padded only to its longest text (rounded up, see `TextPreprocessor`).

Training batches are length-bucketed and shuffled with a seed per epoch (`epoch_order`), so a
resumed run sees the same order as an uninterrupted one. `TokenDropout` (`--token-dropout`)
optionally masks a random part of each training text, seeded the same way.

Example:
    >>> ds = make_dataset(["好", "不好"], np.zeros((2, 3), "float32"), preprocessor, batch_size=2)
    >>> x, y = next(iter(ds))
    >>> sorted(x), tuple(y.shape)
    (['padding_mask', 'segment_ids', 'token_ids'], (2, 3))
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from .errors import UserError
from .tokenization import in_graph, special_token_id


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


@dataclass(frozen=True)
class TokenDropout:
    """Augmentation: every text token of a training batch becomes [MASK] with probability `rate`.

    A model trained from scratch on ten thousand texts drives its training loss to nearly zero by
    memorising them; hiding a fresh random part of each text every epoch is meant to make it use
    more of the text than the few characters that identify the example (on DuEE it kept the training
    loss higher but did not raise test F1: docs/benchmark-history.md). [CLS], [SEP], padding and a head's own
    tokens (ids from `vocabulary_size` up, LM-MTC's label template) are never replaced. The draw is
    stateless, seeded by (seed, epoch, batch), so a resumed run masks as an uninterrupted one.

    Example:
        >>> drop = TokenDropout(rate=0.5, mask_id=4, vocabulary_size=10, keep_ids=(0, 2, 3))
        >>> x = {"token_ids": tf.constant([[2, 5, 6, 7, 3, 0]]), "padding_mask": tf.constant([[1, 1, 1, 1, 1, 0]])}
        >>> ids = drop(x, seed=[1, 2])["token_ids"].numpy()[0]
        >>> ids[[0, 4, 5]].tolist(), set(ids[1:4].tolist()) <= {4, 5, 6, 7}
        ([2, 3, 0], True)
    """

    rate: float
    mask_id: int
    vocabulary_size: int  # ids at or above it are a head's own tokens
    keep_ids: tuple  # [CLS], [SEP], [PAD]

    def __post_init__(self):
        if not 0.0 <= self.rate < 1.0:
            raise UserError(f"--token-dropout {self.rate}: use a probability in [0, 1), e.g. 0.1")

    @classmethod
    def for_preprocessor(cls, preprocessor, rate: float) -> "TokenDropout":
        """Masking for texts tokenized by `preprocessor` (a `TextPreprocessor`)."""
        try:
            mask_id = special_token_id(preprocessor.tokenizer, "mask")
        except ValueError as e:
            raise UserError(f"--token-dropout: {e}; leave --token-dropout at 0 for this encoder") from None
        return cls(rate, mask_id, preprocessor.vocabulary_size,
                   (preprocessor.cls_id, preprocessor.sep_id, preprocessor.pad_id))

    def __call__(self, x: dict, seed) -> dict:
        ids = x["token_ids"]  # [batch, length]
        text = (x["padding_mask"] > 0) & (ids < self.vocabulary_size)
        for special in self.keep_ids:
            text &= ids != special
        roll = tf.random.stateless_uniform(tf.shape(ids), seed=seed)  # [batch, length]
        return dict(x, token_ids=tf.where(text & (roll < self.rate), tf.constant(self.mask_id, ids.dtype), ids))


_TRACED = weakref.WeakKeyDictionary()


def traced(preprocessor):
    """`preprocessor` (strings [batch] -> inputs) as one traced function, reused by every dataset made
    from it: tf.data traces a map's function anew for each dataset (every epoch makes one), and
    tracing the tokenizer's graph is what takes the time."""
    fn = _TRACED.get(preprocessor)
    if fn is None:
        fn = _TRACED[preprocessor] = in_graph(preprocessor)
    return fn


def make_dataset(texts, targets, preprocessor, batch_size: int, shuffle: bool = False, seed: int = 0,
                 epoch: int = 0, token_dropout: TokenDropout | None = None) -> tf.data.Dataset:
    """Yields (inputs, targets): inputs a dict of [batch, length] int32, targets [batch, labels].

    With `shuffle`, the epoch's order comes from `epoch_order` (seeded, length-bucketed); with
    `token_dropout`, each batch's texts are partly masked (seeded by seed, epoch and batch)."""
    texts = np.asarray(list(texts), dtype=object)
    targets = np.asarray(targets, dtype=np.float32)
    if shuffle:
        order = epoch_order(texts, batch_size, seed, epoch)
        texts, targets = texts[order], targets[order]
    ds = tf.data.Dataset.from_tensor_slices((texts, targets)).batch(batch_size)
    tokenize = traced(preprocessor)
    ds = ds.map(lambda t, y: (tokenize(t), y), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if token_dropout is not None and token_dropout.rate > 0:
        # Batch i of epoch e draws from the stateless seed (seed, e * 2^20 + i).
        ds = ds.enumerate().map(
            lambda i, xy: (token_dropout(xy[0], tf.stack([tf.constant(seed, tf.int64), epoch * 2 ** 20 + i])), xy[1]),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.prefetch(tf.data.AUTOTUNE)


def text_dataset(texts, preprocessor, batch_size: int) -> tf.data.Dataset:
    """Inputs only, in order: for prediction."""
    ds = tf.data.Dataset.from_tensor_slices(np.asarray(list(texts), dtype=object)).batch(batch_size)
    return ds.map(traced(preprocessor), num_parallel_calls=tf.data.AUTOTUNE,
                  deterministic=True).prefetch(tf.data.AUTOTUNE)


# Up to this many batches, prediction tokenizes batch by batch in the caller's thread: starting a
# tf.data pipeline (instantiating its map function) costs about 0.4 s on 2 cores, a hundred times
# what one batch of the traced tokenizer does; beyond it, the pipeline's parallel prefetch pays.
FEW_BATCHES = 8


def text_batches(texts, preprocessor, batch_size: int):
    """Inputs only, in order, as `text_dataset` makes them (the same traced tokenizer): a list of
    batches for a few texts (`run.predict` on one text answers in milliseconds), else the dataset."""
    texts = list(texts)
    if not texts or len(texts) > FEW_BATCHES * batch_size:
        return text_dataset(texts, preprocessor, batch_size)
    tokenize = traced(preprocessor)
    return [tokenize(tf.constant(np.asarray(texts[i:i + batch_size], dtype=object)))
            for i in range(0, len(texts), batch_size)]
