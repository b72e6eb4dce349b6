"""--resume after Ctrl-C and after a kill, and a SentencePiece vocabulary through the whole run."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import REVIEWS, ROOT, TINY, run_command, write_hellonlp

EPOCHS = 7  # enough to cut the run twice (after epochs 2 and 4) with epochs to spare: each takes under a second


def training_args(tiny_data, run_dir):
    return ["--train-file", tiny_data["train"], "--dev-file", tiny_data["dev"], "--test-file", tiny_data["test"],
            "--output-dir", str(run_dir), *TINY, "--epochs", str(EPOCHS), "--patience", "0",  # the last --epochs wins
            "--token-dropout", "0.2",  # its masks are seeded per epoch and batch: a resumed run replays them
            "--adversarial-epsilon", "0.5",  # FGM's second pass draws dropout masks too: resumed, it must as well
            "--no-export", "--baseline", "none"]


def same_results(a, b):
    """Test metrics and the per-epoch history of two run folders, equal to 1e-6."""
    ma, mb = (json.loads((d / "metrics.json").read_text()) for d in (a, b))
    ha, hb = (json.loads((d / "history.json").read_text()) for d in (a, b))
    keys = ("micro_f1", "macro_f1", "samples_f1", "hamming_loss", "subset_accuracy")
    assert [ma[k] for k in keys] == pytest.approx([mb[k] for k in keys], abs=1e-6)
    pairs = [[(h["train_loss"], h["dev_micro_f1_tuned"]) for h in hist] for hist in (ha, hb)]
    assert len(pairs[0]) == len(pairs[1])
    np.testing.assert_allclose(np.array(pairs[0]), np.array(pairs[1]), atol=1e-6)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("resume")
    return {"train": write_hellonlp(d / "train.csv", REVIEWS * 3), "dev": write_hellonlp(d / "dev.csv", REVIEWS),
            "test": write_hellonlp(d / "test.csv", REVIEWS), "dir": d}


@pytest.fixture(scope="module")
def uninterrupted(data):
    proc = run_command("classifier_multi_label/train.py", *training_args(data, data["dir"] / "straight"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return data["dir"] / "straight"


# One more training (about 45 s). The default suite still checks determinism: the killed run's epochs
# before the kill ran in their own process, and the resume test compares them with `uninterrupted`.
@pytest.mark.slow
def test_same_seed_same_metrics(data, tmp_path, uninterrupted):
    proc = run_command("classifier_multi_label/train.py", *training_args(data, tmp_path / "again"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    same_results(uninterrupted, tmp_path / "again")


def start_training(args, run_dir, epochs_done: int):
    """(the `train.py args` process, its history.json) once `epochs_done` epochs are recorded; it runs on."""
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "classifier_multi_label/train.py"), *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    history = run_dir / "history.json"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if history.exists() and len(json.loads(history.read_text() or "[]")) >= epochs_done:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"training ended before {epochs_done} epochs were seen: " + proc.stderr.read()[-2000:]
    return proc, history


def test_ctrl_c_then_a_kill_and_resume_finishes_the_same_run(data, tmp_path, uninterrupted):
    """Ctrl-C (SIGINT) mid-run: the current step finishes, a checkpoint is written, one line, exit
    130. `--resume` (a new process) continues inside the cut epoch; that process is killed (SIGKILL)
    a few epochs later. `--resume` again, with only the run folder named, ends with the uninterrupted
    run's metrics and per-epoch losses: neither cut changed anything, no epoch is redone or skipped."""
    run_dir = tmp_path / "run"
    proc, history = start_training(training_args(data, run_dir), run_dir, 2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "Traceback" not in err and "continue with the same command and --resume" in err.splitlines()[-1], err
    assert not (run_dir / "metrics.json").exists()

    proc, history = start_training([*training_args(data, run_dir), "--resume"], run_dir, 4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(json.loads(history.read_text()))
    assert 4 <= done < EPOCHS and not (run_dir / "metrics.json").exists()

    # The first command's options come from the run folder; --export is one a resume may change.
    resumed = run_command("classifier_multi_label/train.py", "--output-dir", run_dir, "--resume", "--export")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr
    epochs = [h["epoch"] for h in json.loads(history.read_text())]
    assert epochs == list(range(1, EPOCHS + 1))
    assert (run_dir / "metrics.json").exists() and (run_dir / "export" / "1" / "saved_model.pb").exists()
    same_results(uninterrupted, run_dir)  # mean epoch losses included: the cut epoch counts all its batches
    env = json.loads((run_dir / "environment.json").read_text())  # the start, then each of the two resumes
    assert len(env["resumed"]) == 2 and env["resumed"][0]["libraries"] == env["libraries"]


def test_sentencepiece_vocabulary(tmp_path):
    import io

    import sentencepiece as spm

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter([t for t, _ in REVIEWS] * 5), model_writer=model,
                                   vocab_size=60, model_type="unigram", pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
                                   user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], hard_vocab_limit=False)
    proto = model.getvalue()
    (tmp_path / "zh.model").write_bytes(proto)
    train = write_hellonlp(tmp_path / "train.csv", REVIEWS * 3)
    proc = run_command("classifier_multi_label/train.py", "--train-file", train, "--vocab-file",
                       tmp_path / "zh.model", "--output-dir", tmp_path / "run", *TINY)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "run" / "spm.model").read_bytes() == proto  # the run folder keeps the vocabulary
    pred = run_command("classifier_multi_label/predict.py", "--model-dir", tmp_path / "run", input="制热很快\n")
    assert pred.returncode == 0 and json.loads(pred.stdout)["text"] == "制热很快", pred.stderr[-2000:]
    # SentencePiece needs tensorflow-text's ops in the export; asking for core ops is refused clearly.
    export_info = json.loads((tmp_path / "run" / "export" / "1" / "assets.extra" / "export.json").read_text())
    assert export_info["tokenizer"] == "tf_text"
    proc = run_command("classifier_multi_label/export.py", "--model-dir", tmp_path / "run", "--export-dir",
                       tmp_path / "exp", "--tokenizer", "core")
    assert proc.returncode == 2 and "use --tokenizer tf_text" in proc.stderr and "Traceback" not in proc.stderr
