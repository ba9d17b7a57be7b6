"""An Idempotency-Key on /process: a retried request starts one run and one job; the key with
another body is refused; concurrent retries still make one; keys expire."""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from functions.api.app import create_app
from functions.core.config import Settings
from tests.conftest import LiveApi
from tests.support import DATA_BUCKET, TOPICS, keyword_tree, upload_tree

API = "/custom_classifier"


def _body(prefix: str, experiment: str, mode: str = "tfidf") -> dict[str, Any]:
    return {"labels": sorted(TOPICS), "path": prefix, "experiment_name": experiment, "mode": mode}


def _runs(experiment: str) -> list[str]:
    client = MlflowClient()
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return [run.info.run_id for run in client.search_runs([experiment_id])]


def _jobs(settings: Settings) -> list[str]:
    return sorted(p.name for p in settings.work_dir.iterdir() if p.name.startswith("cc-"))


def test_a_retried_process_with_one_key_starts_one_run_and_one_job(
    api: TestClient, settings: Settings, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    headers = {"Idempotency-Key": "order-7f3c"}
    body = _body(dataset_prefix, experiment_name)
    first = api.post(f"{API}/process", json=body, headers=headers)
    retried = api.post(f"{API}/process", json=body, headers=headers)
    assert first.status_code == retried.status_code == 200, (first.text, retried.text)
    run_id = first.json()["data"]["info"]["run_id"]
    assert retried.json()["data"]["info"]["run_id"] == run_id
    assert retried.json()["data"]["job_id"] == first.json()["data"]["job_id"]
    assert retried.json()["number_documents_treated"] == first.json()["number_documents_treated"]
    assert _runs(experiment_name) == [run_id]
    assert len(_jobs(settings)) == 1

    # the same key with another body is a conflict, and creates nothing
    other = api.post(f"{API}/process", json=_body(dataset_prefix, experiment_name, "head"),
                     headers=headers)  # fmt: skip
    assert other.status_code == 409
    assert "different request" in other.json()["error"]
    assert _runs(experiment_name) == [run_id]

    # without a key every request is a new run
    unkeyed = api.post(f"{API}/process", json=body)
    assert unkeyed.json()["data"]["info"]["run_id"] != run_id
    # a key that is not printable ASCII is refused
    bad = api.post(f"{API}/process", json=body, headers={"Idempotency-Key": "a b"})
    assert bad.status_code == 422
    assert "Idempotency-Key" in bad.json()["error"]


def test_concurrent_retries_with_one_key_make_one_run(
    live_api: LiveApi, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(3)

    def post() -> None:
        with httpx.Client(base_url=live_api.url, timeout=60) as client:
            barrier.wait()
            body = _body(dataset_prefix, experiment_name)
            headers = {"Idempotency-Key": "retry-storm"}
            answers.append(client.post(f"{API}/process", json=body, headers=headers))

    threads = [threading.Thread(target=post) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200] * 3, [a.text for a in answers]
    started = {a.json()["data"]["info"]["run_id"] for a in answers}
    assert len(started) == 1
    assert _runs(experiment_name) == list(started)
    assert len(_jobs(live_api.settings)) == 1


def test_an_expired_key_may_be_used_for_another_request(
    settings: Settings, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    short = settings.model_copy(update={"idempotency_ttl_seconds": 1.0})
    headers = {"Idempotency-Key": "short-lived"}
    with TestClient(create_app(short)) as api:
        first = api.post(f"{API}/process", json=_body(dataset_prefix, experiment_name),
                         headers=headers)  # fmt: skip
        time.sleep(1.5)
        later = api.post(f"{API}/process", json=_body(dataset_prefix, experiment_name, "head"),
                         headers=headers)  # fmt: skip
    assert first.status_code == later.status_code == 200, later.text
    assert later.json()["data"]["info"]["run_id"] != first.json()["data"]["info"]["run_id"]
