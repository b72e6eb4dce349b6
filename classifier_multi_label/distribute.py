"""`--strategy`: which `tf.distribute` strategy trains the model, and which process is the chief.

- ``one_device``: TensorFlow's default strategy (one CPU or GPU).
- ``mirrored``: `MirroredStrategy` over this machine's GPUs or, without GPUs, its logical CPU devices.
- ``multi_worker``: `MultiWorkerMirroredStrategy`; the cluster and this process' place in it come from
  the standard ``TF_CONFIG`` environment variable (docs/distributed.md).
- ``auto``: multi_worker when ``TF_CONFIG`` names more than one task, mirrored on a machine with
  several GPUs, else one_device.

The chief (task ``chief``, or ``worker`` 0 in a cluster without one) writes the run folder; other
workers write their checkpoints to a temporary folder and delete it, as TensorFlow recommends.
The strategy must exist before TensorFlow runs its first op (collectives are configured at start-up),
so `make_strategy` is the first thing `run.train` calls.

Example:
    >>> cluster = make_strategy("one_device")
    >>> cluster.is_chief, cluster.num_workers, cluster.strategy.num_replicas_in_sync
    (True, 1, 1)
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field

import tensorflow as tf

from .config import STRATEGIES
from .errors import UserError

log = logging.getLogger(__name__)


TF_CONFIG_HELP = ('set TF_CONFIG to {"cluster": {"worker": ["host1:port", "host2:port"]}, '
                  '"task": {"type": "worker", "index": 0}} (docs/distributed.md)')


@dataclass
class Cluster:
    """The strategy, and this process' place among the workers."""

    strategy: tf.distribute.Strategy
    task_type: str = "worker"
    task_index: int = 0
    num_workers: int = 1
    has_chief: bool = False  # the cluster names a `chief` task (else worker 0 is the chief)
    _broadcast: object = field(default=None, init=False, repr=False, compare=False)  # chief_says' tf.function

    @property
    def is_chief(self) -> bool:
        return self.task_type == "chief" or (self.task_type == "worker" and self.task_index == 0
                                              and not self.has_chief)

    @property
    def distributed(self) -> bool:
        """More than one replica or worker: batches must be split and results agreed on."""
        return self.num_workers > 1 or self.strategy.num_replicas_in_sync > 1

    def describe(self) -> str:
        if not isinstance(self.strategy, (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)):
            return "one device (TensorFlow's default strategy)"
        name = ("MultiWorkerMirroredStrategy" if isinstance(self.strategy, tf.distribute.MultiWorkerMirroredStrategy)
                else type(self.strategy).__name__)
        where = f", {self.task_type} {self.task_index} of {self.num_workers} workers" if self.num_workers > 1 else ""
        return f"{name}, {self.strategy.num_replicas_in_sync} replica(s){where}"

    def distribute(self, dataset: tf.data.Dataset):
        """`dataset` as this process' replicas take it: every worker builds the same batches and
        keeps its replicas' slices."""
        if not self.distributed:
            return dataset
        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    def chief_says(self, flag: bool) -> bool:
        """The chief's `flag`, on every worker (only the chief evaluates on dev)."""
        if not self.distributed:
            return flag
        if self._broadcast is None:
            self._broadcast = tf.function(lambda value: self.strategy.reduce(
                tf.distribute.ReduceOp.SUM, self.strategy.run(lambda: tf.identity(value)), axis=None))
        return float(self._broadcast(tf.constant(float(flag and self.is_chief)))) > 0

    def sync_from_chief(self, model) -> None:
        """Every worker takes the chief's weights of `model` before training. Workers initialise
        from the same seed and files, but one that loaded a different encoder file or checkpoint
        would otherwise apply the same gradients to different weights and train a different model."""
        if self.num_workers <= 1:
            return
        variables = [v.value for v in model.weights if "float" in str(v.dtype)]

        @tf.function
        def chief_values():
            def replica_fn():
                ctx = tf.distribute.get_replica_context()
                first = tf.logical_and(tf.constant(self.is_chief), tf.equal(ctx.replica_id_in_sync_group, 0))
                return ctx.all_reduce(tf.distribute.ReduceOp.SUM,
                                      [tf.where(first, v, tf.zeros_like(v)) for v in variables])
            values = self.strategy.run(replica_fn)
            for var, value in zip(variables, values):
                self.strategy.extended.update(var, lambda v, x: v.assign(x), args=(value,))

        chief_values()
        log.info("weights synchronised from the chief (%d variables)", len(variables))


def read_tf_config() -> dict | None:
    """The parsed ``TF_CONFIG``, checked; None when it is unset or empty."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as e:
        raise UserError(f"TF_CONFIG is not valid JSON ({e}); {TF_CONFIG_HELP}") from None
    cluster, task = config.get("cluster"), config.get("task")
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise UserError(f"TF_CONFIG needs a 'cluster' and a 'task' object; {TF_CONFIG_HELP}")
    task_type, index = task.get("type"), task.get("index")
    if task_type not in ("chief", "worker") or not isinstance(index, int):
        raise UserError(f"TF_CONFIG task {task!r}: type must be chief or worker and index an integer; "
                         f"{TF_CONFIG_HELP}")
    if index < 0 or index >= len(cluster.get(task_type, [])):
        raise UserError(f"TF_CONFIG task {task_type} {index} is not in its cluster {cluster!r}; {TF_CONFIG_HELP}")
    return config


def _num_tasks(config: dict | None) -> int:
    if config is None:
        return 0
    return sum(len(config["cluster"].get(kind, [])) for kind in ("chief", "worker"))


def make_strategy(name: str) -> Cluster:
    """The `Cluster` for `--strategy name`. Call it before any other TensorFlow work."""
    if name not in STRATEGIES:
        raise UserError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")
    config = read_tf_config()
    if name == "auto":
        if _num_tasks(config) > 1:
            name = "multi_worker"
        elif len(tf.config.list_physical_devices("GPU")) > 1:
            name = "mirrored"
        else:
            name = "one_device"
    if name == "one_device":
        return Cluster(tf.distribute.get_strategy())
    if name == "mirrored":
        devices = [d.name for d in tf.config.list_logical_devices("GPU")] or \
                  [d.name for d in tf.config.list_logical_devices("CPU")]
        return Cluster(tf.distribute.MirroredStrategy(devices))
    if config is None:
        raise UserError(f"--strategy multi_worker: TF_CONFIG is not set; {TF_CONFIG_HELP}")
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    task = config["task"]
    return Cluster(strategy, task["type"], task["index"], _num_tasks(config), has_chief="chief" in config["cluster"])
