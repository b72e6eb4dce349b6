"""SharpReCL prototype contrastive training, multi-label adaptation (docs/algorithms.md §3, §3.5).

The classifier is the baseline's pooled head or the TextCNN head (`--classifier`); the contrastive parts
exist only for training, and the export is the plain classifier (sigmoid of its logits).

Per training step, with the batch seen twice (the second view is dropout noise: the batch is
duplicated, so the encoder's dropout draws different masks for the two copies):

- classification: BCE on logits adjusted by the label prior, z_c + log(π_c / (1 - π_c)) (the
  binary analogue of Balanced Softmax); prediction uses the plain logits.
- features f = normalize(g_feat(h)) and prototypes p_c = normalize(g_proto(W_c)), W_c the
  classifier's weights for label c, g = Dense -> BatchNorm -> ReLU -> Dense(proj_dim).
- pool A = both views' features and the prototypes; label c's members are the features of texts
  with c and p_c; its non-members the rest.
- per label, target sets of equal size: n_pos positives and n_neg negatives. A share r_e of each
  (the hard ratio, rising linearly from `hard_ratio_start` to 1 over `hard_ratio_epochs`) are hard
  mixups: two draws from the k hardest members (lowest cosine to p_c for positives, highest for
  negatives) mixed with λ ~ Beta(α, α) and renormalised; the rest are drawn from all members.
- supervised contrastive loss for every (anchor, label) pair with the anchor a member of the
  label: positives are the other members and the label's positive targets; the denominator holds
  every other pool item and the label's positive and negative targets; temperature τ; each pair
  weighted by the label's effective-number weight w_c = mean(E) / E_c, E_c = (1 - β^n_c) / (1 - β).
- loss = classification + `contrastive_weight` * contrastive.

Example:
    >>> head = PrototypeContrastiveHead(3, label_counts=[5, 2, 1], num_train=6, n_pos=4, n_neg=4,
    ...                                 k_pos=2, k_neg=2, proj_dim=8)
    >>> out = head({"pooled_output": tf.random.normal([2, 16]), "sequence_output": tf.zeros([2, 5, 16])},
    ...            tf.ones([2, 5], "int32"))
    >>> tuple(head.infer(out)["scores"].shape)
    (2, 3)
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from classifier_multi_label.errors import UserError
from classifier_multi_label.head import Head, PooledHead, TextCNNHead
from classifier_multi_label.losses import prior_logits

from .options import PrototypeContrastiveOptions

NEG = -1e9
INNER = {"pooled": PooledHead, "textcnn": TextCNNHead}


def effective_number_weights(counts, beta: float) -> np.ndarray:
    """w_c = mean_k(E_k) / E_c with E_c = (1 - beta^n_c) / (1 - beta) (Cui et al. 2019); n_c >= 1."""
    n = np.maximum(np.asarray(counts, np.float64), 1.0)
    e = (1.0 - np.power(beta, n)) / (1.0 - beta)
    return (e.mean() / e).astype(np.float32)


def supcon_loss(anchors, anchor_labels, pos_targets, neg_targets, class_weights, temperature: float):
    """Supervised contrastive loss averaged over (anchor, label) pairs with the anchor in the label.

    anchors [m, d] and targets [labels, n, d] L2-normalised; anchor_labels [m, labels] 0/1.
    For pair (a, c): positives = other anchors with c, and pos_targets[c]; denominator = every other
    anchor, pos_targets[c] and neg_targets[c]; the pair's loss is the mean over positives of
    -log(exp(a·q/τ) / Σ_s exp(a·s/τ)), weighted by class_weights[c]."""
    y = tf.cast(anchor_labels, tf.float32)  # [m, labels]
    m = tf.shape(anchors)[0]
    not_self = 1.0 - tf.eye(m)
    sim = tf.matmul(anchors, anchors, transpose_b=True) / temperature  # [m, m]
    lse_pool = tf.reduce_logsumexp(sim + (1.0 - not_self) * NEG, axis=1, keepdims=True)  # [m, 1]
    s_pos = tf.einsum("md,cnd->mcn", anchors, pos_targets) / temperature  # [m, labels, n_pos]
    s_neg = tf.einsum("md,cnd->mcn", anchors, neg_targets) / temperature  # [m, labels, n_neg]
    lse_targets = tf.reduce_logsumexp(tf.concat([s_pos, s_neg], axis=-1), axis=-1)  # [m, labels]
    lse = tf.reduce_logsumexp(tf.stack([tf.broadcast_to(lse_pool, tf.shape(lse_targets)), lse_targets]), axis=0)
    positive_sum = tf.matmul(sim * not_self, y) + tf.reduce_sum(s_pos, axis=-1)  # [m, labels]
    positive_count = tf.reduce_sum(y, axis=0, keepdims=True) - y + tf.cast(tf.shape(pos_targets)[1], tf.float32)
    pair_loss = lse - positive_sum / positive_count  # [m, labels]
    weight = y * class_weights[None, :]
    return tf.reduce_sum(weight * pair_loss) / tf.maximum(tf.reduce_sum(y), 1.0)


def beta_sample(shape, alpha: float, seed):
    """λ ~ Beta(alpha, alpha). alpha = 0.5 (the paper's) uses the arcsine law, sin²(πU/2), which XLA
    compiles; other values use Keras' gamma-based sampler (not XLA-compilable)."""
    if alpha == 0.5:
        return tf.square(tf.sin(0.5 * math.pi * keras.random.uniform(shape, seed=seed)))
    return keras.random.beta(shape, alpha, alpha, seed=seed)


def target_sets(pool, members, prototypes, n: int, k: int, hard_ratio, alpha: float, hardest_low: bool, seed):
    """Per label c, n samples built from the pool members of c (members [m, labels] bool):
    round(hard_ratio * n) hard mixups of two of the k members whose cosine to prototype c is lowest
    (`hardest_low`) or highest, mixed with λ ~ Beta(alpha, alpha) and renormalised; the rest drawn
    uniformly from all members. -> [labels, n, d], L2-normalised."""
    member_t = tf.transpose(members)  # [labels, m]
    cos = tf.matmul(prototypes, pool, transpose_b=True)  # [labels, m]
    hardness = -cos if hardest_low else cos
    scores = tf.where(member_t, hardness, NEG)  # [labels, m]
    scores = tf.pad(scores, [[0, 0], [0, tf.maximum(k - tf.shape(scores)[1], 0)]], constant_values=NEG)
    top, hard_idx = tf.math.top_k(scores, k=k)  # [labels, k]; a small pool pads with never-drawn columns
    hard_valid = top > NEG / 2  # a label with fewer than k members
    labels = tf.shape(member_t)[0]

    def draw(valid, count):  # uniform over the valid columns, with replacement: [labels, count]
        return keras.random.categorical(tf.where(valid, 0.0, NEG), count, seed=seed, dtype="int32")

    u = tf.gather(hard_idx, draw(hard_valid, n), batch_dims=1)  # [labels, n] pool indices
    v = tf.gather(hard_idx, draw(hard_valid, n), batch_dims=1)
    lam = beta_sample([labels, n, 1], alpha, seed)
    mixed = tf.math.l2_normalize(lam * tf.gather(pool, u) + (1.0 - lam) * tf.gather(pool, v), axis=-1)
    simple = tf.gather(pool, draw(member_t, n))  # [labels, n, d]
    n_hard = tf.cast(tf.round(hard_ratio * n), tf.int32)
    use_hard = tf.range(n)[None, :, None] < n_hard  # [1, n, 1]
    return tf.where(use_hard, mixed, simple)


def projection(dim: int, out_dim: int, name: str) -> keras.Sequential:
    return keras.Sequential([keras.layers.Dense(dim), keras.layers.BatchNormalization(), keras.layers.ReLU(),
                             keras.layers.Dense(out_dim)], name=name)


class PrototypeContrastiveHead(Head):
    supports_bfloat16 = False  # its contrastive loss has not been checked in bfloat16
    # XLA compiled the step with its target-set sampling 3x slower than plain graphs (measured,
    # MiniLM, batch 16: 66.9 s against 20.9 s for 20 steps; from-scratch TextCNN classifier, batch
    # 32 of 256 tokens: 14 s against 3 s a step). The loss alone is not the cause (about 0.1 s a
    # step either way); the plain TextCNN step runs as fast with XLA as without at that length.
    xla_train_step = False
    batch_local_loss = False  # positives and negatives come from the whole batch: not split over replicas

    options = PrototypeContrastiveOptions
    renamed_options = {"head": "classifier"}  # config.json files written before the rename

    def __init__(self, num_labels: int, **options):
        super().__init__(num_labels, **options)
        o = self.opts
        head, dropout, label_counts, num_train = o.classifier, o.dropout, o.label_counts, o.num_train
        if head not in INNER:
            raise UserError(f"--classifier {head!r}: use one of {', '.join(INNER)}")
        if num_labels < 2:
            raise UserError("prototype contrastive training needs at least 2 labels")
        inner_kw = {} if dropout is None else {"dropout": dropout}
        if head == "textcnn":
            inner_kw.update(filter_sizes=o.filter_sizes, num_filters=o.num_filters)
        else:
            inner_kw.update(pooling=o.pooling, projection=o.projection, projection_width=o.projection_width)
        self.inner = INNER[head](num_labels, name="classifier", **inner_kw)
        counts = np.asarray(label_counts if label_counts is not None else [1] * num_labels, np.float64)
        total = int(num_train or max(counts.sum(), 1.0))
        prior_logit = prior_logits(counts, total) if o.logit_adjustment else np.zeros(num_labels, np.float32)
        self.prior_logit = tf.constant(prior_logit)  # [labels]
        self.class_weights = tf.constant(effective_number_weights(counts, o.effective_beta))  # [labels]
        self.temperature, self.contrastive_weight = float(o.temperature), float(o.contrastive_weight)
        self.n_pos, self.n_neg, self.k_pos, self.k_neg = int(o.n_pos), int(o.n_neg), int(o.k_pos), int(o.k_neg)
        self.mix_alpha, self.proj_dim = float(o.mix_alpha), int(o.proj_dim)
        self.hard_ratio_start, self.hard_ratio_epochs = float(o.hard_ratio_start), max(int(o.hard_ratio_epochs), 1)
        self.seed = keras.random.SeedGenerator(0)

    @classmethod
    def resolve_options(cls, options: dict, train_label_lists, labels) -> dict:
        if options.get("label_counts") is None:
            options["label_counts"] = labels.multi_hot(train_label_lists).sum(axis=0).astype(int).tolist()
            options["num_train"] = len(train_label_lists)
        elif len(options["label_counts"]) != len(labels):
            raise UserError(f"--label-counts has {len(options['label_counts'])} values for {len(labels)} labels")
        return options

    def build(self, encoder_outputs_shape, padding_mask_shape=None):
        feature_dim = self.inner.feature_dim(encoder_outputs_shape)
        self.inner.dense.build((None, feature_dim))
        self.feature_projection = projection(feature_dim, self.proj_dim, "feature_projection")
        self.prototype_projection = projection(feature_dim, self.proj_dim, "prototype_projection")
        self.feature_projection.build((None, feature_dim))
        self.prototype_projection.build((None, feature_dim))
        self.epoch = self.add_weight(shape=(), initializer="zeros", trainable=False, name="epoch")
        self.built = True

    def on_epoch_begin(self, epoch: int):
        self.epoch.assign(float(epoch))

    def call(self, encoder_outputs, padding_mask, training=None):
        h = self.inner.features(encoder_outputs, padding_mask)  # [batch, features]
        logits = self.inner.dense(self.inner.dropout(h, training=training))  # [batch, labels]
        return {"logits": logits, "features": h}

    def logits(self, outputs):
        return outputs["logits"]

    def training_inputs(self, x, y):
        """Two views: the batch twice; dropout draws independent masks for the copies."""
        return {k: tf.concat([v, v], axis=0) for k, v in x.items()}, y

    def hard_ratio(self):
        e = tf.cast(self.epoch, tf.float32)
        return tf.minimum(self.hard_ratio_start + (1.0 - self.hard_ratio_start) * e / self.hard_ratio_epochs, 1.0)

    def compute_loss(self, y_true, outputs, loss_fn):
        y = tf.concat([y_true, y_true], axis=0)  # [2 * batch, labels]: both views
        classification = loss_fn(y, outputs["logits"] + self.prior_logit)
        features = tf.math.l2_normalize(self.feature_projection(outputs["features"], training=True), axis=-1)
        weights = tf.transpose(self.inner.dense.kernel)  # W_c: [labels, features]
        prototypes = tf.math.l2_normalize(self.prototype_projection(weights, training=True), axis=-1)
        pool = tf.concat([features, prototypes], axis=0)  # [2 * batch + labels, proj_dim]
        members = tf.concat([y, tf.eye(self.num_labels)], axis=0) > 0.5  # [2 * batch + labels, labels]
        ratio = self.hard_ratio()
        positives = target_sets(pool, members, prototypes, self.n_pos, self.k_pos, ratio, self.mix_alpha,
                                hardest_low=True, seed=self.seed)
        negatives = target_sets(pool, ~members, prototypes, self.n_neg, self.k_neg, ratio, self.mix_alpha,
                                hardest_low=False, seed=self.seed)
        contrastive = supcon_loss(pool, members, positives, negatives, self.class_weights, self.temperature)
        return classification + self.contrastive_weight * contrastive
