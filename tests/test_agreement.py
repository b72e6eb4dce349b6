"""The in-process model (what `Run.predict`, predict.py and eval.py run) and the exported SavedModel
(what TF Serving runs) agree on any text: a property test over random Unicode strings, control
characters, whitespace and very long texts included."""

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

# Any code point a UTF-8 request can carry (lone surrogates cannot be encoded), control characters,
# combining marks and private-use ones included.
TEXTS = st.lists(st.text(st.characters(exclude_categories=("Cs",)), max_size=300), min_size=1, max_size=4)


@pytest.fixture(scope="module")
def both(demo_run_dir):
    import tensorflow as tf

    from classifier_multi_label import load_run

    run = load_run(str(demo_run_dir))
    return run, tf.saved_model.load(str(demo_run_dir / "export" / "1")).signatures["serving_default"]


@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=TEXTS)
@example(texts=["", " ", "\t\n\r\x0b\x0c", "\u3000\u00a0"])  # empty and whitespace-only: valid requests
@example(texts=["a\x00b", "\x00", "\ufeff制热", "e\u0301", "\U0010fffd"])  # NUL, BOM, combining, private use
@example(texts=["声音很大" * 250_000])  # a 1 MB text
def test_in_process_and_exported_model_agree(both, texts):
    import tensorflow as tf

    run, serve = both
    predicted = run.infer(texts)
    rows = run.predict(texts)
    out = serve(text=tf.constant(texts))
    np.testing.assert_allclose(out["scores"].numpy(), predicted["scores"], atol=1e-5)
    np.testing.assert_array_equal(out["decisions"].numpy(), run.decisions(predicted))
    served = [[label.decode() for label in row[:count]]
              for row, count in zip(out["labels"].numpy(), out["label_count"].numpy())]
    assert served == [row["labels"] for row in rows]
