"""What the UI and CLI use: datasets, label suggestions, presigned resumable uploads, run
details with evaluation images, promotion; and what operators watch: /metrics, audit log,
request ids."""

from __future__ import annotations

import hashlib
import json
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from prometheus_client.parser import text_string_to_metric_families

from functions.api.app import create_app
from functions.core.config import Settings
from tests.conftest import TrainedModel, train_tiny
from tests.support import (
    DATA_BUCKET,
    TOPICS,
    docx_bytes,
    eml_bytes,
    html_bytes,
    keyword_tree,
    list_keys,
    pdf_bytes,
    upload_tree,
)

API = "/custom_classifier"


def _files(tree: dict[str, dict[str, bytes]]) -> list[dict[str, Any]]:
    return [
        {"path": f"{label}/{name}", "size": len(body), "md5": hashlib.md5(body).hexdigest()}
        for label, docs in tree.items()
        for name, body in docs.items()
    ]


def test_presigned_upload_puts_files_in_s3_and_resumes(
    api: TestClient, s3: Any, dataset_prefix: str
) -> None:
    tree = keyword_tree(TOPICS, 3)
    bodies = {
        f"{label}/{name}": body for label, docs in tree.items() for name, body in docs.items()
    }
    bad = [{"path": "../escape.txt", "size": 3}, {"path": "sports/.hidden", "size": 3},
           {"path": "sports/empty.txt", "size": 0}]  # fmt: skip
    # when: an upload is planned and only the first two files are sent
    plan = api.post(f"{API}/uploads", json={"path": dataset_prefix, "files": _files(tree) + bad})
    assert plan.status_code == 200, plan.text
    data = plan.json()["data"]
    assert data["data_uri"] == f"s3://{DATA_BUCKET}/{dataset_prefix}"
    assert {r["path"] for r in data["rejected"]} == {b["path"] for b in bad}
    assert plan.json()["list_id_not_treated"] == [b["path"] for b in bad]
    # short-lived SigV4 URLs, each for one object
    assert data["expires_in"] == 900
    for item in data["uploads"]:
        query = parse_qs(urlsplit(item["url"]).query)
        assert query["X-Amz-Expires"] == ["900"]
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert urlsplit(item["url"]).path.endswith(quote(item["key"]))
    for item in data["uploads"][:2]:
        assert httpx.put(item["url"], content=bodies[item["path"]]).status_code == 200
    # then: the objects are in S3, and planning again skips them (the upload resumes)
    again = api.post(f"{API}/uploads", json={"path": dataset_prefix, "files": _files(tree)})
    resumed = again.json()["data"]
    assert len(resumed["skipped"]) == 2
    assert len(resumed["uploads"]) == len(bodies) - 2
    for item in resumed["uploads"]:
        assert httpx.put(item["url"], content=bodies[item["path"]]).status_code == 200
    stored = s3.get_object(Bucket=DATA_BUCKET, Key=data["uploads"][0]["key"])["Body"].read()
    assert stored == bodies[data["uploads"][0]["path"]]
    # and the labels are suggested from the folders, with their counts
    labels = api.get(f"{API}/datasets/labels", params={"path": dataset_prefix}).json()
    assert labels["data"] == [
        {
            "label": label,
            "documents": 3,
            "not_usable": 0,
            "not_usable_documents": [],
            "formats": {"text": 3},
        }
        for label in sorted(TOPICS)
    ]
    assert dataset_prefix in api.get(f"{API}/datasets").json()["data"]
    # and documents training would not use are named with the reason, before it starts
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{dataset_prefix}/sports/blank.txt", Body=b"")
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{dataset_prefix}/sports/.DS_Store", Body=b"x")
    labels = api.get(f"{API}/datasets/labels", params={"path": dataset_prefix}).json()
    sports = next(f for f in labels["data"] if f["label"] == "sports")
    assert sports["not_usable"] == 2
    assert sorted((d["key"], d["reason"]) for d in sports["not_usable_documents"]) == [
        (f"{dataset_prefix}/sports/.DS_Store", "hidden file"),
        (f"{dataset_prefix}/sports/blank.txt", "empty"),
    ]
    assert labels["number_documents_non_treated"] == 2
    assert sorted(labels["list_id_not_treated"]) == [
        k for k, _ in sorted((d["key"], d["reason"]) for d in sports["not_usable_documents"])
    ]


def test_the_survey_counts_formats_by_content_and_names_unreadable_files(
    api: TestClient, s3: Any, dataset_prefix: str
) -> None:
    # given: documents as customers have them, some named as something else
    files = {
        "sports/match.pdf": pdf_bytes("the striker scored"),
        "sports/notes.txt": docx_bytes("a Word file saved as .txt: named text, not opened"),
        "sports/page.bin": html_bytes("the league match report"),
        "sports/minutes.docx": docx_bytes("the match minutes"),
        "weather/forecast.eml": eml_bytes("forecast", "rain and storm"),
        "weather/old.doc": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(600),
        "weather/radar.png": b"\x89PNG\r\n\x1a\n" + bytes(600),
        "weather/today.txt": b"sunny",
    }
    for path, body in files.items():
        s3.put_object(Bucket=DATA_BUCKET, Key=f"{dataset_prefix}/{path}", Body=body)
    # when
    labels = api.get(f"{API}/datasets/labels", params={"path": dataset_prefix}).json()
    # then: formats from the content (a page named .bin is HTML), unreadable ones named
    folders = {f["label"]: f for f in labels["data"]}
    assert folders["sports"]["formats"] == {"docx": 1, "html": 1, "pdf": 1, "text": 1}
    assert folders["weather"]["formats"] == {"email": 1, "text": 1}
    assert {d["key"].rsplit("/", 1)[1]: d["reason"] for d in
            folders["weather"]["not_usable_documents"]} == {
        "old.doc": "an Office 97-2003 file (.doc, .xls or Outlook .msg): save it as DOCX or .eml",
        "radar.png": "binary",
    }  # fmt: skip
    # and /process's dataset check answers the same counts as it starts the run
    body = {"path": dataset_prefix, "labels": ["sports", "weather"], "experiment_name": "x"}
    refused = api.post(f"{API}/process", json=body)
    assert refused.status_code == 422  # 2 usable weather documents: fewer than 8
    assert refused.json()["number_documents_non_treated"] == 2


def test_upload_outside_the_data_bucket_or_too_many_files_is_refused(
    api: TestClient, dataset_prefix: str
) -> None:
    one = [{"path": "a/b", "size": 1}]
    outside = api.post(f"{API}/uploads", json={"path": "s3://elsewhere/x", "files": one})
    assert outside.status_code == 422
    many = [{"path": f"a/{i}.txt", "size": 1} for i in range(1001)]
    too_many = api.post(f"{API}/uploads", json={"path": dataset_prefix, "files": many})
    assert too_many.status_code == 422
    assert "at most 1000 files" in too_many.json()["error"]


def test_run_detail_report_images_and_unknown_artifacts(
    api: TestClient, trained_model: TrainedModel
) -> None:
    detail = api.get(f"{API}/runs/{trained_model.run_id}").json()["data"]
    assert detail["experiment_name"] == trained_model.experiment_name
    assert detail["status"] == "FINISHED"
    assert set(detail["report"]["per_class"]) == set(TOPICS)
    assert "test_macro_f1" in detail["metrics"]
    assert detail["artifacts"] == [
        "evaluation/confusion_matrix.png",
        "evaluation/pr_roc_curves.png",
    ]
    for path in detail["artifacts"]:
        image = api.get(f"{API}/runs/{trained_model.run_id}/artifacts/{path}")
        assert image.status_code == 200
        assert image.headers["content-type"] == "image/png"
        assert image.content.startswith(b"\x89PNG")
    model_file = api.get(f"{API}/runs/{trained_model.run_id}/artifacts/model/MLmodel")
    assert model_file.status_code == 422
    assert api.get(f"{API}/runs/{'0' * 32}").status_code == 404


def test_test_predictions_list_every_evaluated_document_and_which_are_wrong(
    api: TestClient, trained_model: TrainedModel, s3: Any
) -> None:
    url = f"{API}/runs/{trained_model.run_id}/test_predictions"
    run = api.get(f"{API}/runs/{trained_model.run_id}").json()["data"]
    everything = api.get(url, params={"limit": 1000}).json()["data"]
    # every document the metrics were measured on, with its true and predicted label
    rows = everything["rows"]
    assert everything["documents"] == len(rows) == run["metrics"]["estimate_documents"]
    assert everything["estimate"].endswith(f"over all {len(rows)} documents "
                                           "(a test split would hold under 30)")  # fmt: skip
    accuracy = sum(not r["wrong"] for r in rows) / len(rows)
    assert accuracy == pytest.approx(run["metrics"]["test_accuracy"])
    assert everything["wrong"] == sum(r["wrong"] for r in rows)
    for row in rows:
        assert row["key"].startswith("ds-trained-")
        assert row["true_labels"][0] == row["key"].split("/")[1]
        assert row["score"] == max(row["scores"].values())
        assert row["wrong"] == (row["true_labels"] != row["predicted_labels"])
    # filtered: only the wrong ones, or one true label (its support in the report)
    wrong = api.get(url, params={"wrong_only": True}).json()["data"]
    assert wrong["matching"] == everything["wrong"] and all(r["wrong"] for r in wrong["rows"])
    sports = api.get(url, params={"true_label": "sports", "limit": 2}).json()["data"]
    assert sports["matching"] == run["report"]["per_class"]["sports"]["support"]
    assert len(sports["rows"]) == 2
    assert {r["true_labels"][0] for r in sports["rows"]} == {"sports"}
    # a listed document opens as its text, as stored; nothing the run was not evaluated on
    key = rows[0]["key"]
    document = api.get(f"{API}/runs/{trained_model.run_id}/document", params={"key": key})
    stored = s3.get_object(Bucket=DATA_BUCKET, Key=key)["Body"].read().decode()
    assert document.json()["data"] == {"key": key, "text": stored, "truncated": False}
    other = f"{key.split('/')[0]}/elsewhere/secret.txt"
    refused = api.get(f"{API}/runs/{trained_model.run_id}/document", params={"key": other})
    assert refused.status_code == 404 and "was not evaluated on" in refused.json()["error"]
    # an unknown label or run
    unknown = api.get(url, params={"predicted_label": "politics"})
    assert unknown.status_code == 422 and "'politics' is not one of" in unknown.json()["error"]
    assert api.get(f"{API}/runs/{'0' * 32}/test_predictions").status_code == 404


def test_promote_moves_the_champion_alias_and_refuses_unregistered_runs(
    api: TestClient,
    s3: Any,
    tiny_base_model: str,
    tmp_path: Any,
    dataset_prefix: str,
    experiment_name: str,
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    first = train_tiny(dataset_prefix, experiment_name, tiny_base_model, tmp_path / "a",
                       mode="tfidf")  # fmt: skip
    second = train_tiny(dataset_prefix, experiment_name, tiny_base_model, tmp_path / "b",
                        mode="tfidf")  # fmt: skip
    name = f"{experiment_name}-classifier"
    client = MlflowClient()
    assert client.get_model_version_by_alias(name, "champion").run_id == second
    promoted = api.post(f"{API}/promote", json={"run_id": first})
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["data"] == {"registered_model": name, "version": "1",
                                       "alias": "champion"}  # fmt: skip
    assert client.get_model_version_by_alias(name, "champion").run_id == first
    served = api.post(f"{API}/predict", json={"runid": f"models:/{name}@champion", "text": "goal"})
    assert served.status_code == 200
    request = {"labels": list(TOPICS), "path": dataset_prefix, "experiment_name": experiment_name}
    unregistered = api.post(f"{API}/process", json=request)
    running = unregistered.json()["data"]["info"]["run_id"]
    refused = api.post(f"{API}/promote", json={"run_id": running})
    assert refused.status_code == 409
    assert "no registered model version" in refused.json()["error"]
    assert client.get_model_version_by_alias(name, "champion").run_id == first


def _metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus' text format (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def test_metrics_counters_move_and_predictions_are_audited(
    settings: Settings, trained_model: TrainedModel, tmp_path: Any
) -> None:
    audit = tmp_path / "audit.jsonl"
    with TestClient(create_app(settings.model_copy(update={"audit_log_path": audit}))) as api:
        before = api.get("/metrics").text
        body = {"runid": trained_model.run_id, "texts": ["goal scored", "heavy rain"]}
        answer = api.post(f"{API}/predict", json=body, headers={"x-request-id": "req-42"})
        api.post(f"{API}/predict", json={"runid": "nope", "text": "x"})
        after = api.get("/metrics").text
    assert answer.headers["x-request-id"] == "req-42"
    route = f"{API}/predict"
    ok = {"route": route, "method": "POST", "status": "200"}
    assert _metric(after, "cc_http_requests_total", **ok) == _metric(
        before, "cc_http_requests_total", **ok) + 1  # fmt: skip
    missing = {"route": route, "method": "POST", "status": "404"}
    assert _metric(after, "cc_http_requests_total", **missing) >= 1
    labels = [p["label"] for p in answer.json()["data"]]
    for label in set(labels):
        assert _metric(after, "cc_predictions_total", label=label) >= labels.count(label)
    assert _metric(after, "cc_model_cache_loads_total") >= 1
    assert "cc_http_request_seconds_bucket" in after
    # the audit log keeps a hash and the length of each text, not the text
    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [e["input_chars"] for e in entries] == [11, 10]
    assert entries[0]["input_sha256"] == hashlib.sha256(b"goal scored").hexdigest()
    assert {e["request_id"] for e in entries} == {"req-42"}
    assert {e["run_id"] for e in entries} == {trained_model.run_id}
    assert "text" not in entries[0]
    assert [e["label"] for e in entries] == labels


def test_process_counts_training_jobs_by_outcome(api: TestClient, dataset_prefix: str) -> None:
    body = {"labels": ["a"], "path": dataset_prefix, "experiment_name": "x"}
    assert api.post(f"{API}/process", json=body).status_code == 422
    text = api.get("/metrics").text
    assert _metric(text, "cc_training_jobs_total", outcome="rejected") >= 1


def test_lambda_writes_request_metrics_as_cloudwatch_emf(settings: Settings, capsys: Any) -> None:
    with TestClient(create_app(settings.model_copy(update={"metrics_emf": True}))) as api:
        api.get(f"{API}/runs/{'0' * 32}")
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    (emf,) = lines
    directive = emf["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "CustomClassifier"
    assert directive["Dimensions"] == [["route", "status"]]
    assert {m["Name"]: m["Unit"] for m in directive["Metrics"]} == {
        "Requests": "Count", "Latency": "Milliseconds"}  # fmt: skip
    assert (emf["route"], emf["status"], emf["Requests"]) == (f"{API}/runs/{{run_id}}", "404", 1)


def test_filing_a_document_copies_it_into_a_label_folder_and_refuses_bad_names(
    api: TestClient, s3: Any, dataset_prefix: str
) -> None:
    s3.put_object(Bucket=DATA_BUCKET, Key=f"{dataset_prefix}-inbox/a.txt", Body=b"rain again")
    document = f"s3://{DATA_BUCKET}/{dataset_prefix}-inbox/a.txt"
    # when: it is filed under a label the dataset does not have yet
    asked = {"document": document, "path": dataset_prefix, "label": "weather"}
    filed = api.post(f"{API}/datasets/file", json=asked)
    # then: a copy in the new label folder, the original kept
    assert filed.status_code == 200, filed.text
    assert filed.json()["data"]["key"] == f"s3://{DATA_BUCKET}/{dataset_prefix}/weather/a.txt"
    copy = s3.get_object(Bucket=DATA_BUCKET, Key=f"{dataset_prefix}/weather/a.txt")
    assert copy["Body"].read() == b"rain again"
    assert list_keys(s3, DATA_BUCKET, f"{dataset_prefix}-inbox/") == [
        f"{dataset_prefix}-inbox/a.txt"
    ]
    # and: bad labels, a missing document, a bucket it may not read are refused, nothing copied
    for label, code in (("_hidden", 422), ("a/b", 422), ("", 422)):
        body = {"document": document, "path": dataset_prefix, "label": label}
        refused = api.post(f"{API}/datasets/file", json=body)
        assert refused.status_code == code, refused.text
    missing = api.post(f"{API}/datasets/file", json={**asked, "document": f"{document}.gone"})
    assert missing.status_code == 404 and "not found" in missing.json()["error"]
    elsewhere = api.post(f"{API}/datasets/file",
                         json={**asked, "document": "s3://other-bucket/a.txt"})  # fmt: skip
    assert elsewhere.status_code == 422
    assert len(list_keys(s3, DATA_BUCKET, f"{dataset_prefix}/")) == 1
