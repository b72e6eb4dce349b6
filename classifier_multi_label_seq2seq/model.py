"""The seq2seq head (docs/algorithms.md §1.8): the label set decoded as a sequence.

ALBERT sequence output [batch, length, hidden]
-> a forward stack and a backward stack of LSTMs (3 each by default, `lstm_units` = hidden),
   concatenated only at the top, padding masked: memory [batch, length, 2 * units]
-> an LSTM decoder (2 * units) with Bahdanau attention over the memory (padding masked) and input
   feeding: step t reads [embedding(y_{t-1}); a_{t-1}], a_t = W_a [h_t; c_t], logits_t = Dense(a_t)
-> decoder tokens: 0 PAD, 1 GO (start), 2 END, 3 + i for label i.

Training (teacher forcing): a text's labels in a canonical order (by training frequency, most
frequent first, by default; `--label-order file` keeps each row's own order), then END, padded with
PAD; cross-entropy averaged over the non-PAD tokens. A text with no label is just END.

Inference: batched beam search (`--beam-width`, 5 by default; 1 is greedy) in TensorFlow ops, so
it runs inside the exported SavedModel. A hypothesis never emits a label twice (labels it already
holds are masked), stops at END, and is forced to END after `max_labels` labels (the largest set
in training, by default). Hypotheses are ranked by summed log-probability, as the original.

Outputs: ``decisions`` is the best hypothesis' label set. ``scores`` are beam marginals: the
final hypotheses' probabilities renormalised over the beam, summed over the hypotheses that hold
the label; a label in every hypothesis scores 1, in none 0. They rank labels and show confidence;
the decoded set, not a threshold, decides (docs/heads.md).

Fixes of the TF1 original: its start and end tokens were swapped between training and inference
(decoding never stopped early), padding was attended to and fed to the encoder LSTMs, and the
decoded labels were not de-duplicated.

Example:
    >>> head = Seq2SeqHead(num_labels=3, encoder_layers=1, max_labels=2)
    >>> out = head({"sequence_output": tf.random.normal([2, 5, 8]), "pooled_output": tf.zeros([2, 8])},
    ...            tf.constant([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]))
    >>> {k: tuple(v.shape) for k, v in head.infer(out).items()}
    {'scores': (2, 3), 'decisions': (2, 3)}
"""

from __future__ import annotations

from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf

from classifier_multi_label.errors import UserError
from classifier_multi_label.head import Head

from .lstm import bidirectional_lstm_stack, lstm_gates
from .options import LABEL_ORDERS, Seq2SeqOptions

PAD, GO, END, FIRST_LABEL = 0, 1, 2, 3
NEG = -1e9  # the log-probability of an impossible hypothesis (finite: no inf - inf = nan)


class Decoding(NamedTuple):
    """What every decoder step reads, computed once per text batch (weights cast once, not per step)."""

    memory: tf.Tensor  # encoder states m_j: [batch, length, d]
    keys: tf.Tensor  # W_m m_j: [batch, length, d]
    mask: tf.Tensor  # [batch, length] bool, False on padding
    table: tf.Tensor  # the decoder cell's input term of each token's embedding, plus its bias: [vocab, 4d]
    kernel: tf.Tensor  # the cell's kernel rows for a, then its recurrent kernel: [2d, 4d]
    query: tf.Tensor  # W_q: [d, d]
    v: tf.Tensor  # [d, 1]
    attention: tf.Tensor  # W_a: [2d, d]
    logits: tf.Tensor  # the output layer's kernel, float32: [d, vocab]
    logits_bias: tf.Tensor  # float32: [vocab]


def label_sequences(positions, length: int):
    """positions [batch, labels] (0: absent, k: the label is its text's k-th) -> decoder targets
    [batch, length] int32: the labels in position order, END, then PAD."""
    pos = tf.cast(positions, tf.int32)
    present = pos > 0
    order = tf.argsort(tf.where(present, pos, tf.int32.max), axis=-1, stable=True)  # [batch, labels]
    order = tf.pad(order, [[0, 0], [0, tf.maximum(length - tf.shape(order)[1], 0)]])[:, :length]
    n = tf.reduce_sum(tf.cast(present, tf.int32), axis=-1, keepdims=True)  # [batch, 1]
    t = tf.range(length)[None, :]  # [1, length]
    return tf.where(t < n, order + FIRST_LABEL, tf.where(t == n, END, PAD))


class Seq2SeqHead(Head):
    decodes_labels = True
    uses_core_loss = False
    # XLA compiles the LSTM loops' gradients poorly on CPU: a train step (batch 16, length 48, hidden
    # 128) took 248 ms with XLA and 124 ms without. Inference keeps XLA (25 ms against 42 ms).
    xla_train_step = False

    options = Seq2SeqOptions

    def __init__(self, num_labels: int, **options):
        super().__init__(num_labels, **options)
        o = self.opts
        encoder_layers, lstm_units, beam_width = o.encoder_layers, o.lstm_units, o.beam_width
        label_order = o.label_order
        max_labels, dropout = o.max_labels, o.dropout
        if label_order not in LABEL_ORDERS:
            raise UserError(f"--label-order {label_order!r}: use one of {', '.join(LABEL_ORDERS)}")
        if beam_width < 1 or encoder_layers < 1:
            raise UserError("--beam-width and --encoder-layers must be at least 1")
        self.encoder_layers, self.lstm_units, self.beam_width = int(encoder_layers), lstm_units, int(beam_width)
        self.label_order = label_order
        self.max_labels = int(max_labels) if max_labels is not None else num_labels
        self.max_len = self.max_labels + 1  # decoding steps: the labels, then END
        self.vocab = num_labels + FIRST_LABEL
        self.dropout = keras.layers.Dropout(dropout)

    @classmethod
    def resolve_options(cls, options: dict, train_label_lists, labels) -> dict:
        largest = max((len(labs) for labs in train_label_lists), default=0)
        if options.get("max_labels") is None:
            options["max_labels"] = max(largest, 1)
        elif options["max_labels"] < largest:
            raise UserError(f"--max-labels {options['max_labels']}: a training text has {largest} labels; "
                             f"raise it to at least {largest} or leave it out")
        return options

    def targets(self, label_lists, labels) -> np.ndarray:
        """Position codes [examples, num_labels]: 0 absent, k the label's place in the decoded order."""
        rank = np.arange(len(labels))
        if self.label_order == "frequency":  # most frequent first; ties in label-file order
            counts = labels.multi_hot(label_lists).sum(axis=0)
            rank[np.argsort(-counts, kind="stable")] = np.arange(len(labels))
        out = np.zeros((len(label_lists), len(labels)), np.float32)
        for row, labs in enumerate(label_lists):
            if len(labs) > self.max_labels:
                raise UserError(f"a text has {len(labs)} labels, more than --max-labels {self.max_labels}")
            ids = [labels.index[lab] for lab in labs]
            if self.label_order == "frequency":
                ids = sorted(ids, key=lambda i: rank[i])
            out[row, ids] = np.arange(1, len(ids) + 1)
        return out

    def build(self, encoder_outputs_shape, padding_mask_shape=None):
        hidden = int(encoder_outputs_shape["sequence_output"][-1])
        units = int(self.lstm_units or hidden)
        d = 2 * units  # decoder, attention and label-embedding size (the original: 768)
        lstm = dict(return_sequences=True, return_state=True)
        self.forward = [keras.layers.LSTM(units, **lstm, name=f"encoder_fw_{i}") for i in range(self.encoder_layers)]
        self.backward = [keras.layers.LSTM(units, go_backwards=True, **lstm, name=f"encoder_bw_{i}")
                         for i in range(self.encoder_layers)]
        self.embedding = keras.layers.Embedding(self.vocab, d, name="label_embedding")
        self.cell = keras.layers.LSTMCell(d, name="decoder_cell")
        self.memory_layer = keras.layers.Dense(d, use_bias=False, name="attention_memory")  # W_m
        self.query_layer = keras.layers.Dense(d, use_bias=False, name="attention_query")  # W_q
        self.v = keras.layers.Dense(1, use_bias=False, name="attention_v")
        self.attention_layer = keras.layers.Dense(d, use_bias=False, name="attention_output")  # W_a
        self.output_layer = keras.layers.Dense(self.vocab, name="logits",
                                               kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.1))
        seq = (None, None, hidden)
        for i, layer in enumerate(self.forward + self.backward):
            layer.build(seq if i % self.encoder_layers == 0 else (None, None, units))
        self.embedding.build((None,))
        self.cell.build((None, 2 * d))
        for layer, dim in ((self.memory_layer, d), (self.query_layer, d), (self.v, d), (self.attention_layer, 2 * d),
                           (self.output_layer, d)):
            layer.build((None, dim))
        self.d = d
        self.built = True

    def call(self, encoder_outputs, padding_mask, training=None):
        x = tf.cast(encoder_outputs["sequence_output"], self.compute_dtype)  # [batch, length, hidden]
        mask = tf.cast(padding_mask, tf.bool)  # [batch, length]
        # fw, bw: [batch, length, units] in text order
        fw, bw, (fw_h, fw_c), (bw_h, bw_c) = bidirectional_lstm_stack(x, mask, self.forward, self.backward,
                                                                      self.dropout, training)
        return {"memory": tf.concat([fw, bw], axis=-1),  # [batch, length, d]
                "memory_mask": tf.cast(padding_mask, tf.int32),
                "h": tf.concat([fw_h, bw_h], axis=-1), "c": tf.concat([fw_c, bw_c], axis=-1)}  # [batch, d]

    def _step(self, tokens, state, ctx: Decoding, beams: int, training=None):
        """One decoder step for batch * beams hypotheses (beams adjacent per text).

        tokens [n]; state (h, c, a) each [n, d] -> logits [n, vocab] (float32), new state."""
        h, c, a = state
        # The decoder cell (Keras LSTMCell's weights and gate order i, f, g, o) on the input
        # [embedding(token); a]: the embedding's share of the input term is a table lookup (`ctx.table`),
        # and a and h meet the rest of the kernel in one matmul.
        z = tf.gather(ctx.table, tokens) + tf.matmul(tf.concat([a, h], axis=-1), ctx.kernel)  # [n, 4d]
        h, c = lstm_gates(z, c)
        out = self.dropout(h, training=training)  # [n, d]
        q = tf.reshape(tf.matmul(out, ctx.query), [-1, beams, 1, self.d])  # [batch, beams, 1, d]
        # e_tj = v·tanh(W_m m_j + W_q q_t): [batch, beams, length]. The [batch, beams, length, d] tanh is
        # the step's largest tensor; v· as a matmul reads it once (a multiply then a sum read it twice).
        # In float32 the sum and tanh measured slower inside beam search (15 ms against 12 per step).
        scores = tf.tanh(ctx.keys[:, None] + q)  # [batch, beams, length, d]
        e = tf.reshape(tf.matmul(tf.reshape(scores, [-1, self.d]), ctx.v), tf.shape(scores)[:3])
        e = tf.where(ctx.mask[:, None, :], e, NEG)  # padding gets no attention
        weights = tf.cast(tf.nn.softmax(e, axis=-1), ctx.memory.dtype)
        context = tf.einsum("bwt,btd->bwd", weights, ctx.memory)  # [batch, beams, d]
        a = tf.matmul(tf.concat([out, tf.reshape(context, [-1, self.d])], axis=-1), ctx.attention)  # [n, d]
        # float32 logits: under mixed_bfloat16 a bfloat16 softmax would lose small probabilities, and
        # beams are ranked by sums of log-probabilities (bfloat16 keeps about 3 digits).
        return tf.matmul(tf.cast(a, tf.float32), ctx.logits) + ctx.logits_bias, (h, c, a)

    def _start(self, outputs, beams: int):
        """(initial state, `Decoding`): what every decoder step reads."""
        dtype = self.compute_dtype  # the model hands out float32 (MultiLabelClassifier)
        memory = tf.cast(outputs["memory"], dtype)  # [batch, length, d]
        h = tf.repeat(tf.cast(outputs["h"], dtype), beams, axis=0)  # [batch * beams, d]
        c = tf.repeat(tf.cast(outputs["c"], tf.float32), beams, axis=0)  # the cell state stays float32
        kernel = tf.cast(self.cell.kernel, dtype)  # [2d, 4d]: rows for the embedding, then for a
        table = tf.matmul(tf.cast(self.embedding.embeddings, dtype), kernel[: self.d]) + tf.cast(self.cell.bias, dtype)
        ctx = Decoding(memory=memory, keys=self.memory_layer(memory),
                       mask=tf.cast(outputs["memory_mask"], tf.bool), table=table,  # [vocab, 4d]
                       kernel=tf.concat([kernel[self.d:], tf.cast(self.cell.recurrent_kernel, dtype)], axis=0),
                       query=tf.cast(self.query_layer.kernel, dtype), v=tf.cast(self.v.kernel, dtype),
                       attention=tf.cast(self.attention_layer.kernel, dtype),
                       logits=tf.cast(self.output_layer.kernel, tf.float32),
                       logits_bias=tf.cast(self.output_layer.bias, tf.float32))
        return (h, c, tf.zeros_like(h)), ctx

    def teacher_forced_logits(self, outputs, targets, training=None):
        """targets [batch, max_len] token ids -> logits [batch, max_len, vocab] (input: GO, targets[:-1])."""
        state, ctx = self._start(outputs, 1)
        inputs = tf.concat([tf.fill([tf.shape(targets)[0], 1], GO), targets[:, :-1]], axis=1)  # [batch, max_len]
        logits = []
        for t in range(targets.shape[1]):  # max_len is small and static: unrolled
            step_logits, state = self._step(inputs[:, t], state, ctx, 1, training)
            logits.append(step_logits)
        return tf.stack(logits, axis=1)

    def compute_loss(self, y_true, outputs, loss_fn=None):
        """Masked token cross-entropy of the canonical label sequence (`y_true`: `targets`' codes)."""
        targets = label_sequences(y_true, self.max_len)  # [batch, max_len]
        logits = self.teacher_forced_logits(outputs, targets, training=True)  # [batch, max_len, vocab]
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(targets, logits)  # [batch, max_len]
        weight = tf.cast(targets != PAD, ce.dtype)
        return tf.reduce_sum(ce * weight) / tf.maximum(tf.reduce_sum(weight), 1.0)

    def sequence_log_prob(self, outputs, targets):
        """Summed log-probability [batch] of token sequences [batch, max_len] (END, then PAD)."""
        logp = tf.nn.log_softmax(self.teacher_forced_logits(outputs, targets, training=False))
        picked = tf.gather(logp, targets, batch_dims=2)  # [batch, max_len]
        return tf.reduce_sum(tf.where(targets != PAD, picked, 0.0), axis=-1)

    def beam_search(self, outputs, width: int):
        """-> sequences [batch, width, max_len] (token ids, best first), log_prob [batch, width],
        label sets [batch, width, num_labels] (bool)."""
        c_labels, w = self.num_labels, int(width)
        state, ctx = self._start(outputs, 1)
        batch = tf.shape(ctx.memory)[0]
        tokens = tf.fill([batch], GO)
        # Only the first hypothesis is live at the start, so the beam never holds copies.
        log_prob = tf.tile(tf.constant([[0.0] + [NEG] * (w - 1)]), [batch, 1])  # [batch, width]
        finished = tf.zeros([batch, w], tf.bool)
        held = tf.zeros([batch, w, c_labels], tf.bool)  # labels each hypothesis has emitted
        sequences = tf.zeros([batch, w, 0], tf.int32)
        for t in range(self.max_len):
            if t == 0:  # every hypothesis is the empty prefix: one step per text, then copies
                logits, state = self._step(tokens, state, ctx, 1)
                logits, state = tf.repeat(logits, w, axis=0), tuple(tf.repeat(s, w, axis=0) for s in state)
            else:
                logits, state = self._step(tokens, state, ctx, w)
            lp = tf.reshape(tf.nn.log_softmax(logits), [batch, w, self.vocab])  # [batch, width, vocab]
            may_emit = ~held & ~finished[..., None] & (t < self.max_len - 1)  # [batch, width, labels]
            label_scores = tf.where(may_emit, log_prob[..., None] + lp[..., FIRST_LABEL:], NEG)
            end_scores = tf.where(finished, log_prob, log_prob + lp[..., END])  # a finished one carries over as is
            candidates = tf.concat([end_scores[..., None], label_scores], axis=-1)  # [batch, width, 1 + labels]
            log_prob, index = tf.math.top_k(tf.reshape(candidates, [batch, -1]), k=w)  # [batch, width]
            parent, choice = index // (c_labels + 1), index % (c_labels + 1)  # choice 0: END, k: label k - 1
            was_finished = tf.gather(finished, parent, batch_dims=1)
            finished = was_finished | (choice == 0)
            held = tf.gather(held, parent, batch_dims=1) | tf.cast(tf.one_hot(choice - 1, c_labels), tf.bool)
            token = tf.where(choice == 0, END, choice - 1 + FIRST_LABEL)
            token = tf.where(was_finished, PAD, token)  # [batch, width]
            sequences = tf.concat([tf.gather(sequences, parent, batch_dims=1), token[..., None]], axis=-1)
            rows = tf.reshape(parent + tf.range(batch)[:, None] * w, [-1])  # [batch * width]
            state = tuple(tf.gather(s, rows) for s in state)
            tokens = tf.reshape(token, [-1])
        return {"sequences": sequences, "log_prob": log_prob, "label_sets": held}  # top_k: best first

    def scores(self, outputs):
        return self.infer(outputs)["scores"]

    def infer(self, outputs) -> dict:
        found = self.beam_search(outputs, self.beam_width)
        held = tf.cast(found["label_sets"], tf.float32)  # [batch, width, labels]
        weight = tf.nn.softmax(found["log_prob"], axis=-1)  # [batch, width]
        return {"scores": tf.einsum("bw,bwl->bl", weight, held),  # beam marginals: [batch, labels]
                "decisions": tf.cast(held[:, 0], tf.int32)}  # the best hypothesis' set
