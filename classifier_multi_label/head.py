"""Heads: small layers from the encoder's outputs to per-label outputs.

A head is all that differs between the sibling packages. It declares its options as a dataclass
(`options`, whose fields become command-line flags), builds its layers, and says how its outputs
become per-label logits (`logits`), scores (`scores`) and a training loss (`compute_loss`).
Everything else (data, encoder, training, metrics, thresholds, export) is shared.

The baseline's `PooledHead` and `TextCNNHead` live here: contrib's prototype contrastive training
trains either one. Hooks: `adapt_encoder` (extra tokens, an input template), `training_inputs`
(extra views or masking before each training step) and `on_epoch_begin` (schedules).

A head that decodes the label set itself (seq2seq) sets `decodes_labels`, returns "decisions"
from `infer` (thresholds are then not tuned for it), may encode its training targets its own way
(`targets`) and derive options from the training labels (`resolve_options`).

Example:
    >>> head = PooledHead(num_labels=3, dropout=0.1)
    >>> out = head({"pooled_output": tf.zeros([2, 8]), "sequence_output": tf.zeros([2, 5, 8])},
    ...            tf.ones([2, 5], "int32"))
    >>> tuple(out.shape)
    (2, 3)
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from .config import POOLINGS as POOLING_CHOICES
from .config import build_head_config
from .errors import UserError
from .head_options import PooledOptions, TextCNNOptions


class Head(keras.layers.Layer):
    """Base class: encoder outputs -> per-label outputs."""

    @dataclass
    class options:  # noqa: N801 - a head's options dataclass (declared once; fields become CLI flags)
        pass

    renamed_options: dict = {}  # old option name -> new, so config.json files written before a rename load

    decodes_labels = False  # True: `infer` returns the label sets ("decisions"); no thresholds
    uses_core_loss = True  # False: `compute_loss` ignores the core's --loss, which must stay "bce"
    xla_train_step = True  # False: the train step runs without XLA even with --jit-compile (measured slower)
    supports_bfloat16 = True  # False: --precision auto stays float32 and mixed_bfloat16 is refused
    batch_local_loss = True  # False: the loss couples a whole batch (contrastive): one replica only
    # False: over a pretrained encoder the head's default rate is the encoder's, not PRETRAINED_HEAD_LR
    # (a head whose few weights only read states the encoder itself must learn to make: LM-MTC's slots).
    fast_head_rate = True

    def __init__(self, num_labels: int, name: str = "head", **options):
        super().__init__(name=name)
        self.num_labels = int(num_labels)
        self.opts = self.make_options(**options)  # the `options` dataclass: each option declared once

    @classmethod
    def make_options(cls, **values):
        """The head's `options` from keyword values, defaults for the rest; a name the dataclass does
        not declare is an error naming the closest valid one."""
        values = {cls.renamed_options.get(k, k): v for k, v in values.items()}
        return build_head_config(cls.options, values)

    @classmethod
    def resolve_options(cls, options: dict, train_label_lists, labels) -> dict:
        """Options whose default depends on the training labels (`labels`: the LabelVocab), filled in
        before the head is built (saved in config.json, so a loaded run rebuilds the same head)."""
        return options

    def adapt_encoder(self, backbone, preprocessor):
        """(backbone, preprocessor) this head runs on, before the model is built (train and load):
        unchanged by default; a head may add tokens or build its own input template here."""
        return backbone, preprocessor

    def training_inputs(self, x: dict, y):
        """(inputs, targets) of a training step, per replica, in a graph of its own before the (XLA)
        step: unchanged by default; a head may add views or masking here (its `compute_loss`
        receives the targets it returns)."""
        return x, y

    def on_epoch_begin(self, epoch: int):
        """Called by the trainer before each epoch (0-based), for schedules inside the loss."""

    def targets(self, label_lists, labels) -> np.ndarray:
        """Training targets [examples, num_labels] for `compute_loss`: multi-hot by default."""
        return labels.multi_hot(label_lists)

    def call(self, encoder_outputs: dict, padding_mask, training=None):
        raise NotImplementedError

    def logits(self, outputs):
        """Per-label binary logits [batch, num_labels]: sigmoid(logits) is the label's probability."""
        return outputs

    def scores(self, outputs):
        """Per-label probabilities [batch, num_labels]."""
        return ops.sigmoid(self.logits(outputs))

    def infer(self, outputs) -> dict:
        """Inference outputs: {"scores": [batch, num_labels]}, plus "decisions" [batch, num_labels]
        for a head that decodes the label set itself."""
        return {"scores": self.scores(outputs)}

    def predict(self, model, x: dict) -> dict:
        """`infer` from inputs `x`: one pass of `model` by default. A head that decodes over several
        passes (LM-MTC's top-p decoding) overrides this; prediction, eval and the export all call it."""
        return self.infer(model(x, training=False))

    def compute_loss(self, y_true, outputs, loss_fn):
        """The training loss; `loss_fn(y_true, logits)` is the core's selected multi-label loss."""
        return loss_fn(y_true, self.logits(outputs))


def logits_layer(units: int) -> keras.layers.Dense:
    """The output projection every head ends with (BERT's truncated-normal 0.02 init, zero bias)."""
    return keras.layers.Dense(units, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                              name="logits")


POOLINGS = tuple(p for p in POOLING_CHOICES if p != "auto")  # what a Pooling layer computes
SCRATCH_POOLING = "max"  # what --pooling auto takes for an encoder trained from scratch
SCRATCH_PROJECTION = 768  # and the features it pools: TextCNN's count (6 widths x 128 filters)
SCRATCH_PROJECTION_WIDTH = 3  # each from a window of 3 tokens: a detector sees a character's neighbours


def resolve_pooling(pooling: str, pretrained: bool) -> str:
    """`--pooling auto` -> "cls" over a pretrained encoder (its [CLS] state was trained to summarise
    the text), `SCRATCH_POOLING` otherwise: in an ALBERT initialised at random the [CLS] state is
    nearly the same for every text (measured on the demo: its spread across texts was 0.3% of its
    scale), so a head that reads only it sits at the label priors for many epochs."""
    if pooling == "auto":
        return "cls" if pretrained else SCRATCH_POOLING
    if pooling not in POOLINGS:
        raise UserError(f"--pooling {pooling!r}: use auto, {', '.join(POOLINGS)}")
    return pooling


def resolve_pooled_options(options: dict, pretrained: bool) -> dict:
    """A pooled head's `pooling`, `projection` and `projection_width` as a training run decides them
    from the encoder: `auto` from scratch is max pooling over `SCRATCH_PROJECTION` ReLU features of
    each `SCRATCH_PROJECTION_WIDTH`-token window (the feature map a TextCNN convolution gives, one
    width); unset, the projection is 0 and the width 1 otherwise, so a pooling the user names is
    exactly that pooling.

    Example:
        >>> resolve_pooled_options({"pooling": "auto", "projection": None}, pretrained=False)
        {'pooling': 'max', 'projection': 768, 'projection_width': 3}
        >>> resolve_pooled_options({"pooling": "auto", "projection": None}, pretrained=True)
        {'pooling': 'cls', 'projection': 0, 'projection_width': 1}
        >>> resolve_pooled_options({"pooling": "attention", "projection": None}, pretrained=False)
        {'pooling': 'attention', 'projection': 0, 'projection_width': 1}
    """
    pooling, projection, width = options["pooling"], options.get("projection"), options.get("projection_width")
    scratch_auto = pooling == "auto" and not pretrained
    if projection is None:
        projection = SCRATCH_PROJECTION if scratch_auto else 0
    if width is None:
        width = SCRATCH_PROJECTION_WIDTH if scratch_auto and projection else 1
    return dict(options, pooling=resolve_pooling(pooling, pretrained), projection=projection,
                projection_width=width)


def pooling_layer(pooling: str, num_labels: int, projection: int | None = 0,
                  projection_width: int | None = 1) -> "Pooling":
    """The `Pooling` of a pooled head from its --pooling, --projection and --projection-width (a
    training run resolves `auto` and unset values from the encoder before; a head built by hand takes
    `cls`, 0 and 1)."""
    return Pooling(resolve_pooling(pooling, pretrained=True), num_labels=num_labels, projection=projection or 0,
                   projection_width=projection_width or 1)


class Pooling(keras.layers.Layer):
    """One vector per text from the encoder's outputs: [batch, hidden] (`label`: one per text and label).

    - ``cls``: the backbone's pooled output (tanh(Dense) of the [CLS] state), as BERT and hellonlp.
    - ``mean``: the mean of the sequence output over the real tokens.
    - ``max``: the per-dimension maximum over the real tokens (TextCNN's max-over-time, without the
      convolutions): each dimension can act as a detector that fires on one token anywhere.
    - ``attention``: a learned softmax weighting of the real tokens' states (one learned query:
      weight_t = softmax_t(w . h_t + b)), so the head can pick the tokens that carry the labels.
    - ``label``: one such attention per label (label-wise attention, as CAML and LSAN): a vector per
      text *and label*, [batch, num_labels, hidden], so each label reads its own tokens; the head
      then scores each label's vector with that label's own weights (`LabelwiseDense`).

    Example:
        >>> pool = Pooling("mean")
        >>> x = {"sequence_output": tf.constant([[[1.0], [3.0], [9.0]]]), "pooled_output": tf.zeros([1, 1])}
        >>> pool(x, tf.constant([[1, 1, 0]])).numpy().tolist()
        [[2.0]]
    """

    def __init__(self, mode: str = "cls", num_labels: int | None = None, projection: int = 0,
                 projection_width: int = 1, **kw):
        super().__init__(name=kw.pop("name", "pooling"), **kw)
        if mode not in POOLINGS:
            raise UserError(f"pooling {mode!r}: use one of {', '.join(POOLINGS)} (auto is resolved by the "
                             "training run from the encoder)")
        if mode == "label" and not num_labels:
            raise ValueError("Pooling('label') needs num_labels")
        if projection and mode == "cls":
            raise UserError("--projection maps token states before a token pooling: use --pooling mean, max, "
                            "attention or label, or --projection 0 with cls")
        if projection_width > 1 and not projection:
            raise UserError(f"--projection-width {projection_width} sets the windows of --projection's features: "
                            "give --projection N too, or leave --projection-width out")
        self.mode = mode
        queries = {"attention": 1, "label": num_labels}.get(mode)  # one learned query per output vector
        self.score = keras.layers.Dense(queries, name="attention_score") if queries else None
        self.width = int(projection_width)
        if not projection:
            self.project = None
        elif self.width == 1:
            self.project = keras.layers.Dense(projection, activation="relu", name="projection")
        else:  # "same": one window centred on each token, so the pooling below keeps its token mask
            self.project = keras.layers.Conv1D(projection, self.width, padding="same", activation="relu",
                                               name="projection")

    def call(self, encoder_outputs, padding_mask):
        if self.mode == "cls":
            return encoder_outputs["pooled_output"]  # [batch, hidden]
        states = encoder_outputs["sequence_output"]  # [batch, length, hidden]
        real = ops.cast(padding_mask, "bool")  # [batch, length]
        x = states
        if self.width > 1:  # windows read zeros past the text, whatever the encoder put at padding
            x = x * ops.cast(real, x.dtype)[:, :, None]
        x = self.project(x) if self.project is not None else x  # [batch, length, features]
        if self.mode == "mean":
            mask = ops.cast(real, x.dtype)[:, :, None]
            return ops.sum(x * mask, axis=1) / ops.maximum(ops.sum(mask, axis=1), 1.0)
        if self.mode == "max":
            lowest = ops.cast(ops.min(x), x.dtype)  # padding never wins the max, even over negative states
            return ops.max(ops.where(real[:, :, None], x, lowest), axis=1)  # [batch, hidden]
        logits = ops.cast(self.score(states), "float32")  # [batch, length, queries]: softmax in float32
        logits = ops.where(real[:, :, None], logits, -1e9)  # padding excluded
        weights = ops.cast(ops.softmax(logits, axis=1), x.dtype)  # [batch, length, queries]
        pooled = ops.einsum("blq,blh->bqh", weights, x)  # [batch, queries, hidden]
        return pooled if self.mode == "label" else pooled[:, 0]  # [batch, labels, hidden] | [batch, hidden]


class LabelwiseDense(keras.layers.Layer):
    """Per-label output weights over per-label vectors: [batch, labels, hidden] -> [batch, labels,
    units], label c scored only from its own vector with its own kernel [hidden, units] (what
    `label` pooling feeds; BERT's truncated-normal 0.02 init and a zero bias, as `logits_layer`)."""

    def __init__(self, units: int, **kw):
        super().__init__(name=kw.pop("name", "logits"), **kw)
        self.units = int(units)

    def build(self, input_shape):
        labels, hidden = int(input_shape[-2]), int(input_shape[-1])
        self.kernel = self.add_weight(shape=(labels, hidden, self.units), name="kernel",
                                      initializer=keras.initializers.TruncatedNormal(stddev=0.02))
        self.bias = self.add_weight(shape=(labels, self.units), name="bias", initializer="zeros")

    def call(self, x):
        return ops.einsum("bch,chu->bcu", x, ops.cast(self.kernel, x.dtype)) + ops.cast(self.bias, x.dtype)


class PooledHead(Head):
    """The baseline: pooled text vector -> dropout -> Dense(num_labels) logits (sigmoid outside the
    loss). `pooling` chooses the vector (`Pooling`; a training run resolves `auto` from the encoder,
    a head built by hand takes `cls` for it)."""

    options = PooledOptions

    def __init__(self, num_labels: int, **options):
        super().__init__(num_labels, **options)
        self.pooling = pooling_layer(self.opts.pooling, num_labels, self.opts.projection,
                                     self.opts.projection_width)
        self.dropout = keras.layers.Dropout(self.opts.dropout)
        self.dense = LabelwiseDense(1) if self.pooling.mode == "label" else logits_layer(num_labels)

    def features(self, encoder_outputs, padding_mask):
        return self.pooling(encoder_outputs, padding_mask)  # [batch, hidden] ([batch, labels, hidden]: label)

    def feature_dim(self, encoder_outputs_shape) -> int:
        return self.opts.projection or int(encoder_outputs_shape["pooled_output"][-1])

    def call(self, encoder_outputs, padding_mask, training=None):
        h = self.dropout(self.features(encoder_outputs, padding_mask), training=training)
        if self.pooling.mode == "label":
            return self.dense(h)[..., 0]  # logits: [batch, num_labels]
        return self.dense(h)  # logits: [batch, num_labels]


class TextCNNHead(Head):
    """The TextCNN head (docs/algorithms.md §1.6), with padding masked out of the max-pool.

    sequence output [batch, length, hidden] -> for each filter size k: Conv1D(num_filters, k, ReLU)
    -> max over the windows that lie inside the text -> concat [batch, len(filter_sizes) * num_filters]
    -> dropout -> Dense(num_labels) logits -> sigmoid (in the loss and in `scores`).

    The TF1 original max-pooled over padding too, so a text's scores depended on how much padding its
    batch had. Here the encoder output at padded positions is zeroed and a window counts only if it
    lies inside the real tokens; the first window always counts, so a text shorter than the largest
    filter still works (the input is padded to the largest filter size).

    Example:
        >>> head = TextCNNHead(num_labels=3, filter_sizes=[2, 3], num_filters=4)
        >>> out = head({"sequence_output": tf.random.normal([2, 5, 8]), "pooled_output": tf.zeros([2, 8])},
        ...            tf.constant([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]))
        >>> tuple(out.shape)
        (2, 3)
    """

    options = TextCNNOptions

    def __init__(self, num_labels: int, **options):
        super().__init__(num_labels, **options)
        self.filter_sizes, self.num_filters = [int(k) for k in self.opts.filter_sizes], int(self.opts.num_filters)
        self.convs = [keras.layers.Conv1D(self.num_filters, k, padding="valid", activation="relu", name=f"conv_{k}")
                      for k in self.filter_sizes]
        self.dropout = keras.layers.Dropout(self.opts.dropout)
        self.dense = logits_layer(num_labels)

    def call(self, encoder_outputs, padding_mask, training=None):
        features = self.features(encoder_outputs, padding_mask)  # [batch, len(filter_sizes) * num_filters]
        return self.dense(self.dropout(features, training=training))  # logits: [batch, num_labels]

    def feature_dim(self, encoder_outputs_shape) -> int:
        return len(self.filter_sizes) * self.num_filters

    def features(self, encoder_outputs, padding_mask):
        x = encoder_outputs["sequence_output"]  # [batch, length, hidden]
        mask = tf.cast(padding_mask, x.dtype)  # [batch, length]
        x = x * mask[:, :, None]  # padded positions contribute zeros, whatever the encoder put there
        longest = max(self.filter_sizes)
        short = tf.maximum(longest - tf.shape(x)[1], 0)
        x = tf.pad(x, [[0, 0], [0, short], [0, 0]])  # [batch, max(length, longest), hidden]
        n_real = tf.reduce_sum(tf.cast(padding_mask, tf.int32), axis=1)  # [batch]
        pooled = []
        for k, conv in zip(self.filter_sizes, self.convs):
            h = conv(x)  # [batch, windows, num_filters], ReLU >= 0
            start = tf.range(tf.shape(h)[1])[None, :]  # [1, windows]
            inside = (start + k <= n_real[:, None]) | (start == 0)  # [batch, windows]
            # Outputs are >= 0 and the first window always counts, so zeroing the others is a masked max.
            h = h * tf.cast(inside, h.dtype)[:, :, None]
            pooled.append(tf.reduce_max(h, axis=1))  # [batch, num_filters]
        return tf.concat(pooled, axis=-1)  # [batch, len(filter_sizes) * num_filters]
