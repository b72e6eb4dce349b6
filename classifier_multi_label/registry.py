"""Heads by name: the registry the CLI, `train`, `load_run`, the benchmarks and the tests share.

A head is registered as a Python entry point in the group ``classifier_multi_label.heads``
(``name = module:Class``), the standard plugin mechanism: the core names no sibling package, and a
third-party head registers the same way in its own ``setup.py`` or ``pyproject.toml``::

    entry_points={"classifier_multi_label.heads": ["my_head = my_package:MyHead"]}

The entry's module is the run's package (``classifier_multi_label_textcnn`` for ``textcnn``): it is
recorded in config.json and the export, and never passed by hand. Looking names up imports no
TensorFlow; `head_class` imports the head's module. A head may also register its options dataclass
under ``classifier_multi_label.head_options`` (same name), so `--help` needs no TensorFlow.

Example:
    >>> names()[:3]
    ['sigmoid', 'textcnn', 'denses']
    >>> package_of("textcnn")
    'classifier_multi_label_textcnn'
"""

from __future__ import annotations

import difflib
from importlib import metadata

from .errors import UserError

GROUP = "classifier_multi_label.heads"
OPTIONS_GROUP = "classifier_multi_label.head_options"  # optional: the options dataclass, importable without TensorFlow
# The project's own heads first, in the README's order; third-party heads follow by name.
BUILT_IN_ORDER = ("sigmoid", "textcnn", "denses", "seq2seq", "label_mask", "prototype_contrastive")


class UnknownHeadError(UserError):
    """A head name that no installed package registers."""


def _entry_points() -> dict:
    found = {ep.name: ep for ep in metadata.entry_points(group=GROUP)}
    if not found:
        raise UnknownHeadError(f"no head is registered under the entry-point group {GROUP!r}: install the "
                               "project (pip install -e . in its folder, or make install) so its heads register")
    return found


def names() -> list:
    """The registered head names: the project's own in order, then any others sorted."""
    found = _entry_points()
    return [n for n in BUILT_IN_ORDER if n in found] + sorted(n for n in found if n not in BUILT_IN_ORDER)


def _entry(name: str):
    found = _entry_points()
    if name not in found:
        close = difflib.get_close_matches(name, list(found), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise UnknownHeadError(f"unknown head {name!r}{hint}; the heads are: {', '.join(names())}")
    return found[name]


def package_of(name: str) -> str:
    """The package a head's runs belong to: its entry point's module."""
    return _entry(name).module


def head_class(name: str):
    """The head class registered as `name` (imports its package)."""
    return _entry(name).load()


def options_class(name: str):
    """The head's options dataclass: from the options group when the head registers it there (no
    TensorFlow imported), else its class's `options`."""
    _entry(name)  # raises for an unknown name
    for ep in metadata.entry_points(group=OPTIONS_GROUP):
        if ep.name == name:
            return ep.load()
    return head_class(name).options


def name_of(head_cls) -> str:
    """The registered name of a head class (the CLI scripts pass the class itself)."""
    for ep in _entry_points().values():
        if ep.attr == head_cls.__name__ and ep.load() is head_cls:
            return ep.name
    raise UnknownHeadError(f"{head_cls.__module__}.{head_cls.__name__} is not a registered head: register it "
                           f"under the entry-point group {GROUP!r} (see classifier_multi_label.registry)")


def name_for_package(package: str) -> str:
    """The head a package trains (for run folders written before config.json recorded the head's
    name; each package registers one head)."""
    for ep in _entry_points().values():
        if ep.module == package:
            return ep.name
    raise UnknownHeadError(f"no registered head belongs to package {package!r}; the heads are: {', '.join(names())}")
