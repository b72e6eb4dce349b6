"""--pooling (cls, mean, max, attention, label; auto resolved from the encoder) and the TF-IDF baseline guard."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from classifier_multi_label.baseline import TfidfBaseline, mostly_cjk, wanted
from classifier_multi_label.errors import UserError
from classifier_multi_label.head import PooledHead, Pooling, resolve_pooled_options, resolve_pooling
from classifier_multi_label.run import baseline_verdict

SEQ = tf.random.normal([2, 5, 4], seed=1)  # [batch, length, hidden]
MASK = tf.constant([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])


def outputs(seq=SEQ):
    return {"sequence_output": seq, "pooled_output": tf.fill([2, 4], 7.0)}


def test_cls_pooling_is_the_backbones_pooled_output():
    np.testing.assert_array_equal(Pooling("cls")(outputs(), MASK).numpy(), np.full([2, 4], 7.0))


@pytest.mark.parametrize("mode", ["mean", "max", "attention", "label"])
def test_pooling_reads_only_the_real_tokens(mode):
    pool = Pooling(mode, num_labels=3)
    before = pool(outputs(), MASK).numpy()  # [batch, hidden]; label: [batch, 3, hidden]
    noisy = tf.where(tf.cast(MASK, bool)[:, :, None], SEQ, 100.0)  # whatever the encoder put at padding
    np.testing.assert_allclose(pool(outputs(noisy), MASK).numpy(), before, rtol=1e-6)
    if mode == "mean":
        np.testing.assert_allclose(before[0], SEQ.numpy()[0, :3].mean(0), rtol=1e-6)
    elif mode == "max":
        np.testing.assert_array_equal(before, np.stack([SEQ.numpy()[0, :3].max(0), SEQ.numpy()[1].max(0)]))
    else:  # a convex combination of the real tokens (per label for label): inside their range
        real = SEQ.numpy()[0, :3]
        assert before.shape == ((2, 3, 4) if mode == "label" else (2, 4))
        assert np.all(before[0] >= real.min(0) - 1e-6) and np.all(before[0] <= real.max(0) + 1e-6)


@pytest.mark.parametrize("mode", ["mean", "max", "attention", "label"])
def test_projection_maps_each_token_before_the_pooling(mode):
    pool = Pooling(mode, num_labels=3, projection=6)
    pooled = pool(outputs(), MASK).numpy()  # [batch, 6]; label: [batch, 3, 6]
    assert pooled.shape == ((2, 3, 6) if mode == "label" else (2, 6))
    features = pool.project(SEQ).numpy()  # [batch, length, 6]: ReLU features of each token
    assert features.min() >= 0.0
    if mode == "mean":
        np.testing.assert_allclose(pooled[0], features[0, :3].mean(0), rtol=1e-5)
    elif mode == "max":
        np.testing.assert_allclose(pooled[1], features[1].max(0), rtol=1e-6)
    else:  # the attention weights come from the states, as without projection: only what is averaged changes
        logits = pool.score(SEQ).numpy()[0, :3]  # [3 real tokens, queries]
        weights = np.exp(logits - logits.max(0)) / np.exp(logits - logits.max(0)).sum(0)
        expected = np.einsum("lq,lh->qh", weights, features[0, :3])
        np.testing.assert_allclose(pooled[0].reshape(expected.shape), expected, rtol=1e-4, atol=1e-6)
    head = PooledHead(3, pooling=mode, projection=6)
    assert head.feature_dim({"pooled_output": (None, 4)}) == 6


def test_projection_needs_a_token_pooling():
    with pytest.raises(UserError, match="--projection"):
        Pooling("cls", projection=8)
    with pytest.raises(UserError, match="--projection-width 3 .* give --projection N too"):
        Pooling("max", projection_width=3)


@pytest.mark.parametrize("mode", ["mean", "max", "attention"])
def test_windowed_projection_reads_each_tokens_neighbours_and_no_padding(mode):
    pool = Pooling(mode, projection=6, projection_width=3)
    before = pool(outputs(), MASK).numpy()  # [batch, 6]
    noisy = tf.where(tf.cast(MASK, bool)[:, :, None], SEQ, 100.0)  # whatever the encoder put at padding
    np.testing.assert_allclose(pool(outputs(noisy), MASK).numpy(), before, rtol=1e-5)
    # the same text alone, unpadded, pools to the same vector: windows past the text read zeros either way
    alone = {"sequence_output": SEQ[:1, :3], "pooled_output": tf.zeros([1, 4])}
    np.testing.assert_allclose(pool(alone, MASK[:1, :3]).numpy()[0], before[0], rtol=1e-5, atol=1e-6)
    if mode == "max":  # by hand: token t's features are ReLU(W . [h_{t-1}; h_t; h_{t+1}] + b)
        kernel, bias = (w.numpy() for w in pool.project.weights)  # [3, hidden, 6], [6]
        h = np.pad(SEQ.numpy()[0, :3], [[1, 1], [0, 0]])  # [5, hidden]: zeros around the text
        features = np.stack([np.maximum(np.einsum("kh,khf->f", h[t:t + 3], kernel) + bias, 0) for t in range(3)])
        np.testing.assert_allclose(before[0], features.max(0), rtol=1e-5, atol=1e-6)


def test_a_run_folder_without_projection_width_rebuilds_per_token_features():
    """config.json files written before --projection-width existed hold no width: their heads were
    trained on per-token features, and that is what they rebuild."""
    from classifier_multi_label_denses.model import DensesHead

    for head in (PooledHead(3, pooling="max", projection=8), DensesHead(3, pooling="max", projection=8)):
        assert head.opts.projection_width is None and head.pooling.width == 1
        assert isinstance(head.pooling.project, keras.layers.Dense)
    assert isinstance(PooledHead(3, pooling="max", projection=8, projection_width=3).pooling.project,
                      keras.layers.Conv1D)


def fit_full_batch(head, x, mask, y, steps: int, learning_rate: float):
    """`steps` Adam steps of `head` on the whole batch (x, mask) -> y [n, labels], the sigmoid cross-
    entropy of `head.logits`. One compiled step: run eagerly, each step cost about 60 ms."""
    opt = keras.optimizers.Adam(learning_rate)

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            logits = head.logits(head(x, mask, training=True))  # [n, labels]
            loss = tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(y, logits))
        opt.apply_gradients(zip(tape.gradient(loss, head.trainable_variables), head.trainable_variables))

    for _ in range(steps):
        step()


def test_windowed_projection_learns_what_single_tokens_cannot_tell():
    """The label is whether tokens A and B stand next to each other; every text holds both, so any
    pooling of features of single tokens sees the same bag and stays at chance, while features of
    3-token windows can detect the pair."""
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    n, length, hidden = 256, 8, 4
    vocab = np.eye(hidden, dtype="float32")  # token ids 0 (filler), 1 (A), 2 (B), 3 (filler)
    ids = rng.choice([0, 3], (n, length))
    y = rng.integers(0, 2, n).astype("float32")
    for i in range(n):
        a = rng.integers(0, length - 3)
        b = a + 1 if y[i] else rng.integers(a + 3, length)
        ids[i, a], ids[i, b] = 1, 2
    x = {"sequence_output": tf.constant(vocab[ids]), "pooled_output": tf.zeros([n, hidden])}
    mask = tf.ones([n, length], tf.int32)
    accuracy = {}
    for width in (1, 3):
        head = PooledHead(1, dropout=0.0, pooling="max", projection=16, projection_width=width)
        fit_full_batch(head, x, mask, y[:, None], steps=200, learning_rate=0.02)
        accuracy[width] = float(np.mean((head(x, mask).numpy()[:, 0] > 0) == (y > 0.5)))
    assert accuracy[3] > 0.95 and accuracy[1] < 0.7, accuracy


def test_attention_pooling_learns_which_token_matters():
    """Only the token at a random position tells the label: attention must learn to weight it."""
    keras.utils.set_random_seed(0)  # the head's initial weights, whatever ran before on this worker
    rng = np.random.default_rng(0)
    n, length = 256, 6
    seq = rng.normal(0, 1, (n, length, 4)).astype("float32")
    seq[:, :, 0] = 0.0
    where = rng.integers(0, length, n)
    y = rng.integers(0, 2, n).astype("float32")
    seq[np.arange(n), where, 0] = 1.0  # a marker: "this token carries the label" ...
    seq[np.arange(n), where, 1] = 4 * y - 2  # ... and its second feature is the label
    head = PooledHead(1, dropout=0.0, pooling="attention")
    x = {"sequence_output": tf.constant(seq), "pooled_output": tf.zeros([n, 4])}
    mask = tf.ones([n, length], tf.int32)
    fit_full_batch(head, x, mask, y[:, None], steps=150, learning_rate=0.05)
    accuracy = float(np.mean((head(x, mask).numpy()[:, 0] > 0) == (y > 0.5)))
    assert accuracy > 0.95  # mean pooling dilutes the marked token among five noisy ones


def test_label_pooling_gives_each_label_its_own_tokens():
    """Two labels, each told by its own marked token at its own random position: one attention per
    label learns to read each label's token (label c's weight peaks on c's marker), for the baseline's
    sigmoid head and the multi-dense head alike."""
    from classifier_multi_label_denses.model import DensesHead

    keras.utils.set_random_seed(0)  # the heads' initialisation: unseeded, about one run in four peaked at 0.82
    rng = np.random.default_rng(1)
    n, length = 256, 6
    seq = rng.normal(0, 1, (n, length, 6)).astype("float32")
    seq[:, :, [0, 2]] = 0.0
    y = rng.integers(0, 2, (n, 2)).astype("float32")
    where = np.stack([rng.permutation(length)[:2] for _ in range(n)])  # [n, 2]: distinct positions
    for c in range(2):
        seq[np.arange(n), where[:, c], 2 * c] = 1.0  # label c's marker ...
        seq[np.arange(n), where[:, c], 2 * c + 1] = 4 * y[:, c] - 2  # ... and its value
    x = {"sequence_output": tf.constant(seq), "pooled_output": tf.zeros([n, 6])}
    mask = tf.ones([n, length], tf.int32)
    for head in (PooledHead(2, dropout=0.0, pooling="label"), DensesHead(2, dropout=0.0, pooling="label")):
        fit_full_batch(head, x, mask, tf.constant(y), steps=150, learning_rate=0.05)
        accuracy = np.mean((head.logits(head(x, mask)).numpy() > 0) == (y > 0.5), axis=0)
        assert accuracy.min() > 0.95, (type(head).__name__, accuracy)
        weights = tf.nn.softmax(head.pooling.score(x["sequence_output"]), axis=1).numpy()  # [n, length, 2]
        for c in range(2):
            assert np.mean(weights[:, :, c].argmax(1) == where[:, c]) > 0.95


def test_auto_pooling_depends_on_the_encoder():
    assert resolve_pooling("auto", pretrained=True) == "cls"
    assert resolve_pooling("auto", pretrained=False) == "max"
    assert resolve_pooling("mean", pretrained=True) == "mean"
    with pytest.raises(ValueError, match="--pooling 'sum': use auto, cls, mean, max, attention, label"):
        resolve_pooling("sum", pretrained=False)


@pytest.mark.parametrize("pooling, projection, width, pretrained, expected", [
    ("auto", None, None, False, ("max", 768, 3)),  # from scratch: max over TextCNN's count of window features
    ("auto", None, None, True, ("cls", 0, 1)),  # hellonlp's [CLS] over a pretrained encoder
    ("max", None, None, False, ("max", 0, 1)),  # a pooling the user names is that pooling, nothing added
    ("auto", 0, None, False, ("max", 0, 1)),  # a projection the user sets wins, 0 included
    ("auto", 64, None, False, ("max", 64, 3)),
    ("auto", None, 1, False, ("max", 768, 1)),  # so does a width
    ("attention", 32, None, True, ("attention", 32, 1)),
    ("mean", 32, 5, False, ("mean", 32, 5)),
])
def test_auto_resolves_pooling_and_projection_together(pooling, projection, width, pretrained, expected):
    options = {"dropout": 0.2, "pooling": pooling, "projection": projection, "projection_width": width}
    resolved = resolve_pooled_options(options, pretrained)
    assert (resolved["pooling"], resolved["projection"], resolved["projection_width"]) == expected
    assert resolved["dropout"] == 0.2
    assert options["projection"] == projection  # the caller's options are left as they were


def test_the_baseline_picks_features_by_script_and_scores_probabilities():
    assert mostly_cjk(["制热很快，声音有点大"]) and not mostly_cjk(["the heater is loud"])
    texts = ["制热很快", "声音很大", "加热快", "噪音大"] * 5
    y = np.array([[1, 0], [0, 1], [1, 0], [0, 1]] * 5)
    scores = TfidfBaseline().fit(texts, y).scores(["制热", "声音"])
    assert scores.shape == (2, 2) and np.all((scores >= 0) & (scores <= 1))
    assert scores[0, 0] > scores[0, 1] and scores[1, 1] > scores[1, 0]


def test_baseline_auto_runs_only_where_it_is_quick():
    assert wanted("auto", 10_000, 65) and not wanted("auto", 500_000, 100)
    assert wanted("tfidf", 500_000, 100) and not wanted("none", 10, 2)
    with pytest.raises(ValueError, match="--baseline 'tf-idf': use auto, tfidf, none"):
        wanted("tf-idf", 10, 2)


def test_the_verdict_says_where_the_baseline_wins():
    base = {"test": {"micro_f1": 0.53, "macro_f1": 0.46}}
    line, wins = baseline_verdict({"micro_f1": 0.61, "macro_f1": 0.45}, base, "test")
    assert not wins and "better on macro-F1" in line and "0.4600" in line
    line, wins = baseline_verdict({"micro_f1": 0.61, "macro_f1": 0.50}, base, "test")
    assert wins and "beats the baseline on both" in line
