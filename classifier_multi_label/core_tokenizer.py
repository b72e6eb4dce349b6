"""BERT WordPiece tokenization from core TensorFlow ops only, for exports any TF Serving build can run.

keras-hub's `WordPieceTokenizer` runs tensorflow-text kernels (`NormalizeUTF8`, `RegexSplitWithOffsets`,
`CaseFoldUTF8`, `FastWordpieceTokenizeWithOffsets`). A TF Serving binary that lacks one of them
refuses the model with "Op type not registered" (tensorflow/serving issues 2064, 1490).
`CoreWordPieceTokenizer` computes the same token ids with ops every TensorFlow build has
(`tf.strings`, `tf.lookup`, ragged ops, a `tf.while_loop`), step for step after keras-hub:

1. spaces around CJK characters (the same RE2 pattern);
2. accent stripping (NFD, drop `\\p{Mn}`): a per-character table, computed once with the very
   tensorflow-text kernels keras-hub uses, so it follows the same Unicode version;
3. splitting on whitespace and control characters, keeping punctuation and CJK characters as words
   (keras-hub's RE2 patterns, applied with `tf.strings.regex_replace`);
4. lower-casing (NFKC case folding): a second per-character table, same origin;
5. greedy longest-match-first WordPiece (`##` continuation) with a `tf.lookup` table; a word that
   cannot be covered, or is longer than 100 bytes, becomes `[UNK]`, as in `FastWordpieceTokenizer`.

The tables work per character, so the two can differ only where Unicode normalisation composes
characters across character boundaries (for example a Hangul syllable written as separate
conjoining jamo). `tests/test_core_tokenizer.py` checks equality on the demo data, on
`../shared/data/*` and on awkward strings; `export --tokenizer auto` checks it again on a probe
set before choosing this tokenizer.

Example:
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "好", "the", "qu", "##ick", "."]
    >>> tok = CoreWordPieceTokenizer(vocab, lowercase=True)
    >>> tok(tf.constant(["The quick.", "好！"])).to_list()
    [[6, 7, 8, 9], [5, 1]]
"""

from __future__ import annotations

import functools

import keras
import numpy as np
import tensorflow as tf
from keras_hub.src.tokenizers.word_piece_tokenizer import (
    CJK_REGEX,
    MAX_BYTES_PER_WORD,
    PUNCTUATION_AND_CJK_REGEX,
    WHITESPACE_REGEX,
)

# Awkward text the export checks the two tokenizers on before choosing this one.
PROBE_TEXTS = [
    "", " ", "\t\n\r", "制热很快，声音也小！（还不错）", "你好\u3000世界。", "Hello World, CAFÉ naïve résumé ÉCOLE",
    "straße ﬁne Ａｂｃ １２３ ①②", "İstanbul ΣΑΣ Ωμέγα Привет", "한국어 텍스트", "日本語のテキスト、カタカナ",
    "مرحبا بالعالم", "हिन्दी पाठ", "👍🏽 ok 👨\u200d👩\u200d👧 ❤\ufe0f", "e\u0301cole a\u200bb \ufeffbom \x00\x01\x7f",
    "unaffable don't stop-words #hashtag @user http://example.com/a?b=1", "a" * 100, "a" * 101, "é" * 60,
    "mixed中文English混合123text", "㈱会社 ㍿ 﨑 丽",
]

_SEP = "\x00"  # word separator while splitting; a control character, so never part of a word


@functools.lru_cache(maxsize=None)
def character_tables(strip_accents: bool, lowercase: bool):
    """{code point: replacement} for accent stripping and for case folding, computed by running
    tensorflow-text's own kernels on every Unicode scalar value (about 1.5 s, once per process)."""
    import tensorflow_text as tf_text  # only needed to build the tables, never to run them

    points = np.array([c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF], dtype=np.int64)
    chars = tf.strings.unicode_encode(tf.constant(points[:, None], tf.int32), "UTF-8")  # [n]
    original = chars.numpy()

    def changed(mapped):
        mapped = mapped.numpy()
        keep = mapped != original
        return dict(zip(points[keep].tolist(), [m.decode("utf-8") for m in mapped[keep]]))

    strip, fold = {}, {}
    if strip_accents:
        # NFC afterwards so that characters NFD merely decomposes (Hangul syllables) stay whole;
        # keras-hub's case folding (NFKC) recomposes them anyway.
        nfd = tf.strings.regex_replace(tf_text.normalize_utf8(chars, "NFD"), r"\p{Mn}", "")
        strip = changed(tf_text.normalize_utf8(nfd, "NFC"))
    if lowercase:
        fold = changed(tf_text.case_fold_utf8(chars))
        fold.pop(0, None)  # NUL is the separator below; NFKC case folding keeps it anyway
    return strip, fold


def _string_table(mapping: dict, name: str):
    keys = tf.constant(list(mapping) or [-1], tf.int64)
    values = tf.constant(list(mapping.values()) or [""], tf.string)
    return tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, values), default_value=_SEP,
                                     name=name)


def _map_characters(texts, table):
    """Replaces every character of `texts` [n] found in `table`; others stay as they are."""
    points = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")  # [n, (chars)] int32
    # On the flat characters: ragged element-wise ops build a far larger graph (slow to trace).
    chars = tf.strings.unicode_encode(points.flat_values[:, None], "UTF-8")  # [chars] string
    mapped = table.lookup(tf.cast(points.flat_values, tf.int64))  # [chars]; _SEP where absent
    return tf.strings.unsorted_segment_join(tf.where(mapped == _SEP, chars, mapped), points.value_rowids(),
                                            points.nrows())  # [n]


class CoreWordPieceTokenizer(keras.layers.Layer):
    """Strings [batch] -> token ids [batch, (tokens)] int32, equal to keras-hub's `WordPieceTokenizer`
    with `split_on_cjk=True`, `oov_token="[UNK]"`, `strip_accents=lowercase`."""

    def __init__(self, vocabulary, lowercase: bool = True, oov_token: str = "[UNK]", max_words: int | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = list(vocabulary)
        if oov_token not in self.vocabulary:
            raise ValueError(f"the vocabulary has no {oov_token!r} token")
        self.lowercase = bool(lowercase)
        self.oov_id = self.vocabulary.index(oov_token)
        # Only the first `max_words` words of a text can reach a packed sequence (each word gives at
        # least one token); the rest are dropped early so a 100,000-character text costs little.
        self.max_words = max_words
        self._ids = {t: i for i, t in enumerate(self.vocabulary)}
        self.vocab_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(self.vocabulary), tf.range(len(self.vocabulary))),
            default_value=-1, name="wordpiece_vocabulary")
        strip, fold = character_tables(self.lowercase, self.lowercase)
        self.strip_table = _string_table(strip, "strip_accents") if strip else None
        self.fold_table = _string_table(fold, "case_fold") if fold else None
        # The longest piece in characters bounds the candidates tried at each position.
        self.max_piece_chars = max(len(t[2:] if t.startswith("##") else t) for t in self.vocabulary)
        self.built = True

    @classmethod
    def from_keras_hub(cls, tokenizer, **kwargs):
        """The same tokenization as a keras-hub `WordPieceTokenizer` built by `TextPreprocessor`."""
        if tokenizer.lowercase != tokenizer.strip_accents or not tokenizer.split or not tokenizer.split_on_cjk \
                or tokenizer.suffix_indicator != "##":
            raise ValueError("the core tokenizer reproduces lowercase=strip_accents, split_on_cjk=True, '##' only")
        return cls(tokenizer.get_vocabulary(), lowercase=tokenizer.lowercase, oov_token=tokenizer.oov_token,
                   **kwargs)

    # The keras-hub tokenizer interface TextPreprocessor uses.
    def get_vocabulary(self):
        return list(self.vocabulary)

    def vocabulary_size(self):
        return len(self.vocabulary)

    def token_to_id(self, token):
        return self._ids[token]

    def words(self, texts):
        """Pre-tokenization: texts [batch] -> words [batch, (words)] string."""
        texts = tf.strings.regex_replace(texts, CJK_REGEX, r" \0 ")
        if self.strip_table is not None:
            texts = _map_characters(texts, self.strip_table)
        texts = tf.strings.regex_replace(texts, WHITESPACE_REGEX, _SEP)  # dropped delimiters
        texts = tf.strings.regex_replace(texts, PUNCTUATION_AND_CJK_REGEX, _SEP + r"\0" + _SEP)  # kept ones
        if self.fold_table is not None:
            texts = _map_characters(texts, self.fold_table)
        words = tf.strings.split(texts, sep=_SEP)  # [batch, (pieces)], with "" between separators
        words = tf.ragged.boolean_mask(words, words != "")  # [batch, (words)]
        if self.max_words is not None:
            words = words[:, : self.max_words]
        return words

    def wordpiece(self, words):
        """Greedy longest-match-first WordPiece: words [n] string -> ids [n, (pieces)] int32."""
        n = tf.shape(words)[0]
        num_bytes = tf.strings.length(words)  # [n]
        # Words over the byte limit become [UNK] whatever they hold: blank them so that a 100,000-
        # character word costs nothing below.
        too_long = num_bytes > MAX_BYTES_PER_WORD
        words, num_bytes = tf.where(too_long, "", words), tf.where(too_long, 0, num_bytes)
        _, starts = tf.strings.unicode_decode_with_offsets(words, "UTF-8", errors="replace")
        num_chars = tf.cast(starts.row_lengths(), tf.int32)  # [n]
        # bounds[w, i]: byte offset of character i of word w; num_bytes[w] from i = num_chars[w] on.
        starts = starts.to_tensor(default_value=-1)  # [n, max_chars]
        starts = tf.concat([starts, -tf.ones([n, 1], starts.dtype)], axis=1)  # [n, max_chars + 1]
        bounds = tf.where(starts < 0, tf.cast(num_bytes, starts.dtype)[:, None], starts)
        bounds = tf.cast(bounds, tf.int32)
        active0 = ~too_long & (num_chars > 0)

        def body(step, pos, active, failed, pieces):
            # Candidates: the next 1..k characters from each word's position.
            k = tf.minimum(self.max_piece_chars, tf.reduce_max(tf.where(active, num_chars - pos, 0)))
            k = tf.maximum(k, 1)
            ends = tf.minimum(pos[:, None] + tf.range(1, k + 1)[None, :], num_chars[:, None])  # [n, k]
            begin = tf.gather(bounds, pos, batch_dims=1)  # [n] byte offset
            end = tf.gather(bounds, ends, batch_dims=1)  # [n, k]
            candidates = tf.strings.substr(tf.tile(words[:, None], [1, k]),
                                           tf.tile(begin[:, None], [1, k]), end - begin[:, None])
            candidates = tf.where((pos > 0)[:, None], "##" + candidates, candidates)  # [n, k]
            ids = self.vocab_table.lookup(candidates)  # [n, k]; -1 when not in the vocabulary
            length = tf.range(1, k + 1)[None, :]
            ok = (ids >= 0) & (pos[:, None] + length <= num_chars[:, None])
            best = tf.reduce_max(tf.where(ok, length, 0), axis=1)  # [n] characters matched, 0 = none
            piece = tf.gather(ids, tf.maximum(best - 1, 0), batch_dims=1)  # [n]
            failed = failed | (active & (best == 0))
            emit = active & (best > 0)
            pieces = pieces.write(step, tf.where(emit, piece, -1))
            pos = pos + tf.where(emit, best, 0)
            active = emit & (pos < num_chars)
            return step + 1, pos, active, failed, pieces

        steps, _, _, failed, pieces = tf.while_loop(
            lambda step, pos, active, failed, pieces: tf.reduce_any(active), body,
            (0, tf.zeros([n], tf.int32), active0, tf.zeros([n], tf.bool),
             tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None])))
        # No word in the batch (every text empty or whitespace): the loop never ran, and an empty
        # TensorArray of unknown element shape cannot be stacked.
        stacked = tf.cond(steps > 0, pieces.stack, lambda: tf.zeros([0, n], tf.int32))  # [steps, n]
        pieces = tf.transpose(tf.reshape(stacked, [steps, n]))  # [n, steps]; -1 after the last piece
        unknown = failed | too_long  # not coverable, or too long: one [UNK]
        pieces = tf.concat([pieces, -tf.ones([n, 1], tf.int32)], axis=1)  # at least one column
        unk_row = tf.concat([tf.fill([n, 1], self.oov_id), -tf.ones_like(pieces[:, 1:])], axis=1)
        pieces = tf.where(unknown[:, None], unk_row, pieces)
        return tf.RaggedTensor.from_tensor(pieces, padding=-1)  # [n, (pieces)]

    def call(self, texts):
        # texts: [batch] string
        words = self.words(tf.convert_to_tensor(texts))  # [batch, (words)]
        pieces = self.wordpiece(words.flat_values)  # [words, (pieces)]
        return words.with_flat_values(pieces).merge_dims(1, 2)  # [batch, (tokens)] int32
