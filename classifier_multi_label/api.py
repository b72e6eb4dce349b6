"""The Python API: train a head by its name on files, DataFrames or lists in memory, and load a run
from its folder alone. What `train.py` does from the command line, keyword for flag.

Example:
    >>> import classifier_multi_label as cml
    >>> cml.heads()
    ['sigmoid', 'textcnn', 'denses', 'seq2seq', 'label_mask', 'prototype_contrastive']
    >>> texts = ["制热很快", "声音太大了", "外观好看", "制热快，声音小"] * 4
    >>> labels = [["制热"], ["噪音"], ["外观"], ["制热", "噪音"]] * 4
    >>> run = cml.train("textcnn", train=(texts, labels), dev=(texts, labels), epochs=1,
    ...                 output_dir=tmp_dir + "/run", **tiny_model)  # doctest: +ELLIPSIS
    <BLANKLINE>
    ...
    >>> sorted(run.predict(["制热很快"])[0])
    ['labels', 'scores']
    >>> round(run.evaluate((texts, labels))["micro_f1"], 2) >= 0.0
    True
    >>> cml.load_run(tmp_dir + "/run").config.head_name
    'textcnn'
"""

from __future__ import annotations

import dataclasses
import json
import os

from . import registry
from .config import SECTIONS, RunConfig, unknown_option
from .data import examples_from, read_examples


def heads() -> list:
    """The names `train` accepts: the project's heads, then any a third-party package registers."""
    return registry.names()


def _head_class(head):
    if isinstance(head, str):
        return registry.head_class(head)
    registry.name_of(head)  # raises for a class that is not registered
    return head


def train(head="sigmoid", train=None, dev=None, test=None, *, config=None, **options):
    """Trains a head by name (see `heads()`) and returns the `Run`: thresholds tuned on dev, metrics on
    test, a SavedModel exported, everything in the run folder (`output_dir`, default
    runs/<package>/<timestamp>).

    - `train`, `dev`, `test`: a file path, `(texts, label_lists)`, a pandas DataFrame (text and label
      columns) or `Examples`. No `train`: the bundled demo data; no `dev`: a share of train
      (`dev_fraction`) held out. Data given in memory is kept in the run folder as jsonl.
    - `config`: a starting `RunConfig`, its dict, or a config.json path (a run folder's rebuilds it).
    - `options`: any config field by its flag's name with underscores (`epochs=10`,
      `max_seq_length=64`, `encoder="path/to/encoder"`, `output_dir=...`) and the head's own options
      (`num_filters=64`); a misspelt name is an error naming the closest valid one.
    """
    from .run import train as train_run

    head_cls = _head_class(head)
    if config is None:
        cfg = RunConfig()
    elif isinstance(config, RunConfig):
        cfg = RunConfig.from_dict(json.loads(config.to_json()))
    elif isinstance(config, dict):
        cfg = RunConfig.from_dict(config)
    else:
        cfg = RunConfig.load(config)
    sections = {name: getattr(cfg, name) for name in SECTIONS}
    owner = {f.name: name for name, section in sections.items() for f in dataclasses.fields(section)}
    head_fields = {f.name for f in dataclasses.fields(head_cls.options)}
    head = dict(cfg.head) if cfg.head_name == registry.name_of(head_cls) else {}
    given = set()
    for key, value in options.items():
        if key == "output_dir":
            cfg.output_dir = value
            given.add(key)
        elif key in head_fields:  # a head option shadows nothing: config.py refuses a clash for the CLI too
            head[key] = value
            given.add(f"head.{key}")
        elif key in owner:
            setattr(sections[owner[key]], key, value)
            given.add(f"{owner[key]}.{key}")
        else:
            raise unknown_option(key, {*owner, *head_fields, "output_dir"}, "option")
    cfg.head = dataclasses.asdict(head_cls.make_options(**head))
    cfg.given = frozenset(given)
    d = cfg.data
    data = {}
    for split, value in (("train", train), ("dev", dev), ("test", test)):
        if value is None:
            continue
        if isinstance(value, (str, os.PathLike)):
            setattr(d, f"{split}_file", os.fspath(value))
        else:
            data[split] = examples_from(value, split, d.text_column, d.label_column, d.label_separator)
    return train_run(cfg, head_cls, data)


__all__ = ["heads", "read_examples", "train"]
