"""Speed benchmark (first version): training and inference throughput of each head on the same
ALBERT encoder, through the project's own compiled train step and prediction path.

    python bench/speed.py [--seq-len 60] [--json]

Encoder: the albert_small_zh configuration (vocabulary 21128, embedding 128, hidden 384, 6 layers,
12 heads, FFN 1536), 15 labels. Inference at batch 64, training at batch 32, fixed-shape random
token ids (the tokenizer is not timed here). Steady state: each step is compiled and run before
the clock starts. Reports examples/s and each head's inference time relative to the baseline.
Not a test; run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from classifier_multi_label.config import TrainConfig  # noqa: E402
from classifier_multi_label.data import LabelVocab  # noqa: E402
from classifier_multi_label.heads import PooledHead  # noqa: E402
from classifier_multi_label.losses import bce  # noqa: E402
from classifier_multi_label.model import MultiLabelClassifier  # noqa: E402
from classifier_multi_label.trainer import Trainer  # noqa: E402
from classifier_multi_label_denses import DensesHead  # noqa: E402
from classifier_multi_label_seq2seq import Seq2SeqHead  # noqa: E402
from classifier_multi_label_textcnn import TextCNNHead  # noqa: E402

ALBERT_SMALL_ZH = dict(vocabulary_size=21128, num_layers=6, num_heads=12, embedding_dim=128, hidden_dim=384,
                       intermediate_dim=1536, dropout=0.0, max_sequence_length=512)
HEADS = {"classifier_multi_label": PooledHead, "classifier_multi_label_textcnn": TextCNNHead,
         "classifier_multi_label_denses": DensesHead, "classifier_multi_label_seq2seq": Seq2SeqHead}
NUM_LABELS = 15
LABELS = LabelVocab([f"label_{i}" for i in range(NUM_LABELS)])


def batch(size, seq_len, rng):
    ids = rng.integers(106, 21128, (size, seq_len)).astype(np.int32)
    ids[:, 0], ids[:, -1] = 101, 102
    return {"token_ids": tf.constant(ids), "segment_ids": tf.zeros_like(ids), "padding_mask": tf.ones_like(ids)}


def throughput(fn, n_examples_per_call, seconds=20.0, min_calls=5) -> float:
    fn()  # compile
    fn()
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls * n_examples_per_call / (time.perf_counter() - start)


def measure(package, head_cls, seq_len, seconds):
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    # 1 to 4 labels per text: seq2seq decodes at most 5 steps (4 labels + END), as the original's max_length 5
    label_lists = [list(rng.choice(LABELS.names, rng.integers(1, 5), replace=False)) for _ in range(32)]
    head = head_cls(NUM_LABELS, **head_cls.resolve_options({}, label_lists, LABELS))  # seq2seq: beam 5 by default
    model = MultiLabelClassifier(keras_hub.models.AlbertBackbone(**ALBERT_SMALL_ZH), head)
    x_infer = batch(64, seq_len, rng)
    infer_ds = tf.data.Dataset.from_tensors(x_infer).repeat(4).cache()
    infer = throughput(lambda: model.predict_outputs(infer_ds), 4 * 64, seconds)
    x_train = batch(32, seq_len, rng)
    y_train = tf.constant(head.targets(label_lists, LABELS), tf.float32)
    trainer = Trainer(model, bce, TrainConfig(epochs=1), steps_per_epoch=10_000, learning_rate=5e-5)
    train = throughput(lambda: float(trainer._train_step(x_train, y_train)), 32, seconds)
    return {"infer_examples_per_s": round(infer, 1), "train_examples_per_s": round(train, 1)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq-len", type=int, default=60)
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per measurement")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    results = {pkg: measure(pkg, cls, args.seq_len, args.seconds) for pkg, cls in HEADS.items()}
    base = results["classifier_multi_label"]["infer_examples_per_s"]
    for r in results.values():
        r["relative_inference_time"] = round(base / r["infer_examples_per_s"], 2)
    out = {"seq_len": args.seq_len, "infer_batch": 64, "train_batch": 32, "cpu_count": os.cpu_count(),
           "results": results}
    if args.json:
        print(json.dumps(out))
        return
    print(f"albert_small_zh encoder, sequence {args.seq_len}; inference batch 64, training batch 32")
    print("| package | train ex/s | infer ex/s | inference time vs baseline |\n|---|---|---|---|")
    for pkg, r in results.items():
        print(f"| {pkg} | {r['train_examples_per_s']} | {r['infer_examples_per_s']} | "
              f"{r['relative_inference_time']}x |")


if __name__ == "__main__":
    main()
