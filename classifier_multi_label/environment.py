"""What a run ran on: this toolkit's version and source commit, the library versions and the machine,
written to the run folder as ``environment.json`` (and into the export's ``assets.extra/``), so any
result can be traced to the code that produced it.

    >>> env = describe()
    >>> {"libraries", "cpu", "cpu_features", "devices"} <= set(env)
    True
    >>> env["classifier_multi_label"]["version"] == __import__("classifier_multi_label").__version__
    True
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time

from . import __version__

LIBRARIES = ("tensorflow", "keras", "keras-hub", "tensorflow-text", "numpy", "scikit-learn")
SOURCE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the checkout holding the packages


# Tracked files that record results, not code: edits there leave the code a commit names intact (a
# benchmark writes its tables to bench/results/, which would otherwise mark the next run's code dirty).
NOT_CODE = ("bench/results", "docs")


def source_commit(folder: str = SOURCE) -> dict | None:
    """{"commit": full hash, "dirty": uncommitted changes to tracked files other than `NOT_CODE`} of
    the git checkout at `folder`, or None when it is not one (an installed wheel) or git is missing."""
    def git(*args):
        return subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        if git("rev-parse", "--show-toplevel") != os.path.realpath(folder):
            return None  # the package sits inside some other repository (e.g. a virtualenv in one)
        return {"commit": git("rev-parse", "HEAD"),
                "dirty": bool(git("status", "--porcelain", "--untracked-files=no", "--", ".",
                                  *(f":(exclude){p}" for p in NOT_CODE)))}
    except (OSError, subprocess.SubprocessError):
        return None


# CPU features that change the speed of this stack (bfloat16 and its AMX path, AVX-512 kernels).
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16")


def cpu_info() -> tuple:
    """(model name, set of feature flags) of this machine's CPU; Linux reads /proc/cpuinfo, elsewhere
    the flags are empty."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return model, flags


def _devices() -> list:
    import tensorflow as tf

    return [f"{d.device_type}:{d.name.rsplit(':', 1)[-1]}" for d in tf.config.list_physical_devices()]


def describe() -> dict:
    """The environment of this process (see the module docstring)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    cpu, flags = cpu_info()
    return {"classifier_multi_label": {"version": __version__, "source": source_commit()},
            "python": platform.python_version(), "libraries": versions, "platform": platform.platform(),
            "cpu": cpu, "cpu_features": [f for f in CPU_FEATURES if f in flags], "cpu_count": os.cpu_count(),
            "devices": _devices(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def code_label(env: dict | None) -> str:
    """A short name of the code in `env` for tables: the commit's first 7 characters ("+" when the
    checkout had uncommitted changes), else the version.

        >>> source = {"commit": "65dca3b0e1", "dirty": True}
        >>> code_label({"classifier_multi_label": {"version": "0.1.0", "source": source}})
        '65dca3b+'
        >>> code_label({"classifier_multi_label": {"version": "0.1.0", "source": None}})
        'v0.1.0'
        >>> code_label(None)
        ''
    """
    if not env:
        return ""
    own = env["classifier_multi_label"]
    source = own.get("source")
    if source:
        return source["commit"][:7] + ("+" if source["dirty"] else "")
    return f"v{own['version']}"
