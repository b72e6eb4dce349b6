"""Integrated gradients: where the attributions land, and what they cost.

On the demo model: does the top-attributed word of each correctly predicted aspect lie inside the
phrase that produced it? The demo reviews are built from known phrases per aspect
(scripts/make_demo_data.py), so the phrase of each label in a test text is known. A random word of
the same text is the control. On any run: completeness errors, `run.explain`'s texts/s, and the
exported `explain` signature's texts/s at `--batch-size` texts per call (loaded from disk as TF
Serving loads it), next to `serving_default`'s latency with and without the second signature.

    python bench/explain.py --model-dir RUN [--test-file F] [--steps 32] [--batch-size 16]
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from make_demo_data import ASPECTS  # noqa: E402

from classifier_multi_label import load_run  # noqa: E402
from classifier_multi_label.run import _read  # noqa: E402


def phrase_spans(text: str, label: str) -> list:
    """(start, end) of each of the label's phrases found in the text."""
    out = []
    for phrase in ASPECTS.get(label, []):
        start = text.find(phrase)
        while start >= 0:
            out.append((start, start + len(phrase)))
            start = text.find(phrase, start + 1)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--test-file", help="default: the run's --test-file")
    p.add_argument("--steps", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=16, help="texts per call of the exported signature")
    p.add_argument("--limit", type=int, default=None, help="explain only the first N test texts")
    p.add_argument("--json", help="write the figures here")
    args = p.parse_args()
    run = load_run(args.model_dir)
    test = _read(args.test_file or run.config.data.test_file, run.config)
    test = test.subset(range(min(args.limit, len(test)))) if args.limit else test
    run.explain(test.texts[:1], steps=args.steps)  # trace once
    start = time.time()
    rows = run.explain(test.texts, steps=args.steps)
    seconds = time.time() - start
    rng = np.random.default_rng(0)
    hits = random_hits = total = 0
    errors, relative = [], []
    for row, given in zip(rows, test.labels):
        for label in row["labels"]:
            errors.append(label["completeness_error"])
            relative.append(label["completeness_error"] / max(abs(label["logit_difference"]), 1e-9))
            phrases = phrase_spans(row["text"], label["label"])
            if label["label"] not in given or not phrases or not label["spans"]:
                continue  # a false positive, or a phrase the generator did not write verbatim
            inside = [any(a <= s["start"] and s["end"] <= b for a, b in phrases) for s in label["spans"]]
            top = int(np.argmax([s["attribution"] for s in label["spans"]]))
            hits += inside[top]
            random_hits += inside[int(rng.integers(len(inside)))]
            total += 1
    out = {"model_dir": args.model_dir, "steps": args.steps, "texts": len(rows),
           "labels_explained": len(errors), "labels_checked": total,
           "top_span_in_phrase": hits / total if total else None,
           "random_span_in_phrase": random_hits / total if total else None,
           "completeness_error_max": float(np.max(errors)), "completeness_error_median": float(np.median(errors)),
           "relative_error_max": float(np.max(relative)), "texts_per_s": len(rows) / seconds}
    out.update(served_cost(run, test.texts, args.steps, args.batch_size))
    print(json.dumps(out, indent=1))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(out, fh, indent=1)


def served_cost(run, texts, steps: int, batch_size: int) -> dict:
    """texts/s of the exported `explain` signature at `batch_size`, and `serving_default`'s p50 for
    one text and for `batch_size` texts in exports with and without it."""
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        plain = tf.saved_model.load(run.export(os.path.join(tmp, "plain"), explain=False))
        full = tf.saved_model.load(run.export(os.path.join(tmp, "explain"), explain=True, ig_steps=steps))
        batches = [tf.constant(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
        explain = full.signatures["explain"]
        explain(text=batches[0])  # the first call builds the graph's kernels
        start = time.perf_counter()
        for batch in batches:
            explain(text=batch)["attributions"].numpy()
        out = {"batch_size": batch_size, "served_explain_texts_per_s": len(texts) / (time.perf_counter() - start)}
        # The two exports' serving_default, timed in alternating rounds so drift hits both alike.
        times = {}
        for _ in range(6):
            for name, model in (("without_explain", plain), ("with_explain", full)):
                serve = model.signatures["serving_default"]
                for size in (1, batch_size):
                    batch = tf.constant(texts[:size])
                    serve(text=batch)["scores"].numpy()
                    for _ in range(20):
                        start = time.perf_counter()
                        serve(text=batch)["scores"].numpy()
                        times.setdefault(f"serving_default_p50_ms_batch{size}_{name}", []).append(
                            time.perf_counter() - start)
        out.update({key: 1000 * float(np.median(values)) for key, values in times.items()})
    return out


if __name__ == "__main__":
    main()
