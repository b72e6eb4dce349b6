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
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Optional

from .errors import UserError

# The fixed choices of options, here so that parsing and `--help` need no TensorFlow; the modules
# that implement them import these.
FORMATS = ("hellonlp", "onehot", "jsonl", "tsv")
LOSSES = ("bce", "focal", "asl", "class_balanced", "pos_weight", "logit_adjusted")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker")
TOKENIZERS = ("auto", "core", "tf_text")
BASELINES = ("auto", "tfidf", "none")
IG_BASELINES = ("pad", "mask")  # integrated gradients: what replaces the text's tokens (explain.py)
IG_STEPS = 32  # integrated gradients: default interpolation steps
THRESHOLD_STRATEGIES = ("auto", "fixed", "global", "per_label")
OBJECTIVES = ("micro", "macro", "samples")
CALIBRATIONS = ("none", "temperature", "platt")
POOLINGS = ("auto", "cls", "mean", "max", "attention", "label")


def option(default=None, help: str = "", choices=None, factory=None, minimum=None, maximum=None,
           below=None):  # noqa: A002 - argparse's word
    """A configuration field declared once: default, help text, choices and range (`minimum` and
    `maximum` inclusive, `below` exclusive) feed the dataclass, the command line (`--help`,
    validation before any work), the Python API and config.json checks."""
    metadata = {"help": help, "choices": tuple(choices) if choices else None, "minimum": minimum,
                "maximum": maximum, "below": below}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


class _Freezable:
    """A config that `RunConfig.frozen()` has resolved: assigning to it is an error, so nothing
    changes the run's options after config.json is written."""

    def __setattr__(self, name, value):
        if self.__dict__.get("_frozen"):
            raise dataclasses.FrozenInstanceError(
                f"cannot set {type(self).__name__}.{name}: the run's config is resolved and frozen (config.json); "
                "copy it to change it: RunConfig.from_dict(json.loads(cfg.to_json()))")
        super().__setattr__(name, value)


@dataclass
class DataConfig(_Freezable):
    """Where the data is and how it becomes batches."""

    train_file: Optional[str] = option(None, "training data (hellonlp CSV, one-hot CSV, jsonl or tsv); "
                                             "none: the bundled demo data")
    dev_file: Optional[str] = option(None, "dev data for early stopping and thresholds; none: hold out "
                                           "--dev-fraction of the training rows")
    test_file: Optional[str] = option(None, "test data, scored once after training (metrics.json)")
    label_file: Optional[str] = option(None, "one label per line, in the output order; none: the training "
                                             "labels, sorted")
    data_format: str = option("auto", "file format; auto detects it from the name and header",
                              ("auto", *FORMATS))
    text_column: Optional[str] = option(None, "the text column or key (default: content for CSV, text for "
                                              "jsonl and tsv)")
    label_column: Optional[str] = option(None, "the label column or key (default: label for CSV, labels for "
                                               "jsonl and tsv)")
    label_separator: Optional[str] = option(None, 'the character between labels in a cell (default: "/" '
                                                  'for hellonlp CSV, "," for tsv; in jsonl it splits a "labels" '
                                                  'string, which is otherwise refused)')
    label_hierarchy: Optional[str] = option(None, "the separator of parent and child in label names, e.g. - "
                                                  "(a-b has the parent a): the parents train as extra targets and "
                                                  "get per-level metrics; none: flat labels (docs/training.md)")
    encoding: str = option("utf-8", "the files' text encoding, e.g. gbk for files from older Windows tools")
    dev_fraction: float = option(0.1, "share of the training rows held out as dev when there is no --dev-file",
                                 minimum=0.0, below=1.0)
    max_seq_length: Optional[int] = option(None, "tokens per text, [CLS] and [SEP] included; longer texts are cut; "
                                                 "none: the shortest power of two from 32 to 512 (or the encoder's "
                                                 "limit) that holds 99% of the training texts", minimum=3)
    batch_size: int = option(16, "texts per training step (over all replicas)", minimum=1)
    pad_to_multiple_of: int = option(16, "batches are padded to their longest text, rounded up to this "
                                         "(few shapes to compile)", minimum=1)


@dataclass
class EncoderConfig(_Freezable):
    """The encoder: a pretrained one (`encoder`) or a small ALBERT trained from scratch."""

    encoder: Optional[str] = option(None, "a pretrained encoder: Google ALBERT folder, albert_config.json, "
                                          "keras-hub preset or Hugging Face folder (docs/data-and-encoders.md); "
                                          "none: a small ALBERT from scratch")
    vocab_file: Optional[str] = option(None, "vocab.txt (WordPiece) or *.model (SentencePiece) for --encoder; "
                                             "none: the encoder's own, or one built from the training texts")
    lowercase: bool = option(True, "lower-case text before WordPiece tokenization")
    vocab_size: int = option(8000, "size of the WordPiece vocabulary built from the training texts (from scratch)",
                             minimum=10)
    embedding_dim: int = option(128, "from scratch: token embedding size", minimum=1)
    hidden_dim: int = option(128, "from scratch: hidden size", minimum=1)
    num_layers: int = option(2, "from scratch: transformer layers", minimum=1)
    num_heads: int = option(2, "from scratch: attention heads", minimum=1)
    intermediate_dim: int = option(512, "from scratch: feed-forward size", minimum=1)
    encoder_dropout: float = option(0.1, "from scratch: dropout inside the encoder", minimum=0.0, below=1.0)
    pretrain_epochs: int = option(0, "masked-LM epochs on the training texts before the classifier trains", minimum=0)


@dataclass
class TrainConfig(_Freezable):
    """The shared training driver: AdamW, warm-up then linear decay, early stopping on dev."""

    epochs: Optional[int] = option(None, "training epochs (early stopping may end sooner); none: 10 for a "
                                         "pretrained encoder, 40 from scratch", minimum=1)
    learning_rate: Optional[float] = option(None, "the encoder's peak learning rate; none: 5e-5 for a pretrained "
                                                  "encoder, 1e-3 from scratch", minimum=1e-12)
    head_learning_rate: Optional[float] = option(None, "the head's peak learning rate; none: 1e-3 over a "
                                                       "pretrained encoder (LM-MTC: --learning-rate), "
                                                       "--learning-rate from scratch",
                                                 minimum=1e-12)
    layer_decay: float = option(1.0, "layer-wise learning-rate decay: each encoder layer learns at this times "
                                     "the rate of the layer above it, the embeddings lowest; 1: off",
                                minimum=0.01, maximum=1.0)
    warmup_ratio: float = option(0.1, "share of the steps spent warming the learning rate up", minimum=0.0, maximum=1.0)
    head_warmup_ratio: Optional[float] = option(None, "the head's warm-up share; none: --warmup-ratio",
                                                minimum=0.0, maximum=1.0)
    weight_decay: float = option(0.01, "AdamW's decoupled weight decay", minimum=0.0)
    clipnorm: float = option(1.0, "clip the global gradient norm to this", minimum=1e-12)
    adam_epsilon: float = option(1e-6, "Adam's epsilon", minimum=1e-12)
    patience: Optional[int] = option(None, "stop after this many epochs without a dev F1 gain; 0: never stop "
                                           "early; none: 3 for a pretrained encoder, 10 from scratch", minimum=0)
    seed: int = option(42, "seed of initialisation, dropout, shuffling and the dev split")
    token_dropout: float = option(0.0, "share of training text tokens masked afresh each epoch", minimum=0.0, below=1.0)
    adversarial_epsilon: float = option(0.0, "FGM: also train on token embeddings moved this far uphill; 0: off",
                                        minimum=0.0)
    loss: str = option("bce", "the multi-label loss", LOSSES)
    focal_gamma: float = option(2.0, "focal loss: gamma", minimum=0.0)
    focal_alpha: Optional[float] = option(None, "focal loss: alpha balancing, e.g. 0.25; none: off")
    asl_gamma_pos: float = option(0.0, "asymmetric loss: gamma of positives", minimum=0.0)
    asl_gamma_neg: float = option(4.0, "asymmetric loss: gamma of negatives", minimum=0.0)
    asl_clip: float = option(0.05, "asymmetric loss: probability margin of negatives", minimum=0.0, below=1.0)
    cb_beta: float = option(0.9999, "class-balanced loss: beta of the effective number", minimum=0.0, below=1.0)
    pos_weight_max: float = option(50.0, "pos_weight loss: cap of the negative/positive ratios", minimum=1.0)
    precision: str = option("auto", "compute dtype; auto: mixed_bfloat16 on CPUs with AMX, else float32",
                            PRECISIONS)
    jit_compile: Optional[bool] = option(None, "XLA for the train and predict steps; none: on for float32, "
                                               "off for mixed_bfloat16")
    strategy: str = option("auto", "tf.distribute strategy; multi_worker reads TF_CONFIG", STRATEGIES)
    resume: bool = option(False, "continue the run in --output-dir from its last checkpoint")
    export: bool = option(True, "export a SavedModel to <output-dir>/export/<version> after training")
    report: bool = option(True, "write report.html (figures, per-label tables, largest errors, likely label "
                                "errors) to the run folder after training")
    export_tokenizer: str = option("auto", "the exported graph's tokenizer; auto: core TensorFlow ops when they "
                                           "give the same token ids", TOKENIZERS)
    export_explain: bool = option(False, "add an `explain` signature to the export: integrated-gradients "
                                         "attributions of each predicted label, core ops only (docs/explain.md)")
    baseline: str = option("auto", "fit TF-IDF + logistic regression beside the model and compare; auto: when "
                                   "training rows x labels is at most 2 million", BASELINES)


@dataclass
class ThresholdConfig(_Freezable):
    """How scores become decisions; tuned on dev, saved in the run folder and the export."""

    threshold: float = option(0.5, "the global threshold, and the fall-back per label", minimum=0.0, maximum=1.0)
    threshold_strategy: str = option("auto", "how thresholds are tuned on dev; auto: per_label only when it "
                                             "wins on held-out halves of dev", THRESHOLD_STRATEGIES)
    threshold_objective: str = option("micro", "the F1 that tuning, the best epoch and early stopping maximise",
                                      OBJECTIVES)
    min_dev_positives: int = option(5, "per-label tuning only for labels with this many dev positives", minimum=0)
    threshold_prior_positives: float = option(10.0, "per-label thresholds move n/(n+this) of the way from the "
                                                    "global one (n: the label's dev positives); 0: no shrinkage",
                                              minimum=0.0)
    at_least_one: bool = option(False, "predict the top label when no score passes its threshold")
    parent_consistency: bool = option(True, "with --label-hierarchy: a predicted label brings its parents into "
                                            "the predicted set")
    calibration: str = option("temperature", "per-label map of scores to probabilities, fitted on dev before the "
                                             "thresholds (kept only if it does not lower dev's tuned F1)",
                              CALIBRATIONS)


@dataclass
class RunConfig(_Freezable):
    package: str = "classifier_multi_label"  # derived from the head (classifier_multi_label.registry)
    head_name: Optional[str] = None  # the registered head (sigmoid, textcnn, ...); set by the run
    output_dir: Optional[str] = None  # None: runs/<package>/<timestamp>
    data: DataConfig = field(default_factory=DataConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    thresholds: ThresholdConfig = field(default_factory=ThresholdConfig)
    head: dict = field(default_factory=dict)  # the head's own dataclass, as a dict

    # The options the user set (flags, Python keywords), as "output_dir", "train.epochs" or
    # "head.num_filters": `--resume` compares these with the saved run. Not a field: not saved.
    given = frozenset()

    def get(self, key: str):
        section, _, name = key.rpartition(".")
        if not section:
            return getattr(self, name)
        holder = getattr(self, section)
        return holder.get(name) if isinstance(holder, dict) else getattr(holder, name)

    def set(self, key: str, value):
        section, _, name = key.rpartition(".")
        holder = getattr(self, section) if section else self
        if isinstance(holder, dict):
            holder[name] = value
        else:
            setattr(holder, name, value)

    def to_json(self) -> str:
        plain = dataclasses.replace(self, head=dict(self.head))  # a frozen config's head is a read-only mapping
        return json.dumps(dataclasses.asdict(plain), indent=2, ensure_ascii=False)

    def frozen(self) -> "RunConfig":
        """A copy that refuses assignment (head options included: a read-only mapping)."""
        copy = RunConfig.from_dict(json.loads(self.to_json()))
        object.__setattr__(copy, "given", self.given)
        for section in SECTIONS:
            object.__setattr__(getattr(copy, section), "_frozen", True)
        object.__setattr__(copy, "head", types.MappingProxyType(dict(copy.head)))
        object.__setattr__(copy, "_frozen", True)
        return copy

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise UserError(f"unknown config keys {sorted(unknown)}")
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
                raise UserError(f"{path}: not a valid run config: {e}") from None


SECTIONS = {"data": DataConfig, "encoder": EncoderConfig, "train": TrainConfig, "thresholds": ThresholdConfig}


class UnknownOptionError(UserError):
    """An option name that no configuration section (or head) declares."""


def unknown_option(name: str, known, what: str, where: str = "") -> UnknownOptionError:
    """The error for a misspelt option: the closest valid name, then all of them."""
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    where = f" in {where!r}" if where else ""
    return UnknownOptionError(f"unknown {what} {name!r}{where}{hint}; the valid ones are: {', '.join(sorted(known))}")


def _check_type(name: str, value, annotation, where: str, field_meta=None):
    """`value` as the field's type allows (an int where a float is declared), or a UserError."""
    tp = _arg_type(annotation)
    optional = _is_optional(annotation)
    if value is None:
        if optional:
            return None
        raise UserError(f"option {name} ({where}): give a value, not None")
    if typing.get_origin(tp) in (list, tuple):
        inner = typing.get_args(tp)[0]
        if not isinstance(value, (list, tuple)):
            raise UserError(f"option {name} ({where}): expected a list of {inner.__name__}, got {value!r}")
        return [_check_type(name, v, inner, where, field_meta) for v in value]
    ok = (isinstance(value, bool) if tp is bool else
          isinstance(value, (int, float)) and not isinstance(value, bool) if tp is float else
          isinstance(value, int) and not isinstance(value, bool) if tp is int else isinstance(value, tp))
    if not ok:
        raise UserError(f"option {name} ({where}): expected {'an' if tp is int else 'a'} {tp.__name__}, "
                        f"got {value!r} ({type(value).__name__})")
    value = float(value) if tp is float else value
    choices = (field_meta or {}).get("choices")
    if choices and value not in choices:
        raise UserError(f"--{name.replace('_', '-')} {value!r}: use {', '.join(choices)}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and field_meta:
        lo, hi, below = field_meta.get("minimum"), field_meta.get("maximum"), field_meta.get("below")
        bad = ((lo is not None and value < lo) or (hi is not None and value > hi)
               or (below is not None and value >= below))
        if bad:
            bounds = [("positive" if lo > 0 and lo < 1e-6 else f"at least {lo:g}") if lo is not None else None,
                      f"at most {hi:g}" if hi is not None else None, f"below {below:g}" if below is not None else None]
            raise UserError(f"--{name.replace('_', '-')} {value:g}: must be {' and '.join(filter(None, bounds))}")
    return value


def _is_optional(annotation) -> bool:
    if isinstance(annotation, str):
        return annotation.startswith("Optional[")
    return type(None) in typing.get_args(annotation)


def _build(cls, values: dict, where: str):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise unknown_option(unknown[0], fields, *(("head option",) if where == "head" else ("option", where)))
    return cls(**{k: _check_type(k, v, fields[k].type, where, fields[k].metadata) for k, v in values.items()})


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


def add_options(parser, cls, dest_prefix: str, only=None):
    """`cls`'s fields (or those named in `only`) as flags of `parser`, each with its help, default and
    choices; parsed values land in `<dest_prefix>.<field>`."""
    _add_dataclass_args(parser, cls, dest_prefix, set(), only)


def _add_dataclass_args(parser, cls, dest_prefix: str, taken: set, only=None):
    for f in dataclasses.fields(cls):
        if only is not None and f.name not in only:
            continue
        if f.name in taken:
            raise RuntimeError(f"flag --{f.name} is defined twice")  # programming error
        taken.add(f.name)
        tp = _arg_type(f.type)
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        shown = "none" if default is None else " ".join(map(str, default)) if isinstance(default, list) else default
        helptext = f.metadata.get("help") or ""
        kw: dict[str, Any] = dict(dest=f"{dest_prefix}.{f.name}", default=argparse.SUPPRESS,
                                  help=f"{helptext} (default: {shown})".lstrip().replace("%", "%%"))
        choices = f.metadata.get("choices")
        if choices:
            kw["choices"] = choices
        elif tp is not bool:
            kw["metavar"] = f.name.upper()
        if tp is bool:
            kw["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) in (list, tuple):
            kw["nargs"] = "+"
            kw["type"] = typing.get_args(tp)[0]
        else:
            kw["type"] = tp
        parser.add_argument(_flag(f.name), **kw)


class Parser(argparse.ArgumentParser):
    """argparse with no abbreviated flags (a misspelt flag is an error, never taken for another) and a
    short error: the message, the closest flag for an unknown one, a pointer to --help."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message):
        hints = []
        if message.startswith("unrecognized arguments:"):
            known = [s for action in self._actions for s in action.option_strings]
            for arg in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(arg.split("=")[0], known, n=1) if arg.startswith("--") else []
                if close:
                    hints.append(f"{arg}: did you mean {close[0]}?")
        hint = "".join(f"\n  {h}" for h in hints)
        self.exit(2, f"{self.prog}: error: {message}{hint}\n  (--help lists every flag with its default and choices)\n")


def make_parser(description: str, head_config_cls=None, prog: str | None = None) -> argparse.ArgumentParser:
    parser = Parser(description=description, prog=prog)
    parser.add_argument("--config", metavar="FILE", help="a JSON run config, e.g. a run folder's config.json; "
                                                         "flags override it")
    parser.add_argument("--output-dir", dest="top.output_dir", metavar="DIR", default=argparse.SUPPRESS,
                        help="the run folder (default: runs/<package>/<timestamp>)")
    taken = {"output_dir", "config", "package", "head_name"}
    for section, section_cls in SECTIONS.items():
        _add_dataclass_args(parser.add_argument_group(f"{section} options", section_cls.__doc__), section_cls,
                            section, taken)
    if head_config_cls is not None:
        _add_dataclass_args(parser.add_argument_group("head options"), head_config_cls, "head", taken)
    return parser


def parse_config(argv, package: str, head_config_cls=None, description: str = "", prog: str | None = None) -> RunConfig:
    """Defaults, then `--config` JSON, then explicit flags."""
    args = make_parser(description, head_config_cls, prog).parse_args(argv)
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
    cfg.given = frozenset(key.removeprefix("top.") for key in flags if key != "config")
    return cfg


# What `--resume` may change in a run that has started: how thresholds are tuned and what is
# exported happen after training; the strategy and XLA change how, not what, is computed. Every
# other option differing from the saved run is refused, naming the flag.
RESUME_MAY_CHANGE = ("thresholds.", "train.export", "train.export_tokenizer", "train.export_explain", "train.report",
                     "train.baseline", "train.strategy", "train.resume", "train.jit_compile", "output_dir")


def resume_changes(given: RunConfig, saved: RunConfig) -> dict:
    """{key: (given value, saved value)} for the options the user set that differ from the saved run."""
    return {key: (given.get(key), saved.get(key)) for key in sorted(given.given)
            if given.get(key) != saved.get(key)}


def may_change_on_resume(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUME_MAY_CHANGE)


def flag_of(key: str) -> str:
    return "--" + key.rpartition(".")[2].replace("_", "-")
