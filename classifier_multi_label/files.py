"""Atomic writes for the run folder: a crash never leaves a half-written JSON file behind."""

from __future__ import annotations

import json
import os


def write_json(path: str, obj, indent: int = 2):
    """Writes `obj` as UTF-8 JSON to `path` via a temporary file renamed into place."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=indent, ensure_ascii=False)
    os.replace(tmp, path)
