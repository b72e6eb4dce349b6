"""Matrix-product speed of the encoder's shapes: TensorFlow's kernels against the machine's BLAS and
ONNX Runtime's, each in its own process. Where an exported model's time goes on a CPU without
AMX, and why a TF Serving model cannot match ONNX Runtime there with the same graph.

    python bench/matmul.py [--seq-len 60] [--json]

Shapes: the four products of an albert_small_zh layer (hidden 384, FFN 1536) for one text (`--seq-len`
rows) and for a batch of 64. Systems: TensorFlow's MatMul in a `tf.function` (what a SavedModel
runs) with TF_ENABLE_ONEDNN_OPTS=0 and =1; NumPy's BLAS; ONNX Runtime's MatMul (a one-node ONNX
graph, if onnxruntime and onnx are installed: `pip install -e '.[bench]'`). Each figure is the
median GFLOP/s of repeated calls, one call's dispatch included. Not a test; run it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HIDDEN, FFN = 384, 1536
PRODUCTS = {"attention q/k/v": (HIDDEN, 3 * HIDDEN), "attention output": (HIDDEN, HIDDEN),
            "FFN in": (HIDDEN, FFN), "FFN out": (FFN, HIDDEN)}  # (k, n) of [rows, k] x [k, n]
SYSTEMS = ("tensorflow, oneDNN off", "tensorflow, oneDNN on", "numpy BLAS", "onnxruntime")


def shapes(seq_len: int) -> list:
    return [(name, rows, k, n) for rows in (seq_len, 64 * seq_len) for name, (k, n) in PRODUCTS.items()]


def rate(fn, flops: float, seconds: float = 1.0) -> float:
    """Median GFLOP/s over calls of `fn`, about `seconds` of them after a warm-up."""
    for _ in range(5):
        fn()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 10:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return round(flops / float(np.median(times)) / 1e9, 1)


def product(system: str, a: np.ndarray, b: np.ndarray):
    """A callable computing a @ b with `system`."""
    if system.startswith("tensorflow"):
        import tensorflow as tf

        ta, tb = tf.constant(a), tf.constant(b)
        fn = tf.function(lambda: tf.matmul(ta, tb))
        return lambda: fn().numpy()
    if system == "numpy BLAS":
        return lambda: a @ b
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, list(a.shape))],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [a.shape[0], b.shape[1]])],
                              [numpy_helper.from_array(b, "b")])  # the weight a constant, as in an exported model
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return lambda: session.run(None, {"a": a})[0]


def child(system: str, seq_len: int) -> dict:
    rng = np.random.default_rng(0)
    out = {}
    for name, rows, k, n in shapes(seq_len):
        a, b = rng.standard_normal((rows, k), np.float32), rng.standard_normal((k, n), np.float32)
        out[f"{name}, {rows} rows"] = rate(product(system, a, b), 2.0 * rows * k * n)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq-len", type=int, default=60)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.seq_len)))
        return
    results = {}
    for system in SYSTEMS:
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        if system.startswith("tensorflow"):
            env["TF_ENABLE_ONEDNN_OPTS"] = "1" if system.endswith("on") else "0"
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", system, "--seq-len",
                               str(args.seq_len)], capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            print(f"{system} not measured: {proc.stderr.strip()[-300:]}", file=sys.stderr)
            continue
        results[system] = json.loads(proc.stdout.strip().splitlines()[-1])
    if args.json:
        print(json.dumps({"seq_len": args.seq_len, "cpu_count": os.cpu_count(), "gflops": results}))
        return
    print(f"GFLOP/s of float32 [rows, k] x [k, n] products, {os.cpu_count()} CPUs (median of repeated calls)")
    print("| product, rows | " + " | ".join(results) + " |")
    print("|---|" + "---|" * len(results))
    for key in next(iter(results.values()), {}):
        print(f"| {key} | " + " | ".join(str(r[key]) for r in results.values()) + " |")


if __name__ == "__main__":
    main()
