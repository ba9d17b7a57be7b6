"""Predict through the app and the Mangum handler, on a tiny model trained in a fixture."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from urllib3 import encode_multipart_formdata

from documents.extract import Extracted, extract
from functions.adapters.model_loader import READY_MARKER, MlflowModelLoader
from functions.api.app import create_app
from functions.core.config import Settings
from tests.conftest import TrainedModel, train_tiny
from tests.support import (
    ARTIFACTS_BUCKET,
    DATA_BUCKET,
    HEAVY_RUNTIMES,
    TOPICS,
    LambdaApi,
    blank_pdf_bytes,
    docx_bytes,
    eml_bytes,
    encrypted_pdf_bytes,
    html_bytes,
    keyword_tree,
    list_keys,
    pdf_bytes,
    upload_tree,
    zip_bomb_bytes,
)

PREDICT = "/custom_classifier/predict"


def _assert_prediction(item: dict[str, Any], labels: list[str]) -> None:
    assert item["label"] in labels
    assert item["label"] == labels[item["prediction"]]
    assert 0.0 < item["score"] <= 1.0


def test_predict_one_text_answers_the_seed_shape(
    api: TestClient, trained_model: TrainedModel
) -> None:
    response = api.post(PREDICT, json={"runid": trained_model.run_id, "text": "rain and storm"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == {"code": 200, "message": "Success"}
    # The seed's fields, and how far out of the model's scope the text is.
    assert set(body["data"]) == {"label", "prediction", "score", "abstained", "ood_score",
                                 "out_of_scope"}  # fmt: skip
    assert body["data"]["abstained"] is False
    assert 0.0 <= body["data"]["ood_score"] <= 1.0
    assert isinstance(body["data"]["out_of_scope"], bool)
    _assert_prediction(body["data"], trained_model.labels)
    assert body["error"] == "" and body["list_id_not_treated"] == []


def test_all_scores_answers_the_probability_of_every_label(
    api: TestClient, trained_model: TrainedModel
) -> None:
    # when: every label's probability is asked for, for two texts
    body = {"runid": trained_model.run_id, "texts": ["rain and storm", "goal"], "all_scores": True}
    response = api.post(PREDICT, json=body)
    # then: each answer has all labels' scores, summing to 1, its top label the answer's
    assert response.status_code == 200, response.text
    for item in response.json()["data"]:
        _assert_prediction(item, trained_model.labels)
        assert set(item["scores"]) == set(trained_model.labels)
        assert sum(item["scores"].values()) == pytest.approx(1.0, abs=1e-6)
        assert max(item["scores"], key=item["scores"].get) == item["label"]
        assert item["scores"][item["label"]] == pytest.approx(item["score"])


def test_predict_a_list_keeps_order_and_matches_single_answers(
    api: TestClient, trained_model: TrainedModel
) -> None:
    texts = ["football match tonight", "sunny forecast", "the striker scored a goal"]
    listed = api.post(PREDICT, json={"runid": trained_model.run_id, "texts": texts}).json()
    assert len(listed["data"]) == 3
    for text, item in zip(texts, listed["data"], strict=True):
        single = api.post(PREDICT, json={"runid": trained_model.run_id, "text": text}).json()
        assert single["data"]["label"] == item["label"]
        assert single["data"]["score"] == pytest.approx(item["score"], rel=1e-4)


def test_registered_alias_serves_the_same_model(
    api: TestClient, trained_model: TrainedModel
) -> None:
    text = {"text": "storm clouds and rain"}
    by_run = api.post(PREDICT, json={"runid": trained_model.run_id, **text}).json()["data"]
    alias = f"models:/{trained_model.registered_name}@champion"
    by_alias = api.post(PREDICT, json={"runid": alias, **text}).json()["data"]
    assert by_alias == by_run


def test_long_text_is_read_in_windows_not_rejected(
    api: TestClient, trained_model: TrainedModel
) -> None:
    long_text = " ".join(["the forecast says rain"] * 3000)  # ~12,000 tokens
    response = api.post(PREDICT, json={"runid": trained_model.run_id, "text": long_text})
    assert response.status_code == 200
    _assert_prediction(response.json()["data"], trained_model.labels)


def test_concurrent_first_requests_load_the_model_once(
    settings: Settings, trained_model: TrainedModel
) -> None:
    # given: a fresh process-like app with an empty cache
    with TestClient(create_app(settings)) as api:
        results: list[int] = []

        def call() -> None:
            body = {"runid": trained_model.run_id, "text": "goal"}
            results.append(api.post(PREDICT, json=body).status_code)

        # when: eight clients ask at once
        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        # then: all answered, and the model was loaded a single time
        assert results == [200] * 8
        cache = api.get("/health").json()["model_cache"]
        assert cache["loads"] == 1
        assert cache["misses"] == 1
        assert cache["hits"] == 7
        assert cache["cached_runs"] == [trained_model.run_id]


def test_model_download_is_kept_on_disk(settings: Settings, trained_model: TrainedModel) -> None:
    loader = MlflowModelLoader(settings)
    first = loader.local_copy(trained_model.run_id)
    marker = (first / READY_MARKER).stat().st_mtime_ns
    second = loader.local_copy(trained_model.run_id)
    assert second == first
    assert (second / READY_MARKER).stat().st_mtime_ns == marker
    assert (second / "MLmodel").is_file()


def _serve_in_fresh_process(settings: Settings, run_id: str, cache: Path) -> dict[str, Any]:
    """Load a run's model and predict in a new process configured only through CC_*
    settings, as the API runs: the model code's file, the model's size, its answer, and
    which of HEAVY_RUNTIMES the process imported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["CC_MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    env["CC_MODEL_CACHE_DIR"] = str(cache)
    code = (
        "import json, sys\n"
        "from functions.adapters.model_loader import MlflowModelLoader\n"
        "from functions.core.config import Settings\n"
        f"model = MlflowModelLoader(Settings()).load({run_id!r})\n"
        "label = model.predict(['rain and storm'])[0].label\n"
        "print(json.dumps({'package': sys.modules['training_job'].__file__, 'label': label,\n"
        "  'size': model.size_bytes,\n"
        f"  'heavy': [m for m in {HEAVY_RUNTIMES!r} if m in sys.modules]}}))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    answer: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return answer


def test_loader_needs_no_tracking_environment(
    settings: Settings, trained_model: TrainedModel, tmp_path: Path
) -> None:
    # when: a process configured only through CC_* settings loads a run's model
    served = _serve_in_fresh_process(settings, trained_model.run_id, tmp_path)
    # then: the model loaded with the code it shipped with, not the installed package
    assert Path(served["package"]).is_relative_to(tmp_path), served
    assert served["size"] > 0
    assert served["label"] in trained_model.labels


def _run(experiment: str, status: str | None, tags: dict[str, str] | None = None) -> str:
    client = MlflowClient()
    experiment_id = client.create_experiment(experiment)
    run_id = client.create_run(experiment_id, tags=tags or {}).info.run_id
    if status:
        client.set_terminated(run_id, status)
    return str(run_id)


@pytest.mark.parametrize(
    ("status", "tags", "message"),
    [
        (None, {}, "is still training"),
        ("FAILED", {"custom_classifier.failure_reason": "DatasetError: x"}, "failed: DatasetError"),
        (
            "FINISHED",
            {
                "custom_classifier.gate": "failed",
                "custom_classifier.gate_reason": "test macro-F1 0.4 is below the bar",
            },
            "did not pass the evaluation bar",
        ),
    ],
)
def test_runs_without_a_servable_model_get_409(
    api: TestClient, experiment_name: str, status: str | None, tags: dict[str, str], message: str
) -> None:
    run_id = _run(experiment_name, status, tags)
    response = api.post(PREDICT, json={"runid": run_id, "text": "hello"})
    assert response.status_code == 409
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    ("body", "code", "message"),
    [
        ({"runid": "0" * 32, "text": "hello"}, 404, "not found"),
        ({"runid": "a/b", "text": "hello"}, 404, "not found"),
        ({"runid": "../x", "text": "hello"}, 404, "not found"),
        ({"runid": "\u00fcn\u00ef c\u00f6d\u00e9", "text": "hello"}, 404, "not found"),
        ({"runid": "a'b", "text": "hello"}, 404, "not found"),
        ({"runid": "models:/no-such-model@champion", "text": "hello"}, 404, "not found"),
        ({"runid": "RUN", "text": "   "}, 422, "text 0 is empty"),
        ({"runid": "RUN", "text": "x" * 100_001}, 422, "the limit is 100000"),
        ({"runid": "RUN", "texts": []}, 422, "non-empty `texts`"),
        ({"runid": "RUN", "texts": ["a"] * 65}, 422, "at most 64 texts"),
        ({"runid": "RUN", "text": "a", "texts": ["b"]}, 422, "exactly one of"),
        ({"runid": "RUN"}, 422, "exactly one of"),
        ({"text": "a"}, 422, "runid"),
    ],
)
def test_bad_predict_requests(
    api: TestClient, trained_model: TrainedModel, body: dict[str, Any], code: int, message: str
) -> None:
    if body.get("runid") == "RUN":
        body = {**body, "runid": trained_model.run_id}
    response = api.post(PREDICT, json=body)
    assert response.status_code == code, response.text
    assert message in response.json()["error"]


def test_a_binary_file_read_as_text_is_refused_as_training_would(
    api: TestClient, trained_model: TrainedModel
) -> None:
    # given: a PDF's bytes as `predict --file scan.pdf` reads them (errors="replace")
    stream = random.Random(0).randbytes(4000)
    pdf = b"%PDF-1.7\n1 0 obj\n<< /Filter /DCTDecode >>\nstream\n" + stream + b"\nendstream\n"
    as_read = pdf.decode("utf-8", errors="replace")
    # when: it is sent beside a normal text
    body = {"runid": trained_model.run_id, "texts": ["rain and storm", as_read]}
    refused = api.post(PREDICT, json=body)
    # then: 422 naming the rule and the index, not a confident label
    assert refused.status_code == 422, refused.text
    assert "text 1 cannot be classified: binary" in refused.json()["error"]
    # and the normal text alone still predicts
    alone = api.post(PREDICT, json={"runid": trained_model.run_id, "text": "rain and storm"})
    assert alone.status_code == 200, alone.text
    _assert_prediction(alone.json()["data"], trained_model.labels)


FORECAST = "rain and storm in the forecast, cloud and rain"
DOCUMENTS = {
    "pdf": lambda: pdf_bytes(FORECAST),
    "docx": lambda: docx_bytes(FORECAST),
    "html": lambda: html_bytes(FORECAST),
    "email": lambda: eml_bytes("the forecast", FORECAST),
}


@pytest.mark.parametrize("kind", list(DOCUMENTS))
def test_a_document_in_base64_or_uploaded_is_labelled_like_its_text(
    api: TestClient, trained_model: TrainedModel, kind: str
) -> None:
    # given: a file of each format written by its own library, holding a weather text
    raw = DOCUMENTS[kind]()
    run_id = trained_model.run_id
    # The document's text as the reader gives it (an e-mail's also has its headers): what a
    # user pasting it would send; the tiny model's label for it is the one to match.
    read = extract(raw)
    assert isinstance(read, Extracted) and FORECAST in read.text
    as_text = api.post(PREDICT, json={"runid": run_id, "text": read.text}).json()["data"]
    # when: it is sent in base64 in the JSON body, and uploaded as multipart/form-data
    sent = api.post(PREDICT, json={"runid": run_id, "document": base64.b64encode(raw).decode()})
    uploaded = api.post(f"{PREDICT}/file", data={"runid": run_id, "all_scores": "true"},
                        files={"file": (f"document.{kind}", raw)})  # fmt: skip
    # then: read as that format, and labelled as its text is
    for answer in (sent, uploaded):
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert data["format"] == kind
        assert data["label"] == as_text["label"]
        assert data["score"] == pytest.approx(as_text["score"], abs=1e-5)
    assert set(uploaded.json()["data"]["scores"]) == set(trained_model.labels)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (lambda: encrypted_pdf_bytes(FORECAST), "encrypted PDF (needs a password)"),
        (lambda: blank_pdf_bytes(), "no text layer (a scanned PDF: it would take OCR)"),
        (lambda: blank_pdf_bytes(600), "PDF of 600 pages, more than the limit of 500"),
        (lambda: zip_bomb_bytes(), "more than the limit"),
        (lambda: b"PK\x03\x04" + b"\x00" * 200, "a damaged ZIP archive, not a readable DOCX"),
        (lambda: eml_bytes("scan", "", "scan.pdf"), "attachments, not read: scan.pdf"),
        (lambda: b"", "the document is empty"),
    ],
    ids=["encrypted", "scanned", "too-many-pages", "zip-bomb", "corrupt-docx", "attachment-only",
         "empty"],
)  # fmt: skip
def test_a_document_that_cannot_be_read_answers_422_saying_why(
    api: TestClient, trained_model: TrainedModel, raw: Any, message: str
) -> None:
    body = raw()
    encoded = {"runid": trained_model.run_id, "document": base64.b64encode(body).decode()}
    for answer in (
        api.post(PREDICT, json=encoded),
        api.post(f"{PREDICT}/file", data={"runid": trained_model.run_id},
                 files={"file": ("upload.bin", body)}),
    ):  # fmt: skip
        assert answer.status_code == 422, answer.text
        assert answer.json()["status"]["code"] == 422
        assert message in answer.json()["error"], answer.json()["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"text": "rain", "document": "cmFpbg=="}, "give exactly one of `text`, `texts` or"),
        ({"document": "not base64 !"}, "`document` must be the file's bytes in base64"),
    ],
)
def test_a_document_request_that_is_malformed_answers_422(
    api: TestClient, trained_model: TrainedModel, body: dict[str, Any], message: str
) -> None:
    answer = api.post(PREDICT, json={"runid": trained_model.run_id, **body})
    assert answer.status_code == 422, answer.text
    assert message in answer.json()["error"]


def test_an_upload_without_a_file_or_too_large_answers_4xx(
    settings: Settings, trained_model: TrainedModel
) -> None:
    run = {"runid": trained_model.run_id}
    with TestClient(create_app(settings.model_copy(update={"max_document_bytes": 1000}))) as small:
        missing = small.post(f"{PREDICT}/file", data=run)
        assert missing.status_code == 422 and "file" in missing.json()["error"]
        large = small.post(f"{PREDICT}/file", data=run, files={"file": ("a.docx", docx_bytes("x"))})
        assert large.status_code == 422, large.text
        assert "the limit is 1000" in large.json()["error"]


def test_a_file_uploaded_through_the_http_api_event_is_read_as_sent(
    lambda_api: LambdaApi, trained_model: TrainedModel
) -> None:
    # given: an HTTP API event whose multipart body API Gateway passed in base64
    fields = {"runid": trained_model.run_id, "file": ("forecast.pdf", pdf_bytes(FORECAST))}
    body, content_type = encode_multipart_formdata(fields)
    # when
    code, answer = lambda_api.call("v2", "POST", f"{PREDICT}/file", body,
                                   content_type=content_type)  # fmt: skip
    # then
    assert code == 200, answer
    assert (answer["data"]["format"], answer["data"]["label"]) == ("pdf", "weather")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_predict_through_the_lambda_handler(
    lambda_api: LambdaApi, trained_model: TrainedModel, version: str
) -> None:
    code, body = lambda_api.call(
        version, "POST", PREDICT, {"runid": trained_model.run_id, "texts": ["goal", "rain"]}
    )
    assert code == 200
    assert len(body["data"]) == 2
    for item in body["data"]:
        _assert_prediction(item, trained_model.labels)


def test_a_damaged_model_file_answers_503_for_that_model_alone_until_repaired(
    api: TestClient,
    settings: Settings,
    s3: Any,
    trained_model: TrainedModel,
    tiny_base_model: str,
    dataset_prefix: str,
    experiment_name: str,
    tmp_path: Path,
) -> None:
    # given: a model served by onnxruntime, and its network's file in the artifact store
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 10))
    run_id = train_tiny(dataset_prefix, experiment_name, tiny_base_model, tmp_path, mode="head")
    experiment = MlflowClient().get_experiment_by_name(experiment_name)
    # the server proxies mlflow-artifacts:/<experiment id>/... to the artifacts bucket
    prefix = experiment.artifact_location.removeprefix("mlflow-artifacts:/") + "/"
    bucket = ARTIFACTS_BUCKET
    [key] = [k for k in list_keys(s3, bucket, prefix) if k.endswith("/classifier/encoder.onnx")]
    original = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    ask = {"runid": run_id, "text": "rain and storm"}
    for damage in ("corrupt", "missing"):
        if damage == "corrupt":
            s3.put_object(Bucket=bucket, Key=key, Body=b"\x08\x07not an onnx model")
        else:
            s3.delete_object(Bucket=bucket, Key=key)
        # when: it is asked for
        broken = api.post(PREDICT, json=ask)
        # then: 503 saying which model cannot be loaded and why; other models still answer
        assert broken.status_code == 503, broken.text
        message = broken.json()["error"]
        assert f"the model of run {run_id} cannot be loaded" in message, message
        assert "missing or damaged" in message
        other = api.post(PREDICT, json={"runid": trained_model.run_id, "text": "rain"})
        assert other.status_code == 200, other.text
    # and once the file is repaired, the same process serves it: the failure was not cached
    s3.put_object(Bucket=bucket, Key=key, Body=original)
    repaired = api.post(PREDICT, json=ask)
    assert repaired.status_code == 200, repaired.text
    _assert_prediction(repaired.json()["data"], list(TOPICS))
    # and the predict path serves it with neither torch nor transformers loaded
    served = _serve_in_fresh_process(settings, run_id, tmp_path / "cache")
    assert served["heavy"] == []
    assert served["label"] == repaired.json()["data"]["label"]
