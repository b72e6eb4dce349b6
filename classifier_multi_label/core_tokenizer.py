"""BERT WordPiece tokenization from core TensorFlow ops only, for exports any TF Serving build can run.

keras-hub's `WordPieceTokenizer` runs tensorflow-text kernels (`NormalizeUTF8`, `RegexSplitWithOffsets`,
`CaseFoldUTF8`, `FastWordpieceTokenizeWithOffsets`). A TF Serving binary that lacks one of them
refuses the model with "Op type not registered" (tensorflow/serving issues 2064, 1490).
`CoreWordPieceTokenizer` computes the same token ids with ops every TensorFlow build has
(`tf.strings`, `tf.lookup`, ragged ops, `tf.while_loop`), step for step after keras-hub, for each of
keras-hub's options (`lowercase`, `strip_accents`, `split_on_cjk`, `suffix_indicator`, any oov token):

1. spaces around CJK characters (the same RE2 pattern), with `split_on_cjk`;
2. accent stripping (NFD, drop `\\p{Mn}`), with `strip_accents`: a per-character table, computed
   once with the very tensorflow-text kernels keras-hub uses, so it follows the same Unicode version;
3. splitting on whitespace and control characters, keeping punctuation (and CJK characters) as
   words (keras-hub's RE2 patterns, applied with `tf.strings.regex_replace`);
4. lower-casing (NFKC case folding), with `lowercase`: a second per-character table, same origin,
   then the compositions NFKC makes across characters (`e` + U+0301 -> `é`, conjoining Hangul jamo
   -> a syllable): adjacent pairs looked up in a third table until none is left;
5. greedy longest-match-first WordPiece (`suffix_indicator` continuation) with a `tf.lookup`
   table; a word that cannot be covered, or is longer than 100 bytes, becomes the oov token, as in
   `FastWordpieceTokenizer`.

Where the two can still differ: combining marks out of canonical order, and a mark that composes
with a base it is not next to (NFKC reorders and composes across marks; the tables work on
neighbours). Not supported (a `ValueError` naming the option): `split=False` (the export takes raw
text, not words) and `special_tokens_in_strings=True`. `tests/test_serving.py` checks equality on
the demo data, on `../shared/data/*`, on MiniLM's vocabulary and on awkward strings; `export
--tokenizer auto` checks it again on a probe set before choosing this tokenizer.

Example:
    >>> vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "好", "the", "qu", "##ick", "."]
    >>> tok = CoreWordPieceTokenizer(vocab, lowercase=True, strip_accents=True)
    >>> tok(tf.constant(["The quick.", "好！"])).to_list()
    [[6, 7, 8, 9], [5, 1]]
"""

from __future__ import annotations

import functools

import keras
import keras_hub
import numpy as np
import tensorflow as tf
from keras_hub.src.tokenizers.word_piece_tokenizer import (
    CJK_REGEX,
    MAX_BYTES_PER_WORD,
    PUNCTUATION_AND_CJK_REGEX,
    PUNCTUATION_REGEX,
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
        stripped = tf.strings.regex_replace(tf_text.normalize_utf8(chars, "NFD"), r"\p{Mn}", "")
        # With case folding after it, NFC here keeps the characters NFD merely decomposes (Hangul
        # syllables) whole, as keras-hub's NFKC folding recomposes them anyway; without, they stay
        # decomposed, as in keras-hub.
        strip = changed(tf_text.normalize_utf8(stripped, "NFC") if lowercase else stripped)
    if lowercase:
        fold = changed(tf_text.case_fold_utf8(chars))
        fold.pop(0, None)  # NUL is the separator below; NFKC case folding keeps it anyway
    return strip, fold


@functools.lru_cache(maxsize=None)
def composition_table() -> dict:
    """{(first, second) code points: the one code point NFKC case folding makes of the pair}, for
    the canonical two-character decompositions of Unicode and the conjoining Hangul jamo, each
    checked with tensorflow-text's kernel (its Unicode version decides, not Python's)."""
    import unicodedata

    import tensorflow_text as tf_text

    pairs = []
    for c in range(0x110000):
        parts = unicodedata.decomposition(chr(c)).split()
        if len(parts) == 2 and not parts[0].startswith("<"):
            pairs.append((int(parts[0], 16), int(parts[1], 16)))
    # Hangul syllables compose algorithmically: leading + vowel jamo, then that syllable + trailing.
    pairs += [(lead, vowel) for lead in range(0x1100, 0x1113) for vowel in range(0x1161, 0x1176)]
    pairs += [(0xAC00 + 28 * i, trail) for i in range(19 * 21) for trail in range(0x11A8, 0x11C3)]
    texts = tf.constant([chr(a) + chr(b) for a, b in pairs])
    folded = [t.decode("utf-8") for t in tf_text.case_fold_utf8(texts).numpy()]
    return {pair: ord(f) for pair, f in zip(pairs, folded) if len(f) == 1}


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


def _char_class(points) -> str:
    """An RE2 character class matching exactly the code points `points`."""
    points, ranges = sorted(set(points)), []
    for p in points:
        if ranges and p == ranges[-1][1] + 1:
            ranges[-1][1] = p
        else:
            ranges.append([p, p])
    return "[" + "".join(f"\\x{{{a:X}}}" + (f"-\\x{{{b:X}}}" if b > a else "") for a, b in ranges) + "]"


def _compose(texts, table, seconds: str):
    """Replaces adjacent code-point pairs of `texts` [n] found in `table` (keys first << 21 | second)
    by their composite, left to right, until none is left (a composite may compose again: Hangul
    leading + vowel, then + trailing). `seconds`: a character class of every pair's second
    character; a batch without one (nearly every batch) skips the work."""
    return tf.cond(tf.reduce_any(tf.strings.regex_full_match(texts, f"(?s).*{seconds}.*")),
                   lambda: _compose_pairs(texts, table), lambda: texts)


def _compose_pairs(texts, table):
    points = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")  # [n, (chars)] int32
    rows = points.value_rowids()  # [chars]

    def body(flat, rows, _):
        same_text = tf.concat([rows[1:] == rows[:-1], [False]], axis=0)  # [chars]: a next character exists
        following = tf.concat([flat[1:], tf.zeros([1], flat.dtype)], axis=0)
        composite = table.lookup(tf.bitwise.left_shift(tf.cast(flat, tf.int64), 21) | tf.cast(following, tf.int64))
        pair = same_text & (composite >= 0)  # [chars]: this character and the next compose
        # A pair whose first character is the second of a pair to its left waits for the next pass.
        starts = pair & ~tf.concat([[False], pair[:-1]], axis=0)
        taken = tf.concat([[False], starts[:-1]], axis=0)  # second characters, absorbed
        flat = tf.where(starts, tf.cast(composite, flat.dtype), flat)
        return tf.boolean_mask(flat, ~taken), tf.boolean_mask(rows, ~taken), tf.reduce_any(starts)

    flat, rows, _ = tf.while_loop(lambda flat, rows, changed: changed, body,
                                  (points.flat_values, rows, tf.constant(True)),
                                  shape_invariants=(tf.TensorShape([None]), tf.TensorShape([None]),
                                                    tf.TensorShape([])))
    points = tf.RaggedTensor.from_value_rowids(flat, rows, nrows=points.nrows())
    return tf.strings.unicode_encode(points, "UTF-8")  # [n]


class CoreWordPieceTokenizer(keras.layers.Layer):
    """Strings [batch] -> token ids [batch, (tokens)] int32, equal to keras-hub's `WordPieceTokenizer`
    with the same `lowercase`, `strip_accents`, `split_on_cjk`, `suffix_indicator` and `oov_token`
    (keras-hub's defaults, except `lowercase` and `strip_accents`: the project's own vocabularies
    lower-case and strip accents)."""

    def __init__(self, vocabulary, lowercase: bool = True, strip_accents: bool = True, split_on_cjk: bool = True,
                 suffix_indicator: str = "##", oov_token: str = "[UNK]", max_words: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = list(vocabulary)
        if oov_token not in self.vocabulary:
            raise ValueError(f"the vocabulary has no {oov_token!r} token")
        if not suffix_indicator:
            raise ValueError("suffix_indicator must be a non-empty string")
        self.lowercase, self.strip_accents, self.split_on_cjk = bool(lowercase), bool(strip_accents), bool(split_on_cjk)
        self.suffix_indicator = suffix_indicator
        self.oov_id = self.vocabulary.index(oov_token)
        # Only the first `max_words` words of a text can reach a packed sequence (each word gives at
        # least one token); the rest are dropped early so a 100,000-character text costs little.
        self.max_words = max_words
        self._ids = {t: i for i, t in enumerate(self.vocabulary)}
        self.vocab_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(self.vocabulary), tf.range(len(self.vocabulary))),
            default_value=-1, name="wordpiece_vocabulary")
        strip, fold = character_tables(self.strip_accents, self.lowercase)
        self.strip_table = _string_table(strip, "strip_accents") if strip else None
        self.fold_table = _string_table(fold, "case_fold") if fold else None
        self.compose_table = None
        if self.lowercase:
            pairs = composition_table()
            self.compose_table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(
                tf.constant([a << 21 | b for a, b in pairs], tf.int64), tf.constant(list(pairs.values()), tf.int64)),
                default_value=-1, name="compositions")
            self.compose_seconds = _char_class(b for _, b in pairs)
        # The longest piece in characters bounds the candidates tried at each position.
        n = len(suffix_indicator)
        self.max_piece_chars = max(len(t[n:] if t.startswith(suffix_indicator) else t) for t in self.vocabulary)
        self.built = True

    @classmethod
    def from_keras_hub(cls, tokenizer, **kwargs):
        """The same tokenization as a keras-hub `WordPieceTokenizer` (any of its subclasses: BERT's,
        DistilBERT's, ...); a `ValueError` names an option it cannot reproduce."""
        if not isinstance(tokenizer, keras_hub.tokenizers.WordPieceTokenizer):
            raise ValueError(f"a {type(tokenizer).__name__} is not WordPiece; only WordPiece has a core-op version")
        if not tokenizer.split:
            raise ValueError("split=False: the tokenizer takes words split beforehand, the export raw text")
        if getattr(tokenizer, "special_tokens_in_strings", False):
            raise ValueError("special_tokens_in_strings=True is not reproduced by the core-op tokenizer")
        return cls(tokenizer.get_vocabulary(), lowercase=tokenizer.lowercase, strip_accents=tokenizer.strip_accents,
                   split_on_cjk=tokenizer.split_on_cjk, suffix_indicator=tokenizer.suffix_indicator,
                   oov_token=tokenizer.oov_token, **kwargs)

    # The keras-hub tokenizer interface TextPreprocessor uses.
    def get_vocabulary(self):
        return list(self.vocabulary)

    def vocabulary_size(self):
        return len(self.vocabulary)

    def token_to_id(self, token):
        return self._ids[token]

    def words(self, texts):
        """Pre-tokenization: texts [batch] -> words [batch, (words)] string."""
        if self.split_on_cjk:
            texts = tf.strings.regex_replace(texts, CJK_REGEX, r" \0 ")
        if self.strip_table is not None:
            texts = _map_characters(texts, self.strip_table)
        kept = PUNCTUATION_AND_CJK_REGEX if self.split_on_cjk else PUNCTUATION_REGEX
        texts = tf.strings.regex_replace(texts, WHITESPACE_REGEX, _SEP)  # dropped delimiters
        texts = tf.strings.regex_replace(texts, kept, _SEP + r"\0" + _SEP)  # kept ones
        if self.fold_table is not None:
            texts = _map_characters(texts, self.fold_table)
        if self.compose_table is not None:  # NUL separators compose with nothing: words stay apart
            texts = _compose(texts, self.compose_table, self.compose_seconds)
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
            candidates = tf.where((pos > 0)[:, None], self.suffix_indicator + candidates, candidates)  # [n, k]
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
