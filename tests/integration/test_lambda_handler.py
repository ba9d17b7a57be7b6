"""The API through Mangum with real API Gateway REST (v1) and HTTP API (v2) events."""

from __future__ import annotations

from typing import Any

import pytest
from mlflow import MlflowClient

from tests.support import DATA_BUCKET, LambdaApi, keyword_tree, upload_tree

VERSIONS = ["v1", "v2"]


@pytest.mark.parametrize("version", VERSIONS)
def test_status_routes_answer_through_the_handler(
    lambda_api: LambdaApi, experiment_name: str, version: str
) -> None:
    client = MlflowClient()
    experiment_id = client.create_experiment(experiment_name)
    run_id = client.create_run(experiment_id, run_name="training_classifier-x").info.run_id

    code, body = lambda_api.call(
        version, "POST", "/custom_classifier/job_status", {"experiment_name": experiment_name}
    )
    assert code == 200
    assert body[0]["run_id"] == run_id
    assert body[0]["tags.mlflow.runName"] == "training_classifier-x"

    code, body = lambda_api.call(
        version,
        "GET",
        "/custom_classifier/runid/status",
        query={"experiment_name": experiment_name},
    )
    assert code == 200
    assert body[0]["run_id"] == run_id

    code, body = lambda_api.call(version, "GET", "/custom_classifier/all_experiments/last_run")
    assert code == 200
    assert any(item["run_id"] == run_id for item in body)

    code, body = lambda_api.call(
        version, "POST", "/custom_classifier/run/soft_delete", {"run_id": run_id}
    )
    assert code == 200
    assert body["status"].startswith(f"Run {run_id} soft-deleted")


@pytest.mark.parametrize("version", VERSIONS)
def test_process_through_the_handler_validates_and_creates_the_run(
    lambda_api: LambdaApi, s3: Any, dataset_prefix: str, experiment_name: str, version: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree({"a": ["x"], "b": ["y"]}, 8))

    code, body = lambda_api.call(
        version,
        "POST",
        "/custom_classifier/process",
        {"labels": ["a"], "path": dataset_prefix, "experiment_name": experiment_name},
    )
    assert code == 422
    assert body["status"]["code"] == 422
    assert "two distinct labels" in body["error"]

    code, body = lambda_api.call(
        version,
        "POST",
        "/custom_classifier/process",
        {"labels": ["a", "b"], "path": dataset_prefix, "experiment_name": experiment_name},
    )
    assert code == 200, body
    assert body["data"]["info"]["status"] == "RUNNING"
    assert body["number_documents_treated"] == 16


@pytest.mark.parametrize("version", VERSIONS)
def test_unknown_experiment_and_route_get_404_envelopes(
    lambda_api: LambdaApi, version: str
) -> None:
    code, body = lambda_api.call(
        version, "POST", "/custom_classifier/experiment/soft_delete", {"experiment_name": "nope"}
    )
    assert code == 404
    assert body["error"] == "experiment 'nope' not found"
    code, body = lambda_api.call(version, "GET", "/custom_classifier/nothing-here")
    assert code == 404
    assert body["status"]["code"] == 404


@pytest.mark.parametrize("version", VERSIONS)
def test_docs_resolve_under_the_stage(lambda_api: LambdaApi, version: str) -> None:
    code, page = lambda_api.call(version, "GET", "/docs")
    assert code == 200
    assert "/prod/openapi.json" in page
    code, spec = lambda_api.call(version, "GET", "/openapi.json")
    assert code == 200
    assert "/custom_classifier/process" in spec["paths"]
