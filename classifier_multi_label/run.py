"""A run, end to end: read data, build the encoder and model, train, tune thresholds, evaluate,
export; and a trained run folder loaded back for eval, predict and export.

The run folder holds ``config.json``, ``labels.txt``, ``encoder.json`` and the vocabulary,
``model.weights.h5`` (best dev micro-F1), ``checkpoints/`` (for ``--resume``), ``logs/``
(TensorBoard), ``history.json``, ``thresholds.json``, ``dev_metrics.json``, ``metrics.json``
(test) and ``export/<version>/``. Loading rebuilds the model from the JSON files and the weights
file: no code or pickle is read from the folder.

Example (`classifier_multi_label.train` is the keyword front end of `train`):
    >>> run = load_run(demo_run_dir)
    >>> sorted(run.predict(["制热很快，就是声音有点大"])[0])
    ['labels', 'scores']
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from importlib import resources

import keras
import numpy as np
import tensorflow as tf

from . import baseline as baseline_lib
from . import encoder as encoder_lib
from . import environment, registry
from .calibration import Calibration, fit_calibration
from .client import add_parents, prediction_rows
from .config import RunConfig, flag_of, may_change_on_resume, resume_changes
from .data import (
    DataError,
    Examples,
    LabelVocab,
    check_dev,
    check_training_data,
    examples_from,
    read_split,
    write_jsonl,
)
from .data_check import check_data, summary
from .distribute import Cluster, make_strategy
from .errors import UserError
from .explain import DEFAULT_STEPS, Explainer
from .files import check_output_dir, write_json, write_text
from .head import resolve_pooled_options
from .hierarchy import LabelHierarchy, format_levels
from .losses import make_loss
from .metrics import expected_calibration_error, format_metrics, multilabel_metrics
from .model import MultiLabelClassifier, dtype_policy, resolve_precision
from .pipeline import TokenDropout, make_dataset, text_batches, text_dataset
from .pretrain import pretrain_mlm
from .serving import export_run
from .thresholds import Thresholds, final_decisions, tune_thresholds
from .tokenization import token_counts
from .trainer import Trainer

log = logging.getLogger(__name__)

PRETRAINED_LR, SCRATCH_LR = 5e-5, 1e-3
# Fine-tuning peaks within a few epochs (SemEval E-c with MiniLM: best dev epoch 3 of 10) and an
# encoder from scratch keeps learning for tens (the demo early-stops after 19 to 33; the DuEE baseline's
# dev was still rising at epoch 15): docs/defaults.md, docs/benchmark-history.md.
PRETRAINED_EPOCHS, PRETRAINED_PATIENCE = 10, 3
SCRATCH_EPOCHS, SCRATCH_PATIENCE = 40, 10
PRETRAINED_HEAD_LR = 1e-3  # the head is new over a pretrained encoder: it learns at a from-scratch rate


def default_head_learning_rate(head_cls, pretrained: bool, learning_rate: float) -> float:
    """`--head-learning-rate` when not given: PRETRAINED_HEAD_LR over a pretrained encoder for a head
    with `fast_head_rate`, the encoder's `learning_rate` otherwise (docs/defaults.md).

    Example:
        >>> from classifier_multi_label.head import TextCNNHead
        >>> default_head_learning_rate(TextCNNHead, True, 5e-5), default_head_learning_rate(TextCNNHead, False, 1e-3)
        (0.001, 0.001)
    """
    return PRETRAINED_HEAD_LR if pretrained and head_cls.fast_head_rate else learning_rate


def tune_by(th, y_dev, scores) -> Thresholds:
    """Thresholds tuned on (y_dev, scores) with the rule a `ThresholdConfig` names."""
    return tune_thresholds(y_dev, scores, th.threshold_strategy, th.threshold, th.min_dev_positives, th.at_least_one,
                           th.threshold_objective, th.threshold_prior_positives)


def demo_file(split: str) -> str:
    """The bundled demo data (Chinese product reviews with aspect labels, hellonlp CSV)."""
    return str(resources.files("classifier_multi_label") / "demo_data" / f"{split}.csv")


@dataclass
class Run:
    """A trained model with everything needed to score raw text."""

    dir: str
    config: RunConfig
    labels: LabelVocab  # the model's output columns: the given labels, then any parents (hierarchy)
    preprocessor: object  # TextPreprocessor
    model: MultiLabelClassifier
    thresholds: Thresholds | None  # None until tuned on dev, and for a head that decodes label sets
    calibration: Calibration | None = None  # None: scores as the model gives them
    hierarchy: LabelHierarchy | None = None  # None: flat, the outputs are the given labels

    def __post_init__(self):
        if self.hierarchy is None:
            self.hierarchy = LabelHierarchy(self.labels)

    def infer(self, texts, batch_size: int | None = None) -> dict:
        """{"scores": [len(texts), num_labels]} (calibrated, with "uncalibrated_scores" beside them, when
        the run has a calibration), plus "decisions" for a head that decodes label sets."""
        batches = text_batches(texts, self.preprocessor, batch_size or self.config.data.batch_size)
        predicted = self.model.predict_outputs(batches, jit_compile=self.config.train.jit_compile)
        if self.calibration is not None:
            predicted["uncalibrated_scores"] = predicted["scores"]
            predicted["scores"] = self.calibration.apply(predicted["scores"])
        return predicted

    def calibrate(self, dev: Examples) -> dict:
        """Fits the run's `--calibration` on dev (before thresholds are tuned on the calibrated scores)
        and saves it; dropped, with a warning, where it lowers dev's F1 at tuned thresholds. A head that
        decodes label sets keeps its scores (seq2seq's beam marginals). -> `infer`'s outputs on dev
        under the outcome (for `tune_thresholds`, which then need not score dev again)."""
        method, path = self.config.thresholds.calibration, os.path.join(self.dir, "calibration.json")
        self.calibration = None
        if os.path.exists(path):
            os.remove(path)
        predicted = self.infer(dev.texts)
        if method == "none" or self.model.head.decodes_labels:
            return predicted
        y_dev, raw = self.hierarchy.multi_hot(dev.labels), predicted["scores"]
        candidate = fit_calibration(y_dev, raw, method)
        before, after = (self._tuned_f1(y_dev, scores) for scores in (raw, candidate.apply(raw)))
        objective = self.config.thresholds.threshold_objective
        if after < before:
            log.warning("calibration: %s scaling lowered dev %s-F1 at tuned thresholds (%.4f -> %.4f); scores "
                        "stay uncalibrated", method, objective, before, after)
            return predicted
        self.calibration = candidate
        candidate.save(path, self.labels.names)
        log.info("calibration: %s scaling fitted on dev (ECE %.4f -> %.4f; dev %s-F1 at tuned thresholds "
                 "%.4f -> %.4f)", method, expected_calibration_error(y_dev, raw),
                 expected_calibration_error(y_dev, candidate.apply(raw)), objective, before, after)
        return dict(predicted, scores=candidate.apply(raw), uncalibrated_scores=raw)

    def _tuned_f1(self, y, scores) -> float:
        """The objective's F1 on (y, scores) at thresholds tuned on them with the run's rule."""
        th, k = self.config.thresholds, self.hierarchy.num_primary
        rule = tune_by(th, y[:, :k], scores[:, :k])
        decisions = final_decisions({"scores": scores[:, :k]}, rule.values, rule.at_least_one).numpy()
        return multilabel_metrics(y[:, :k], scores[:, :k], decisions,
                                  self.labels.names[:k])[f"{th.threshold_objective}_f1"]

    def scores(self, texts, batch_size: int | None = None) -> np.ndarray:
        """Per-label probabilities [len(texts), num_labels]."""
        return self.infer(texts, batch_size)["scores"]

    def decisions(self, predicted: dict) -> np.ndarray:
        """0/1 [examples, num_labels]: the run's decision rule applied to `infer`'s outputs."""
        values = None if self.thresholds is None else self.thresholds.values
        return self.hierarchy.decide(predicted, values, self.config.thresholds.at_least_one).numpy()

    def predict(self, texts, parents: bool = False) -> list:
        """[{"labels": predicted names, best first, "scores": {name: score}}] per text, over the
        given labels; `parents` (a run with --label-hierarchy) adds "parents": the predicted parent
        labels, best first, and their scores to "parent_scores"."""
        predicted = self.infer(texts)
        scores, decisions, k = predicted["scores"], self.decisions(predicted), self.hierarchy.num_primary
        rows = prediction_rows(scores[:, :k], decisions[:, :k], self.labels.names[:k])
        return add_parents(rows, scores[:, k:], decisions[:, k:], self.labels.names[k:]) if parents else rows

    def tune_thresholds(self, dev: Examples, predicted: dict | None = None) -> dict:
        """Tunes thresholds on `dev` with the run's strategy, saves them; returns the dev metrics.
        A head that decodes label sets has no thresholds: this only measures it on dev. `predicted`:
        `infer`'s outputs on dev, when the caller has them."""
        th = self.config.thresholds
        y_dev = self.hierarchy.multi_hot(dev.labels)
        predicted = self.infer(dev.texts) if predicted is None else predicted
        if not self.model.head.decodes_labels:
            self.thresholds = self.hierarchy.tune(lambda y, s: tune_by(th, y, s), y_dev, predicted["scores"])
            self.thresholds.save(os.path.join(self.dir, "thresholds.json"), self.labels.names)
        return self._metrics(y_dev, predicted)

    def evaluate(self, examples) -> dict:
        """Metrics on labelled data: a file path, (texts, label_lists), a DataFrame or `Examples`
        (see `data.examples_from`); thresholds as tuned on dev. -> the metrics dict (metrics.json's)."""
        examples = examples_from(examples, "evaluate", read=lambda path: _read(path, self.config))
        self.hierarchy.labels.check(examples, fix="the model cannot score labels it was not trained on: "
                                                  "remove them, or retrain with them in --label-file")
        return self._metrics(self.hierarchy.multi_hot(examples.labels), self.infer(examples.texts))

    def _metrics(self, y_true, predicted) -> dict:
        """Metrics on the given labels (`LabelHierarchy.metrics`: plus per-level ones with a hierarchy)."""
        out = self.hierarchy.metrics(y_true, predicted["scores"], self.decisions(predicted),
                                     None if self.thresholds is None else self.thresholds.values)
        if "uncalibrated_scores" in predicted:
            k = self.hierarchy.num_primary
            out["ece_uncalibrated"] = expected_calibration_error(y_true[:, :k], predicted["uncalibrated_scores"][:, :k])
        return out

    def explain(self, texts, labels=None, steps: int = DEFAULT_STEPS, baseline: str = "pad") -> list:
        """Integrated-gradients attributions per text and label (`explain.Explainer`): for each
        text, its predicted labels (or `labels`) with score, logit difference from the baseline and
        [{"span", "start", "end", "attribution"}] over the words of the original string."""
        key = (int(steps), baseline)
        if getattr(self, "_explainer", None) is None or self._explainer_key != key:
            self._explainer, self._explainer_key = Explainer(self, steps, baseline), key
        return self._explainer.explain(texts, labels)

    def report(self, test=None, out: str | None = None) -> str:
        """Writes report.html (or `out`) for this run and returns its path (see `reporting.build_report`):
        `test` replaces the run's --test-file (a path or any shape `evaluate` takes)."""
        from .reporting import build_report

        return build_report(self, test=test, out=out)

    def export(self, export_dir: str, version: int | None = None, tokenizer: str | None = None,
               explain: bool | None = None, ig_steps: int = DEFAULT_STEPS, ig_baseline: str = "pad") -> str:
        """A TF Serving version folder `<export_dir>/<version>` (see `serving.export_run`); `explain`
        (default: the run's --export-explain) adds the `explain` signature, `ig_steps` steps."""
        explain = self.config.train.export_explain if explain is None else explain
        extra = {n: os.path.join(self.dir, n) for n in ("config.json", "environment.json", "metrics.json",
                                                         "dev_metrics.json", "labels.txt", "thresholds.json",
                                                         "calibration.json")}
        return export_run(self, export_dir, version, extra_files=extra,
                          tokenizer=tokenizer or self.config.train.export_tokenizer,
                          explain_steps=ig_steps if explain else None, explain_baseline=ig_baseline)


def _read(path, cfg: RunConfig) -> Examples:
    return read_split(path, cfg.data)


def _prepare_run_dir(cfg: RunConfig) -> str:
    run_dir = cfg.output_dir or os.path.join("runs", cfg.package, time.strftime("%Y%m%d-%H%M%S"))
    check_output_dir(run_dir, "--output-dir")
    if os.path.isdir(run_dir) and os.listdir(run_dir) and not cfg.train.resume:
        raise FileExistsError(f"{run_dir} is not empty: pass --resume to continue that run, "
                              "or another --output-dir")
    os.makedirs(run_dir, exist_ok=True)
    return run_dir


def load_data(cfg: RunConfig):
    """Train/dev/test examples and the label vocabulary, checked against each other."""
    d = cfg.data
    if d.train_file is None:
        d.train_file, d.dev_file, d.test_file = demo_file("train"), demo_file("dev"), demo_file("test")
        log.info("no --train-file: using the bundled demo data (%s)", os.path.dirname(d.train_file))
    train = _read(d.train_file, cfg)
    if d.label_file:
        labels = LabelVocab.load(d.label_file)
        labels.check(train, fix=f"add the label to {d.label_file}, or fix the row")
    else:
        labels = LabelVocab.from_examples(train)
    if not d.dev_file and len(train) < 2:
        raise DataError(d.train_file, None, f"{len(train)} training row: too few to hold out a dev set",
                        "give more rows, or a --dev-file")
    check_training_data(train, labels, d.label_file)
    if d.dev_file:
        dev = _read(d.dev_file, cfg)
    else:
        rng = np.random.default_rng(cfg.train.seed)
        order = rng.permutation(len(train))
        n_dev = min(len(train) - 1, max(1, int(round(d.dev_fraction * len(train)))))
        dev, train = train.subset(sorted(order[:n_dev])), train.subset(sorted(order[n_dev:]))
        log.info("no --dev-file: holding out %d of the training rows (--dev-fraction %.2f, seed %d) for early "
                 "stopping and thresholds", n_dev, d.dev_fraction, cfg.train.seed)
    fix = ("every dev/test label must occur in training or in --label-file: add it to --label-file, "
           "or remove the rows")
    labels.check(dev, fix)
    if check_dev(dev, labels) and cfg.thresholds.threshold_strategy in ("auto", "per_label"):
        cfg.thresholds.threshold_strategy = "global"
    test = _read(d.test_file, cfg) if d.test_file else None
    if test is not None:
        labels.check(test, fix)
    return train, dev, test, labels


def _head(head_cls, cfg: RunConfig, num_labels: int):
    return head_cls(num_labels, **cfg.head)


def _build_model(head_cls, cfg: RunConfig, num_labels: int, backbone, pre, cluster: Cluster | None = None):
    """(model, preprocessor): the head over the backbone, computing in the run's precision, its
    variables created under the cluster's distribution strategy."""
    cluster = cluster or Cluster(tf.distribute.get_strategy())
    with dtype_policy(cfg.train.precision), cluster.strategy.scope():
        head = _head(head_cls, cfg, num_labels)
        backbone = encoder_lib.with_precision(backbone, cfg.train.precision, copy=cluster.distributed)
        backbone, pre = head.adapt_encoder(backbone, pre)
        return MultiLabelClassifier(backbone, head), pre


def _worker_dirs(cfg: RunConfig, cluster: Cluster) -> tuple:
    """(where this process writes, the chief's run folder). A worker other than the chief writes
    to a temporary folder; with --resume it reads the chief's checkpoints from --output-dir."""
    if cluster.is_chief:
        run_dir = _prepare_run_dir(cfg)
        return run_dir, run_dir
    if cfg.train.resume and not cfg.output_dir:
        raise UserError("--resume with several workers: give every worker the same --output-dir, on storage "
                         "they all read (the chief's checkpoints are there)")
    return tempfile.mkdtemp(prefix=f"{cfg.package}-{cluster.task_type}{cluster.task_index}-"), cfg.output_dir


def train(cfg: RunConfig, head_cls=None, data: dict | None = None) -> Run | None:
    """Trains, tunes thresholds on dev, evaluates on test, exports. Returns the loaded run; on a
    worker other than the chief, trains only (the chief writes the run folder) and returns None.

    `head_cls`: the head class (default: the one registered as `cfg.head_name`); the run's package
    and head name are derived from it. `data`: {"train"|"dev"|"test": `Examples`} given in memory,
    written to the run folder's data/ as jsonl files that config.json names (so the run folder
    alone reproduces and resumes the run)."""
    if head_cls is None:
        if not cfg.head_name:
            raise UserError("train(): give the head class, or the head's name in the config (head_name)")
        head_cls = registry.head_class(cfg.head_name)
    given, cfg = cfg.given, RunConfig.from_dict(json.loads(cfg.to_json()))  # the caller's object stays as it was
    cfg.given = given
    cfg.head_name = registry.name_of(head_cls)
    cfg.package = registry.package_of(cfg.head_name)
    cluster = make_strategy(cfg.train.strategy)  # before any TensorFlow op: collectives start here
    if cluster.distributed and not head_cls.batch_local_loss:
        raise UserError(f"{cfg.package}: its loss couples the whole batch and cannot be split over replicas; "
                         "train it with --strategy one_device")
    log.info("strategy: %s", cluster.describe())
    check_options(cfg, head_cls)
    created = not os.path.exists(cfg.output_dir or "")
    run_dir, chief_dir = _worker_dirs(cfg, cluster)
    try:
        if data:
            _keep_data(cfg, data, run_dir)
        return _train(cfg, head_cls, cluster, run_dir, chief_dir)
    except UserError:
        # Bad data or options found before the first checkpoint: leave no half-made run folder that
        # a corrected rerun would have to --resume or delete.
        if created and cluster.is_chief and not os.path.isdir(os.path.join(run_dir, "checkpoints")):
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    finally:
        if not cluster.is_chief:
            shutil.rmtree(run_dir, ignore_errors=True)


def _keep_data(cfg: RunConfig, data: dict, run_dir: str):
    """Data given in memory -> <run_dir>/data/<split>.jsonl, named in the config as files."""
    unknown = set(data) - {"train", "dev", "test"}
    if unknown:
        raise UserError(f"data splits {sorted(unknown)}: use train, dev and test")
    d = cfg.data
    if d.data_format not in ("auto", "jsonl"):
        raise UserError(f"--data-format {d.data_format}: data given in memory is kept as jsonl next to your files; "
                         "leave data_format at auto (each file's format is detected)")
    os.makedirs(os.path.join(run_dir, "data"), exist_ok=True)
    for split, examples in data.items():
        path = os.path.join(run_dir, "data", f"{split}.jsonl")
        write_jsonl(path, examples, d.text_column or "text", d.label_column or "labels")
        setattr(d, f"{split}_file", path)


def check_options(cfg: RunConfig, head_cls):
    """Every option's type, choices and range as config.py and the head's options declare them, and
    the data paths, checked before any work (a typo found after a whole training run costs the run)."""
    RunConfig.from_dict(json.loads(cfg.to_json()))
    head_cls.make_options(**cfg.head)
    if cfg.output_dir:
        check_output_dir(cfg.output_dir, "--output-dir")
    d = cfg.data
    for flag, path in (("--train-file", d.train_file), ("--dev-file", d.dev_file), ("--test-file", d.test_file),
                       ("--label-file", d.label_file)):
        if path is not None and not os.path.isfile(path):
            problem = "is a folder, not a file" if os.path.isdir(path) else "no such file"
            raise DataError(path, None, f"{flag}: {problem}", "check the path (relative paths start at the current "
                                                               "folder)")


def _resumed_config(given: RunConfig, saved: RunConfig, path: str) -> RunConfig:
    """The saved run's config, with the options the user set now where `--resume` may change them;
    any other option set to another value than the run's is refused, naming its flag."""
    changes = resume_changes(given, saved)
    refused = {k: v for k, v in changes.items() if not may_change_on_resume(k)}
    if refused:
        shown = "; ".join(f"{flag_of(k)} {new!r} (the run has {old!r})" for k, (new, old) in refused.items())
        raise UserError(f"--resume: {shown}. A run continues with what it started with ({path}); leave "
                         f"{'this flag' if len(refused) == 1 else 'these flags'} out to continue it, or start a new "
                         "run in another --output-dir. On resume only thresholds, export, baseline, strategy and "
                         "XLA options may change")
    for key, (new, old) in changes.items():
        saved.set(key, new)
        log.info("--resume: %s %r replaces the run's %r", flag_of(key), new, old)
    saved.train.resume, saved.train.strategy = True, given.train.strategy
    log.info("--resume: continuing %s with its config.json", os.path.dirname(path))
    return saved


@dataclass
class _Setup:
    """What a run is decided to be before anything trains."""

    cfg: RunConfig  # resolved and frozen; config.json holds it
    train: Examples
    dev: Examples
    test: Examples | None
    labels: LabelVocab
    hierarchy: LabelHierarchy  # the model's outputs: the labels, then any parents
    backbone: object
    preprocessor: object  # TextPreprocessor
    resuming: bool  # a checkpoint will fill the weights


def _resolve(cfg: RunConfig, head_cls, cluster: Cluster, run_dir: str, chief_dir: str | None) -> _Setup:
    """Every default that depends on the data or the encoder (dev split, vocabulary, sequence length,
    learning rates, pooling, the head's options, precision) decided once, and written to
    config.json; the config returned is frozen, so nothing changes it while the run goes on."""
    saved = os.path.join(chief_dir or run_dir, "config.json")
    if cfg.train.resume and os.path.exists(saved):  # continue the run that was started: its config wins
        cfg = _resumed_config(cfg, RunConfig.load(saved), saved)
        cfg.head_name = cfg.head_name or registry.name_of(head_cls)  # a config.json written before head names
    # Rebuild the run's own encoder only when a checkpoint will fill its weights: a run killed
    # before its first checkpoint starts again from the encoder it was given (pretrained weights).
    resuming = bool(cfg.train.resume and chief_dir
                    and tf.train.latest_checkpoint(os.path.join(chief_dir, "checkpoints")))
    keras.utils.set_random_seed(cfg.train.seed)
    train_ex, dev_ex, test_ex, labels = load_data(cfg)
    d = cfg.data
    hierarchy = LabelHierarchy(labels, d.label_hierarchy, cfg.thresholds.parent_consistency)
    if hierarchy.hierarchical:
        log.info(hierarchy.describe())
    if resuming:
        backbone = encoder_lib.backbone_from_run(chief_dir)
        pre = encoder_lib.preprocessor_from_run(chief_dir, d.max_seq_length, d.pad_to_multiple_of)
        pretrained = None  # the learning rate was resolved when the run started
    else:
        enc = encoder_lib.load_encoder(cfg.encoder, d.max_seq_length, train_ex.texts, d.pad_to_multiple_of)
        enc.save(run_dir)
        backbone, pre, pretrained = enc.backbone, enc.preprocessor, enc.pretrained
        d.max_seq_length = pre.sequence_length  # resolved from the training texts when not given
        log.info("encoder: %s", enc.description)
        if cluster.is_chief:
            _check_data(run_dir, {"train": train_ex, "dev": dev_ex, "test": test_ex}, pre)
    if cfg.train.epochs is None:
        cfg.train.epochs = PRETRAINED_EPOCHS if pretrained else SCRATCH_EPOCHS
    if cfg.train.patience is None:
        cfg.train.patience = PRETRAINED_PATIENCE if pretrained else SCRATCH_PATIENCE
    if cfg.train.learning_rate is None:
        cfg.train.learning_rate = PRETRAINED_LR if pretrained else SCRATCH_LR
    if cfg.train.head_learning_rate is None:
        cfg.train.head_learning_rate = default_head_learning_rate(head_cls, bool(pretrained), cfg.train.learning_rate)
    if "pooling" in cfg.head and not resuming:
        cfg.head = resolve_pooled_options(cfg.head, bool(pretrained))
    if cfg.encoder.pretrain_epochs > 0 and not resuming and cluster.distributed:
        raise UserError("--pretrain-epochs: masked-LM pre-training runs on one device only; train with "
                         "--strategy one_device, or leave --pretrain-epochs out")
    if not head_cls.uses_core_loss and cfg.train.loss != "bce":
        raise UserError(f"--loss {cfg.train.loss}: {cfg.package} trains with its own loss; leave --loss out")
    cfg.head = head_cls.resolve_options(dict(cfg.head), hierarchy.expand(train_ex.labels), hierarchy.outputs)
    cfg.train.precision, cfg.train.jit_compile = resolve_precision(cfg.train.precision, cfg.train.jit_compile,
                                                                   head_cls.supports_bfloat16)
    xla = "on" if cfg.train.jit_compile else "off"
    if cfg.train.jit_compile and not head_cls.xla_train_step:
        xla = "on for prediction, off for this head's train step (measured faster)"
    log.info("precision %s, XLA %s", cfg.train.precision, xla)
    labels.save(os.path.join(run_dir, "labels.txt"))
    write_text(os.path.join(run_dir, "config.json"), cfg.to_json())
    _record_environment(run_dir, resumed=cfg.train.resume)
    return _Setup(cfg.frozen(), train_ex, dev_ex, test_ex, labels, hierarchy, backbone, pre, resuming)


def _record_environment(run_dir: str, resumed: bool):
    """environment.json: what the run started on; a resumed run adds what it continued on."""
    path, env = os.path.join(run_dir, "environment.json"), environment.describe()
    if resumed and os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            started = json.load(fh)
        env = dict(started, resumed=started.get("resumed", []) + [env])
    write_json(path, env)


def _check_data(run_dir: str, splits: dict, pre):
    """`data_check.check_data` on the run's splits, with the texts its sequence length cuts ->
    <run_dir>/data_check.json, and a summary in the log."""
    splits = {name: ex for name, ex in splits.items() if ex is not None}
    counts = {name: token_counts(pre, ex.texts) for name, ex in splits.items()}
    report = check_data(splits, token_counts=counts, max_seq_length=pre.sequence_length)
    write_json(os.path.join(run_dir, "data_check.json"), report, indent=1)
    log.info("data check (data_check.json):\n%s", summary(report))


def _train(cfg: RunConfig, head_cls, cluster: Cluster, run_dir: str, chief_dir: str | None) -> Run | None:
    setup = _resolve(cfg, head_cls, cluster, run_dir, chief_dir)
    cfg, train_ex, dev_ex, test_ex, labels = setup.cfg, setup.train, setup.dev, setup.test, setup.labels
    backbone, pre, d, t = setup.backbone, setup.preprocessor, setup.cfg.data, setup.cfg.train
    drop = TokenDropout.for_preprocessor(pre, t.token_dropout) if t.token_dropout else None
    if cfg.encoder.pretrain_epochs > 0 and not setup.resuming:
        history = pretrain_mlm(backbone, pre, train_ex.texts, t, t.learning_rate, cfg.encoder.pretrain_epochs,
                               d.batch_size)
        write_json(os.path.join(run_dir, "pretrain_history.json"), history)

    hierarchy, outputs = setup.hierarchy, setup.hierarchy.outputs
    model, pre = _build_model(head_cls, cfg, len(outputs), backbone, pre, cluster)
    y_train = hierarchy.multi_hot(train_ex.labels)  # [examples, outputs]: the labels, then their parents
    y_dev = labels.multi_hot(dev_ex.labels)  # [examples, labels]: the best epoch is chosen on the given labels
    targets = model.head.targets(hierarchy.expand(train_ex.labels), outputs)  # [examples, outputs]
    loss_fn = make_loss(t.loss, y_train.sum(0), len(y_train), t.focal_gamma, t.focal_alpha, t.asl_gamma_pos,
                        t.asl_gamma_neg, t.asl_clip, t.cb_beta, t.pos_weight_max)
    steps = -(-len(train_ex) // d.batch_size)
    log.info("training on %d examples (%d steps/epoch), dev %d, test %d, %d labels, lr %g (head %g), loss %s",
             len(train_ex), steps, len(dev_ex), len(test_ex) if test_ex else 0, len(outputs),
             t.learning_rate, t.head_learning_rate, t.loss)
    baseline = fit_baseline(cfg, train_ex, dev_ex, test_ex, labels) if cluster.is_chief else None
    trainer = Trainer(model, loss_fn, t, steps, t.learning_rate, cluster, head_learning_rate=t.head_learning_rate,
                      objective=cfg.thresholds.threshold_objective)
    trainer.fit(lambda epoch: make_dataset(train_ex.texts, targets, pre, d.batch_size, shuffle=True,
                                           seed=t.seed, epoch=epoch, token_dropout=drop),
                text_dataset(dev_ex.texts, pre, d.batch_size), y_dev, run_dir, resume=t.resume,
                restore_dir=chief_dir)
    if not cluster.is_chief:
        print(f"{cluster.task_type} {cluster.task_index}: training done; the chief writes the run folder", flush=True)
        return None

    run = Run(run_dir, cfg, outputs, pre, model, thresholds=None, hierarchy=hierarchy)
    dev_metrics = run.tune_thresholds(dev_ex, run.calibrate(dev_ex))
    write_json(os.path.join(run_dir, "dev_metrics.json"), dev_metrics)
    print(format_metrics(dev_metrics, "dev (thresholds tuned here)") + format_levels(dev_metrics), flush=True)
    if test_ex is not None:
        test_metrics = run.evaluate(test_ex)
        write_json(os.path.join(run_dir, "metrics.json"), {"split": "test", "file": d.test_file, **test_metrics})
        print(format_metrics(test_metrics, f"test: {d.test_file}") + format_levels(test_metrics), flush=True)
    else:
        log.warning("no --test-file: metrics.json is not written (dev metrics are in dev_metrics.json)")
    if baseline is not None:
        split, ours = ("test", test_metrics) if test_ex is not None else ("dev", dev_metrics)
        line, wins = baseline_verdict(ours, baseline, split)
        baseline["verdict"] = line
        write_json(os.path.join(run_dir, "baseline_metrics.json"), baseline)
        if wins:
            print(line, flush=True)
        else:
            log.warning(line)
    if t.export:
        print(f"exported {run.export(os.path.join(run_dir, 'export'))}", flush=True)
    if t.report:
        _write_report(run, train_ex, dev_ex, test_ex)
    print(f"run folder: {run_dir}", flush=True)
    return run


def _write_report(run: Run, train_ex: Examples, dev_ex: Examples, test_ex: Examples | None):
    """report.html at the end of training. The model is saved by then: a failure here is logged with
    its traceback and the command to rebuild the page, and does not undo the run."""
    from .reporting import build_report

    try:
        print(f"report: {build_report(run, splits=(train_ex, dev_ex, test_ex))}", flush=True)
    except Exception:
        log.exception("report.html could not be built; the run itself is complete. Rebuild it with "
                      "python %s/report.py --model-dir %s", run.config.package.replace(".", "/"), run.dir)


def fit_baseline(cfg: RunConfig, train_ex: Examples, dev_ex: Examples, test_ex: Examples | None,
                 labels: LabelVocab) -> dict | None:
    """TF-IDF + LR on the run's data (`baseline.TfidfBaseline`), thresholds tuned on dev with the
    run's rule -> {"dev": metrics, "test": metrics, "seconds": ...}; None when `--baseline` leaves it out."""
    if not baseline_lib.wanted(cfg.train.baseline, len(train_ex), len(labels)):
        if cfg.train.baseline == "auto":
            log.info("--baseline auto: %d training texts x %d labels is too large for a quick TF-IDF baseline; "
                     "--baseline tfidf fits it anyway", len(train_ex), len(labels))
        return None
    start = time.time()
    model = baseline_lib.TfidfBaseline().fit(train_ex.texts, labels.multi_hot(train_ex.labels))
    th = cfg.thresholds
    y_dev, dev_scores = labels.multi_hot(dev_ex.labels), model.scores(dev_ex.texts)
    log.info("baseline: tuning the TF-IDF + LR thresholds on dev with the run's rule")
    rule = tune_by(th, y_dev, dev_scores)

    def metrics(y, scores):
        decisions = final_decisions({"scores": scores}, rule.values, rule.at_least_one).numpy()
        return multilabel_metrics(y, scores, decisions, labels.names, rule.values)

    out = {"model": "TF-IDF + one-vs-rest logistic regression (C=10, balanced)", "thresholds": rule.strategy,
           "dev": metrics(y_dev, dev_scores)}
    if test_ex is not None:
        out["test"] = metrics(labels.multi_hot(test_ex.labels), model.scores(test_ex.texts))
    out["seconds"] = round(time.time() - start, 1)
    print(f"baseline (TF-IDF + LR, {out['seconds']:.0f} s): dev micro-F1 {out['dev']['micro_f1']:.4f}, "
          f"macro-F1 {out['dev']['macro_f1']:.4f}", flush=True)
    return out


def baseline_verdict(ours: dict, baseline: dict, split: str) -> tuple[str, bool]:
    """(a line comparing `ours` with the baseline's metrics on `split`, whether ours wins on both F1s)."""
    base = baseline[split]
    worse = [k for k in ("micro_f1", "macro_f1") if ours[k] <= base[k]]
    line = (f"{split}: this model micro-F1 {ours['micro_f1']:.4f}, macro-F1 {ours['macro_f1']:.4f}; "
            f"TF-IDF + LR baseline {base['micro_f1']:.4f}, {base['macro_f1']:.4f}")
    if worse:
        names = {"micro_f1": "micro-F1", "macro_f1": "macro-F1"}
        return line + (f". The baseline is as good or better on {' and '.join(names[k] for k in worse)}"
                       ": more epochs, --head-learning-rate, --loss or --threshold-objective macro may help "
                       "(docs/training.md)"), False
    return line + ". This model beats the baseline on both.", True


def load_run(run_dir: str, head_cls=None, package: str | None = None) -> Run:
    """Rebuilds a trained run from its folder alone (JSON + weights; no code is loaded from it): the
    head is the one its config.json names. `head_cls` / `package`, when given (the package's own
    scripts), must match it.

    Example:
        >>> run = load_run(demo_run_dir)  # a run folder written by train.py (here: 4 labels)
        >>> run.config.head_name, len(run.labels)
        ('textcnn', 4)
    """
    cfg_path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(cfg_path):
        raise FileNotFoundError(f"{run_dir}: no config.json; is this a run folder (--model-dir)?")
    cfg = RunConfig.load(cfg_path)
    if not cfg.head_name:  # a run folder written before config.json named its head
        cfg.head_name = registry.name_for_package(cfg.package)
    wanted = package or (registry.package_of(registry.name_of(head_cls)) if head_cls is not None else None)
    if wanted is not None and cfg.package != wanted:
        raise UserError(f"{run_dir} was trained by {cfg.package}; use {cfg.package}/<script>.py with it, "
                         f"not {wanted}")
    head_cls = registry.head_class(cfg.head_name)
    cfg.head = dataclasses.asdict(head_cls.make_options(**cfg.head))  # checks the recorded options
    hierarchy = LabelHierarchy(LabelVocab.load(os.path.join(run_dir, "labels.txt")), cfg.data.label_hierarchy,
                               cfg.thresholds.parent_consistency)
    labels = hierarchy.outputs
    weights = os.path.join(run_dir, "model.weights.h5")
    if not os.path.isfile(weights):
        raise FileNotFoundError(f"{weights} is missing: the run did not finish its first epoch "
                                "(continue it with train.py --output-dir <it> --resume)")
    pre = encoder_lib.preprocessor_from_run(run_dir, cfg.data.max_seq_length, cfg.data.pad_to_multiple_of)
    if cfg.train.precision == "auto":  # a run saved before precisions existed: it trained in float32
        cfg.train.precision = "float32"
    cfg.train.precision, cfg.train.jit_compile = resolve_precision(cfg.train.precision, cfg.train.jit_compile)
    model, pre = _build_model(head_cls, cfg, len(labels), encoder_lib.backbone_from_run(run_dir), pre)
    try:
        model.load_weights(weights)
    except Exception as e:  # h5py/keras raise several types for a damaged file
        raise UserError(f"{weights}: cannot load the weights ({type(e).__name__}: {e}); the file is damaged "
                         "or from another model. Retrain, or resume from checkpoints/") from None
    thresholds = None if head_cls.decodes_labels else Thresholds.load(os.path.join(run_dir, "thresholds.json"),
                                                                      labels.names)
    path = os.path.join(run_dir, "calibration.json")
    calibration = Calibration.load(path, labels.names) if os.path.exists(path) else None
    return Run(run_dir, cfg, labels, pre, model, thresholds, calibration, hierarchy)

