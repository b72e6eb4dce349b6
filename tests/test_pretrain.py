"""Masked-LM pre-training of the encoder on the training texts (`--pretrain-epochs`). The command
line end to end: the session's TextCNN run (conftest's `demo_run_dir`, checked in `test_siblings.py`)."""

import keras
import keras_hub
import numpy as np
import pytest
from conftest import REVIEWS

from classifier_multi_label.config import TrainConfig
from classifier_multi_label.pipeline import text_dataset
from classifier_multi_label.pretrain import masked_lm_dataset, pretrain_mlm
from classifier_multi_label.tokenization import TextPreprocessor, build_vocabulary

TEXTS = [t for t, _ in REVIEWS] * 8


def _tiny(sequence_length=32):
    pre = TextPreprocessor.from_vocabulary(build_vocabulary(TEXTS, 200), sequence_length)
    backbone = keras_hub.models.AlbertBackbone(vocabulary_size=pre.vocabulary_size, num_layers=1, num_heads=2,
                                               embedding_dim=16, hidden_dim=16, intermediate_dim=32,
                                               max_sequence_length=sequence_length)
    return backbone, pre


def test_masking_picks_real_tokens_and_keeps_their_ids_as_targets():
    _, pre = _tiny()
    keras.utils.set_random_seed(0)
    mask_id = pre.tokenizer.token_to_id("[MASK]")
    order = np.random.default_rng([0, 0]).permutation(len(TEXTS))  # the dataset's order for seed 0, epoch 0
    clean = text_dataset(np.asarray(TEXTS, dtype=object)[order], pre, 16)
    picked = as_mask = changed = 0
    for (x, targets, weights), c in zip(masked_lm_dataset(TEXTS, pre, 16, seed=0, epoch=0), clean):
        ids, positions = x["token_ids"].numpy(), x["mask_positions"].numpy()
        targets, weights, original = targets.numpy(), weights.numpy(), c["token_ids"].numpy()
        real = x["padding_mask"].numpy().astype(bool)
        assert positions.shape[1] == 8  # ceil(1.5 * 0.15 * 32)
        for row in range(len(ids)):
            chosen = positions[row][weights[row] > 0]
            assert len(chosen) == len(set(chosen))  # distinct positions
            for k, pos in enumerate(chosen):
                assert real[row, pos] and pos != 0 and original[row, pos] != pre.sep_id  # never [CLS]/[SEP]/pad
                assert targets[row, k] == original[row, pos]  # the target is the token that was there
                as_mask += ids[row, pos] == mask_id
                changed += ids[row, pos] != original[row, pos]
                picked += 1
            unpicked = np.setdiff1d(np.arange(ids.shape[1]), chosen)
            np.testing.assert_array_equal(ids[row, unpicked], original[row, unpicked])  # the rest untouched
    assert picked > 50
    assert 0.65 < as_mask / picked < 0.95  # 80% become [MASK]
    assert as_mask < changed  # and some a random token (10%)


@pytest.mark.slow  # about 22 s; by default conftest's demo_run_dir pre-trains (test_siblings checks its losses)
def test_pretraining_lowers_the_masked_lm_loss_and_changes_the_encoder():
    keras.utils.set_random_seed(0)  # before building: the initial weights must not depend on earlier tests
    backbone, pre = _tiny()
    before = [w.numpy().copy() for w in backbone.trainable_weights]
    cfg = TrainConfig(warmup_ratio=0.0, jit_compile=False)
    history = pretrain_mlm(backbone, pre, TEXTS, cfg, 1e-2, epochs=6, batch_size=8)
    assert [h["epoch"] for h in history] == list(range(1, 7))
    # The masks differ from run to run (tensorflow-text draws them unseeded in parallel): with these
    # initial weights the last epoch's loss measured 0.74-0.79 of the first's over 8 runs.
    assert history[-1]["mlm_loss"] < 0.85 * history[0]["mlm_loss"]
    assert history[-1]["mlm_accuracy"] > history[0]["mlm_accuracy"]
    changed = {w.path for w, b in zip(backbone.trainable_weights, before) if not np.array_equal(w.numpy(), b)}
    assert any(path.endswith("token_embedding/embeddings") for path in changed)
    assert not any("pooled_dense" in path for path in changed)  # no masked-LM gradient reaches the pooler
    assert all(layer.trainable for layer in backbone.layers)  # the pooler trains again in the classifier

