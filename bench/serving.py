"""Serving benchmark: the exported SavedModel (raw text in, label names out) against Hugging Face
transformers (PyTorch, fast tokenizer + `AlbertForSequenceClassification`) on the same architecture,
in the same run.

    python bench/serving.py [--seq-len 60] [--seconds 20] [--json]

Architecture: albert_small_zh (vocabulary 21128, embedding 128, hidden 384, 6 layers, 12 heads, FFN
1536) with the baseline's pooled sigmoid head over 10 labels, random weights. Texts: the demo
reviews joined until each fills the sequence, so every request is padded to `--seq-len` tokens.
Both sides start from raw strings: tokenization is timed. Figures: single-text latency p50/p99
(one request at a time) and batch-64 throughput, for our export in float32 with the core-op
tokenizer and with tensorflow-text's, in the precision `train.py --precision auto` picks on this
machine (bfloat16 on a CPU with AMX), and for transformers. Needs `pip install -e '.[bench]'`. Not a test; run it
on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from classifier_multi_label.config import RunConfig  # noqa: E402
from classifier_multi_label.data import LabelVocab, read_examples  # noqa: E402
from classifier_multi_label.head import PooledHead  # noqa: E402
from classifier_multi_label.model import MultiLabelClassifier, dtype_policy, resolve_precision  # noqa: E402
from classifier_multi_label.run import Run, demo_file  # noqa: E402
from classifier_multi_label.serving import export_run  # noqa: E402
from classifier_multi_label.thresholds import Thresholds  # noqa: E402
from classifier_multi_label.tokenization import SPECIAL_TOKENS, TextPreprocessor  # noqa: E402

VOCAB_SIZE, NUM_LABELS = 21128, 10
ALBERT = dict(num_layers=6, num_heads=12, embedding_dim=128, hidden_dim=384, intermediate_dim=1536)


def vocabulary() -> list:
    """21128 tokens, like bert-base-chinese's: specials, ASCII, CJK characters, `##` pieces."""
    vocab = SPECIAL_TOKENS + [chr(c) for c in range(33, 127)] + [chr(c) for c in range(0x4E00, 0x9FA6)]
    vocab += [f"##{chr(c)}" for c in range(0x4E00, 0x4E00 + VOCAB_SIZE - len(vocab))]
    return vocab[:VOCAB_SIZE]


def texts(seq_len: int) -> list:
    """Demo reviews joined until each has more characters than the sequence has tokens."""
    reviews, out, current = read_examples(demo_file("train")).texts, [], ""
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
    with dtype_policy(precision):
        backbone = keras_hub.models.AlbertBackbone(vocabulary_size=VOCAB_SIZE, max_sequence_length=512,
                                                   dropout=0.0, **ALBERT)
        model = MultiLabelClassifier(backbone, PooledHead(NUM_LABELS))
    pre = TextPreprocessor.from_vocabulary(vocab, seq_len)
    labels = LabelVocab([f"label_{i}" for i in range(NUM_LABELS)])
    run = Run(export_dir, RunConfig(), labels, pre, model, Thresholds(np.full(NUM_LABELS, 0.5), False, "fixed", 0.5))
    path = export_run(run, export_dir, tokenizer=tokenizer)
    serve = tf.saved_model.load(path).signatures["serving_default"]
    return lambda batch: serve(text=tf.constant(batch))["labels"].numpy()


def huggingface(vocab, seq_len, folder):
    import torch
    import transformers

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

    def predict(batch):
        inputs = tokenizer(batch, padding=True, truncation=True, max_length=seq_len, return_tensors="pt")
        with torch.inference_mode():
            return torch.sigmoid(model(**inputs).logits).numpy()
    return predict, transformers.__version__, torch.__version__


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq-len", type=int, default=60)
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per throughput figure")
    p.add_argument("--calls", type=int, default=300, help="single-text requests per latency figure")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    keras.utils.set_random_seed(0)
    vocab, items = vocabulary(), texts(args.seq_len)
    results, versions = {}, {"tensorflow": tf.__version__}
    with tempfile.TemporaryDirectory() as tmp:
        # float32, and what a run trained on this machine uses by default (--precision auto).
        default, _ = resolve_precision("auto", None)
        variants = [("core", "float32"), ("tf_text", "float32")] + ([("core", default)] if default != "float32" else [])
        systems = {f"ours, {t} tokenizer, {p}": ours(vocab, args.seq_len, os.path.join(tmp, f"{t}-{p}"), t, p)
                   for t, p in variants}
        try:
            systems["transformers (PyTorch)"], versions["transformers"], versions["torch"] = huggingface(
                vocab, args.seq_len, tmp)
        except ImportError as e:
            print(f"transformers not measured ({e}): pip install -e '.[bench]'", file=sys.stderr)
        for name, fn in systems.items():
            p50, p99 = latency(fn, items, args.calls)
            results[name] = {"latency_p50_ms": round(p50, 2), "latency_p99_ms": round(p99, 2),
                             "batch64_examples_per_s": round(throughput(fn, items, 64, args.seconds), 1)}
    hf = results.get("transformers (PyTorch)")
    for r in results.values():
        if hf:
            r["throughput_vs_transformers"] = round(r["batch64_examples_per_s"] / hf["batch64_examples_per_s"], 2)
    out = {"seq_len": args.seq_len, "cpu_count": os.cpu_count(), "versions": versions, "results": results}
    if args.json:
        print(json.dumps(out))
        return
    print(f"albert_small_zh + pooled sigmoid head, raw text in, sequence {args.seq_len}, {os.cpu_count()} CPUs; "
          f"{', '.join(f'{k} {v}' for k, v in versions.items())}")
    print("| system | p50 ms (1 text) | p99 ms (1 text) | batch 64 texts/s | throughput vs transformers |")
    print("|---|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['latency_p50_ms']} | {r['latency_p99_ms']} | {r['batch64_examples_per_s']} | "
              f"{r.get('throughput_vs_transformers', '')}x |")


if __name__ == "__main__":
    main()
