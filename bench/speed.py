"""Speed benchmark: training and inference throughput of every head on the albert_small_zh encoder,
through the project's own train step and prediction path, next to Hugging Face transformers
(PyTorch, in float32 and with bfloat16 autocast) on the same architecture in the same run, and against
this machine's measured matmul peak.

    python bench/speed.py [--seq-lens 60 128] [--seconds 20] [--no-hf] [--json]
    python bench/speed.py --paired classifier_multi_label_seq2seq --seq-lens 60 [--rounds 30]

Encoder: albert_small_zh (vocabulary 21128, embedding 128, hidden 384, 6 layers, 12 heads, FFN 1536),
15 labels. Training at batch 32, inference at batch 64, fixed-shape random token ids (tokenization is
measured on its own: the real `tf.data` pipeline over the demo texts). Steady state: every step is
compiled and run before the clock starts. Each measurement runs in its own process, so peak memory
(RSS) is per measurement and nothing is shared. FLOPs per example are counted analytically for the
encoder (2 per multiply-add; training = 3 x forward); `*_fraction_of_peak` divides the achieved
FLOP/s by the float32 2048 x 2048 matmul rate measured in the same run. transformers needs
`pip install -e '.[bench]'`. Not a test; run it on an otherwise idle machine.

`--paired PACKAGE` measures one thing only, PACKAGE's inference cost relative to the baseline's:
both models in one process, one pass of each in turn, medians over the rounds. On a shared
machine whose speed drifts by 10% or more between minutes, separate processes (the default mode)
can move the ratio more than the code does; alternation exposes both models to the same drift.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

ALBERT_SMALL_ZH = dict(vocabulary_size=21128, num_layers=6, num_heads=12, embedding_dim=128, hidden_dim=384,
                       intermediate_dim=1536, dropout=0.0, max_sequence_length=512)
PACKAGES = ["classifier_multi_label", "classifier_multi_label_textcnn", "classifier_multi_label_denses",
            "classifier_multi_label_seq2seq"]
NUM_LABELS, TRAIN_BATCH, INFER_BATCH = 15, 32, 64
# transformers rows: float32 (kept for continuity) and bfloat16 autocast (the fair peer).
HF_ROWS = {"transformers": "float32", "transformers bfloat16 autocast": "bfloat16"}


def encoder_flops(seq_len: int, c=ALBERT_SMALL_ZH) -> float:
    """Forward FLOPs of the encoder per example (the heads' are small and not counted)."""
    h, ff = c["hidden_dim"], c["intermediate_dim"]
    per_token_layer = 4 * h * h + 2 * h * ff + 2 * seq_len * h  # Q, K, V, O; FFN; scores and mixing
    return 2.0 * seq_len * (c["num_layers"] * per_token_layer + c["embedding_dim"] * h)


def steady_rate(fn, examples_per_call: int, seconds: float, min_calls: int = 5) -> float:
    fn()  # compile
    fn()
    calls, start = 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    return calls * examples_per_call / (time.perf_counter() - start)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------------------
# Measurements, each run in a child process (`--child KIND ...`).

def child_matmul(seconds):
    import tensorflow as tf

    out = {}
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.cast(tf.random.normal([2048, 2048]), dtype)
        matmul = tf.function(lambda x: tf.matmul(x, x))
        rate = steady_rate(lambda: matmul(a).numpy(), 1, seconds / 2)
        out[f"matmul_{dtype.name}_gflops"] = round(rate * 2 * 2048 ** 3 / 1e9, 1)
    return out


def child_tokenization(seconds):
    """Texts/s of the training pipeline (`make_dataset`: tokenize, pack, pad) on the demo texts."""
    from classifier_multi_label.data import read_examples
    from classifier_multi_label.pipeline import make_dataset
    from classifier_multi_label.run import demo_file
    from classifier_multi_label.tokenization import TextPreprocessor, build_vocabulary

    texts = read_examples(demo_file("train")).texts
    pre = TextPreprocessor.from_vocabulary(build_vocabulary(texts, 3000), 60)
    texts = texts * (20_000 // len(texts) + 1)
    targets = np.zeros((len(texts), NUM_LABELS), np.float32)

    def epoch():
        for _ in make_dataset(texts, targets, pre, TRAIN_BATCH, shuffle=True):
            pass
    return {"tokenization_texts_per_s": round(steady_rate(epoch, len(texts), seconds, min_calls=2), 0),
            "tokenization_mean_chars": round(float(np.mean([len(t) for t in texts])), 1)}


def build_ours(package, seq_len):
    """-> (model, head, labels, label_lists, batch(size) of random token ids, precision, XLA) for
    `package` on albert_small_zh, in the precision `--precision` resolves to (train.py's rule)."""
    import keras
    import keras_hub
    import tensorflow as tf

    from classifier_multi_label.data import LabelVocab
    from classifier_multi_label.model import MultiLabelClassifier, dtype_policy, resolve_precision

    head_cls = {"classifier_multi_label": "classifier_multi_label.head:PooledHead",
                "classifier_multi_label_textcnn": "classifier_multi_label.head:TextCNNHead",
                "classifier_multi_label_denses": "classifier_multi_label_denses:DensesHead",
                "classifier_multi_label_seq2seq": "classifier_multi_label_seq2seq:Seq2SeqHead"}[package]
    module, name = head_cls.split(":")
    head_cls = getattr(__import__(module, fromlist=[name]), name)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    labels = LabelVocab([f"label_{i}" for i in range(NUM_LABELS)])
    # 1 to 4 labels per text: seq2seq decodes at most 5 steps (4 labels + END), as the original's max_length 5
    label_lists = [list(rng.choice(labels.names, rng.integers(1, 5), replace=False)) for _ in range(TRAIN_BATCH)]
    # The run's own resolution of --precision (auto: bfloat16 on AMX CPUs) and XLA.
    precision, jit = resolve_precision(os.environ.get("BENCH_PRECISION", "auto"), None)
    with dtype_policy(precision):
        head = head_cls(NUM_LABELS, **head_cls.resolve_options({}, label_lists, labels))  # seq2seq: beam 5
        model = MultiLabelClassifier(keras_hub.models.AlbertBackbone(**ALBERT_SMALL_ZH), head)

    def batch(size):
        ids = rng.integers(106, ALBERT_SMALL_ZH["vocabulary_size"], (size, seq_len)).astype(np.int32)
        ids[:, 0], ids[:, -1] = 101, 102
        return {"token_ids": tf.constant(ids), "segment_ids": tf.zeros_like(ids), "padding_mask": tf.ones_like(ids)}

    return model, head, labels, label_lists, batch, precision, jit


def infer_batches(batch) -> list:
    """4 batches of INFER_BATCH, as a list: `predict_outputs` then traces for any batch size and
    length, as it does for the pipeline's dynamically padded batches. A dataset of fixed-shape
    tensors would trace a static shape, for which Keras' einsum takes another route (a broadcast
    batched matmul) than the one users run."""
    return [batch(INFER_BATCH)] * 4


def dynamic_spec(x: dict, y) -> tuple:
    """The train step's input signature as `Trainer.fit` traces it from the pipeline's element_spec:
    [None, None] inputs (batches padded to their longest text) and [None, num_labels] targets. Traced
    on the fixed-shape benchmark batch instead, the step is slower without XLA (the gradient of a
    broadcast batched matmul is a batched product summed over the batch; docs/benchmark-history.md)."""
    import tensorflow as tf

    return ({k: tf.TensorSpec([None, None], v.dtype) for k, v in x.items()},
            tf.TensorSpec([None, y.shape[1]], y.dtype))


def child_ours(package, seq_len, seconds):
    import tensorflow as tf

    from classifier_multi_label.config import TrainConfig
    from classifier_multi_label.losses import bce
    from classifier_multi_label.trainer import Trainer

    model, head, labels, label_lists, batch, precision, jit = build_ours(package, seq_len)
    infer_ds = infer_batches(batch)
    infer = steady_rate(lambda: model.predict_outputs(infer_ds, jit), 4 * INFER_BATCH, seconds)
    x, y = batch(TRAIN_BATCH), tf.constant(head.targets(label_lists, labels), tf.float32)
    trainer = Trainer(model, bce, TrainConfig(epochs=1, patience=0, precision=precision, jit_compile=jit),
                      steps_per_epoch=10_000, learning_rate=5e-5)
    trainer.train_step.get_concrete_function(*dynamic_spec(x, y))  # the one trace train.py makes
    train = steady_rate(lambda: float(trainer.train_step(x, y)[0]), TRAIN_BATCH, seconds)
    return {"train_examples_per_s": round(train, 1), "infer_examples_per_s": round(infer, 1),
            "peak_rss_mb": round(peak_rss_mb()), "precision": precision, "xla": jit}


def child_paired(package, seq_len, rounds):
    """Inference cost of `package` relative to the baseline, both in this one process, timed in
    alternation (baseline pass, package pass, ...) over the same 4 batches of INFER_BATCH, so a
    slow minute on a shared machine slows both: -> medians per pass and their ratio."""
    models = {}
    for pkg in ("classifier_multi_label", package):
        model, _, _, _, batch, _, jit = build_ours(pkg, seq_len)
        models[pkg] = (model, infer_batches(batch), jit)
    ms = {pkg: [] for pkg in models}
    for model, ds, jit in models.values():  # compile, then one pass to warm up
        for _ in range(2):
            model.predict_outputs(ds, jit)
    for _ in range(int(rounds)):
        for pkg, (model, ds, jit) in models.items():
            start = time.perf_counter()
            model.predict_outputs(ds, jit)
            ms[pkg].append((time.perf_counter() - start) * 1000)
    base, other = (float(np.median(ms[pkg])) for pkg in models)
    per_round = np.array(ms[package]) / np.array(ms["classifier_multi_label"])
    return {"package": package, "rounds": int(rounds), "baseline_ms_per_pass": round(base, 1),
            "ms_per_pass": round(other, 1), "cost_vs_baseline": round(other / base, 3),
            "round_ratio_quartiles": [round(float(q), 3) for q in np.percentile(per_round, [25, 50, 75])]}


def child_hf(seq_len, how, seconds):
    """transformers' AlbertForSequenceClassification; `how`: float32, or bfloat16 (`torch.autocast`
    around the forward passes, what a PyTorch user turns on: matmuls in bfloat16, norms in float32)."""
    import torch
    import transformers

    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count())
    c = ALBERT_SMALL_ZH
    config = transformers.AlbertConfig(
        vocab_size=c["vocabulary_size"], embedding_size=c["embedding_dim"], hidden_size=c["hidden_dim"],
        num_hidden_layers=c["num_layers"], num_attention_heads=c["num_heads"], intermediate_size=c["intermediate_dim"],
        max_position_embeddings=c["max_sequence_length"], num_labels=NUM_LABELS,
        problem_type="multi_label_classification", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
        classifier_dropout_prob=0.0)
    model = transformers.AlbertForSequenceClassification(config)

    def batch(size):
        ids = torch.randint(106, c["vocabulary_size"], (size, seq_len))
        ids[:, 0], ids[:, -1] = 101, 102
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}

    x_infer = batch(INFER_BATCH)
    model.eval()

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=how == "bfloat16")

    def infer():
        with torch.inference_mode(), autocast():
            torch.sigmoid(model(**x_infer).logits.float())
    infer_rate = steady_rate(infer, INFER_BATCH, seconds)
    model.train()
    x, y = batch(TRAIN_BATCH), (torch.rand(TRAIN_BATCH, NUM_LABELS) < 0.2).float()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)

    def step():
        optimizer.zero_grad()
        with autocast():
            loss = model(**x, labels=y).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    train_rate = steady_rate(step, TRAIN_BATCH, seconds)
    return {"train_examples_per_s": round(train_rate, 1), "infer_examples_per_s": round(infer_rate, 1),
            "peak_rss_mb": round(peak_rss_mb()), "versions": f"transformers {transformers.__version__}, "
                                                              f"torch {torch.__version__}"}


def run_child(*args) -> dict:
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", *map(str, args)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{args}: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seq-lens", type=int, nargs="+", default=[60, 128])
    p.add_argument("--seconds", type=float, default=20.0, help="timed seconds per measurement")
    p.add_argument("--packages", nargs="+", default=PACKAGES, choices=PACKAGES)
    p.add_argument("--no-hf", action="store_true", help="skip Hugging Face transformers")
    p.add_argument("--precision", default="auto", choices=("auto", "float32", "mixed_bfloat16"),
                   help="our models' --precision (auto: what train.py picks on this machine)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--paired", metavar="PACKAGE", choices=PACKAGES[1:],
                   help="only PACKAGE's inference cost against the baseline, timed in alternation in one process")
    p.add_argument("--rounds", type=int, default=30, help="--paired: alternations (4 batches each per model)")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        kind, *rest = args.child
        fn = {"matmul": child_matmul, "tokenization": child_tokenization, "ours": child_ours, "hf": child_hf,
              "paired": child_paired}[kind]
        rest = [int(r) if r.isdigit() else r for r in rest]
        print(json.dumps(fn(*rest) if kind == "paired" else fn(*rest, args.seconds)))  # paired: rounds in rest
        return

    os.environ["BENCH_PRECISION"] = args.precision
    if args.paired:
        rows = [run_child("paired", args.paired, seq_len, args.rounds) for seq_len in args.seq_lens]
        for seq_len, r in zip(args.seq_lens, rows):
            r["seq_len"] = seq_len
            if not args.json:
                print(f"sequence {seq_len}, batch {INFER_BATCH}, {r['rounds']} alternations: baseline "
                      f"{r['baseline_ms_per_pass']} ms, {r['package']} {r['ms_per_pass']} ms per pass of "
                      f"{4 * INFER_BATCH} texts: {r['cost_vs_baseline']}x (per-round quartiles "
                      f"{', '.join(map(str, r['round_ratio_quartiles']))})")
        if args.json:
            print(json.dumps({"cpu_count": os.cpu_count(), "paired": rows}))
        return
    out = {"cpu_count": os.cpu_count(), "train_batch": TRAIN_BATCH, "infer_batch": INFER_BATCH}
    out.update(run_child("matmul"))
    out.update(run_child("tokenization"))
    peak = out["matmul_float32_gflops"] * 1e9
    out["results"] = {}
    for seq_len in args.seq_lens:
        flops = encoder_flops(seq_len)
        rows = {pkg: run_child("ours", pkg, seq_len) for pkg in args.packages}
        if not args.no_hf:
            for name, how in HF_ROWS.items():
                try:
                    rows[name] = {**run_child("hf", seq_len, how), "precision": f"{how} (PyTorch)", "xla": False}
                except RuntimeError as e:
                    print(f"{name} not measured: {str(e)[-300:]}", file=sys.stderr)
        for r in rows.values():
            r["train_fraction_of_peak"] = round(r["train_examples_per_s"] * 3 * flops / peak, 3)
            r["infer_fraction_of_peak"] = round(r["infer_examples_per_s"] * flops / peak, 3)
        out["results"][str(seq_len)] = {"encoder_gflops_per_example": round(flops / 1e9, 3), **rows}
    base = out["results"].get("60", {}).get("classifier_multi_label")
    hf = out["results"].get("60", {}).get("transformers")
    if base:  # the headline figures: the baseline at sequence 60
        out.update({k: base[k] for k in ("train_examples_per_s", "infer_examples_per_s", "train_fraction_of_peak")})
        out["matmul_gflops"] = out["matmul_float32_gflops"]
    if base and hf:
        out.update(hf_train_examples_per_s=hf["train_examples_per_s"],
                   hf_infer_examples_per_s=hf["infer_examples_per_s"],
                   train_vs_hf=round(base["train_examples_per_s"] / hf["train_examples_per_s"], 2),
                   infer_vs_hf=round(base["infer_examples_per_s"] / hf["infer_examples_per_s"], 2))
    hf_bf16 = out["results"].get("60", {}).get("transformers bfloat16 autocast")
    if base and hf_bf16:  # the fair peer on a CPU with bfloat16 units
        out.update(train_vs_hf_bf16=round(base["train_examples_per_s"] / hf_bf16["train_examples_per_s"], 2),
                   infer_vs_hf_bf16=round(base["infer_examples_per_s"] / hf_bf16["infer_examples_per_s"], 2))
    if args.json:
        print(json.dumps(out))
        return
    print(f"matmul 2048x2048: float32 {out['matmul_float32_gflops']} GFLOP/s, bfloat16 "
          f"{out['matmul_bfloat16_gflops']} GFLOP/s; tokenization pipeline: {out['tokenization_texts_per_s']:.0f} "
          f"texts/s (demo texts, mean {out['tokenization_mean_chars']} characters)")
    for seq_len, rows in out["results"].items():
        print(f"\nsequence {seq_len}: encoder {rows['encoder_gflops_per_example']} GFLOP per example forward; "
              f"training batch {TRAIN_BATCH}, inference batch {INFER_BATCH}")
        print("| model | precision | train ex/s | of fp32 peak | infer ex/s | of fp32 peak | peak RSS MB |")
        print("|---|---|---|---|---|---|---|")
        for name, r in rows.items():
            if isinstance(r, dict):
                how = f"{r['precision']}{', XLA' if r['xla'] else ''}" if "precision" in r else "float32 (PyTorch)"
                print(f"| {name} | {how} | {r['train_examples_per_s']} | {r['train_fraction_of_peak']:.0%} | "
                      f"{r['infer_examples_per_s']} | {r['infer_fraction_of_peak']:.0%} | {r['peak_rss_mb']} |")
    if "train_vs_hf" in out:
        print(f"\nbaseline vs transformers at sequence 60: training {out['train_vs_hf']}x, "
              f"inference {out['infer_vs_hf']}x")
    if "train_vs_hf_bf16" in out:
        print(f"baseline vs transformers with bfloat16 autocast at sequence 60: training {out['train_vs_hf_bf16']}x, "
              f"inference {out['infer_vs_hf_bf16']}x")


if __name__ == "__main__":
    main()
