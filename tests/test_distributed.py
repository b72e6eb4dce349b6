"""--strategy: two workers on loopback ports (MultiWorkerMirroredStrategy through TF_CONFIG) and
MirroredStrategy over two logical CPUs, each against one process with the same global batch."""

import json
import os
import re
import socket
import subprocess
import sys

import h5py
import numpy as np
import pytest
from conftest import ROOT, TINY, run_command

# 199 training rows in batches of 9: most batches split 5/4 over two replicas, and the last batch
# holds one example, so one replica gets none. Without dropout the runs must agree to rounding.
# With FGM too: every replica must move the embedding table along the whole batch's gradient.
# Attention pooling, not auto's max from scratch: under max pooling a rounding-level difference can
# change which token wins a maximum, and the gradient then reaches another embedding row.
ARGS = [*TINY, "--batch-size", "9", "--encoder-dropout", "0", "--dropout", "0", "--patience", "0",
        "--adversarial-epsilon", "0.5", "--baseline", "none", "--pooling", "attention"]

TWO_CPUS = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from classifier_multi_label import PooledHead, cli
cli.train(PooledHead, "classifier_multi_label", sys.argv[1:])
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from classifier_multi_label.run import demo_file

    d = tmp_path_factory.mktemp("dist")
    with open(demo_file("train"), encoding="utf-8") as fh:
        lines = fh.read().splitlines()
    (d / "train.csv").write_text("\n".join(lines[:200]) + "\n", encoding="utf-8")  # header + 199 rows
    return {"dir": d, "args": ["--train-file", d / "train.csv", "--dev-file", demo_file("dev"),
                               "--test-file", demo_file("test"), *ARGS]}


@pytest.fixture(scope="module")
def single(data):
    run_dir = data["dir"] / "single"
    proc = run_command("classifier_multi_label/train.py", *data["args"], "--strategy", "one_device",
                       "--output-dir", run_dir, "--no-export")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir


def weights(path):
    out = {}
    with h5py.File(path) as f:
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return out


def assert_same_run(a, b, atol):
    """The best weights and test metrics of two run folders agree to `atol`."""
    wa, wb = weights(a / "model.weights.h5"), weights(b / "model.weights.h5")
    assert wa.keys() == wb.keys() and len(wa) > 10
    for name in wa:
        np.testing.assert_allclose(wa[name], wb[name], atol=atol, err_msg=name)
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    for key in ("micro_f1", "macro_f1", "samples_f1", "hamming_loss"):
        assert ma[key] == pytest.approx(mb[key], abs=1e-3), key


def digest(log: str) -> str:
    found = re.findall(r"final weights sha256 ([0-9a-f]{64})", log)
    assert len(found) == 1, log[-2000:]
    return found[0]


def free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_workers_on_loopback_equal_one_process(data, single, tmp_path):
    cluster = {"worker": [f"localhost:{p}" for p in free_ports(2)]}
    run_dir, scratch = tmp_path / "run", tmp_path / "scratch"
    scratch.mkdir()
    procs = []
    for index in range(2):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        env["TMPDIR"] = str(scratch)  # where the non-chief worker's checkpoints go
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "classifier_multi_label/train.py"), *map(str, data["args"]),
             "--output-dir", str(run_dir)], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    try:
        outs = [p.communicate(timeout=600) for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    assert "2 replica(s), worker 0 of 2 workers" in outs[0][1] and "worker 1 of 2 workers" in outs[1][1]
    assert all("weights synchronised from the chief" in err for _, err in outs)
    assert digest(outs[0][1]) == digest(outs[1][1])  # the workers end bit-identical
    assert "the chief writes the run folder" in outs[1][0]
    assert (run_dir / "metrics.json").exists() and (run_dir / "export" / "1" / "saved_model.pb").exists()
    assert os.listdir(scratch) == []  # the other worker's temporary checkpoints are gone
    history = json.loads((run_dir / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert_same_run(single, run_dir, atol=1e-5)


# About a minute. The default suite keeps the two-worker test, which runs the same custom step and
# all-reduce through MultiWorkerMirroredStrategy (the strategy `model.fit` fails under).
@pytest.mark.slow
def test_mirrored_over_two_logical_cpus_equals_one_device(data, single, tmp_path):
    script = tmp_path / "two_cpus.py"
    script.write_text(TWO_CPUS)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, str(script), *map(str, data["args"]), "--strategy", "mirrored",
                           "--output-dir", str(tmp_path / "run")], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "MirroredStrategy, 2 replica(s)" in proc.stderr
    assert_same_run(single, tmp_path / "run", atol=1e-5)


def test_tf_config_and_strategy_errors(monkeypatch, tmp_path):
    from classifier_multi_label.distribute import make_strategy, read_tf_config

    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ValueError, match="TF_CONFIG is not valid JSON"):
        read_tf_config()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker",
                                                                                         "index": 3}}))
    with pytest.raises(ValueError, match="task worker 3 is not in its cluster"):
        read_tf_config()
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}))
    with pytest.raises(ValueError, match="type must be chief or worker"):
        read_tf_config()
    # One task is no cluster: auto trains on one device.
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1"]}, "task": {"type": "worker",
                                                                                         "index": 0}}))
    cluster = make_strategy("auto")
    assert cluster.is_chief and not cluster.distributed
    with pytest.raises(ValueError, match="--strategy must be one of"):
        make_strategy("parameter_server")
    monkeypatch.delenv("TF_CONFIG")
    proc = run_command("classifier_multi_label/train.py", *TINY, "--strategy", "multi_worker",
                       "--output-dir", tmp_path / "r")
    assert proc.returncode == 2 and "TF_CONFIG is not set" in proc.stderr and "Traceback" not in proc.stderr


def test_chief_is_the_chief_task_or_worker_zero():
    import tensorflow as tf

    from classifier_multi_label.distribute import Cluster

    default = tf.distribute.get_strategy()
    assert Cluster(default, "worker", 0, 2).is_chief
    assert not Cluster(default, "worker", 1, 2).is_chief
    assert Cluster(default, "chief", 0, 3, has_chief=True).is_chief
    assert not Cluster(default, "worker", 0, 3, has_chief=True).is_chief
