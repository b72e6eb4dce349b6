"""Atomic writes for the run folder (a crash never leaves a half-written JSON file behind), and
the checks that an output path can be written, made before any work."""

from __future__ import annotations

import json
import os

from .errors import UserError


def check_output_file(path, flag: str, example: str = "out.jsonl"):
    """A UserError naming `flag` and the fix unless `path` can be written as a file (its missing
    parent folders are made when it is written)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise UserError(f"{flag} {path}: is a folder; give a file path, e.g. {os.path.join(path, example)}")
    _check_folder(os.path.dirname(os.path.abspath(path)), flag, path)


def check_output_dir(path, flag: str):
    """A UserError naming `flag` and the fix unless `path` is, or can be made as, a writable folder."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise UserError(f"{flag} {path}: is a file; give a folder (new, or empty)")
    _check_folder(os.path.abspath(path), flag, path)


def _check_folder(folder: str, flag: str, path: str):
    existing = folder
    while not os.path.exists(existing):  # the nearest folder that exists: the rest will be made
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise UserError(f"{flag} {path}: {existing} is a file, so nothing can be made inside it; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise UserError(f"{flag} {path}: {existing} is not writable (read-only, or not yours); choose a path you can "
                        "write to")


def open_output(path):
    """`path` opened for writing UTF-8 text, its missing parent folders made."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return open(path, "w", encoding="utf-8")


def write_text(path: str, text: str):
    """Writes `text` (UTF-8) to `path` via a temporary file renamed into place."""
    if os.path.dirname(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_json(path: str, obj, indent: int = 2):
    """Writes `obj` as UTF-8 JSON to `path` atomically."""
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False))
