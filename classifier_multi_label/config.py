"""Typed configuration of a run, written to the run folder as JSON.

Every field of the dataclasses below is also a command-line flag (``max_seq_length`` is
``--max-seq-length``); flags override a ``--config F.json`` file, which overrides the defaults.
A run folder's ``config.json`` rebuilds the run on its own.

Example:
    >>> cfg = parse_config(["--epochs", "3", "--batch-size", "8"], package="classifier_multi_label")
    >>> cfg.train.epochs, cfg.data.batch_size
    (3, 8)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class DataConfig:
    """Where the data is and how it becomes batches."""

    train_file: Optional[str] = None  # None: the bundled demo data
    dev_file: Optional[str] = None  # None: hold out `dev_fraction` of train
    test_file: Optional[str] = None
    label_file: Optional[str] = None  # None: labels of the training data, sorted
    data_format: str = "auto"  # auto | hellonlp | onehot | jsonl | tsv
    text_column: Optional[str] = None  # default per format: content / text
    label_column: Optional[str] = None  # default per format: label / labels
    label_separator: Optional[str] = None  # default per format: "/" (hellonlp), "," (tsv)
    encoding: str = "utf-8"  # e.g. gbk for files saved by older Windows tools
    dev_fraction: float = 0.1
    max_seq_length: int = 128
    batch_size: int = 16
    pad_to_multiple_of: int = 16  # dynamic padding rounds batch length up to this (few shapes)


@dataclass
class EncoderConfig:
    """The encoder: a pretrained one (`encoder`) or a small ALBERT trained from scratch."""

    encoder: Optional[str] = None  # see README: Google ALBERT folder, albert_config.json, preset, HF dir
    vocab_file: Optional[str] = None  # vocab.txt (WordPiece) or *.model (SentencePiece)
    lowercase: bool = True
    vocab_size: int = 8000  # size of the WordPiece vocabulary built from training texts
    # Size of the from-scratch ALBERT (used when `encoder` is None).
    embedding_dim: int = 128
    hidden_dim: int = 128
    num_layers: int = 2
    num_heads: int = 2
    intermediate_dim: int = 512
    encoder_dropout: float = 0.1
    # Masked-LM epochs on the training texts before the classifier trains (README: pre-training).
    pretrain_epochs: int = 0


@dataclass
class TrainConfig:
    """The shared training driver: AdamW, warm-up then linear decay, early stopping on dev."""

    epochs: int = 40
    learning_rate: Optional[float] = None  # None: 5e-5 for a pretrained encoder, 1e-3 from scratch
    # The head's own peak rate (README: Training). None: 1e-3 over a pretrained encoder, `learning_rate` from scratch.
    head_learning_rate: Optional[float] = None
    warmup_ratio: float = 0.1
    head_warmup_ratio: Optional[float] = None  # None: `warmup_ratio`
    weight_decay: float = 0.01
    clipnorm: float = 1.0
    adam_epsilon: float = 1e-6
    patience: int = 10  # epochs without dev micro-F1 gain before stopping; 0 disables
    seed: int = 42
    token_dropout: float = 0.0  # share of training text tokens masked afresh each epoch (README: Training)
    adversarial_epsilon: float = 0.0  # FGM: also train on token embeddings moved this far uphill (README: Training)
    loss: str = "bce"  # bce | focal | asl | class_balanced | pos_weight | logit_adjusted
    focal_gamma: float = 2.0
    focal_alpha: Optional[float] = None  # e.g. 0.25; None: no alpha balancing
    asl_gamma_pos: float = 0.0
    asl_gamma_neg: float = 4.0
    asl_clip: float = 0.05
    cb_beta: float = 0.9999
    pos_weight_max: float = 50.0  # cap of neg/pos ratios for the pos_weight loss
    precision: str = "auto"  # auto | float32 | mixed_bfloat16 (README: Speed); auto resolves at train time
    jit_compile: Optional[bool] = None  # XLA train/predict steps; None: on for float32, off for mixed_bfloat16
    strategy: str = "auto"  # auto | one_device | mirrored | multi_worker (TF_CONFIG); README: Distributed
    resume: bool = False
    export: bool = True  # export a SavedModel to <output_dir>/export/<version> after training
    export_tokenizer: str = "auto"  # auto | core | tf_text: the exported graph's tokenizer (README, Export)
    baseline: str = "auto"  # auto | tfidf | none: fit TF-IDF + LR beside the model and compare (auto: small data only)


@dataclass
class ThresholdConfig:
    """How scores become decisions; tuned on dev, saved in the run folder and the export."""

    threshold: float = 0.5  # the global threshold, and the fall-back per label
    threshold_strategy: str = "auto"  # auto | fixed | global | per_label (README: Thresholds)
    threshold_objective: str = "micro"  # micro | macro | samples: the F1 that tuning maximises
    min_dev_positives: int = 5  # per-label tuning only for labels with this many dev positives
    threshold_prior_positives: float = 10.0  # per-label thresholds move n/(n+this) of the way from the global one
    at_least_one: bool = False  # predict the top label when no score passes its threshold


@dataclass
class RunConfig:
    package: str = "classifier_multi_label"
    output_dir: Optional[str] = None  # None: runs/<package>/<timestamp>
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    thresholds: ThresholdConfig = field(default_factory=ThresholdConfig)
    head: dict = field(default_factory=dict)  # the head's own dataclass, as a dict

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, ensure_ascii=False)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown config keys {sorted(unknown)}")
        kwargs = dict(d)
        for name, section_cls in SECTIONS.items():
            kwargs[name] = _build(section_cls, d.get(name, {}), name)
        return cls(**kwargs)

    @classmethod
    def load(cls, path) -> "RunConfig":
        with open(path, encoding="utf-8") as fh:
            try:
                return cls.from_dict(json.load(fh))
            except (json.JSONDecodeError, ValueError, TypeError) as e:
                raise ValueError(f"{path}: not a valid run config: {e}") from None


SECTIONS = {"data": DataConfig, "encoder": EncoderConfig, "train": TrainConfig, "thresholds": ThresholdConfig}


def _build(cls, values: dict, where: str):
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - names
    if unknown:
        raise ValueError(f"unknown keys in '{where}': {sorted(unknown)}; known: {sorted(names)}")
    return cls(**values)


def build_head_config(head_config_cls, values: dict):
    return _build(head_config_cls, values, "head")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _arg_type(tp):
    """The argparse type of a dataclass field annotation (Optional[X] -> X)."""
    if isinstance(tp, str):
        tp = eval(tp, {"Optional": Optional, "typing": typing, "list": list, "tuple": tuple})  # noqa: S307
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _arg_type(args[0])
    return tp


def _add_dataclass_args(parser, cls, dest_prefix: str, taken: set):
    for f in dataclasses.fields(cls):
        if f.name in taken:
            raise RuntimeError(f"flag --{f.name} is defined twice")  # programming error
        taken.add(f.name)
        tp = _arg_type(f.type)
        kw: dict[str, Any] = dict(dest=f"{dest_prefix}.{f.name}", default=argparse.SUPPRESS)
        if tp is not bool:
            kw["metavar"] = f.name.upper()
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) in (list, tuple):
            kw["nargs"] = "+"
            kw["type"] = typing.get_args(tp)[0]
        else:
            kw["type"] = tp
        parser.add_argument(_flag(f.name), **kw)


def make_parser(description: str, head_config_cls=None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", help="a JSON run config (for example a run folder's config.json)")
    parser.add_argument("--output-dir", dest="top.output_dir", default=argparse.SUPPRESS)
    taken = {"output_dir", "config", "package"}  # (a head option may be called `head`: its dest is head.head)
    for section, section_cls in SECTIONS.items():
        _add_dataclass_args(parser.add_argument_group(section), section_cls, section, taken)
    if head_config_cls is not None:
        _add_dataclass_args(parser.add_argument_group("head"), head_config_cls, "head", taken)
    return parser


def parse_config(argv, package: str, head_config_cls=None, description: str = "") -> RunConfig:
    """Defaults, then `--config` JSON, then explicit flags."""
    args = make_parser(description, head_config_cls).parse_args(argv)
    flags = vars(args)
    base: dict = {}
    if flags.get("config"):
        base = json.loads(RunConfig.load(flags["config"]).to_json())
    base["package"] = package
    for key, value in flags.items():
        if key == "config":
            continue
        section, name = key.split(".", 1)
        if section == "top":
            base[name] = value
        else:
            base.setdefault(section, {})[name] = value
    cfg = RunConfig.from_dict(base)
    if head_config_cls is not None:
        cfg.head = dataclasses.asdict(build_head_config(head_config_cls, cfg.head))
    return cfg
