"""Decision rules on a trained run: each threshold objective and shrinkage, tuned on dev, scored on test.

    python bench/objectives.py --model-dir bench/runs/goemotions-classifier_multi_label_textcnn-minilm

The model (and so its best epoch, chosen with the run's own objective) stays fixed: only the
thresholds change. For each `--threshold-objective` (micro, macro, samples) and each
`--threshold-prior-positives` given, the run's strategy (`auto` by default) is tuned on the run's dev
file and applied once to its test file. Prints a markdown table; `--json` writes the rows too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from accuracy import package_heads  # noqa: E402

from classifier_multi_label.config import RunConfig  # noqa: E402
from classifier_multi_label.data import read_examples  # noqa: E402
from classifier_multi_label.thresholds import OBJECTIVES  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--strategy", default="auto", help="--threshold-strategy to tune with")
    p.add_argument("--prior-positives", type=float, nargs="+", default=[0.0, 10.0])
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args()
    from classifier_multi_label.run import load_run

    package = RunConfig.load(os.path.join(args.model_dir, "config.json")).package
    run = load_run(args.model_dir, package_heads()[package], package)
    dev, test = read_examples(run.config.data.dev_file), read_examples(run.config.data.test_file)
    th = run.config.thresholds
    th.threshold_strategy = args.strategy
    saved = os.path.join(args.model_dir, "thresholds.json")
    with open(saved, encoding="utf-8") as fh:
        original = fh.read()  # tune_thresholds rewrites it: put the run's own back afterwards
    rows = []
    for objective in OBJECTIVES:
        for prior in args.prior_positives:
            th.threshold_objective, th.threshold_prior_positives = objective, prior
            run.tune_thresholds(dev)
            m = run.evaluate(test)
            rows.append({"objective": objective, "prior_positives": prior, "rule": run.thresholds.strategy,
                         **{k: m[k] for k in ("micro_f1", "macro_f1", "samples_f1", "macro_labels")}})
    with open(saved, "w", encoding="utf-8") as fh:
        fh.write(original)
    print(f"| {args.model_dir} | rule chosen | test micro-F1 | test macro-F1 | test samples-F1 |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| objective {r['objective']}, k={r['prior_positives']:g} | {r['rule']} | {r['micro_f1']:.4f} | "
              f"{r['macro_f1']:.4f} | {r['samples_f1']:.4f} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"model_dir": args.model_dir, "strategy": args.strategy, "rows": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
