"""Why this label: integrated gradients (Sundararajan et al., 2017) on the token embeddings.

For a text x and a label c, with the logit F_c (the head's per-label log-odds) as a function of
the token embeddings e, and a baseline x' whose content tokens are all [PAD] (or [MASK]) while
[CLS], [SEP], positions and the attention mask stay as they are:

    attribution_t = sum over the embedding axis of (e_t - e'_t) * mean_k dF_c/de_t (e' + a_k (e - e'))

with a_k = (k + 1/2) / steps, k = 0..steps-1 (the midpoint rule), all `steps` interpolations run as
one batch. Completeness: the attributions of a label sum to F_c(x) - F_c(x'), up to the error of
the Riemann sum; `explain` reports that error per label. Attributions of word pieces are summed
into their word and mapped back to the original string as (start, end) character offsets, so a
span can be highlighted in the text as the user wrote it. Texts longer than the run's sequence
length are attributed over the tokens the model sees.

The scores beside the attributions are the run's (calibrated) probabilities; the attributions are
of the model's logit: calibration rescales a label's logit (temperature: by a constant), which
scales its attributions and leaves their order unchanged.

Heads that decode label sets (seq2seq) or predict over several passes (LM-MTC's top-p decoding)
have no single per-label logit of the input: `explain` refuses them, naming the head.

Example:
    >>> from classifier_multi_label import load_run
    >>> run = load_run(demo_run_dir)
    >>> [row] = run.explain(["制热很快，声音也小"], labels=["制热"], steps=16)
    >>> label = row["labels"][0]
    >>> label["label"], abs(sum(s["attribution"] for s in label["spans"]) - label["logit_difference"]) < 0.05
    ('制热', True)
    >>> [(s["span"], s["start"]) for s in label["spans"]][:3]
    [('制', 0), ('热', 1), ('很', 2)]
"""

from __future__ import annotations

import unicodedata

import keras
import numpy as np
import tensorflow as tf

from .config import IG_BASELINES, IG_STEPS
from .errors import UserError
from .head import Head
from .pipeline import traced

DEFAULT_STEPS = IG_STEPS
BASELINES = IG_BASELINES


class IntegratedGradients:
    """The in-graph part of integrated gradients for a model and its preprocessor: what `Explainer`
    runs per text and the export's `explain` signature runs per row of a batch (so the two agree)."""

    def __init__(self, model, preprocessor, steps: int = DEFAULT_STEPS, baseline: str = "pad"):
        if baseline not in BASELINES:
            raise UserError(f"--ig-baseline {baseline!r}: use {' or '.join(BASELINES)}")
        if int(steps) < 1:
            raise UserError(f"--ig-steps {steps}: give at least 1 interpolation step")
        self.head, self.steps = model.head, int(steps)
        backbone = model.backbone
        self.embed = backbone.get_layer("token_embedding")
        # The backbone from its token embeddings on: the same layers and weights, one input earlier.
        self.from_embeddings = keras.Model([self.embed.output, backbone.input["segment_ids"],
                                            backbone.input["padding_mask"]], backbone.output)
        self.special = (preprocessor.cls_id, preprocessor.sep_id, preprocessor.pad_id)
        self.baseline_id = preprocessor.pad_id if baseline == "pad" else \
            int(preprocessor.tokenizer.token_to_id("[MASK]"))

    def is_special(self, token_ids):
        """Whether each token is [CLS], [SEP] or padding (never attributed), any shape."""
        return tf.reduce_any(tf.stack([tf.equal(token_ids, i) for i in self.special]), axis=0)

    def baseline_ids(self, token_ids):
        """`token_ids` with every content token replaced by the baseline token, any shape."""
        return tf.where(self.is_special(token_ids), token_ids, tf.cast(self.baseline_id, token_ids.dtype))

    def __call__(self, token_ids, segment_ids, padding_mask, labels):
        """(attributions [k, length], logit differences [k]) of one text ([1, length] inputs) for the
        label indices `labels` [k]."""
        steps = self.steps
        e = tf.cast(self.embed(token_ids), tf.float32)  # [1, length, dim]
        e0 = tf.cast(self.embed(self.baseline_ids(token_ids)), tf.float32)
        alphas = (tf.range(steps, dtype=tf.float32) + 0.5) / steps  # [steps]
        path = e0 + alphas[:, None, None] * (e - e0)  # [steps, length, dim]
        ends = tf.concat([e, e0], axis=0)  # [2, length, dim]: the text and its baseline

        def logits(embeddings):  # [n, length, dim] -> [n, labels]
            n = tf.shape(embeddings)[0]
            seg, mask = tf.repeat(segment_ids, n, axis=0), tf.repeat(padding_mask, n, axis=0)
            outputs = self.from_embeddings([tf.cast(embeddings, self.embed.compute_dtype), seg, mask], training=False)
            return tf.cast(self.head.logits(self.head(outputs, mask, training=False)), tf.float32)

        # One pass for all k labels: the path repeated k times, block j scored on label j; rows are
        # independent (nothing mixes the texts of a batch at inference), so one gradient of the sum
        # gives every row's own gradient.
        k = tf.shape(labels)[0]
        tiled = tf.tile(path, [k, 1, 1])  # [k * steps, length, dim]
        with tf.GradientTape() as tape:
            tape.watch(tiled)
            rows = tf.stack([tf.range(k * steps), tf.repeat(labels, steps)], axis=1)  # [k * steps, 2]
            total = tf.reduce_sum(tf.gather_nd(logits(tiled), rows))
        grads = tf.reshape(tape.gradient(total, tiled), tf.concat([[k, steps], tf.shape(path)[1:]], 0))
        mean_grad = tf.reduce_mean(grads, axis=1)  # [k, length, dim]
        attributions = tf.reduce_sum(mean_grad * (e - e0), axis=-1)  # [k, length]
        end_logits = tf.gather(logits(ends), labels, axis=1)  # [2, k]
        return attributions, end_logits[0] - end_logits[1]

    def batch(self, inputs, chosen):
        """(attributions [batch, num_labels, length], logit differences [batch, num_labels]) of the
        labels marked in `chosen` ([batch, num_labels], nonzero: explain), zero elsewhere. Texts run
        one after another (each text's k labels x steps rows in one pass), which bounds the memory
        to one text's worth."""
        num_labels = tf.shape(chosen)[1]

        def one(row):
            ids, seg, mask, marked = row  # [length] x 3, [num_labels]
            labels = tf.cast(tf.where(marked > 0)[:, 0], tf.int32)  # [k]
            length = tf.shape(ids)[0]
            # A text with no label to explain skips the model: a batch of zero rows through the
            # convolutions once failed in oneDNN on an AVX-512 CPU ("[8] vs. [0,32,16]" at BiasAdd).
            attributions, differences = tf.cond(
                tf.size(labels) > 0, lambda: self(ids[None], seg[None], mask[None], labels),
                lambda: (tf.zeros(tf.stack([0, length])), tf.zeros([0])))
            return (tf.scatter_nd(labels[:, None], attributions, tf.stack([num_labels, length])),
                    tf.scatter_nd(labels[:, None], differences, num_labels[None]))

        ids, seg, mask = (tf.cast(inputs[n], tf.int32) for n in ("token_ids", "segment_ids", "padding_mask"))
        return tf.map_fn(one, (ids, seg, mask, chosen), fn_output_signature=(
            tf.TensorSpec([None, None], tf.float32), tf.TensorSpec([None], tf.float32)))


class Explainer:
    """Integrated gradients for a `Run`'s model: `explain(texts, labels)` -> rows as `Run.explain`."""

    def __init__(self, run, steps: int = DEFAULT_STEPS, baseline: str = "pad"):
        check_supported(run.model.head, run.config.head_name)
        self.run = run
        self.ig = IntegratedGradients(run.model, run.preprocessor, steps, baseline)
        pre = run.preprocessor
        self.special = set(self.ig.special)
        self.vocab = pre.tokenizer.get_vocabulary()
        self.tokenize = traced(pre)
        ids = tf.TensorSpec([1, None], tf.int32)
        self._ig = tf.function(self.ig,  # traced once: any length, any number of labels
                               input_signature=[ids, ids, ids, tf.TensorSpec([None], tf.int32)])

    def explain(self, texts, labels=None) -> list:
        """Per text: {"text", "labels": [{"label", "score", "logit_difference", "completeness_error",
        "spans": [{"span", "start", "end", "attribution"}]}]}, for `labels` (names, the same for every
        text) or, by default, each text's predicted labels."""
        run = self.run
        texts = [str(t) for t in texts]
        if labels is not None:
            unknown = [name for name in labels if name not in run.labels.names]
            if unknown:
                raise UserError(f"explain: unknown labels {unknown}; the run's labels are in {run.dir}/labels.txt")
            wanted = [[run.labels.names.index(name) for name in labels]] * len(texts)
        predicted = run.infer(texts)
        if labels is None:
            decisions = run.decisions(predicted)
            wanted = [sorted(np.flatnonzero(row), key=lambda i, r=r: -r[i]) for row, r in
                      zip(decisions, predicted["scores"])]
        rows = []
        for text, chosen, scores in zip(texts, wanted, predicted["scores"]):
            x = self.tokenize(tf.constant([text]))
            ids = x["token_ids"].numpy()[0]
            length = int(x["padding_mask"].numpy()[0].sum())
            out = {"text": text, "labels": []}
            if chosen:
                inputs = [tf.cast(x[n], tf.int32) for n in ("token_ids", "segment_ids", "padding_mask")]
                attributions, difference = self._ig(*inputs, tf.constant(chosen, tf.int32))
                attributions, difference = attributions.numpy()[:, :length], difference.numpy()
                spans = self.spans(text, ids[:length])
                for k, c in enumerate(chosen):
                    listed = [{"span": text[s:e], "start": s, "end": e,
                               "attribution": float(sum(attributions[k][t] for t in tokens))}
                              for (s, e), tokens in spans]
                    total = float(attributions[k].sum())
                    out["labels"].append({"label": run.labels.names[c], "score": float(scores[c]),
                                          "logit_difference": float(difference[k]),
                                          "completeness_error": abs(total - float(difference[k])),
                                          "spans": listed})
            rows.append(out)
        return rows

    def spans(self, text: str, ids) -> list:
        """`token_spans` of the content tokens `ids` (specials left out) in `text`."""
        positions = [t for t, i in enumerate(ids) if int(i) not in self.special]
        found = token_spans(text, [self.vocab[int(ids[t])] for t in positions],
                            **span_options(self.run.preprocessor.tokenizer))
        return [(span, [positions[t] for t in tokens]) for span, tokens in found]


def span_options(tokenizer) -> dict:
    """`token_spans`' keyword arguments for a keras-hub WordPiece (or SentencePiece) tokenizer."""
    lowercase = bool(getattr(tokenizer, "lowercase", True))
    return {"lowercase": lowercase, "strip_accents": bool(getattr(tokenizer, "strip_accents", lowercase)),
            "suffix": getattr(tokenizer, "suffix_indicator", "##"), "unk": getattr(tokenizer, "oov_token", "[UNK]")}


def served_rows(texts, outputs: dict, info: dict) -> list:
    """`Run.explain`'s rows (predicted labels) from the outputs of an export's `explain` signature
    (numpy arrays or lists, as TF Serving's REST API or `tf.saved_model.load` give them) and the
    export's assets.extra/export.json (`info`), so a served model's attributions read as local ones."""
    options = {k: info["explain"][k] for k in ("lowercase", "strip_accents", "suffix", "unk")}
    names = list(info["labels"])
    rows = []
    for n, text in enumerate(texts):
        tokens = [t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in outputs["tokens"][n]]
        positions = [t for t, token in enumerate(tokens) if token]
        spans = token_spans(text, [tokens[t] for t in positions], **options)
        attributions = np.asarray(outputs["attributions"][n], dtype=np.float64)  # [num_labels, length]
        scores = np.asarray(outputs["scores"][n], dtype=np.float64)
        chosen = sorted(np.flatnonzero(np.asarray(outputs["decisions"][n])), key=lambda c: -scores[c])
        labels = []
        for c in chosen:
            difference = float(outputs["logit_difference"][n][c])
            listed = [{"span": text[s:e], "start": s, "end": e,
                       "attribution": float(sum(attributions[c][positions[t]] for t in toks))}
                      for (s, e), toks in spans]
            labels.append({"label": names[c], "score": float(scores[c]), "logit_difference": difference,
                           "completeness_error": abs(float(attributions[c].sum()) - difference), "spans": listed})
        rows.append({"text": text, "labels": labels})
    return rows


def check_supported(head, name: str):
    """A UserError unless `head` gives its prediction from one pass's per-label logits."""
    if head.decodes_labels or type(head).predict is not Head.predict:
        raise UserError(f"explain: the {name} head decodes its labels over several passes, so no single logit per "
                        "label gives its prediction; explain supports the heads scored in one pass (sigmoid, "
                        "textcnn, denses, prototype_contrastive)")


def _normalised(text: str, lowercase: bool, strip_accents: bool) -> tuple:
    """(the text normalised as a WordPiece tokenizer does before splitting, each of its characters'
    index in `text`)."""
    chars, where = [], []
    for i, ch in enumerate(text):
        # tensorflow-text's case folding is NFKC_Casefold (full-width "，" -> ","); per character here
        norm = unicodedata.normalize("NFKC", ch).casefold() if lowercase else ch
        if strip_accents:
            norm = "".join(c for c in unicodedata.normalize("NFD", norm) if unicodedata.category(c) != "Mn")
        chars.extend(norm)
        where.extend([i] * len(norm))
    return "".join(chars), where


def _separates(ch: str) -> bool:
    """Whether `ch` ends a word for a WordPiece tokenizer's basic split (space, punctuation, hanzi)."""
    return ch.isspace() or unicodedata.category(ch).startswith("P") or "\u4e00" <= ch <= "\u9fff" or \
        "\u3400" <= ch <= "\u4dbf" or "\uf900" <= ch <= "\ufaff"


def token_spans(text: str, tokens: list, lowercase: bool = True, strip_accents: bool = True,
                suffix: str = "##", unk: str = "[UNK]") -> list:
    """[((start, end), [token indices])]: the words of `text` that WordPiece `tokens` came from, a
    word's pieces merged. Each token's text (its `suffix` removed) is found in order in the text
    normalised as the tokenizer does (NFKC case folding, accents); an unknown token takes the next
    word (up to a space, punctuation or a hanzi); a token not found there (a normalisation not
    modelled here) takes the next character, so every token's attribution lands on some span.

    Example:
        >>> token_spans("Nice heater, très 好", ["nice", "heat", "##er", ",", "tres", "好"])
        [((0, 4), [0]), ((5, 11), [1, 2]), ((11, 12), [3]), ((13, 17), [4]), ((18, 19), [5])]
        >>> token_spans("好看 qwzx 的", ["好", "看", "[UNK]", "的"])[2]
        ((3, 7), [2])
    """
    stream, where = _normalised(text, lowercase, strip_accents)
    found, pos = [], 0  # (token index, start, end, continues the word before) in `stream`
    for n, token in enumerate(tokens):
        piece = token[len(suffix):] if token.startswith(suffix) else token
        if token == unk:  # one whole word the vocabulary cannot spell: up to a space, punctuation or hanzi
            while pos < len(stream) and stream[pos].isspace():
                pos += 1
            end = pos + 1
            while end < len(stream) and not _separates(stream[end]):
                end += 1
            if pos < len(stream):
                found.append((n, pos, end, False))
            pos = end
            continue
        start = stream.find(piece, pos)
        if start < 0:  # a normalisation not modelled here: the token takes the next character
            while pos < len(stream) and stream[pos].isspace():
                pos += 1
            if pos < len(stream):
                found.append((n, pos, pos + 1, False))
            pos += 1
            continue
        found.append((n, start, start + len(piece), token.startswith(suffix)))
        pos = start + len(piece)
    words = []
    for n, start, end, continues in found:
        if start >= len(stream):
            continue
        if continues and words and words[-1][1] == start:
            words[-1] = (words[-1][0], end, words[-1][2] + [n])
        else:
            words.append((start, end, [n]))
    return [((where[s], where[e - 1] + 1), tokens) for s, e, tokens in words]
