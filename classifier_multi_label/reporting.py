"""The run report: `report.html` in the run folder, one self-contained page (figures inline as PNG,
its font inline, no script, nothing fetched) that answers what the metrics files do not: which
labels are weak and why, which threshold each label got, whether a score of 0.8 means 80%, which
labels the model confuses, which test texts it gets most wrong, which training rows look
mislabelled, how many texts the sequence length cuts, and what the data check found.

`build_report(run)` scores dev, test (the run's, or `test`) and the training rows (up to
`MAX_TRAIN_ROWS`, a seeded sample beyond that) with the run's model, draws the figures with
matplotlib and fills `report_template.html` (jinja2, autoescaped). CJK text is drawn with the
bundled font (`fonts/`, a subset of Noto Sans CJK SC): in the figures after matplotlib's default
font, and in the page as an inline web font cut down to the characters the page uses, so Chinese
label names render on a machine without CJK fonts.

Example:
    >>> from classifier_multi_label import load_run
    >>> path = build_report(load_run(demo_run_dir), out=f"{tmp_dir}/report.html")
    >>> open(path, encoding="utf-8").read().count('<img alt=') >= 6
    True
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import warnings
from importlib import resources

import numpy as np

from .config import RunConfig
from .data import examples_from
from .files import write_text
from .metrics import ECE_BINS, expected_calibration_error
from .tokenization import token_counts

log = logging.getLogger(__name__)

REPORT_NAME = "report.html"
MAX_TRAIN_ROWS = 20_000  # training rows scored for likely label errors (a seeded sample beyond)
MAX_BAR_LABELS = 40  # per-label bars up to this many labels; a scatter against frequency beyond
MAX_HEATMAP_LABELS = 30  # co-occurrence heatmaps show the most frequent labels
MAX_PR_PANELS = 12  # precision-recall panels: the most frequent half and the weakest half
LISTED = 15  # rows of each "most" table
EXPLAINED = 6  # texts highlighted by integrated gradients: this many correct ones, this many of the largest errors
EXPLAINED_LABELS = 4  # labels highlighted per text at most (the best scored of its predicted and true ones)
FONT = "Report Sans SC"
FONT_FAMILY = ["DejaVu Sans", FONT]  # matplotlib's default first, CJK glyphs from the bundled font
FIRST_CJK = 0x2E80  # characters from here on take the bundled font in the page


def build_report(run, test=None, out: str | None = None, splits: tuple | None = None) -> str:
    """Writes `out` (default <run dir>/report.html) for `run` (a `Run`) and returns its path.
    `test`: labelled data to report on instead of the run's --test-file (a path or any shape
    `Run.evaluate` takes); without either, the sections that need held-out data use dev (the page
    says so). `splits`: (train, dev, test) `Examples` already read (training passes its own);
    otherwise the run's files are read again, dev held out as in training."""
    from .run import _read, load_data

    if splits is not None:
        train, dev, test_ex = splits
    else:
        # A copy that load_data may fill in: the run's own config is frozen when train() returns it.
        cfg = RunConfig.from_dict(json.loads(run.config.to_json()))
        if test is not None:
            cfg.data.test_file = None
        train, dev, test_ex, _ = load_data(cfg)
    if test is not None:
        test_ex = examples_from(test, "test", read=lambda path: _read(path, run.config))
        run.hierarchy.labels.check(test_ex, fix="the model cannot score labels it was not trained on: remove them")
    html = _Page(run, train, dev, test_ex).render()
    out = os.fspath(out or os.path.join(run.dir, REPORT_NAME))
    write_text(out, html)  # atomic; missing parent folders are made
    return out


class _Page:
    """Scores the splits once and builds each section's figure and tables from them."""

    def __init__(self, run, train, dev, test):
        # The page is about the given labels; a hierarchy's parents show in the per-level table only.
        self.run, self.k = run, run.hierarchy.num_primary
        self.names = run.labels.names[:self.k]
        self.decodes = run.model.head.decodes_labels
        self.missing_glyphs: set = set()
        self.y_train = run.labels.multi_hot(train.labels)[:, :self.k]
        self.train_rows = len(train)
        self.order = np.argsort(-self.y_train.sum(0), kind="stable")  # labels by training frequency
        self.dev = self._score(dev)
        self.test = self._score(test) if test is not None else None
        keep = np.arange(len(train))
        if len(train) > MAX_TRAIN_ROWS:
            keep = np.sort(np.random.default_rng(0).choice(len(train), MAX_TRAIN_ROWS, replace=False))
        self.train = self._score(train.subset(keep))
        self.token_counts = token_counts(run.preprocessor, self.train["examples"].texts)

    def _score(self, ex) -> dict:
        predicted, k = self.run.infer(ex.texts), self.k
        raw = predicted.get("uncalibrated_scores")
        full = {"y": self.run.hierarchy.multi_hot(ex.labels), "scores": predicted["scores"],
                "decisions": self.run.decisions(predicted)}  # [examples, outputs]: labels, then parents
        return {"examples": ex, **{key: v[:, :k] for key, v in full.items()}, "full": full,
                "raw": None if raw is None else raw[:, :k]}

    # -- the page ------------------------------------------------------------------------------
    def render(self) -> str:
        import jinja2
        import matplotlib
        from markupsafe import Markup

        _register_font()
        with matplotlib.rc_context({"font.family": FONT_FAMILY}):  # text properties are fixed when artists are made
            page = self._sections()
        page["missing_glyphs"] = "".join(sorted(self.missing_glyphs))
        if self.missing_glyphs:
            log.warning("report: no font here draws %s in the figures; install a font with them (e.g. Debian's "
                        "fonts-noto-cjk) and rebuild the report", page["missing_glyphs"])
        template = resources.files("classifier_multi_label").joinpath("report_template.html").read_text("utf-8")
        env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
        env.filters["f"] = lambda v, digits=4: "" if v is None else f"{v:.{digits}f}"
        template = env.from_string(template)
        html = template.render(font_face="", **page)  # first pass: which characters the page shows
        return template.render(font_face=Markup(_font_face({c for c in html if ord(c) >= FIRST_CJK})), **page)

    def _sections(self) -> dict:
        evaluated = self.test or self.dev
        return dict(run=self._summary(evaluated), curves=self._curves(), labels=self._labels(evaluated),
                    pr=self._precision_recall(), reliability=self._reliability(evaluated),
                    cooccurrence=self._cooccurrence(evaluated), confused=self._confused(evaluated),
                    losses=self._largest_losses(evaluated), explained=self._explained(evaluated),
                    label_errors=self._label_errors(),
                    lengths=self._lengths(), data_check=self._data_check(),
                    evaluated="test" if self.test else "dev", max_bar_labels=MAX_BAR_LABELS)

    def _summary(self, evaluated) -> dict:
        run, cfg = self.run, self.run.config
        baseline = _read_json(os.path.join(run.dir, "baseline_metrics.json")) or {}
        return {"dir": os.path.abspath(run.dir), "package": cfg.package, "head": cfg.head_name,
                "encoder": cfg.encoder.encoder or "trained from scratch", "labels": len(self.names),
                "train_rows": self.train_rows, "dev_rows": len(self.dev["y"]),
                "test_rows": len(self.test["y"]) if self.test else None, "max_seq_length": cfg.data.max_seq_length,
                "metrics": self._metrics(evaluated), "verdict": baseline.get("verdict"), "decodes": self.decodes,
                "calibration": None if run.calibration is None else run.calibration.method,
                "threshold_objective": cfg.thresholds.threshold_objective}

    def _metrics(self, split) -> dict:
        thresholds = None if self.run.thresholds is None else self.run.thresholds.values
        full = split["full"]
        return self.run.hierarchy.metrics(full["y"], full["scores"], full["decisions"], thresholds)

    # -- sections ------------------------------------------------------------------------------
    def _curves(self) -> dict | None:
        history = _read_json(os.path.join(self.run.dir, "history.json"))
        if not history:
            return None
        epochs = [h["epoch"] for h in history]
        panels = 3 if any("learning_rate" in h for h in history) else 2
        fig, axes = _figure(1, panels, (4.2 * panels, 3.2))
        axes[0].plot(epochs, [h["train_loss"] for h in history], marker="o")
        axes[0].set(title="training loss", xlabel="epoch")
        for key, name in (("dev_micro_f1_tuned", "micro-F1 (best global threshold)"),
                          ("dev_macro_f1", "macro-F1 (0.5)"), ("dev_selection_f1", "selection F1")):
            if any(key in h for h in history):
                axes[1].plot(epochs, [h.get(key, np.nan) for h in history], marker="o", label=name)
        best = [h["epoch"] for h in history if h.get("best")]
        if best:
            axes[1].axvline(best[-1], color="grey", linestyle=":", label=f"best epoch ({best[-1]})")
        axes[1].set(title="dev", xlabel="epoch", ylim=(0, 1))
        axes[1].legend(fontsize=8)
        if panels == 3:
            axes[2].plot(epochs, [h.get("learning_rate", np.nan) for h in history], marker="o")
            axes[2].set(title="learning rate (end of epoch)", xlabel="epoch")
        return {"image": self._png(fig), "epochs": len(history)}

    def _labels(self, evaluated) -> dict:
        per_label = self._metrics(evaluated)["per_label"]
        freq = self.y_train.sum(0)
        rows = [dict(per_label[i], train=int(freq[i]), threshold=per_label[i].get("threshold")) for i in self.order]
        if len(self.names) <= MAX_BAR_LABELS:
            fig, (ax,) = _figure(1, 1, (7.5, 1.2 + 0.28 * len(self.names)))
            pos = np.arange(len(self.order))
            for key, shift in (("precision", -0.27), ("recall", 0.0), ("f1", 0.27)):
                ax.barh(pos + shift, [per_label[i][key] for i in self.order], height=0.27, label=key)
            ax.set_yticks(pos, [self._label(i) for i in self.order])
            ax.invert_yaxis()
            ax.set(xlim=(0, 1), title="per label, most frequent in training first")
            ax.legend(fontsize=8, loc="lower right")
        else:
            fig, (ax,) = _figure(1, 1, (7.5, 4.5))
            ax.scatter(np.maximum(freq[self.order], 1), [per_label[i]["f1"] for i in self.order], s=10)
            ax.set(xscale="log", xlabel="training rows with the label", ylabel="F1", ylim=(-0.02, 1.02),
                   title=f"F1 of each of the {len(self.names)} labels against its training frequency")
        return {"image": self._png(fig), "rows": rows, "no_prediction": sum(r["predicted"] == 0 for r in rows),
                "scatter": len(self.names) > MAX_BAR_LABELS}

    def _precision_recall(self) -> dict | None:
        from sklearn.metrics import average_precision_score, precision_recall_curve

        y, scores = self.dev["y"], self.dev["scores"]
        present = [i for i in range(len(self.names)) if y[:, i].any()]
        if not present:
            return None
        ap = {i: average_precision_score(y[:, i], scores[:, i]) for i in present}
        frequent = [i for i in self.order if i in ap][: MAX_PR_PANELS // 2]
        weakest = [i for i in sorted(ap, key=ap.get) if i not in frequent][: MAX_PR_PANELS - len(frequent)]
        shown = frequent + weakest
        cols = min(4, len(shown))
        fig, axes = _figure(-(-len(shown) // cols), cols, (3.1 * cols, 2.7 * -(-len(shown) // cols)))
        thresholds = None if self.run.thresholds is None else self.run.thresholds.values
        for ax, i in zip(axes, shown):
            precision, recall, _ = precision_recall_curve(y[:, i], scores[:, i])
            ax.plot(recall, precision)
            if thresholds is not None:  # where the label's threshold sits on dev (decisions are scores >= it)
                chosen = scores[:, i] >= thresholds[i]
                tp = float(np.sum(chosen & (y[:, i] == 1)))
                ax.plot(tp / y[:, i].sum(), tp / max(chosen.sum(), 1), "o", color="crimson",
                        label=f"threshold {thresholds[i]:.2f}")
                ax.legend(fontsize=7, loc="lower left")
            ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
            ax.set_title(f"{self._label(i)}  (AP {ap[i]:.2f}, {int(y[:, i].sum())} dev)", fontsize=9)
        for ax in axes[len(shown):]:
            ax.set_axis_off()
        return {"image": self._png(fig), "shown": len(shown), "present": len(present),
                "absent": len(self.names) - len(present)}

    def _reliability(self, split) -> dict:
        y = split["y"].ravel()
        curves = [("as trained", split["raw"]), ("calibrated", split["scores"])] if split["raw"] is not None \
            else [("scores", split["scores"])]
        fig, (ax,) = _figure(1, 1, (4.6, 4.2))
        ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
        edges, eces = np.linspace(0, 1, ECE_BINS + 1), []
        for name, scores in curves:
            s = np.asarray(scores, np.float64).ravel()
            which = np.clip(np.digitize(s, edges[1:-1]), 0, ECE_BINS - 1)  # the bins of the ECE
            filled = [b for b in range(ECE_BINS) if np.any(which == b)]
            ece = expected_calibration_error(split["y"], scores)
            eces.append({"name": name, "ece": ece})
            ax.plot([s[which == b].mean() for b in filled], [y[which == b].mean() for b in filled], marker="o",
                    label=f"{name} (ECE {ece:.4f})")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean score in the bin", ylabel="fraction of positives",
               title=f"reliability ({ECE_BINS} bins, every label)")
        ax.legend(fontsize=8, loc="upper left")
        return {"image": self._png(fig), "eces": eces}

    def _cooccurrence(self, split) -> dict | None:
        shown = list(self.order[:MAX_HEATMAP_LABELS])
        if len(shown) < 2:
            return None
        fig, axes = _figure(1, 2, (12, 5.8))
        names = [self._label(i) for i in shown]
        for ax, (y, title) in zip(axes, ((self.y_train, "training labels"),
                                         (split["decisions"], "the model's predictions"))):
            y = np.asarray(y, np.float64)[:, shown]
            counts = y.T @ y  # [shown, shown]: texts with both labels
            conditional = counts / np.maximum(np.diag(counts)[:, None], 1)  # P(column | row)
            np.fill_diagonal(conditional, np.nan)
            image = ax.imshow(conditional, vmin=0, vmax=max(float(np.nanmax(conditional)), 1e-9), cmap="viridis")
            ax.set_xticks(range(len(shown)), names, rotation=90, fontsize=7)
            ax.set_yticks(range(len(shown)), names, fontsize=7)
            ax.set_title(f"P(column | row): {title}", fontsize=10)
            fig.colorbar(image, ax=ax, fraction=0.046)
        return {"image": self._png(fig), "shown": len(shown)}

    def _confused(self, split) -> list:
        """Label pairs (a, b): a false positive of a on a text whose true labels include b."""
        y, d = split["y"].astype(np.int64), split["decisions"].astype(np.int64)
        false_pos = d * (1 - y)  # [texts, labels]
        pairs = false_pos.T @ y  # [labels, labels]: a predicted wrongly where b is true
        per_label = np.maximum(false_pos.sum(0), 1)
        out = [{"predicted": self.names[a], "true": self.names[b], "count": int(pairs[a, b]),
                "share": pairs[a, b] / per_label[a]} for a, b in zip(*np.nonzero(pairs))]
        no_label = false_pos[y.sum(1) == 0].sum(0)  # false positives on texts without any label
        out += [{"predicted": self.names[a], "true": "(no label)", "count": int(no_label[a]),
                 "share": no_label[a] / per_label[a]} for a in np.flatnonzero(no_label)]
        return sorted(out, key=lambda r: -r["count"])[:LISTED]

    def _largest_losses(self, split) -> list:
        loss = _loss(split)
        return [self._row(split, i, loss=float(loss[i])) for i in np.argsort(-loss, kind="stable")[:LISTED]]

    def _explained(self, split) -> dict:
        """Highlighted texts: integrated-gradients attributions (explain.py) of the labels of a seeded
        sample of texts predicted exactly right, and of the texts with the largest loss (their
        predicted labels and the labels they missed)."""
        from .errors import UserError
        from .explain import check_supported

        try:
            check_supported(self.run.model.head, self.run.config.head_name)
        except UserError as e:  # a head that decodes label sets: say why there is no section
            return {"unsupported": str(e), "rows": []}
        y, d = split["y"], split["decisions"]
        exact = np.flatnonzero((y == d).all(1) & (y.sum(1) > 0))
        correct = np.random.default_rng(0).choice(exact, min(EXPLAINED, len(exact)), replace=False)
        wrong = [i for i in np.argsort(-_loss(split), kind="stable") if (y[i] != d[i]).any()][:EXPLAINED]
        rows = []
        for kind, indices in (("correct", sorted(correct)), ("error", wrong)):
            for i in indices:
                text = split["examples"].texts[i]
                chosen = sorted(set(np.flatnonzero(d[i])) | set(np.flatnonzero(y[i])),
                                key=lambda j: -split["scores"][i][j])[:EXPLAINED_LABELS]
                if not chosen:
                    continue
                [explained] = self.run.explain([text], labels=[self.names[j] for j in chosen])
                for j, label in zip(chosen, explained["labels"]):
                    verdict = "correct" if y[i][j] and d[i][j] else ("missed" if y[i][j] else "false positive")
                    rows.append({"kind": kind, "line": split["examples"].lines[i], "label": label["label"],
                                 "score": label["score"], "verdict": verdict,
                                 "segments": _highlight(text, label["spans"])})
        return {"unsupported": None, "rows": rows}

    def _label_errors(self) -> list:
        """Training rows whose given labels the model most doubts: quality = min over labels of the
        score of the given value (p where the label is given, 1 - p where it is not)."""
        split = self.train
        p = np.asarray(split["scores"], np.float64)
        quality = np.where(split["y"] == 1, p, 1 - p).min(1)  # [rows]
        return [self._row(split, i, quality=float(quality[i]))
                for i in np.argsort(quality, kind="stable")[:LISTED] if quality[i] < 0.5]

    def _row(self, split, i, **extra) -> dict:
        ex, scores = split["examples"], split["scores"][i]
        given, predicted = set(np.flatnonzero(split["y"][i])), set(np.flatnonzero(split["decisions"][i]))

        def named(idx):  # labels with their scores, best first
            return [{"label": self.names[j], "score": float(scores[j])} for j in sorted(idx, key=lambda j: -scores[j])]

        return dict(extra, line=ex.lines[i], text=ex.texts[i][:300], given=named(given),
                    missed=named(given - predicted), extra=named(predicted - given))

    def _lengths(self) -> dict:
        counts, limit = self.token_counts, self.run.config.data.max_seq_length
        fig, (ax,) = _figure(1, 1, (6, 3))
        ax.hist(counts, bins=min(60, max(10, int(counts.max()) - int(counts.min()) + 1)), color="steelblue")
        ax.axvline(limit, color="crimson", linestyle="--", label=f"--max-seq-length {limit}")
        ax.set(xlabel="tokens per training text ([CLS] and [SEP] included)", ylabel="texts")
        ax.legend(fontsize=8)
        return {"image": self._png(fig), "cut": int(np.sum(counts > limit)), "texts": len(counts),
                "max": int(counts.max()), "p99": int(np.percentile(counts, 99))}

    def _data_check(self) -> dict | None:
        from .data_check import problems, summary

        report = _read_json(os.path.join(self.run.dir, "data_check.json"))
        return None if report is None else {"summary": summary(report), "problems": problems(report)}

    # -- drawing -------------------------------------------------------------------------------
    def _label(self, i) -> str:
        return self.names[i] if len(self.names[i]) <= 24 else self.names[i][:23] + "…"

    def _png(self, fig) -> str:
        buf = io.BytesIO()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig.savefig(buf, format="png", dpi=90)
        for w in caught:  # "Glyph 22825 (\N{CJK UNIFIED IDEOGRAPH-5929}) missing from font(s) ..."
            words = str(w.message).split()
            if "missing" in words and len(words) > 1 and words[1].isdigit():
                self.missing_glyphs.add(chr(int(words[1])))
        return base64.b64encode(buf.getvalue()).decode("ascii")


def _loss(split) -> np.ndarray:
    """Binary cross-entropy of each text's scores, summed over the labels: [texts]."""
    p = np.clip(np.asarray(split["scores"], np.float64), 1e-7, 1 - 1e-7)
    return -(split["y"] * np.log(p) + (1 - split["y"]) * np.log(1 - p)).sum(1)


def _highlight(text: str, spans: list) -> list:
    """[{"text", "attribution", "style"}] covering `text` in order: each span coloured by its share of
    the label's largest |attribution| (red: for the label, blue: against), the text between spans
    plain."""
    scale = max((abs(s["attribution"]) for s in spans), default=0.0) or 1.0
    out, pos = [], 0
    for s in sorted(spans, key=lambda s: s["start"]):
        if s["start"] < pos:
            continue
        if s["start"] > pos:
            out.append({"text": text[pos:s["start"]], "attribution": None, "style": ""})
        share = s["attribution"] / scale
        rgb = "220, 40, 40" if share > 0 else "40, 90, 220"
        out.append({"text": s["span"], "attribution": s["attribution"],
                    "style": f"background: rgba({rgb}, {abs(share):.2f})"})
        pos = s["end"]
    if pos < len(text):
        out.append({"text": text[pos:], "attribution": None, "style": ""})
    return out


def _figure(rows, cols, size):
    """A matplotlib Figure (no pyplot: no global state, no GUI backend) and its axes, flattened."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False).ravel()


def _font_path() -> str:
    return str(resources.files("classifier_multi_label") / "fonts" / "ReportSansSC-Regular.otf")


def _register_font():
    from matplotlib import font_manager

    if _font_path() not in {f.fname for f in font_manager.fontManager.ttflist}:
        font_manager.fontManager.addfont(_font_path())


def _font_face(chars: set) -> str:
    """An @font-face rule with the bundled font cut down to `chars` (a few kB to a few hundred),
    inline; empty when the page has no CJK text."""
    if not chars:
        return ""
    from fontTools import subset
    from fontTools.ttLib import TTFont

    options = subset.Options()
    options.layout_features, options.hinting, options.name_IDs, options.notdef_outline = [], False, [1, 2], True
    font = TTFont(_font_path())
    subsetter = subset.Subsetter(options)
    subsetter.populate(unicodes={ord(c) for c in chars})
    quiet, level = logging.getLogger("fontTools"), logging.getLogger("fontTools").level
    quiet.setLevel(logging.WARNING)  # it logs every table it prunes at INFO
    try:
        subsetter.subset(font)
    finally:
        quiet.setLevel(level)
    buf = io.BytesIO()
    font.save(buf)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'@font-face {{ font-family: "{FONT}"; src: url(data:font/otf;base64,{data}) format("opentype"); }}'


def _read_json(path):
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
