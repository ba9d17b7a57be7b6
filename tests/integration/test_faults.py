"""Faults, each a test: MLflow going away and coming back, the API restarted under a running
job, a killed job found by the reaper, a full disk, concurrent requests; and data safety:
only hard delete removes artifacts, a failed training never displaces the champion."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from functions.api.app import create_app
from functions.core.config import Settings
from functions.core.runs import reap
from functions.services import Services
from tests.conftest import (
    ARTIFACTS_BUCKET,
    LiveApi,
    TrainedModel,
    _live_api,
    _stop,
    free_port,
    start_mlflow,
    train_tiny,
)
from tests.support import DATA_BUCKET, TOPICS, keyword_tree, upload_tree, wait_until

API = "/custom_classifier"


def _process(url_or_client: Any, prefix: str, experiment: str, **extra: Any) -> Any:
    body = {"labels": sorted(TOPICS), "path": prefix, "experiment_name": experiment, **extra}
    return url_or_client.post(f"{API}/process", json=body)


def _runs(client: Any, experiment: str) -> list[dict[str, Any]]:
    answer = client.get(f"{API}/runid/status", params={"experiment_name": experiment, "limit": 20})
    return list(answer.json())


def test_mlflow_stopped_answers_503_then_recovers_when_it_returns(
    settings: Settings, s3_endpoint: str, tmp_path: Path
) -> None:
    port = free_port()
    server = start_mlflow(tmp_path, port, s3_endpoint)
    uri = f"http://127.0.0.1:{port}"
    MlflowClient(uri).create_experiment("outage")
    with TestClient(create_app(settings.model_copy(update={"mlflow_tracking_uri": uri}))) as api:
        assert api.post(f"{API}/job_status", json={"experiment_name": "outage"}).status_code == 200
        _stop(server, group=True)
        down = api.post(f"{API}/job_status", json={"experiment_name": "outage-2"})
        assert down.status_code == 503
        assert "unreachable" in down.json()["error"]
        assert api.get("/health").json()["mlflow"].startswith("down")
        server = start_mlflow(tmp_path, port, s3_endpoint)
        try:
            back = api.post(f"{API}/job_status", json={"experiment_name": "outage"})
            assert back.status_code == 200
            assert api.get("/health").status_code == 200
        finally:
            _stop(server, group=True)


def test_a_job_outlives_an_api_restart_and_its_status_is_right(
    settings: Settings, s3: Any, tmp_path: Path, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = _live_api(settings, tmp_path / "first")
    api = next(first)
    with httpx.Client(base_url=api.url, timeout=60) as client:
        started = _process(client, dataset_prefix, experiment_name, mode="tfidf")
    run_id = started.json()["data"]["info"]["run_id"]
    first.close()  # the API process stops while the job runs
    second = _live_api(settings, tmp_path / "second")
    restarted = next(second)
    try:
        with httpx.Client(base_url=restarted.url) as client:
            run = wait_until(
                lambda: next((r for r in _runs(client, experiment_name)
                              if r["run_id"] == run_id and r["status"] != "RUNNING"), None),
                timeout=180, what="the job's end",
            )  # fmt: skip
    finally:
        second.close()
    assert run["status"] == "FINISHED"
    assert run["registered"]


def test_the_reaper_fails_killed_jobs_nobody_asked_about(
    api: TestClient, settings: Settings, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    run_id = _process(api, dataset_prefix, experiment_name).json()["data"]["info"]["run_id"]
    os.kill(int((settings.work_dir / f"cc-{run_id}" / "pid").read_text()), signal.SIGKILL)
    services = Services(settings)
    reaped = wait_until(lambda: run_id in reap(services.tracking, services.launcher) or
                        MlflowClient().get_run(run_id).info.status == "FAILED",
                        timeout=30, what="the reaper")  # fmt: skip
    assert reaped
    assert MlflowClient().get_run(run_id).info.status == "FAILED"


def _mount_tiny_disk(folder: Path, size: str) -> bool:
    folder.mkdir(parents=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True, check=False)  # fmt: skip
    return done.returncode == 0


def test_a_full_disk_in_the_work_dir_fails_the_run_with_the_reason(
    settings: Settings, s3: Any, tmp_path: Path, dataset_prefix: str, experiment_name: str
) -> None:
    work = tmp_path / "tiny-disk"
    if not _mount_tiny_disk(work, "48k"):
        pytest.skip("mounting a small tmpfs needs root")
    try:
        upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
        full = settings.model_copy(update={"work_dir": work})
        with TestClient(create_app(full)) as api:
            run_id = _process(api, dataset_prefix, experiment_name, mode="head")
            run_id = run_id.json()["data"]["info"]["run_id"]
            run = wait_until(
                lambda: next((r for r in _runs(api, experiment_name)
                              if r["run_id"] == run_id and r["status"] != "RUNNING"), None),
                timeout=180, what="the job's end",
            )  # fmt: skip
        assert run["status"] == "FAILED"
        assert "No space left on device" in run["failure_reason"]
    finally:
        subprocess.run(["umount", "-l", str(work)], check=False)


def test_two_process_requests_at_once_make_two_tracked_runs(
    live_api: LiveApi, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(2)

    def post() -> None:
        with httpx.Client(base_url=live_api.url, timeout=60) as client:
            barrier.wait()
            answers.append(_process(client, dataset_prefix, experiment_name, mode="tfidf"))

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    started = {a.json()["data"]["info"]["run_id"] for a in answers}
    assert len(started) == 2
    with httpx.Client(base_url=live_api.url) as client:
        assert {r["run_id"] for r in _runs(client, experiment_name)} == started


def _objects(s3: Any, prefix: str) -> int:
    listing = s3.list_objects_v2(Bucket=ARTIFACTS_BUCKET, Prefix=prefix)
    return int(listing.get("KeyCount", 0))


def test_only_hard_delete_removes_artifacts(
    api: TestClient, s3: Any, tiny_base_model: str, tmp_path: Path, dataset_prefix: str,
    experiment_name: str,
) -> None:  # fmt: skip
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    run_id = train_tiny(dataset_prefix, experiment_name, tiny_base_model, tmp_path, mode="tfidf")
    experiment_id = MlflowClient().get_run(run_id).info.experiment_id
    stored = _objects(s3, f"{experiment_id}/")
    assert stored > 0
    assert api.post(f"{API}/run/soft_delete", json={"run_id": run_id}).status_code == 200
    body = {"experiment_name": experiment_name}
    assert api.post(f"{API}/experiment/soft_delete", json=body).status_code == 200
    assert _objects(s3, f"{experiment_id}/") == stored
    assert api.post(f"{API}/experiment/hard_delete", json=body).status_code == 200
    assert _objects(s3, f"{experiment_id}/") == 0


def test_a_failed_training_never_displaces_the_champion(
    api: TestClient, s3: Any, tiny_base_model: str, tmp_path: Path,
    trained_model: TrainedModel,
) -> None:  # fmt: skip
    client = MlflowClient()
    before = client.get_model_version_by_alias(trained_model.registered_name, "champion")
    # a run below the bar, in the same experiment, registers nothing
    prefix = f"{trained_model.experiment_name}-again"
    upload_tree(s3, DATA_BUCKET, prefix, keyword_tree(TOPICS, 8))
    train_tiny(prefix, trained_model.experiment_name, tiny_base_model, tmp_path, mode="tfidf",
               min_macro_f1="1.01")  # fmt: skip
    after = client.get_model_version_by_alias(trained_model.registered_name, "champion")
    assert (after.version, after.run_id) == (before.version, before.run_id)
    served = api.post(f"{API}/predict", json={
        "runid": f"models:/{trained_model.registered_name}@champion", "text": "goal"})  # fmt: skip
    assert served.status_code == 200


def test_oversized_bodies_are_refused_before_parsing(api: TestClient) -> None:
    huge = b'{"runid": "x", "text": "' + b"a" * (11 * 1024**2) + b'"}'
    answer = api.post(f"{API}/predict", content=huge, headers={"content-type": "application/json"})
    assert answer.status_code == 413
    assert answer.json()["status"]["code"] == 413
    # streamed without a Content-Length: counted as it arrives
    chunks = (huge[i : i + 65536] for i in range(0, len(huge), 65536))
    streamed = api.post(f"{API}/predict", content=chunks,
                        headers={"content-type": "application/json"})  # fmt: skip
    assert streamed.status_code == 413
    assert "larger than" in streamed.json()["error"]
