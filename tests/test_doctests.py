"""Every docstring example of the project runs, as written (the README's Python example too: it is
`classifier_multi_label.api`'s module example). An example skips only when it needs something a
test machine does not have, named here."""

import doctest
import importlib
import pkgutil

import pytest

PACKAGES = ["classifier_multi_label", "classifier_multi_label_textcnn", "classifier_multi_label_denses",
            "classifier_multi_label_seq2seq", "contrib.label_mask", "contrib.prototype_contrastive"]
ENTRY_POINTS = {"train", "eval", "predict", "export", "report", "check_data", "__main__"}
# Modules whose examples may carry `# doctest: +SKIP`, and why.
MAY_SKIP = {
    "classifier_multi_label.client": "needs a running TF Serving server",
    "classifier_multi_label.albert_checkpoint": "needs a Google ALBERT checkpoint on disk",
}


def modules():
    """The project's modules that have docstring examples (entry scripts aside)."""
    names = []
    for package in PACKAGES:
        names.append(package)
        for info in pkgutil.iter_modules(importlib.import_module(package).__path__):
            if info.name not in ENTRY_POINTS:
                names.append(f"{package}.{info.name}")
    finder = doctest.DocTestFinder()
    return [n for n in names if any(t.examples for t in finder.find(importlib.import_module(n), n))]


@pytest.fixture(scope="module")
def namespace(demo_run_dir, tmp_path_factory):
    import keras
    import numpy as np
    import tensorflow as tf

    from classifier_multi_label.run import load_run

    run = load_run(str(demo_run_dir))
    return {"tf": tf, "np": np, "keras": keras, "demo_run_dir": str(demo_run_dir), "demo_run": run,
            "backbone": run.model.backbone, "preprocessor": run.preprocessor,
            "tiny_model": dict(embedding_dim=16, hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32,
                               vocab_size=300, max_seq_length=32, batch_size=8, precision="float32",
                               jit_compile=False, baseline="none", export=False, report=False)}


@pytest.mark.parametrize("name", modules())
def test_docstring_examples(name, namespace, tmp_path):
    module = importlib.import_module(name)
    tests = doctest.DocTestFinder().find(module, name, globs={**vars(module), **namespace,
                                                              "tmp_dir": str(tmp_path)})
    examples = [e for t in tests for e in t.examples]
    skipped = [e.source.strip() for e in examples if e.options.get(doctest.SKIP)]
    assert not skipped or name in MAY_SKIP, f"{name}: examples marked +SKIP: {skipped}"
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for t in tests:
        runner.run(t)
    assert runner.failures == 0, f"{runner.failures} of {runner.tries} examples of {name} failed (output above)"
