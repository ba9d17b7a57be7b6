"""Out-of-scope texts and drift, through the API on a model trained by the real job."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from mlflow import MlflowClient

from functions.api.app import create_app
from functions.api.handler import build_handler
from functions.core.config import Settings
from tests.conftest import train_tiny
from tests.support import DATA_BUCKET, TOPICS, LambdaApi, keyword_tree, upload_tree

PREDICT = "/custom_classifier/predict"
UNSEEN = {"chemistry": ["molecule", "acid", "reaction", "atom", "bond"]}


def texts(tree: dict[str, dict[str, bytes]]) -> list[str]:
    return [body.decode() for docs in tree.values() for body in docs.values()]


def predict(api: TestClient, run_id: str, batch: list[str]) -> list[dict[str, Any]]:
    response = api.post(PREDICT, json={"runid": run_id, "texts": batch})
    assert response.status_code == 200, response.text
    answers: list[dict[str, Any]] = response.json()["data"]
    return answers


def test_texts_of_a_label_never_seen_are_out_of_scope_and_their_traffic_is_drift(
    settings: Settings, s3: Any, tmp_path: Path
) -> None:
    # Given a model trained on two labels' documents
    prefix = f"ds-scope-{uuid.uuid4().hex[:6]}"
    upload_tree(s3, DATA_BUCKET, prefix, keyword_tree(TOPICS, 12))
    run_id = train_tiny(prefix, f"exp-scope-{uuid.uuid4().hex[:6]}", settings.base_model,
                        tmp_path / "sm", mode="tfidf")  # fmt: skip
    run = MlflowClient().get_run(run_id)
    assert run.data.metrics["scope_documents"] > 0
    assert "custom_classifier.scope" in run.data.tags
    live = settings.model_copy(update={"drift_flush_seconds": 0.0})
    with TestClient(create_app(live)) as api:
        # When it is asked about documents like its training ones, then about a third label's
        seen = predict(api, run_id, texts(keyword_tree(TOPICS, 8)))
        unseen = predict(api, run_id, texts(keyword_tree(UNSEEN, 40))[:40])
        # Then the third label's are out of scope, scored further out than the seen ones
        assert all(a["out_of_scope"] for a in unseen)
        assert sum(a["out_of_scope"] for a in seen) <= 2
        assert min(a["ood_score"] for a in unseen) > max(a["ood_score"] for a in seen)
        # And the gauge and the drift report say traffic moved away from the training data
        gauge = f'cc_out_of_scope_share{{run_id="{run_id}"}}'
        line = next(x for x in api.get("/metrics").text.splitlines() if x.startswith(gauge))
        assert float(line.split()[-1]) >= 40 / 56
        response = api.get(f"/custom_classifier/runs/{run_id}/drift", params={"hours": 2})
        assert response.status_code == 200, response.text
        report = response.json()["data"]
        assert report["overall"]["predictions"] == 56
        assert report["drifted"] is True and report["overall"]["drift_auc"] > 0.7
        assert report["method"] == "unsureness" and len(report["hours"]) >= 1
    # And another process (a Lambda behind API Gateway) reads the same report from the bucket
    handler = LambdaApi(build_handler(settings.model_copy(update={"api_base_path": "/prod"})))
    code, body = handler.call("v2", "GET", f"/custom_classifier/runs/{run_id}/drift")
    assert code == 200 and body["data"]["overall"]["predictions"] == 56


def test_drift_of_a_run_without_a_training_summary_is_a_clear_4xx(
    api: TestClient, settings: Settings
) -> None:
    client = MlflowClient()
    experiment = client.create_experiment(f"exp-noscope-{uuid.uuid4().hex[:6]}")
    run = client.create_run(experiment)
    response = api.get(f"/custom_classifier/runs/{run.info.run_id}/drift")
    assert response.status_code == 422 and "retrain" in response.json()["error"]
    missing = api.get("/custom_classifier/runs/0123456789abcdef0123456789abcdef/drift")
    assert missing.status_code == 404
