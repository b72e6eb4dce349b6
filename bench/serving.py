"""Serving benchmark: the exported SavedModel (raw text in, label names out) against what a PyTorch
user runs on the same architecture: Hugging Face transformers in float32 and with bfloat16
autocast, and ONNX Runtime (float32, and int8 dynamic quantization) exported from the same
transformers model. Each system is measured in its own process, in the same run.

    python bench/serving.py [--seq-len 60] [--seconds 20] [--calls 300] [--systems ...] [--json] [--profile]

Architecture: albert_small_zh (vocabulary 21128, embedding 128, hidden 384, 6 layers, 12 heads, FFN
1536) with the baseline's pooled sigmoid head over 10 labels, random weights. Texts: the demo
reviews joined until each fills the sequence, so every request is padded to `--seq-len` tokens.
Every system starts from raw strings: tokenization is timed (transformers' fast tokenizer for the
PyTorch and ONNX rows). Figures: single-text latency p50/p99 (one request at a time) and batch-64
throughput. Ours: the SavedModel loaded from disk as TF Serving runs it (no XLA: the export carries
none), with the core-op tokenizer and with tensorflow-text's, in float32 and in the precision
`train.py --precision auto` picks on this machine. Ratios: ours over each peer (throughput; and
the peer's p50 over ours, so above 1 means faster). Needs `pip install -e '.[bench]'`. Not a test;
run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

# Nothing here imports TensorFlow: a peer's process must not load it (torch, imported after
# TensorFlow, segfaulted on this machine). Ours imports it inside `ours`.
import numpy as np  # noqa: E402

from classifier_multi_label.data import read_examples  # noqa: E402

# classifier_multi_label.tokenization.SPECIAL_TOKENS, without importing TensorFlow.
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
DEMO_TRAIN = os.path.join(ROOT, "classifier_multi_label", "demo_data", "train.csv")
VOCAB_SIZE, NUM_LABELS = 21128, 10
ALBERT = dict(num_layers=6, num_heads=12, embedding_dim=128, hidden_dim=384, intermediate_dim=1536)


def vocabulary() -> list:
    """21128 tokens, like bert-base-chinese's: specials, ASCII, CJK characters, `##` pieces."""
    vocab = SPECIAL_TOKENS + [chr(c) for c in range(33, 127)] + [chr(c) for c in range(0x4E00, 0x9FA6)]
    vocab += [f"##{chr(c)}" for c in range(0x4E00, 0x4E00 + VOCAB_SIZE - len(vocab))]
    return vocab[:VOCAB_SIZE]


def texts(seq_len: int) -> list:
    """Demo reviews joined until each has more characters than the sequence has tokens."""
    reviews, out, current = read_examples(DEMO_TRAIN).texts, [], ""
    for r in reviews:
        current += r
        if len(current) > seq_len:
            out.append(current)
            current = ""
    return out


def latency(fn, items, calls: int) -> tuple:
    for t in items[:10]:
        fn([t])
    times = []
    for i in range(calls):
        start = time.perf_counter()
        fn([items[i % len(items)]])
        times.append(time.perf_counter() - start)
    return 1000 * float(np.percentile(times, 50)), 1000 * float(np.percentile(times, 99))


def throughput(fn, items, batch: int, seconds: float) -> float:
    batches = [items[i:i + batch] for i in range(0, len(items) - batch + 1, batch)]
    fn(batches[0])
    fn(batches[1 % len(batches)])
    calls, start = 0, time.perf_counter()
    while calls < 3 or time.perf_counter() - start < seconds:
        fn(batches[calls % len(batches)])
        calls += 1
    return calls * batch / (time.perf_counter() - start)


def ours(vocab, seq_len, export_dir, tokenizer, precision):
    import keras_hub
    import tensorflow as tf

    from classifier_multi_label.config import RunConfig
    from classifier_multi_label.data import LabelVocab
    from classifier_multi_label.head import PooledHead
    from classifier_multi_label.model import MultiLabelClassifier, dtype_policy
    from classifier_multi_label.run import Run
    from classifier_multi_label.serving import export_run
    from classifier_multi_label.thresholds import Thresholds
    from classifier_multi_label.tokenization import TextPreprocessor

    with dtype_policy(precision):
        backbone = keras_hub.models.AlbertBackbone(vocabulary_size=VOCAB_SIZE, max_sequence_length=512,
                                                   dropout=0.0, **ALBERT)
        model = MultiLabelClassifier(backbone, PooledHead(NUM_LABELS))
    pre = TextPreprocessor.from_vocabulary(vocab, seq_len)
    labels = LabelVocab([f"label_{i}" for i in range(NUM_LABELS)])
    run = Run(export_dir, RunConfig(), labels, pre, model, Thresholds(np.full(NUM_LABELS, 0.5), False, "fixed", 0.5))
    path = export_run(run, export_dir, tokenizer=tokenizer)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    return lambda batch: serve(text=tf.constant(batch))["labels"].numpy(), {"tensorflow": tf.__version__}


def op_profile(fn, items, calls: int) -> list:
    """Where one single-text request's time goes in our SavedModel: TensorFlow's profiler over
    `calls` requests -> [{"op": type, "ms_per_call", "ops_per_call"}], most time first. Kernel
    times only, summed over the threads that ran them (so their sum can exceed the wall time)."""
    import glob
    import tempfile

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    for t in items[:10]:
        fn([t])
    logdir = tempfile.mkdtemp()
    tf.profiler.experimental.start(logdir)
    for i in range(calls):
        fn([items[i % len(items)]])
    tf.profiler.experimental.stop()
    space = xplane_pb2.XSpace()
    with open(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[0], "rb") as fh:
        space.ParseFromString(fh.read())
    time_ps, count = {}, {}
    for plane in space.planes:
        for line in plane.lines:
            for event in line.events:
                name = plane.event_metadata[event.metadata_id].name  # "<node name>:<op type>" for a kernel
                if ":" not in name or name.startswith(("$", " ")):
                    continue
                op = name.rsplit(":", 1)[1]
                if not op[:1].isupper() or op in ("Process", "Run", "Record", "StartRegion", "StopRegion"):
                    continue  # executor and tracing events, not kernels
                time_ps[op] = time_ps.get(op, 0) + event.duration_ps
                count[op] = count.get(op, 0) + 1
    rows = [{"op": op, "ms_per_call": round(ps / 1e9 / calls, 4), "ops_per_call": round(count[op] / calls, 1)}
            for op, ps in time_ps.items()]
    return sorted(rows, key=lambda r: -r["ms_per_call"])


def huggingface(vocab, seq_len, folder, how="float32"):
    """transformers' fast tokenizer + AlbertForSequenceClassification; `how`: float32, bfloat16
    (`torch.autocast`, as a PyTorch user turns it on), onnx or onnx_int8 (ONNX Runtime on the same
    model exported with `torch.onnx.export`; int8: `quantize_dynamic`)."""
    import torch
    import transformers

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(vocab) + "\n")
    tokenizer = transformers.BertTokenizerFast(os.path.join(folder, "vocab.txt"), do_lower_case=True,
                                               tokenize_chinese_chars=True)
    config = transformers.AlbertConfig(vocab_size=VOCAB_SIZE, embedding_size=ALBERT["embedding_dim"],
                                       hidden_size=ALBERT["hidden_dim"], num_hidden_layers=ALBERT["num_layers"],
                                       num_attention_heads=ALBERT["num_heads"],
                                       intermediate_size=ALBERT["intermediate_dim"], num_labels=NUM_LABELS,
                                       problem_type="multi_label_classification", hidden_dropout_prob=0.0,
                                       attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0)
    model = transformers.AlbertForSequenceClassification(config).eval()
    versions = {"transformers": transformers.__version__, "torch": torch.__version__}

    def encode(batch, kind):
        return tokenizer(batch, padding=True, truncation=True, max_length=seq_len, return_tensors=kind)

    if how in ("float32", "bfloat16"):
        def predict(batch):
            inputs = encode(batch, "pt")
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=how == "bfloat16"):
                return torch.sigmoid(model(**inputs).logits.float()).numpy()
        return predict, versions
    import onnxruntime as ort

    path = os.path.join(folder, "model.onnx")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    sample = encode(["样例"], "pt")
    torch.onnx.export(model, tuple(sample[n] for n in names), path, input_names=names, output_names=["logits"],
                      dynamic_axes={n: {0: "batch", 1: "length"} for n in names} | {"logits": {0: "batch"}},
                      opset_version=17, dynamo=False)
    if how == "onnx_int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(path, os.path.join(folder, "model.int8.onnx"), weight_type=QuantType.QInt8)
        path = os.path.join(folder, "model.int8.onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count()
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    versions["onnxruntime"] = ort.__version__

    def predict(batch):
        inputs = encode(batch, "np")
        logits = session.run(["logits"], {n: inputs[n].astype(np.int64) for n in names})[0]
        return 1.0 / (1.0 + np.exp(-logits))
    return predict, versions


# name -> (builder, its arguments after vocab, seq_len, folder); ours in float32 with either tokenizer,
# and in the precision --precision auto picks here (added at run time when it is not float32).
PEERS = {"transformers float32": ("float32",), "transformers bfloat16 autocast": ("bfloat16",),
         "onnxruntime float32": ("onnx",), "onnxruntime int8 dynamic": ("onnx_int8",)}


def systems() -> list:
    from classifier_multi_label.model import resolve_precision  # imports TensorFlow: the parent process only

    default, _ = resolve_precision("auto", None)
    ours_rows = [("core", "float32"), ("tf_text", "float32")] + ([("core", default)] if default != "float32" else [])
    return [f"ours, {t} tokenizer, {p}" for t, p in ours_rows] + list(PEERS)


def child(name, seq_len, seconds, calls, profile: bool = False) -> dict:
    """Builds system `name` in this process and measures it (`profile`: ours, op by op, too)."""
    vocab, items = vocabulary(), texts(seq_len)
    with tempfile.TemporaryDirectory() as tmp:
        if name in PEERS:
            fn, versions = huggingface(vocab, seq_len, tmp, *PEERS[name])
        else:  # "ours, <tokenizer> tokenizer, <precision>"
            import keras

            keras.utils.set_random_seed(0)
            tokenizer, precision = name.split(", ")[1].split()[0], name.split(", ")[2]
            fn, versions = ours(vocab, seq_len, os.path.join(tmp, "export"), tokenizer, precision)
        p50, p99 = latency(fn, items, calls)
        rate = throughput(fn, items, 64, seconds)
        ops = op_profile(fn, items, min(calls, 100)) if profile and name not in PEERS else None
    return {"latency_p50_ms": round(p50, 2), "latency_p99_ms": round(p99, 2),
            "batch64_examples_per_s": round(rate, 1), "versions": versions, **({"op_profile": ops} if ops else {})}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq-len", type=int, default=60)
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per throughput figure")
    p.add_argument("--calls", type=int, default=300, help="single-text requests per latency figure")
    p.add_argument("--systems", nargs="+", default=None, metavar="NAME",
                   help=f"a subset of: {', '.join(systems())}")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--profile", action="store_true",
                   help="also profile our single-text requests op by op (TensorFlow's profiler; kernel time "
                        "per op type summed over threads, after the timed figures)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.seq_len, args.seconds, args.calls, args.profile)))
        return
    results = {}
    for name in args.systems or systems():
        proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", name, "--seq-len",
                               str(args.seq_len), "--seconds", str(args.seconds), "--calls", str(args.calls)]
                              + (["--profile"] if args.profile else []),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name} not measured: {proc.stderr.strip()[-400:]}", file=sys.stderr)
            continue
        results[name] = json.loads(proc.stdout.strip().splitlines()[-1])
    peers = [n for n in PEERS if n in results]
    for name, r in results.items():
        if name.startswith("ours"):
            r["throughput_vs"] = {n: round(r["batch64_examples_per_s"] / results[n]["batch64_examples_per_s"], 2)
                                  for n in peers}
            r["p50_speedup_vs"] = {n: round(results[n]["latency_p50_ms"] / r["latency_p50_ms"], 2) for n in peers}
    out = {"seq_len": args.seq_len, "cpu_count": os.cpu_count(), "results": results}
    if args.json:
        print(json.dumps(out))
        return
    versions = {k: v for r in results.values() for k, v in r["versions"].items()}
    print(f"albert_small_zh + pooled sigmoid head, raw text in, sequence {args.seq_len}, {os.cpu_count()} CPUs; "
          f"{', '.join(f'{k} {v}' for k, v in versions.items())}")
    print("| system | p50 ms (1 text) | p99 ms (1 text) | batch 64 texts/s |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['latency_p50_ms']} | {r['latency_p99_ms']} | {r['batch64_examples_per_s']} |")
    ours_rows = [n for n in results if n.startswith("ours")]
    if peers and ours_rows:
        print("\nours over each peer: batch-64 throughput ratio / single-text speed-up (peer p50 / our p50)")
        print("| ours | " + " | ".join(peers) + " |")
        print("|---|" + "---|" * len(peers))
        for name in ours_rows:
            r = results[name]
            print(f"| {name} | " + " | ".join(f"{r['throughput_vs'][n]}x / {r['p50_speedup_vs'][n]}x"
                                               for n in peers) + " |")
    for name, r in results.items():
        if "op_profile" in r:
            ops = r["op_profile"]
            kernels = sum(o["ms_per_call"] for o in ops)
            print(f"\n{name}: kernel time per single-text request {kernels:.2f} ms summed over threads (p50 "
                  f"{r['latency_p50_ms']} ms), "
                  f"{sum(o['ops_per_call'] for o in ops):.0f} kernels; the op types with the most time:")
            print("| op | ms per request | share of kernel time | kernels per request |")
            print("|---|---|---|---|")
            for o in ops[:15]:
                share = o["ms_per_call"] / kernels
                print(f"| {o['op']} | {o['ms_per_call']:.3f} | {share:.0%} | {o['ops_per_call']} |")


if __name__ == "__main__":
    main()
