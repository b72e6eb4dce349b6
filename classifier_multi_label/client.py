"""Clients for an exported model served by TF Serving: REST (`:8501`) and gRPC (`:8500`).

Both send raw texts to the `serving_default` signature and return the same rows as local
prediction (`prediction_rows`), so `predict.py --server ...` prints what `predict.py --model-dir ...`
prints. Requests go in batches; connection failures, timeouts and "server busy" answers (HTTP
5xx, gRPC UNAVAILABLE / DEADLINE_EXCEEDED / RESOURCE_EXHAUSTED) are retried with exponential back-off;
anything else fails at once with a message that says what to fix.

REST follows https://www.tensorflow.org/tfx/serving/api_rest: `POST /v1/models/NAME[/versions/N]:predict`
with `{"signature_name": ..., "instances": [...]}` (row format) or `{"inputs": {"text": [...]}}`
(columnar format). gRPC uses `tensorflow-serving-api` (`pip install -e .[serving]`).

Example:
    >>> client = RestClient("http://localhost:8501", "reviews")  # doctest: +SKIP
    >>> client.predict(["制热很快，就是声音有点大"])  # doctest: +SKIP
    [{'labels': ['制热', '噪音'], 'scores': {'价格': 0.01, '制热': 0.97, ...}}]
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request

import numpy as np

from .errors import UserError

log = logging.getLogger(__name__)

OUTPUTS = ("scores", "decisions", "label_names")
PARENT_OUTPUTS = ("parent_scores", "parent_decisions", "parent_label_names")  # --label-hierarchy exports


class ServingError(UserError):
    """The server could not be reached or refused the request; the message says what to fix."""


def prediction_rows(scores, decisions, label_names) -> list:
    """[{"labels": predicted names, best score first, "scores": {name: score}}] per text.

    scores, decisions: [texts, num_labels]; label_names: [num_labels] names of the columns.
    """
    rows = []
    for row, dec in zip(np.asarray(scores), np.asarray(decisions)):
        chosen = sorted(np.flatnonzero(dec), key=lambda i: -row[i])
        rows.append({"labels": [label_names[i] for i in chosen],
                     "scores": {n: round(float(s), 6) for n, s in zip(label_names, row)}})
    return rows


def add_parents(rows, scores, decisions, label_names) -> list:
    """`rows` of `prediction_rows` with "parents" (the predicted parent labels, best first) and
    "parent_scores" from the parents' columns of a run trained with --label-hierarchy."""
    for row, extra in zip(rows, prediction_rows(scores, decisions, label_names)):
        row.update(parents=extra["labels"], parent_scores=extra["scores"])
    return rows


def _names(column) -> list:
    return [n.decode("utf-8") if isinstance(n, bytes) else n for n in column]


class _Client:
    def __init__(self, model_name: str, version: int | None = None, signature: str = "serving_default",
                 timeout: float = 30.0, retries: int = 3, backoff: float = 0.5, batch_size: int = 64):
        self.model_name, self.version, self.signature = model_name, version, signature
        self.timeout, self.retries, self.backoff, self.batch_size = timeout, retries, backoff, batch_size

    @property
    def model_label(self) -> str:
        return f"model {self.model_name!r}" + (f" version {self.version}" if self.version else "")

    def predict(self, texts, parents: bool = False) -> list:
        """Rows of `prediction_rows` for `texts`, sent `batch_size` at a time; `parents`: with the
        parent labels of a model trained with --label-hierarchy (`add_parents`)."""
        rows, keys = [], OUTPUTS + (PARENT_OUTPUTS if parents else ())
        for i in range(0, len(texts), self.batch_size):
            out = self._with_retries(list(texts[i:i + self.batch_size]), keys)
            batch = prediction_rows(out["scores"], out["decisions"], _names(out["label_names"][0]))
            if parents:
                batch = add_parents(batch, out["parent_scores"], out["parent_decisions"],
                                    _names(out["parent_label_names"][0]))
            rows += batch
        return rows

    def _with_retries(self, texts, keys) -> dict:
        for attempt in range(self.retries + 1):
            try:
                out = self._predict(texts, keys)
                missing = [k for k in keys if k not in out]
                if missing:
                    raise ServingError(f"{self.target}: the {self.model_label} has no output {missing[0]!r}"
                                       + ("; it was not trained with --label-hierarchy, so it has no parent labels"
                                          if missing[0].startswith("parent_") else ""))
                return out
            except _Retryable as e:
                if attempt == self.retries:
                    raise ServingError(f"{self.target}: {e.reason} after {attempt + 1} attempt(s); is TF Serving "
                                       f"running there (docs/serving.md)?") from None
                delay = self.backoff * 2 ** attempt
                log.warning("%s: %s; retrying in %.1f s", self.target, e.reason, delay)
                time.sleep(delay)


class _Retryable(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RestClient(_Client):
    """TF Serving's REST predict API. `request_format`: "row" (`instances`) or "columnar" (`inputs`)."""

    def __init__(self, server: str, model_name: str, request_format: str = "row", **kwargs):
        super().__init__(model_name, **kwargs)
        if request_format not in ("row", "columnar"):
            raise UserError(f"request format must be row or columnar, not {request_format!r}")
        if not server.startswith(("http://", "https://")):
            server = "http://" + server
        self.request_format = request_format
        version = f"/versions/{self.version}" if self.version else ""
        self.target = f"{server.rstrip('/')}/v1/models/{model_name}{version}:predict"

    def request_body(self, texts) -> dict:
        if self.request_format == "row":
            return {"signature_name": self.signature, "instances": list(texts)}
        return {"signature_name": self.signature, "inputs": {"text": list(texts)}}

    def _predict(self, texts, keys) -> dict:
        body = json.dumps(self.request_body(texts), ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(self.target, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            message = _server_message(e)
            if e.code >= 500:
                raise _Retryable(f"HTTP {e.code}: {message}") from None
            if e.code == 404:
                raise ServingError(f"{self.target}: the server has no {self.model_label} ({message}); check "
                                   "--model-name (the name in models.config, or MODEL_NAME) and --model-version")
            raise ServingError(f"{self.target}: HTTP {e.code}: {message}") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
            reason = getattr(e, "reason", e)
            if isinstance(reason, TimeoutError):
                raise _Retryable(f"no answer within {self.timeout:g} s (--timeout)") from None
            raise _Retryable(f"cannot connect ({reason})") from None
        if "predictions" in answer:  # row format: one object per text
            rows = answer["predictions"]
            return {k: np.array([r[k] for r in rows]) for k in keys if not rows or k in rows[0]}
        if "outputs" in answer:  # columnar format
            return {k: np.array(answer["outputs"][k]) for k in keys if k in answer["outputs"]}
        raise ServingError(f"{self.target}: unexpected answer {str(answer)[:200]}")


def _server_message(error) -> str:
    try:
        return json.loads(error.read().decode("utf-8"))["error"]
    except Exception:  # not TF Serving's JSON error body
        return error.reason


class GrpcClient(_Client):
    """TF Serving's gRPC PredictionService (`host:8500`); needs `tensorflow-serving-api`."""

    def __init__(self, address: str, model_name: str, **kwargs):
        super().__init__(model_name, **kwargs)
        try:
            import grpc
            from tensorflow_serving.apis import prediction_service_pb2_grpc
        except ImportError as e:
            raise ServingError(f"--grpc needs tensorflow-serving-api: pip install -e '.[serving]' ({e})") from None
        self.target, self._grpc = address, grpc
        self._channel = grpc.insecure_channel(address, options=[("grpc.max_receive_message_length", 1 << 30),
                                                                ("grpc.max_send_message_length", 1 << 30)])
        self._stub = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)

    def request(self, texts, keys=OUTPUTS):
        """The `PredictRequest` for `texts`, asking for the outputs `keys`."""
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.model_name
        request.model_spec.signature_name = self.signature
        if self.version:
            request.model_spec.version.value = int(self.version)
        request.inputs["text"].CopyFrom(tf.make_tensor_proto([t.encode("utf-8") for t in texts], tf.string))
        for key in keys:
            request.output_filter.append(key)
        return request

    def _predict(self, texts, keys) -> dict:
        import tensorflow as tf

        grpc = self._grpc
        try:
            response = self._stub.Predict(self.request(texts, keys), timeout=self.timeout)
        except grpc.RpcError as e:
            code, details = e.code(), e.details()
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED,
                        grpc.StatusCode.RESOURCE_EXHAUSTED):
                raise _Retryable(f"{code.name}: {details}") from None
            if code == grpc.StatusCode.NOT_FOUND:
                raise ServingError(f"{self.target}: the server has no {self.model_label} ({details}); check "
                                   "--model-name (the name in models.config, or MODEL_NAME) and --model-version")
            raise ServingError(f"{self.target}: {code.name}: {details}") from None
        return {k: tf.make_ndarray(response.outputs[k]) for k in keys}
