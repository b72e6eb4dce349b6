"""The training driver shared by every head: the epochs around the train step.

The optimizer and its schedules (`optimization.py`), one optimizer step per batch (`train_step.py`,
with FGM from `adversarial.py`), dev evaluation each epoch on probabilities, a checkpoint per
epoch (and on Ctrl-C) for `--resume`, early stopping, TensorBoard logs and a progress bar.

Best-weights selection and early stopping use the dev F1 that thresholds are tuned for
(``--threshold-objective``, micro by default) at its best global threshold: the decision rule that
thresholds tuning applies afterwards. At a fixed 0.5 a model still learning
the label priors scores exactly 0 for several epochs, and early stopping would see no signal.

Example:
    >>> import keras_hub
    >>> from classifier_multi_label.head import PooledHead
    >>> from classifier_multi_label.losses import bce
    >>> from classifier_multi_label.model import MultiLabelClassifier
    >>> from classifier_multi_label.pipeline import make_dataset, text_dataset
    >>> backbone = keras_hub.models.AlbertBackbone(vocabulary_size=preprocessor.vocabulary_size, num_layers=1,
    ...     num_heads=2, embedding_dim=8, hidden_dim=8, intermediate_dim=16, max_sequence_length=32)
    >>> model = MultiLabelClassifier(backbone, PooledHead(num_labels=2, pooling="mean"))
    >>> texts, y = ["制热很快", "声音很大"], np.array([[1, 0], [0, 1]], "float32")
    >>> trainer = Trainer(model, bce, TrainConfig(epochs=2, patience=0), steps_per_epoch=1, learning_rate=1e-3)
    >>> history = trainer.fit(lambda epoch: make_dataset(texts, y, preprocessor, batch_size=2),
    ...                       text_dataset(texts, preprocessor, batch_size=2), y, tmp_dir)  # doctest: +ELLIPSIS
    epoch 1/2
    ...
    >>> [h["epoch"] for h in history]
    [1, 2]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import sys
import threading
import time

import keras
import numpy as np
import tensorflow as tf

from .adversarial import FGM
from .config import TrainConfig
from .distribute import Cluster
from .errors import TrainingInterrupted, UserError
from .files import write_json
from .metrics import macro_f1
from .optimization import make_optimizer
from .thresholds import best_global_threshold, score
from .train_step import TrainStep

log = logging.getLogger(__name__)
def dev_f1(y_true, scores, decisions=None, objective: str = "micro") -> dict:
    """Micro/macro F1 at 0.5, micro-F1 at the best global threshold, and the selection score:
    `objective` F1 at its own best global threshold. For a head that decodes label sets
    (`decisions` given), all are on its decisions."""
    if decisions is not None:
        micro = score(y_true, decisions, "micro")
        return {"micro_f1": micro, "macro_f1": macro_f1(y_true, decisions), "micro_f1_tuned": micro,
                "threshold": None, "selection": score(y_true, decisions, objective)}
    pred = (scores >= 0.5).astype(int)
    threshold, tuned = best_global_threshold(y_true, scores)
    selection = tuned if objective == "micro" else best_global_threshold(y_true, scores, objective)[1]
    return {"micro_f1": score(y_true, pred, "micro"), "macro_f1": macro_f1(y_true, pred),
            "micro_f1_tuned": tuned, "threshold": threshold, "selection": selection}


def _atomic_save_weights(model, path):
    tmp = path + ".tmp.weights.h5"
    model.save_weights(tmp)
    os.replace(tmp, path)


class Interrupt:
    """Ctrl-C (SIGINT) while training: the first asks the loop to finish its step and checkpoint; a
    second one quits at once (Python's KeyboardInterrupt)."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.requested, self._previous = False, None

    def _handle(self, signum, frame):
        if self.requested:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt
        self.requested = True
        print("\nCtrl-C: finishing this step and saving a checkpoint (press it again to quit at once)",
              file=sys.stderr, flush=True)

    def __enter__(self):
        if self.enabled:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self.enabled:
            signal.signal(signal.SIGINT, self._previous)
        return False


def weights_digest(model) -> str:
    """sha256 of every weight's bytes, in order: equal digests mean bit-identical models."""
    digest = hashlib.sha256()
    for w in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(w.value)).tobytes())
    return digest.hexdigest()


class Trainer:
    """Runs the epochs. `fit` returns the history (one dict per epoch).

    Under a distribution strategy every worker runs the same steps (`train_step.TrainStep`); only
    the chief evaluates on dev, writes the run folder and decides early stopping; the others
    follow it (`distribute.Cluster`).
    """

    def __init__(self, model, loss_fn, cfg: TrainConfig, steps_per_epoch: int, learning_rate: float,
                 cluster: Cluster | None = None, head_learning_rate: float | None = None, objective: str = "micro"):
        if cfg.epochs is None or cfg.patience is None:
            raise ValueError("Trainer: TrainConfig's epochs and patience must be numbers (a training run "
                             "resolves none from the encoder before it builds the Trainer)")
        self.model, self.loss_fn, self.cfg, self.objective = model, loss_fn, cfg, objective
        self.cluster = cluster or Cluster(tf.distribute.get_strategy())
        self.strategy = self.cluster.strategy
        self.steps_per_epoch = steps_per_epoch
        # Dropout's random state: checkpointed (a resumed run draws the masks an uninterrupted one would).
        self._seed_states = [v for v in model.variables if "seed_generator_state" in v.path]
        self.fgm = FGM(model, cfg.adversarial_epsilon, self._seed_states) if cfg.adversarial_epsilon else None
        with self.strategy.scope():
            self.optimizer = make_optimizer(cfg, learning_rate, steps_per_epoch * cfg.epochs,
                                            head_learning_rate=head_learning_rate,
                                            head_variables=model.head.trainable_variables,
                                            encoder_variables=model.backbone.trainable_variables)
            self.optimizer.build(model.trainable_variables)
            self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
            self.best_f1 = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_f1")
            self.bad_epochs = tf.Variable(0, dtype=tf.int64, trainable=False, name="bad_epochs")
            # An epoch cut by Ctrl-C: (batches done, their loss sum, examples seen), so --resume
            # continues it where it stopped and reports the whole epoch's mean loss.
            self.partial = tf.Variable([0.0, 0.0, 0.0], dtype=tf.float64, trainable=False, name="partial_epoch")
        self.step = TrainStep(model, loss_fn, self.optimizer, self.cluster, cfg.clipnorm, cfg.jit_compile, self.fgm)
        # One optimizer step on a (global) batch -> (its mean loss, its number of examples).
        self.train_step = self.step.compiled

    def _restore(self, ckpt, directory: str) -> bool:
        """Restores the newest readable checkpoint in `directory`; False if there is none."""
        paths = tf.train.get_checkpoint_state(directory)
        candidates = list(reversed(paths.all_model_checkpoint_paths)) if paths else []
        for i, path in enumerate(candidates):
            try:
                ckpt.restore(path).assert_existing_objects_matched()
            except Exception as e:  # noqa: BLE001 - a damaged file raises OpError, IndexError, ValueError...
                older = "trying the one before" if i + 1 < len(candidates) else "no older one is left"
                log.warning("--resume: %s cannot be restored (%s: %s); %s", path, type(e).__name__,
                            str(e).splitlines()[0][:200], older)
                continue
            log.info("resumed from %s after epoch %d", path, int(self.epoch.numpy()))
            return True
        if candidates:
            raise UserError(f"--resume: no checkpoint in {directory} can be restored (damaged, or from "
                             f"another model): delete {directory} to start over, or use another --output-dir")
        return False

    def fit(self, train_data_for_epoch, dev_inputs, y_dev, run_dir: str, resume: bool = False,
            restore_dir: str | None = None) -> list:
        """Trains for the configured epochs. This process writes to `run_dir` (a temporary folder
        for a worker other than the chief); `--resume` reads checkpoints from `restore_dir` (the
        chief's run folder, default `run_dir`)."""
        chief = self.cluster.is_chief
        # Dropout's random state is not part of the model's checkpoint: without it a resumed run would
        # replay the first epochs' dropout masks and drift from an uninterrupted one.
        ckpt = tf.train.Checkpoint(model=self.model, optimizer=self.optimizer, epoch=self.epoch,
                                   best_f1=self.best_f1, bad_epochs=self.bad_epochs, seed_states=self._seed_states,
                                   partial=self.partial)
        manager = tf.train.CheckpointManager(ckpt, os.path.join(run_dir, "checkpoints"), max_to_keep=2)
        history_path = os.path.join(run_dir, "history.json")
        history: list = []
        if resume:
            restore_dir = restore_dir or run_dir
            if self._restore(ckpt, os.path.join(restore_dir, "checkpoints")):
                if chief and os.path.exists(history_path):
                    with open(history_path, encoding="utf-8") as fh:
                        history = json.load(fh)[: int(self.epoch.numpy())]
            else:
                log.warning("--resume: no checkpoint in %s; starting from scratch", restore_dir)
        self.cluster.sync_from_chief(self.model)
        best_path = os.path.join(run_dir, "model.weights.h5")
        writers = {}
        if chief:
            writers = {k: tf.summary.create_file_writer(os.path.join(run_dir, "logs", k)) for k in ("train", "dev")}
        verbose = (1 if sys.stdout.isatty() else 2) if chief else 0
        # One worker alone cannot stop mid-epoch (the others would wait in a collective): several
        # workers keep Python's Ctrl-C, and --resume continues from the last epoch's checkpoint.
        interrupt = Interrupt(enabled=not self.cluster.distributed)
        with interrupt:
            history = self._epochs(train_data_for_epoch, dev_inputs, y_dev, manager, history, history_path,
                                   writers, best_path, verbose, interrupt)
        for writer in writers.values():
            writer.close()
        if self.cluster.distributed:  # equal digests on every worker: they trained the same model
            log.info("final weights sha256 %s (%s)", weights_digest(self.model), self.cluster.describe())
        if chief:
            self.model.load_weights(best_path)
        return history

    def _epochs(self, train_data_for_epoch, dev_inputs, y_dev, manager, history, history_path, writers,
                best_path, verbose, interrupt) -> list:
        chief = self.cluster.is_chief
        while int(self.epoch.numpy()) < self.cfg.epochs:
            epoch = int(self.epoch.numpy())
            done, loss_sum, seen = (float(v) for v in self.partial.numpy())
            done = int(done)
            if chief:
                print(f"epoch {epoch + 1}/{self.cfg.epochs}" + (f" (from batch {done + 1})" if done else ""),
                      flush=True)
            self.model.head.on_epoch_begin(epoch)
            bar = keras.utils.Progbar(self.steps_per_epoch, verbose=verbose, stateful_metrics=["lr"])
            start, steps, seen_before = time.time(), done, seen  # steps: this epoch's batches, before a resume too
            # The epoch's batches are the same on every run (seeded by epoch): skip those already trained.
            batches = self.cluster.distribute(train_data_for_epoch(epoch).skip(done))
            # Traced once for the spec's any batch size and length, rather than per shape first seen.
            self.train_step.get_concrete_function(*batches.element_spec)
            for step, (x, y) in enumerate(batches, start=done):
                loss, n = self.train_step(x, y)
                loss = float(loss)
                if not np.isfinite(loss):
                    raise FloatingPointError(f"the loss became {loss} at epoch {epoch + 1} step {step + 1}; "
                                             "lower --learning-rate or check the data")
                loss_sum, seen, steps = loss_sum + loss, seen + int(n), step + 1
                lr = float(self.optimizer.learning_rate)
                bar.update(step + 1, [("loss", loss), ("lr", lr)])
                if chief:
                    with writers["train"].as_default(step=int(self.optimizer.iterations.numpy())):
                        tf.summary.scalar("loss", loss)
                        tf.summary.scalar("learning_rate", lr)
                if interrupt.requested:
                    self.partial.assign([step + 1, loss_sum, seen])
                    path = manager.save()
                    raise TrainingInterrupted(f"interrupted at epoch {epoch + 1}, batch {step + 1}: saved "
                                              f"{path}; continue with the same command and --resume")
            self.partial.assign([0.0, 0.0, 0.0])
            train_time = time.time() - start
            record = {"epoch": epoch + 1, "train_loss": loss_sum / steps if steps else float("nan"),
                      "train_seconds": round(train_time, 2),
                      "train_examples_per_s": round((seen - seen_before) / train_time, 1),
                      "learning_rate": float(self.optimizer.learning_rate)}  # the encoder's, after the epoch
            if chief:
                self._evaluate(dev_inputs, y_dev, record, writers["dev"], best_path)
                history.append(record)
                write_json(history_path, history, indent=1)  # before the checkpoint: resume truncates it
            self.epoch.assign_add(1)
            path = manager.save()
            if interrupt.requested:
                raise TrainingInterrupted(f"interrupted after epoch {epoch + 1}: saved {path}; continue with "
                                          "the same command and --resume")
            if self.cluster.chief_says(bool(self.cfg.patience and int(self.bad_epochs.numpy()) >= self.cfg.patience)):
                if chief:
                    print(f"early stopping: no dev {self.objective}-F1 gain for {self.cfg.patience} epochs", flush=True)
                break
        return history

    def _evaluate(self, dev_inputs, y_dev, record: dict, writer, best_path: str):
        """Scores dev into `record`, keeps the best weights and counts epochs without a gain."""
        predicted = self.model.predict_outputs(dev_inputs, self.cfg.jit_compile)
        # The first columns are the labels y_dev holds; any after them are auxiliary (hierarchy.py).
        k = y_dev.shape[1]
        decisions = predicted.get("decisions")
        dev = dev_f1(y_dev, predicted["scores"][:, :k], None if decisions is None else decisions[:, :k],
                     self.objective)
        record.update({"dev_micro_f1": dev["micro_f1"], "dev_macro_f1": dev["macro_f1"],
                       "dev_micro_f1_tuned": dev["micro_f1_tuned"], "dev_threshold": dev["threshold"],
                       "dev_selection_f1": dev["selection"]})
        with writer.as_default(step=record["epoch"]):
            tf.summary.scalar("micro_f1", dev["micro_f1"])
            tf.summary.scalar("macro_f1", dev["macro_f1"])
            tf.summary.scalar("micro_f1_tuned", dev["micro_f1_tuned"])
        improved = dev["selection"] > float(self.best_f1.numpy())
        if improved:
            self.best_f1.assign(dev["selection"])
            self.bad_epochs.assign(0)
            _atomic_save_weights(self.model, best_path)
        else:
            self.bad_epochs.assign_add(1)
        record["best"] = improved
        tuned = "" if dev["threshold"] is None else f" (at {dev['threshold']:.2f}: {dev['micro_f1_tuned']:.4f})"
        if self.objective != "micro":
            tuned += f"  selection ({self.objective}-F1, best global threshold) {dev['selection']:.4f}"
        print(f"  loss {record['train_loss']:.4f}  dev micro-F1 {dev['micro_f1']:.4f}{tuned}  "
              f"macro-F1 {dev['macro_f1']:.4f}{'  (best)' if improved else ''}  {record['train_seconds']:.1f}s",
              flush=True)
