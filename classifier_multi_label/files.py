"""Atomic writes for the run folder: a crash never leaves a half-written JSON file behind."""

from __future__ import annotations

import json
import os


def write_text(path: str, text: str):
    """Writes `text` (UTF-8) to `path` via a temporary file renamed into place."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_json(path: str, obj, indent: int = 2):
    """Writes `obj` as UTF-8 JSON to `path` atomically."""
    write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False))
