"""Decision rules on a trained run: each threshold objective and shrinkage, tuned on dev, scored on test.

    python bench/objectives.py --model-dir bench/runs/goemotions-classifier_multi_label_textcnn-minilm

The model (and so its best epoch, chosen with the run's own objective) stays fixed and scores dev
and test once; only the thresholds change. The run folder is not written. For each
`--threshold-objective` (micro, macro, samples) and each
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
from classifier_multi_label.metrics import multilabel_metrics  # noqa: E402
from classifier_multi_label.thresholds import OBJECTIVES, decide, tune_thresholds  # noqa: E402


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
    y_dev, y_test = run.labels.multi_hot(dev.labels), run.labels.multi_hot(test.labels)
    dev_scores, test_scores = run.scores(dev.texts), run.scores(test.texts)  # the model once; rules many times
    th = run.config.thresholds
    rows = []
    for objective in OBJECTIVES:
        for prior in args.prior_positives:
            rule = tune_thresholds(y_dev, dev_scores, args.strategy, th.threshold, th.min_dev_positives,
                                   th.at_least_one, objective, prior)
            decisions = decide(test_scores, rule.values, rule.at_least_one).numpy()
            m = multilabel_metrics(y_test, test_scores, decisions, run.labels.names, rule.values)
            rows.append({"objective": objective, "prior_positives": prior, "rule": rule.strategy,
                         **{k: m[k] for k in ("micro_f1", "macro_f1", "samples_f1", "macro_labels")}})
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
