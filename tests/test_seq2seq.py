"""The seq2seq head: label sequences, exact beam search, no repeats, the empty set, learning."""

import itertools

import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from classifier_multi_label.data import LabelVocab
from classifier_multi_label.model import MultiLabelClassifier
from classifier_multi_label_seq2seq import Seq2SeqHead
from classifier_multi_label_seq2seq.model import END, FIRST_LABEL, PAD, label_sequences


def tiny_model(num_labels=3, max_labels=3, seed=3, **options):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.AlbertBackbone(vocabulary_size=40, num_layers=1, num_heads=2, embedding_dim=8,
                                               hidden_dim=8, intermediate_dim=16, max_sequence_length=32)
    head = Seq2SeqHead(num_labels, encoder_layers=1, max_labels=max_labels, dropout=0.0, **options)
    return MultiLabelClassifier(backbone, head)


def inputs(ids, lengths):
    ids = np.array(ids, np.int32)
    mask = (np.arange(ids.shape[1])[None] < np.array(lengths)[:, None]).astype(np.int32)
    return {"token_ids": ids * mask, "segment_ids": np.zeros_like(ids), "padding_mask": mask}


X = inputs([[2, 5, 6, 3, 0, 0], [2, 7, 8, 9, 10, 3], [2, 11, 3, 0, 0, 0]], [4, 6, 3])


def test_targets_in_frequency_order_then_end():
    vocab = LabelVocab(["a", "b", "c"])
    rows = [["a", "c"], ["c"], ["c", "b", "a"], [], ["b"], ["c"]]  # frequency: c 4, a 2, b 2 (a first: file order)
    head = Seq2SeqHead(3, max_labels=3)
    codes = head.targets(rows, vocab)
    seqs = label_sequences(codes, 4).numpy()
    a, b, c = (FIRST_LABEL + i for i in range(3))
    assert seqs.tolist() == [[c, a, END, PAD], [c, END, PAD, PAD], [c, a, b, END], [END, PAD, PAD, PAD],
                             [b, END, PAD, PAD], [c, END, PAD, PAD]]
    by_file = label_sequences(Seq2SeqHead(3, max_labels=3, label_order="file").targets(rows, vocab), 4).numpy()
    assert by_file[0].tolist() == [a, c, END, PAD] and by_file[2].tolist() == [c, b, a, END]


def test_max_labels_is_the_largest_training_set_and_checked():
    vocab = LabelVocab(["a", "b"])
    assert Seq2SeqHead.resolve_options({"max_labels": None}, [["a"], ["a", "b"], []], vocab)["max_labels"] == 2
    with pytest.raises(ValueError, match="a training text has 2 labels"):
        Seq2SeqHead.resolve_options({"max_labels": 1}, [["a"], ["a", "b"]], vocab)
    with pytest.raises(ValueError, match="more than --max-labels 1"):
        Seq2SeqHead(2, max_labels=1).targets([["a", "b"]], LabelVocab(["a", "b"]))


def all_sequences(num_labels, max_labels):
    """Every decodable sequence: distinct labels in any order, then END, padded to max_labels + 1."""
    out = []
    for k in range(max_labels + 1):
        for labels in itertools.permutations(range(num_labels), k):
            seq = [FIRST_LABEL + i for i in labels] + [END]
            out.append(seq + [PAD] * (max_labels + 1 - len(seq)))
    return np.array(out, np.int32)


def brute_force_log_probs(model, x, candidates):
    """[texts, candidates]: each candidate's summed log-probability, by teacher forcing."""
    out = model(x)
    rows = []
    for i in range(len(x["token_ids"])):
        one = {k: tf.repeat(v[i:i + 1], len(candidates), axis=0) for k, v in out.items()}
        rows.append(model.head.sequence_log_prob(one, tf.constant(candidates)).numpy())
    return np.stack(rows)


@pytest.mark.parametrize("seed", [3, 4])
def test_beam_search_finds_the_brute_force_best(seed):
    model = tiny_model(seed=seed)
    candidates = all_sequences(3, 3)  # 16 sequences
    found = model.head.beam_search(model(X), width=len(candidates))  # wide enough to keep every hypothesis
    exact = brute_force_log_probs(model, X, candidates)  # [3, 16]
    for i in range(3):
        best = int(np.argmax(exact[i]))
        assert found["sequences"][i, 0].numpy().tolist() == candidates[best].tolist()
        assert float(found["log_prob"][i, 0]) == pytest.approx(exact[i, best], abs=1e-4)
        # every hypothesis the beam kept is a real sequence, scored as teacher forcing scores it
        ranked = np.sort(exact[i])[::-1]
        np.testing.assert_allclose(found["log_prob"][i].numpy(), ranked, atol=1e-4)


def test_beam_scores_agree_with_teacher_forcing_at_width_5():
    model = tiny_model(num_labels=5, max_labels=3)
    found = model.head.beam_search(model(X), width=5)
    out = model(X)
    for w in range(5):
        tf_logp = model.head.sequence_log_prob(out, found["sequences"][:, w]).numpy()
        np.testing.assert_allclose(found["log_prob"][:, w].numpy(), tf_logp, atol=1e-4)
    assert np.all(np.diff(found["log_prob"].numpy(), axis=1) <= 1e-6)  # best first


def test_a_label_is_never_emitted_twice():
    model = tiny_model(num_labels=4, max_labels=4)
    bias = model.head.output_layer.bias
    bias.assign(tf.tensor_scatter_nd_update(tf.zeros_like(bias), [[FIRST_LABEL + 1], [END]], [8.0, -8.0]))
    found = model.head.beam_search(model(X), width=5)  # the model "wants" label 1 at every step
    seqs, sets = found["sequences"].numpy(), found["label_sets"].numpy()
    for text in range(3):
        for w in range(5):
            labels = [t - FIRST_LABEL for t in seqs[text, w] if t >= FIRST_LABEL]
            assert len(labels) == len(set(labels))
            assert sorted(labels) == np.flatnonzero(sets[text, w]).tolist()
    assert sets[:, 0, 1].all()  # the favourite label is in the best set, once


def test_empty_set_decodes_to_end_at_once():
    model = tiny_model()
    bias = model.head.output_layer.bias
    bias.assign(tf.tensor_scatter_nd_update(tf.zeros_like(bias), [[END]], [30.0]))
    out = model(X)
    found = model.head.beam_search(out, width=5)
    assert found["sequences"][:, 0].numpy().tolist() == [[END, PAD, PAD, PAD]] * 3
    result = model.head.infer(out)
    assert result["decisions"].numpy().sum() == 0
    np.testing.assert_allclose(result["scores"].numpy(), 0.0, atol=1e-6)


def test_scores_are_beam_marginals_and_decisions_the_best_set():
    model = tiny_model(num_labels=4, max_labels=3)
    out = model(X)
    result = model.head.infer(out)
    found = model.head.beam_search(out, width=5)
    weight = tf.nn.softmax(found["log_prob"]).numpy()  # [texts, beams]
    expected = np.einsum("bw,bwl->bl", weight, found["label_sets"].numpy().astype(float))
    np.testing.assert_allclose(result["scores"].numpy(), expected, atol=1e-6)
    np.testing.assert_array_equal(result["decisions"].numpy(), found["label_sets"][:, 0].numpy().astype(int))
    assert ((result["scores"].numpy() >= 0) & (result["scores"].numpy() <= 1 + 1e-6)).all()


def test_greedy_is_width_one():
    model = tiny_model(num_labels=4, max_labels=3, beam_width=1)
    out = model(X)
    found = model.head.beam_search(out, width=1)
    # greedy: at each step the best allowed token given the prefix
    x_out = model(X)
    for i in range(3):
        prefix = []
        one = {k: v[i:i + 1] for k, v in x_out.items()}
        for t in range(4):
            seq = prefix + [PAD] * (4 - len(prefix))
            logits = model.head.teacher_forced_logits(one, tf.constant([seq]))[0, t].numpy()
            allowed = [END] + [FIRST_LABEL + c for c in range(4) if FIRST_LABEL + c not in prefix] if t < 3 else [END]
            prefix.append(max(allowed, key=lambda tok: logits[tok]))
            if prefix[-1] == END:
                break
        assert found["sequences"][i, 0].numpy().tolist()[:len(prefix)] == prefix
    assert set(model.head.infer(out)["scores"].numpy().ravel()) <= {0.0, 1.0}


def test_one_training_step_lowers_the_loss():
    model = tiny_model(num_labels=3, max_labels=2)
    y = tf.constant([[1, 0, 0], [0, 2, 1], [0, 0, 0]], tf.float32)  # position codes
    opt = keras.optimizers.Adam(1e-2)

    def loss():
        return model.head.compute_loss(y, model(X, training=False))
    before = float(loss())
    with tf.GradientTape() as tape:
        value = model.head.compute_loss(y, model(X, training=True))
    grads = tape.gradient(value, model.trainable_variables)
    opt.apply_gradients([(g, v) for g, v in zip(grads, model.trainable_variables) if g is not None])
    assert float(loss()) < before


def test_padding_cannot_change_the_decoding():
    model = tiny_model(num_labels=4, max_labels=3)
    base = inputs([[2, 5, 6, 9, 3, 0, 0, 0]], [5])
    ref = model.head.beam_search(model(base), 5)
    noisy = dict(base, token_ids=np.array([[2, 5, 6, 9, 3, 17, 33, 12]], np.int32))
    longer = inputs([[2, 5, 6, 9, 3] + [0] * 11], [5])
    for other in (noisy, longer):
        got = model.head.beam_search(model(other), 5)
        np.testing.assert_allclose(got["log_prob"].numpy(), ref["log_prob"].numpy(), atol=1e-5)
        np.testing.assert_array_equal(got["sequences"].numpy(), ref["sequences"].numpy())


@pytest.mark.parametrize("depth,in_dim,training", [(1, 5, None), (3, 5, None), (3, 9, None), (3, 5, True)])
def test_fused_lstm_stack_equals_keras_lstm_layers(depth, in_dim, training):
    """The encoder's wavefront loop gives Keras' LSTM layers' outputs (on the text), final states and
    gradients: inputs narrower and wider than the units (the joint matmul pads one of them), and
    either way of reading the inputs (slices; a TensorArray in training)."""
    from classifier_multi_label_seq2seq.lstm import bidirectional_lstm_stack

    keras.utils.set_random_seed(0)
    units = 6
    lstm = dict(return_sequences=True, return_state=True)
    forward = [keras.layers.LSTM(units, **lstm) for _ in range(depth)]
    backward = [keras.layers.LSTM(units, go_backwards=True, **lstm) for _ in range(depth)]
    for i, layer in enumerate(forward + backward):
        layer.build((None, None, in_dim if i % depth == 0 else units))
    x = tf.random.normal([4, 7, in_dim])
    mask = tf.constant(np.arange(7)[None] < np.array([[7], [4], [1], [0]]))  # [batch, length]; the last text is empty

    def keras_stack():
        fw = bw = x
        for layer in forward:
            fw, fw_h, fw_c = layer(fw, mask=mask)
        for layer in backward:
            bw, bw_h, bw_c = layer(bw, mask=mask)
            bw = tf.reverse(bw, axis=[1])
        return fw, bw, fw_h, fw_c, bw_h, bw_c

    def fused():
        fw, bw, (fw_h, fw_c), (bw_h, bw_c) = bidirectional_lstm_stack(x, mask, forward, backward, training=training)
        return fw, bw, fw_h, fw_c, bw_h, bw_c

    weights = [w for layer in forward + backward for w in layer.trainable_variables]
    results = []
    for fn in (keras_stack, fused):
        with tf.GradientTape() as tape:
            out = fn()
            valid = tf.cast(mask, tf.float32)[..., None]
            loss = sum(tf.reduce_sum(tf.sin(o * (valid if o.shape.rank == 3 else 1.0))) for o in out)
        results.append((out, tape.gradient(loss, weights)))
    (ref, ref_grads), (got, got_grads) = results
    valid = mask.numpy()[..., None]
    for a, b in zip(ref, got):
        a, b = a.numpy(), b.numpy()
        if a.ndim == 3:  # outputs: compared where the text is (padding is masked downstream)
            a, b = a * valid, b * valid
        np.testing.assert_allclose(b, a, atol=1e-5)
    for a, b in zip(ref_grads, got_grads):
        np.testing.assert_allclose(tf.convert_to_tensor(b).numpy(), tf.convert_to_tensor(a).numpy(), atol=1e-5)


def test_wavefront_dropout_trains_every_layer():
    """In training, the wavefront drops the lower layers' outputs inside its loop and the top
    layer's after it; every weight still gets a gradient, and prediction is deterministic."""
    from classifier_multi_label_seq2seq.lstm import bidirectional_lstm_stack

    keras.utils.set_random_seed(0)
    units, depth = 8, 3
    lstm = dict(return_sequences=True, return_state=True)
    forward = [keras.layers.LSTM(units, **lstm) for _ in range(depth)]
    backward = [keras.layers.LSTM(units, go_backwards=True, **lstm) for _ in range(depth)]
    for i, layer in enumerate(forward + backward):
        layer.build((None, None, 5 if i % depth == 0 else units))
    x, mask = tf.random.normal([4, 9, 5]), tf.ones([4, 9], tf.bool)
    dropout = keras.layers.Dropout(0.5)
    weights = [w for layer in forward + backward for w in layer.trainable_variables]
    with tf.GradientTape() as tape:
        fw, bw, _, _ = bidirectional_lstm_stack(x, mask, forward, backward, dropout, training=True)
        loss = tf.reduce_sum(tf.sin(fw)) + tf.reduce_sum(tf.sin(bw))
    grads = tape.gradient(loss, weights)
    assert all(g is not None and np.abs(tf.convert_to_tensor(g).numpy()).sum() > 0 for g in grads)
    assert 0.35 < np.mean(fw.numpy() == 0.0) < 0.65  # the top layer's dropout
    plain = [bidirectional_lstm_stack(x, mask, forward, backward, dropout, training=False)[0] for _ in range(2)]
    np.testing.assert_array_equal(plain[0].numpy(), plain[1].numpy())  # no dropout at prediction
    kept = fw.numpy() != 0.0  # where the top dropout kept a value, it is scaled by 2 ...
    assert not np.allclose(fw.numpy()[kept], 2 * plain[0].numpy()[kept], atol=1e-3)  # ... of other inputs
