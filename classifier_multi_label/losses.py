"""Multi-label losses on per-label logits (the sigmoid is applied inside, never before).

Every loss maps (y_true [batch, labels] in {0,1}, logits [batch, labels]) to a scalar: the mean
over batch x labels, so learning rates transfer between losses. Formulas: docs/algorithms.md §4.

- ``bce``: binary cross-entropy (hellonlp's sigmoid_cross_entropy + mean).
- ``focal``: -alpha_t (1-p_t)^gamma log p_t (Lin et al. 2017); alpha only when given.
- ``asl``: asymmetric loss (Ridnik et al. 2021): -y (1-p)^g+ log p - (1-y) p_m^g- log(1-p_m),
  p_m = max(p - clip, 0). A mean, not the official code's sum.
- ``class_balanced``: BCE with each label's terms weighted by the effective number
  w_c = (1-beta)/(1-beta^n_c), normalised to sum to the number of labels (Cui et al. 2019).
- ``pos_weight``: BCE with the positive term of label c weighted by neg_c/pos_c of the training
  data (capped), like PyTorch's BCEWithLogitsLoss(pos_weight=...).
- ``logit_adjusted``: BCE on z_c + log(pi_c / (1 - pi_c)), pi_c the label's training prior (Menon
  et al. 2021, the binary form SharpReCL trains with); prediction uses the plain z_c, so a rare
  label's scores are not pushed down by its prior.

Keras' `class_weight` is per example-class and wrong for multi-label: these weights are per label.

Example:
    >>> loss = make_loss("bce", label_counts=[3, 1], num_examples=4)
    >>> round(float(loss(tf.constant([[1., 0.]]), tf.constant([[0., 0.]]))), 4)
    0.6931
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .config import LOSSES
from .errors import UserError


def _log_sigmoid(x):
    return -tf.nn.softplus(-x)


def bce(y, logits, weight=None):
    terms = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits)  # [batch, labels]
    return tf.reduce_mean(terms if weight is None else terms * weight)


def focal(y, logits, gamma=2.0, alpha=None):
    p = tf.sigmoid(logits)
    p_t = y * p + (1 - y) * (1 - p)
    ce = tf.nn.sigmoid_cross_entropy_with_logits(labels=y, logits=logits)  # = -log p_t, stable
    terms = tf.pow(1.0 - p_t, gamma) * ce
    if alpha is not None:
        terms *= y * alpha + (1 - y) * (1 - alpha)
    return tf.reduce_mean(terms)


def asl(y, logits, gamma_pos=0.0, gamma_neg=4.0, clip=0.05, eps=1e-8):
    p = tf.sigmoid(logits)
    pos = y * tf.pow(1.0 - p, gamma_pos) * _log_sigmoid(logits)
    p_m = tf.maximum(p - clip, 0.0) if clip > 0 else p
    neg = (1 - y) * tf.pow(p_m, gamma_neg) * tf.math.log(tf.maximum(1.0 - p_m, eps))
    return -tf.reduce_mean(pos + neg)


def class_balanced_weights(label_counts, beta: float) -> np.ndarray:
    """w_c = (1-beta)/(1-beta^n_c), normalised so that sum_c w_c = C (labels with n_c=0 get n_c=1)."""
    n = np.maximum(np.asarray(label_counts, dtype=np.float64), 1.0)
    w = (1.0 - beta) / (1.0 - np.power(beta, n))
    return (w * len(n) / w.sum()).astype(np.float32)


def pos_weights(label_counts, num_examples: int, cap: float) -> np.ndarray:
    pos = np.maximum(np.asarray(label_counts, dtype=np.float64), 1.0)
    return np.minimum((num_examples - pos) / pos, cap).astype(np.float32)


def prior_logits(label_counts, num_examples: int) -> np.ndarray:
    """log(pi_c / (1 - pi_c)) per label, pi_c = positives / examples clipped to (1e-6, 1 - 1e-6)."""
    prior = np.clip(np.asarray(label_counts, np.float64) / max(num_examples, 1), 1e-6, 1 - 1e-6)
    return np.log(prior / (1 - prior)).astype(np.float32)


def make_loss(name: str, label_counts, num_examples: int, focal_gamma=2.0, focal_alpha=None,
              asl_gamma_pos=0.0, asl_gamma_neg=4.0, asl_clip=0.05, cb_beta=0.9999, pos_weight_max=50.0):
    """The loss named by `--loss`, with statistics of the training data where it needs them."""
    if name == "bce":
        return bce
    if name == "focal":
        return lambda y, z: focal(y, z, focal_gamma, focal_alpha)
    if name == "asl":
        return lambda y, z: asl(y, z, asl_gamma_pos, asl_gamma_neg, asl_clip)
    if name == "class_balanced":
        w = tf.constant(class_balanced_weights(label_counts, cb_beta))  # [labels]
        return lambda y, z: bce(y, z, weight=w)
    if name == "pos_weight":
        pw = tf.constant(pos_weights(label_counts, num_examples, pos_weight_max))  # [labels]
        return lambda y, z: tf.reduce_mean(tf.nn.weighted_cross_entropy_with_logits(y, z, pos_weight=pw))
    if name == "logit_adjusted":
        shift = tf.constant(prior_logits(label_counts, num_examples))  # [labels]
        return lambda y, z: bce(y, z + shift)
    raise UserError(f"unknown loss {name!r}; choose one of {', '.join(LOSSES)}")
