"""Text -> token ids, inside the graph: keras-hub tokenizers plus `[CLS] ... [SEP]` packing.

`TextPreprocessor` is one Keras layer used in three places: the `tf.data` pipeline, the model's
exported serving function and `predict`, so training and serving tokenize identically.

Batches are padded dynamically: to the longest text in the batch, rounded up to a multiple of
`pad_to_multiple_of` (so a run sees a handful of shapes and compiled steps are reused) and capped
at `sequence_length`.

Example:
    >>> pre = TextPreprocessor.from_vocabulary(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "好"],
    ...                                        sequence_length=8, pad_to_multiple_of=4)
    >>> x = pre(tf.constant(["好好", ""]))
    >>> x["token_ids"].numpy().tolist()
    [[2, 5, 5, 3], [2, 3, 0, 0]]
"""

from __future__ import annotations

import logging
import os
import shutil

import keras
import keras_hub
import numpy as np
import tensorflow as tf

from .errors import UserError

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_CANDIDATES = {  # WordPiece spelling first, then SentencePiece spellings
    "cls": ("[CLS]", "<cls>", "<s>"),
    "sep": ("[SEP]", "<sep>", "</s>"),
    "pad": ("[PAD]", "<pad>"),
    "mask": ("[MASK]", "<mask>", "[mask]"),
}


def special_token_id(tokenizer, kind: str) -> int:
    """The id of the vocabulary's `kind` token (cls, sep, pad or mask), in either spelling."""
    vocab = set(tokenizer.get_vocabulary())
    for tok in _CANDIDATES[kind]:
        if tok in vocab:
            return int(tokenizer.token_to_id(tok))
    raise UserError(f"the vocabulary has no {kind} token (looked for {', '.join(_CANDIDATES[kind])})")


class TextPreprocessor(keras.layers.Layer):
    """Raw strings [batch] -> {"token_ids", "segment_ids", "padding_mask"}: [batch, length] int32."""

    def __init__(self, tokenizer, sequence_length: int, pad_to_multiple_of: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.tokenizer = tokenizer
        self.sequence_length = int(sequence_length)
        self.pad_to_multiple_of = int(pad_to_multiple_of)
        self.cls_id = special_token_id(tokenizer, "cls")
        self.sep_id = special_token_id(tokenizer, "sep")
        self.pad_id = special_token_id(tokenizer, "pad")
        self.packer = keras_hub.layers.StartEndPacker(
            sequence_length=self.sequence_length, start_value=self.cls_id, end_value=self.sep_id,
            pad_value=self.pad_id, return_padding_mask=True)
        self.built = True  # no weights of its own; export requires built layers

    @classmethod
    def from_vocabulary(cls, vocabulary, sequence_length: int, lowercase: bool = True, **kwargs):
        tokenizer = keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=vocabulary, lowercase=lowercase, strip_accents=lowercase, split_on_cjk=True,
            oov_token="[UNK]")
        return cls(tokenizer, sequence_length, **kwargs)

    @classmethod
    def from_file(cls, vocab_file: str, sequence_length: int, lowercase: bool = True, **kwargs):
        """`vocab.txt` (WordPiece, one token per line) or `*.model` (SentencePiece)."""
        if vocab_file.endswith(".model"):
            tokenizer = keras_hub.tokenizers.SentencePieceTokenizer(proto=vocab_file)
            return cls(tokenizer, sequence_length, **kwargs)
        with open(vocab_file, encoding="utf-8") as fh:
            vocabulary = [line.rstrip("\n") for line in fh if line.rstrip("\n")]
        return cls.from_vocabulary(vocabulary, sequence_length, lowercase=lowercase, **kwargs)

    def with_sequence_length(self, sequence_length: int) -> "TextPreprocessor":
        return TextPreprocessor(self.tokenizer, sequence_length, self.pad_to_multiple_of, name=self.name)

    def with_tokenizer(self, tokenizer) -> "TextPreprocessor":
        """The same packing over another tokenizer of the same vocabulary (the export's choice)."""
        return TextPreprocessor(tokenizer, self.sequence_length, self.pad_to_multiple_of, name=self.name)

    @property
    def vocabulary_size(self) -> int:
        return int(self.tokenizer.vocabulary_size())

    def save_vocabulary(self, run_dir: str, source_file: str | None = None) -> str:
        """Writes the vocabulary into the run folder; returns the file name written."""
        if isinstance(self.tokenizer, keras_hub.tokenizers.SentencePieceTokenizer):
            name = "spm.model"
            if source_file:
                shutil.copyfile(source_file, os.path.join(run_dir, name))
            else:
                with open(os.path.join(run_dir, name), "wb") as fh:
                    fh.write(self.tokenizer.proto)
            return name
        with open(os.path.join(run_dir, "vocab.txt"), "w", encoding="utf-8") as fh:
            fh.write("\n".join(self.tokenizer.get_vocabulary()) + "\n")
        return "vocab.txt"

    def call(self, texts):
        # texts: [batch] string. A NUL character splits words, as in eager mode: keras-hub's tokenizer
        # in a graph (tf.data, the train step) dropped the rest of the text after it, so training and
        # prediction saw "a" where the export saw "a b" for "a\x00b".
        texts = tf.strings.regex_replace(texts, "\\x00", " ")
        token_ids, padding_mask = self.packer(self.tokenizer(texts))  # [batch, sequence_length]
        # Dynamic padding: keep the longest row, rounded up to a multiple (few distinct shapes).
        longest = tf.reduce_max(tf.reduce_sum(tf.cast(padding_mask, tf.int32), axis=1))
        m = self.pad_to_multiple_of
        length = tf.minimum((tf.maximum(longest, 1) + m - 1) // m * m, self.sequence_length)
        token_ids = tf.cast(token_ids[:, :length], tf.int32)  # [batch, length]
        padding_mask = tf.cast(padding_mask[:, :length], tf.int32)
        return {"token_ids": token_ids, "segment_ids": tf.zeros_like(token_ids), "padding_mask": padding_mask}


# --max-seq-length by default: the shortest power of two in this range holding this share of the
# training texts. Padding is per batch (`TextPreprocessor.call`), so a length that suits the
# longest texts costs little on the short ones; powers of two keep the shapes few.
AUTO_LENGTH_COVERAGE, AUTO_LENGTH_RANGE, AUTO_LENGTH_SAMPLE = 0.99, (32, 512), 10_000


def fitting_length(pre: TextPreprocessor, texts, limit: int | None = None) -> tuple:
    """(sequence length, share of `texts` it holds whole): the shortest power of two in
    `AUTO_LENGTH_RANGE` (and at most `limit`, the encoder's positions) whose packing, [CLS] and
    [SEP] included, cuts at most 1% of `texts` (counted on a fixed sample of 10,000)."""
    texts = list(texts)
    if len(texts) > AUTO_LENGTH_SAMPLE:
        pick = np.random.default_rng(0).choice(len(texts), AUTO_LENGTH_SAMPLE, replace=False)
        texts = [texts[i] for i in pick]
    counts = token_counts(pre, texts)
    low, high = AUTO_LENGTH_RANGE
    high = min(high, limit or high)
    length = low
    while length < high and np.mean(counts <= length) < AUTO_LENGTH_COVERAGE:
        length *= 2
    length = min(length, high)
    return length, float(np.mean(counts <= length))


def in_graph(layer):
    """`layer` on texts [batch] as tf.data and the export run it: traced once, on keras-hub's TensorFlow
    path. Called eagerly, keras-hub 0.32 tokenizes in pure Python instead: not the kernels training
    uses, and about 100 times slower (24 s for a text of a million characters)."""
    return tf.function(layer, input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)


def token_counts(pre: TextPreprocessor, texts) -> np.ndarray:
    """[texts]: each text's length in tokens, [CLS] and [SEP] included, before any cut."""
    texts = list(texts)
    if not texts:
        return np.zeros(0, int)
    tokenize = in_graph(pre.tokenizer)
    return np.concatenate([_row_lengths(tokenize(tf.constant(texts[i:i + 1024])))
                           for i in range(0, len(texts), 1024)]) + 2


def _row_lengths(tokens) -> np.ndarray:
    # tokens: [batch, None] ragged, or [batch, length] where the tokenizer pads
    if isinstance(tokens, tf.RaggedTensor):
        return tokens.row_lengths().numpy()
    return np.full(int(tokens.shape[0]), int(tokens.shape[1]))


def build_vocabulary(texts, vocabulary_size: int, lowercase: bool = True) -> list:
    """A WordPiece vocabulary learned from `texts`; CJK characters are single tokens.

    Every character seen in training gets an entry (CJK characters are split one per token before
    WordPiece), so Chinese text has no [UNK] on characters seen in training.
    """
    data = tf.data.Dataset.from_tensor_slices(list(texts)).batch(1024)
    vocab = keras_hub.tokenizers.compute_word_piece_vocabulary(
        data, vocabulary_size=vocabulary_size, lowercase=lowercase, strip_accents=lowercase,
        split_on_cjk=True, reserved_tokens=SPECIAL_TOKENS)
    log.info("built a WordPiece vocabulary of %d tokens from %d training texts", len(vocab), len(texts))
    return list(vocab)
