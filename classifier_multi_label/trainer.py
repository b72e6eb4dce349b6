"""The training driver shared by every head.

AdamW (no weight decay on LayerNorm and biases), 10% linear warm-up then linear decay to zero,
gradient clipping by global norm, a compiled custom train step run through `strategy.run` (Keras'
`model.fit` fails under MultiWorkerMirroredStrategy, keras-team/keras#20585), dev evaluation each
epoch on probabilities, a checkpoint per epoch for `--resume`, TensorBoard logs and a progress bar.

Best-weights selection and early stopping use dev micro-F1 at the best global threshold: the
decision rule that thresholds tuning applies afterwards. At a fixed 0.5 a model still learning
the label priors scores exactly 0 for several epochs, and early stopping would see no signal.

Example:
    >>> trainer = Trainer(model, loss_fn, TrainConfig(epochs=2), steps_per_epoch=10)  # doctest: +SKIP
    >>> history = trainer.fit(train_data_for_epoch, dev_inputs, y_dev, run_dir)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from sklearn import metrics as skm

from .config import TrainConfig
from .files import write_json
from .thresholds import best_global_threshold

log = logging.getLogger(__name__)

NO_WEIGHT_DECAY = ["bias", "gamma", "beta"]  # Keras names LayerNorm's scale/offset gamma/beta


class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """lr = peak * step / warmup, then peak * (total - step) / (total - warmup), down to 0."""

    def __init__(self, peak: float, total_steps: int, warmup_steps: int):
        self.peak, self.total, self.warmup = float(peak), int(max(total_steps, 1)), int(warmup_steps)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = self.peak * step / max(self.warmup, 1)
        decay = self.peak * (self.total - step) / max(self.total - self.warmup, 1)
        return tf.maximum(tf.where(step < self.warmup, warm, decay), 0.0)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total, "warmup_steps": self.warmup}


def make_optimizer(cfg: TrainConfig, learning_rate: float, total_steps: int) -> keras.optimizers.Optimizer:
    schedule = WarmupLinearDecay(learning_rate, total_steps, int(cfg.warmup_ratio * total_steps))
    opt = keras.optimizers.AdamW(learning_rate=schedule, weight_decay=cfg.weight_decay, epsilon=cfg.adam_epsilon,
                                 global_clipnorm=cfg.clipnorm or None)
    opt.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    return opt


def dev_f1(y_true, scores, decisions=None) -> dict:
    """Micro/macro F1 at 0.5, and micro-F1 at the best global threshold (the selection metric).
    For a head that decodes label sets (`decisions` given), all three are on its decisions."""
    if decisions is not None:
        micro = float(skm.f1_score(y_true, decisions, average="micro", zero_division=0.0))
        return {"micro_f1": micro, "macro_f1": float(skm.f1_score(y_true, decisions, average="macro",
                                                                   zero_division=0.0)),
                "micro_f1_tuned": micro, "threshold": None}
    pred = (scores >= 0.5).astype(int)
    threshold, tuned = best_global_threshold(y_true, scores)
    return {"micro_f1": float(skm.f1_score(y_true, pred, average="micro", zero_division=0.0)),
            "macro_f1": float(skm.f1_score(y_true, pred, average="macro", zero_division=0.0)),
            "micro_f1_tuned": tuned, "threshold": threshold}


def _atomic_save_weights(model, path):
    tmp = path + ".tmp.weights.h5"
    model.save_weights(tmp)
    os.replace(tmp, path)


class Trainer:
    """Runs the epochs. `fit` returns the history (one dict per epoch)."""

    def __init__(self, model, loss_fn, cfg: TrainConfig, steps_per_epoch: int, learning_rate: float,
                 strategy: tf.distribute.Strategy | None = None):
        self.model, self.loss_fn, self.cfg = model, loss_fn, cfg
        self.strategy = strategy or tf.distribute.get_strategy()
        self.steps_per_epoch = steps_per_epoch
        with self.strategy.scope():
            self.optimizer = make_optimizer(cfg, learning_rate, steps_per_epoch * cfg.epochs)
            self.optimizer.build(model.trainable_variables)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.best_f1 = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_f1")
            self.bad_epochs = tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_epochs")
        jit = cfg.jit_compile and getattr(model.head, "xla_train_step", True)
        self._train_step = tf.function(self._step, jit_compile=jit, reduce_retracing=True)

    def _step(self, x, y):
        def replica_step(x, y):
            x, y = self.model.head.training_inputs(x, y)
            with tf.GradientTape() as tape:
                outputs = self.model(x, training=True)
                loss = self.model.head.compute_loss(y, outputs, self.loss_fn)
                # The optimizer sums gradients over replicas: scale the per-replica mean.
                scaled = loss / self.strategy.num_replicas_in_sync
            grads = tape.gradient(scaled, self.model.trainable_variables)
            # A head may not use every backbone output (TextCNN ignores the pooler): skip those.
            self.optimizer.apply_gradients([(g, v) for g, v in zip(grads, self.model.trainable_variables)
                                            if g is not None])
            return loss

        losses = self.strategy.run(replica_step, args=(x, y))
        return self.strategy.reduce(tf.distribute.ReduceOp.MEAN, losses, axis=None)

    def fit(self, train_data_for_epoch, dev_inputs, y_dev, run_dir: str, resume: bool = False) -> list:
        # Dropout's random state is not part of the model's checkpoint: without it a resumed run would
        # replay the first epochs' dropout masks and drift from an uninterrupted one.
        seed_states = [v for v in self.model.variables if "seed_generator_state" in v.path]
        ckpt = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, epoch=self.epoch,
                                   best_f1=self.best_f1, bad_epochs=self.bad_epochs, seed_states=seed_states)
        manager = tf.train.CheckpointManager(ckpt, os.path.join(run_dir, "checkpoints"), max_to_keep=2)
        history_path = os.path.join(run_dir, "history.json")
        history: list = []
        if resume and manager.latest_checkpoint:
            ckpt.restore(manager.latest_checkpoint).assert_existing_objects_matched()
            if os.path.exists(history_path):
                with open(history_path, encoding="utf-8") as fh:
                    history = json.load(fh)[: int(self.epoch.numpy())]
            log.info("resumed from %s after epoch %d", manager.latest_checkpoint, int(self.epoch.numpy()))
        elif resume:
            log.warning("--resume: no checkpoint in %s; starting from scratch", run_dir)
        best_path = os.path.join(run_dir, "model.weights.h5")
        train_writer = tf.summary.create_file_writer(os.path.join(run_dir, "logs", "train"))
        dev_writer = tf.summary.create_file_writer(os.path.join(run_dir, "logs", "dev"))
        verbose = 1 if sys.stdout.isatty() else 2
        while int(self.epoch.numpy()) < self.cfg.epochs:
            epoch = int(self.epoch.numpy())
            print(f"epoch {epoch + 1}/{self.cfg.epochs}", flush=True)
            self.model.head.on_epoch_begin(epoch)
            bar = keras.utils.Progbar(self.steps_per_epoch, verbose=verbose, stateful_metrics=["lr"])
            start, losses, seen = time.time(), [], 0
            for step, (x, y) in enumerate(train_data_for_epoch(epoch)):
                loss = float(self._train_step(x, y))
                if not np.isfinite(loss):
                    raise FloatingPointError(f"the loss became {loss} at epoch {epoch + 1} step {step + 1}; "
                                             "lower --learning-rate or check the data")
                losses.append(loss)
                seen += int(y.shape[0])
                lr = float(self.optimizer.learning_rate)
                bar.update(step + 1, [("loss", loss), ("lr", lr)])
                with train_writer.as_default(step=int(self.optimizer.iterations.numpy())):
                    tf.summary.scalar("loss", loss)
                    tf.summary.scalar("learning_rate", lr)
            train_time = time.time() - start
            predicted = self.model.predict_outputs(dev_inputs, self.cfg.jit_compile)
            dev = dev_f1(y_dev, predicted["scores"], predicted.get("decisions"))
            record = {"epoch": epoch + 1, "train_loss": float(np.mean(losses)) if losses else float("nan"),
                      "dev_micro_f1": dev["micro_f1"], "dev_macro_f1": dev["macro_f1"],
                      "dev_micro_f1_tuned": dev["micro_f1_tuned"], "dev_threshold": dev["threshold"],
                      "train_seconds": round(train_time, 2),
                      "train_examples_per_s": round(seen / train_time, 1)}
            with dev_writer.as_default(step=epoch + 1):
                tf.summary.scalar("micro_f1", dev["micro_f1"])
                tf.summary.scalar("macro_f1", dev["macro_f1"])
                tf.summary.scalar("micro_f1_tuned", dev["micro_f1_tuned"])
            improved = dev["micro_f1_tuned"] > float(self.best_f1.numpy())
            if improved:
                self.best_f1.assign(dev["micro_f1_tuned"])
                self.bad_epochs.assign(0)
                _atomic_save_weights(self.model, best_path)
            else:
                self.bad_epochs.assign_add(1)
            record["best"] = improved
            history.append(record)
            tuned = "" if dev["threshold"] is None else f" (at {dev['threshold']:.2f}: {dev['micro_f1_tuned']:.4f})"
            print(f"  loss {record['train_loss']:.4f}  dev micro-F1 {dev['micro_f1']:.4f}{tuned}  "
                  f"macro-F1 {dev['macro_f1']:.4f}"
                  f"{'  (best)' if improved else ''}  {train_time:.1f}s", flush=True)
            self.epoch.assign_add(1)
            manager.save()
            write_json(history_path, history, indent=1)
            if self.cfg.patience and int(self.bad_epochs.numpy()) >= self.cfg.patience:
                print(f"early stopping: no dev micro-F1 gain for {self.cfg.patience} epochs", flush=True)
                break
        train_writer.close()
        dev_writer.close()
        self.model.load_weights(best_path)
        return history
