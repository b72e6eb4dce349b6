"""LM-MTC: label-mask training for multi-label classification (docs/algorithms.md §2).

Every label i gets five new tokens (new embedding rows): [LS-i] [LE-i] (template start and end),
[YES-i] [NO-i] [MASK-i] (the value slot), and its own token type 2 + i. The template goes right
after [CLS], before the text:

    [CLS] [LS-1] v_1 [LE-1] ... [LS-C] v_C [LE-C] text [SEP]      (v_i at position 3i + 2)

so the text keeps its `--max-seq-length` budget and the encoder sees 3 x labels more positions
(its position table grows if needed; new rows start random).

Training (`training_inputs`, before each step): per batch k ~ U{1..C}; per text, k random label slots show
[MASK-i] and are predicted; the others show the true [YES-i]/[NO-i], flipped with probability
`label_noise` (1%). The label head is a binary present/absent logit at each slot (dropout, then a
Dense(1) shared by all slots); its loss is BCE over the masked slots. For the first `mlm_epochs`
epochs, text MLM also runs: each real text token is chosen with probability `mlm_probability`
(at most `max_predictions` per text, as BERT's max_predictions_per_seq), replaced by [MASK] 80%,
a random token 10%, kept 10%, and predicted over the base vocabulary (weight `mlm_weight`).

Inference (`--decoding`): ``full`` (default, the paper's) masks every slot and scores all labels
in one pass. ``top_p`` (the reference code's iterative "part" mode) runs one pass per label: each
pass commits the still-masked label whose probability is furthest from 0.5, keeps that pass'
probability as its score and reveals it as [YES-i] (p > 0.5) or [NO-i] for the next passes, so
later labels are predicted knowing the confident ones. It costs `labels` passes. Decisions then
apply the thresholds tuned on dev to the scores, as the baseline. The export builds the template
in the graph from raw text, and runs the chosen decoding.

Example:
    >>> head = LabelMaskHead(num_labels=3)
    >>> bigger, template = head.adapt_encoder(backbone, preprocessor)
    >>> bigger.vocabulary_size - backbone.vocabulary_size  # five tokens per label
    15
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from classifier_multi_label.encoder import EncoderError, grow_backbone
from classifier_multi_label.errors import UserError
from classifier_multi_label.head import Head
from classifier_multi_label.tokenization import SPECIAL_TOKENS, special_token_id

from .options import DECODINGS, LabelMaskOptions

LS, LE, YES, NO, MASK = range(5)  # offsets of a label's five tokens


class LabelTemplate(keras.layers.Layer):
    """Raw strings -> the text preprocessor's output with the label template (all slots masked)
    inserted after [CLS]: token_ids, segment_ids, padding_mask [batch, 3 * labels + length]."""

    def __init__(self, preprocessor, num_labels: int, **kwargs):
        super().__init__(**kwargs)
        self.preprocessor = preprocessor
        self.num_labels = int(num_labels)
        self.sequence_length = preprocessor.sequence_length
        self.vocabulary_size = preprocessor.vocabulary_size + 5 * num_labels
        base, c = preprocessor.vocabulary_size, np.arange(num_labels)
        ids = np.stack([base + 5 * c + LS, base + 5 * c + MASK, base + 5 * c + LE], axis=1)  # [labels, 3]
        self.template_ids = tf.constant(ids.reshape(-1), tf.int32)  # [3 * labels]
        self.template_types = tf.constant(np.repeat(2 + c, 3), tf.int32)  # [3 * labels]
        self.built = True

    @property
    def tokenizer(self):
        return self.preprocessor.tokenizer

    def with_tokenizer(self, tokenizer):
        """The same template over another tokenizer of the same vocabulary (the export's choice)."""
        return LabelTemplate(self.preprocessor.with_tokenizer(tokenizer), self.num_labels, name=self.name)

    def call(self, texts):
        x = self.preprocessor(texts)  # [batch, length]
        return insert_template(x, self.template_ids, self.template_types)


def insert_template(x: dict, template_ids, template_types) -> dict:
    """Puts the template [3 * labels] after position 0 ([CLS]) of every row."""
    batch = tf.shape(x["token_ids"])[0]

    def tile(t):
        return tf.tile(t[None, :], [batch, 1])  # [batch, 3 * labels]
    return {"token_ids": tf.concat([x["token_ids"][:, :1], tile(template_ids), x["token_ids"][:, 1:]], axis=1),
            "segment_ids": tf.concat([x["segment_ids"][:, :1], tile(template_types), x["segment_ids"][:, 1:]], axis=1),
            "padding_mask": tf.concat([x["padding_mask"][:, :1], tf.ones_like(tile(template_ids)),
                                       x["padding_mask"][:, 1:]], axis=1)}


class LabelMaskHead(Head):
    uses_core_loss = False  # BCE over the masked slots only, plus MLM
    supports_bfloat16 = False  # its MLM and slot losses have not been checked in bfloat16
    # Its one Dense reads slot states the encoder must learn to fill; at 1e-3 over MiniLM it fitted the
    # label priors only (SemEval E-c dev micro-F1 after epoch 1: 0.454 against 0.593 at the encoder's 5e-5).
    fast_head_rate = False

    options = LabelMaskOptions

    def __init__(self, num_labels: int, **options):
        super().__init__(num_labels, **options)
        o = self.opts
        if o.decoding not in DECODINGS:
            raise UserError(f"--decoding {o.decoding!r}: use one of {', '.join(DECODINGS)}")
        self.decoding = o.decoding
        self.label_noise, self.mlm_epochs = float(o.label_noise), int(o.mlm_epochs)
        self.mlm_probability, self.mlm_weight = float(o.mlm_probability), float(o.mlm_weight)
        self.dropout = keras.layers.Dropout(o.dropout)
        self.slot_dense = keras.layers.Dense(1, kernel_initializer=keras.initializers.TruncatedNormal(stddev=0.02),
                                             name="slot_logit")
        self.seed = keras.random.SeedGenerator(0)
        self.base_vocabulary = None  # set by adapt_encoder

    def adapt_encoder(self, backbone, preprocessor):
        """A backbone with the label tokens and token types, and the template-building preprocessor."""
        c, base = self.num_labels, preprocessor.vocabulary_size
        if backbone.vocabulary_size != base:
            raise EncoderError(f"the encoder has {backbone.vocabulary_size} tokens, the vocabulary {base}")
        total = preprocessor.sequence_length + 3 * c  # positions the encoder must have
        vocab = preprocessor.tokenizer.get_vocabulary()
        try:
            self.mask_id = special_token_id(preprocessor.tokenizer, "mask")
        except ValueError as e:
            raise EncoderError(f"{e}; LM-MTC's text MLM needs one") from None
        self.base_vocabulary = base
        # MLM's random replacements skip the special tokens when the vocabulary starts with them.
        self.first_text_id = len(SPECIAL_TOKENS) if vocab[:len(SPECIAL_TOKENS)] == SPECIAL_TOKENS else 0
        self.max_predictions = max(1, math.ceil(1.5 * self.mlm_probability * preprocessor.sequence_length))
        # New rows: 5 tokens per label, one token type per label, and positions for the template.
        grown = grow_backbone(backbone, extra_tokens=5 * c, num_segments=2 + c, max_sequence_length=total)
        return grown, LabelTemplate(preprocessor, c, name="label_template")

    def build(self, encoder_outputs_shape, padding_mask_shape=None):
        hidden = int(encoder_outputs_shape["sequence_output"][-1])
        self.slot_dense.build((None, None, hidden))
        self.mlm_dense = keras.layers.Dense(self.base_vocabulary or 1, name="mlm_logits")
        self.mlm_dense.build((None, None, hidden))
        self.epoch = self.add_weight(shape=(), initializer="zeros", trainable=False, name="epoch")
        self.built = True

    def on_epoch_begin(self, epoch: int):
        self.epoch.assign(float(epoch))

    def call(self, encoder_outputs, padding_mask, training=None):
        seq = encoder_outputs["sequence_output"]  # [batch, 3 * labels + length, hidden]
        slots = seq[:, 2:3 * self.num_labels + 2:3]  # the value slots: [batch, labels, hidden]
        logits = tf.squeeze(self.slot_dense(self.dropout(slots, training=training)), -1)  # [batch, labels]
        return {"logits": logits, "sequence_output": seq}

    def logits(self, outputs):
        return outputs["logits"]

    def predict(self, model, x: dict) -> dict:
        if self.decoding == "full":
            return super().predict(model, x)
        c = self.num_labels
        batch = tf.shape(x["token_ids"])[0]
        label_base = self.base_vocabulary + 5 * tf.range(c)  # [labels]

        def one_pass(step, ids, open_, scores):
            p = tf.sigmoid(model(dict(x, token_ids=ids), training=False)["logits"])  # [batch, labels]
            pick = tf.argmax(tf.where(open_, tf.abs(p - 0.5), -1.0), axis=-1, output_type=tf.int32)  # [batch]
            chosen = tf.one_hot(pick, c, on_value=True, off_value=False)  # [batch, labels]
            scores = tf.where(chosen, p, scores)
            # Reveal the committed label: its value slot (template position 3i + 1) becomes YES or NO.
            template = tf.reshape(ids[:, 1:1 + 3 * c], [batch, c, 3])
            values = tf.where(chosen, label_base + tf.where(p > 0.5, YES, NO), template[:, :, 1])  # [batch, labels]
            template = tf.reshape(tf.stack([template[:, :, 0], values, template[:, :, 2]], axis=2), [batch, 3 * c])
            ids = tf.concat([ids[:, :1], template, ids[:, 1 + 3 * c:]], axis=1)
            return step + 1, ids, open_ & ~chosen, scores

        _, _, _, scores = tf.while_loop(
            lambda step, *_: step < c, one_pass,
            (tf.constant(0), x["token_ids"], tf.ones([batch, c], tf.bool), tf.zeros([batch, c], tf.float32)))
        return {"scores": scores}

    def training_inputs(self, x, y):
        """Reveals a random part of the label slots (with label noise), masks text for MLM."""
        c = self.num_labels
        ids = x["token_ids"]  # [batch, 3 * labels + length], template slots all [MASK-i]
        batch = tf.shape(ids)[0]
        # Label slots: k ~ U{1..C} for the batch; per text the k slots with the largest random keys.
        k = keras.random.randint((), 1, c + 1, seed=self.seed, dtype="int32")
        keys = keras.random.uniform((batch, c), seed=self.seed)
        kth = tf.gather(tf.sort(keys, axis=1, direction="DESCENDING"), k - 1, axis=1)  # [batch]
        masked = keys >= kth[:, None]  # [batch, labels]
        flip = keras.random.uniform((batch, c), seed=self.seed) < self.label_noise
        shown = tf.math.logical_xor(y > 0.5, flip)  # [batch, labels]
        label_base = self.base_vocabulary + 5 * tf.range(c)  # [labels]
        value = label_base + tf.where(masked, MASK, tf.where(shown, YES, NO))  # [batch, labels]
        template = tf.reshape(tf.stack([tf.broadcast_to(label_base + LS, [batch, c]), value,
                                        tf.broadcast_to(label_base + LE, [batch, c])], axis=2), [batch, 3 * c])
        text = ids[:, 1 + 3 * c:]  # [batch, length]
        # Text MLM: real text tokens (not padding), Bernoulli(p) while MLM is on, at most max_predictions.
        on = tf.cast(self.epoch < self.mlm_epochs, tf.float32)
        real = x["padding_mask"][:, 1 + 3 * c:] > 0  # [batch, length]
        pick = real & (keras.random.uniform(tf.shape(text), seed=self.seed) < self.mlm_probability * on)
        priority = tf.where(pick, keras.random.uniform(tf.shape(text), seed=self.seed), -1.0)
        priority = tf.pad(priority, [[0, 0], [0, tf.maximum(self.max_predictions - tf.shape(text)[1], 0)]],
                          constant_values=-1.0)
        top, positions = tf.math.top_k(priority, k=self.max_predictions)  # [batch, max_predictions]
        chosen = top >= 0.0
        positions = tf.where(chosen, positions, 0)
        targets = tf.gather(text, positions, batch_dims=1)  # original ids: [batch, max_predictions]
        roll = keras.random.uniform(tf.shape(positions), seed=self.seed)
        random_ids = keras.random.randint(tf.shape(positions), self.first_text_id, self.base_vocabulary,
                                          seed=self.seed, dtype="int32")
        replacement = tf.where(roll < 0.8, self.mask_id, tf.where(roll < 0.9, random_ids, targets))
        # Write the replacements back (top_k positions are distinct): [batch, preds, length] one-hots.
        spots = tf.one_hot(positions, tf.shape(text)[1], dtype=tf.int32) * tf.cast(chosen, tf.int32)[..., None]
        hit = tf.reduce_max(spots, axis=1) > 0  # [batch, length]
        text = tf.where(hit, tf.reduce_sum(spots * replacement[..., None], axis=1), text)
        x = dict(x, token_ids=tf.concat([ids[:, :1], template, text], axis=1))
        return x, {"labels": y, "slot_masked": tf.cast(masked, tf.float32), "mlm_positions": positions + 1 + 3 * c,
                   "mlm_targets": targets, "mlm_weights": tf.cast(chosen, tf.float32) * on}

    def compute_loss(self, y, outputs, loss_fn=None):
        per_slot = tf.nn.sigmoid_cross_entropy_with_logits(y["labels"], outputs["logits"])  # [batch, labels]
        mtc = tf.reduce_sum(per_slot * y["slot_masked"]) / tf.maximum(tf.reduce_sum(y["slot_masked"]), 1.0)
        hidden = tf.gather(outputs["sequence_output"], y["mlm_positions"], batch_dims=1)  # [batch, preds, hidden]
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(y["mlm_targets"], self.mlm_dense(hidden))
        mlm = tf.reduce_sum(ce * y["mlm_weights"]) / tf.maximum(tf.reduce_sum(y["mlm_weights"]), 1.0)
        return mtc + self.mlm_weight * mlm
