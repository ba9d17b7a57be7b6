"""The local job queue (at most CC_LOCAL_MAX_JOBS jobs at once, the rest SCHEDULED in order,
across an API restart) and cancel: queued and running local jobs, SageMaker and ECS jobs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import httpx
from botocore.stub import Stubber
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from functions.adapters.ecs_launcher import EcsLauncher
from functions.adapters.local_launcher import _alive
from functions.adapters.sagemaker_launcher import SageMakerLauncher
from functions.api.app import create_app
from functions.core.config import Settings
from functions.services import Services
from tests.conftest import _live_api
from tests.support import DATA_BUCKET, TOPICS, keyword_tree, upload_tree, wait_until

API = "/custom_classifier"
TERMINAL = {"FINISHED", "FAILED", "KILLED"}


def _process(client: Any, prefix: str, experiment: str, mode: str = "tfidf") -> dict[str, Any]:
    body = {"labels": sorted(TOPICS), "path": prefix, "experiment_name": experiment, "mode": mode}
    answer = client.post(f"{API}/process", json=body)
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()["data"]
    return data


def _runs(client: Any, experiment: str) -> dict[str, dict[str, Any]]:
    answer = client.get(f"{API}/runid/status", params={"experiment_name": experiment, "limit": 20})
    return {run["run_id"]: run for run in answer.json()}


def test_three_trainings_with_one_slot_queue_survive_a_restart_and_finish_in_order(
    settings: Settings, s3: Any, tmp_path: Path, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    one_slot = settings.model_copy(update={"local_max_jobs": 1})
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = _live_api(one_slot, tmp_path / "first")
    api = next(first)
    # when: three trainings are asked for at once
    with httpx.Client(base_url=api.url, timeout=60) as client:
        started = [_process(client, dataset_prefix, experiment_name) for _ in range(3)]
        listed = _runs(client, experiment_name)
    ids = [s["info"]["run_id"] for s in started]
    # then: one runs, two wait in order, and the status says where
    assert [s["info"]["status"] for s in started] == ["RUNNING", "SCHEDULED", "SCHEDULED"]
    assert [s["queue_position"] for s in started] == [None, 1, 2]
    assert [listed[i]["status"] for i in ids[1:]] == ["SCHEDULED", "SCHEDULED"]
    assert listed[ids[2]]["queue_position"] in {1, 2}
    # when: the API restarts while they wait
    first.close()
    second = _live_api(one_slot, tmp_path / "second")
    restarted = next(second)
    try:
        with httpx.Client(base_url=restarted.url, timeout=60) as client:
            runs = wait_until(
                lambda: (r := _runs(client, experiment_name)) and
                all(r[i]["status"] in TERMINAL for i in ids) and r,
                timeout=300, what="three queued trainings", every=1,
            )  # fmt: skip
    finally:
        second.close()
    # then: all finished, each started after the one before it had ended
    assert [runs[i]["status"] for i in ids] == ["FINISHED"] * 3
    client_ml = MlflowClient()
    ended = [client_ml.get_run(i).info.end_time / 1000 for i in ids]
    began = [(settings.work_dir / f"cc-{i}" / "pid").stat().st_mtime for i in ids]
    assert began[1] >= ended[0] - 1 and began[2] >= ended[1] - 1, (began, ended)


def test_cancel_stops_a_queued_and_a_running_local_job_and_registers_nothing(
    settings: Settings, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    one_slot = settings.model_copy(update={"local_max_jobs": 1})
    with TestClient(create_app(one_slot)) as api:
        running = _process(api, dataset_prefix, experiment_name, mode="finetune")["info"]["run_id"]
        queued = _process(api, dataset_prefix, experiment_name)["info"]["run_id"]
        # a queued job is taken out of the queue: it never starts
        answer = api.post(f"{API}/run/cancel", json={"run_id": queued, "reason": "wrong labels"})
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["status"] == "KILLED"
        assert answer.json()["data"]["cancelled"] == "cancelled by an API caller: wrong labels"
        # a running job is stopped
        pid_file = one_slot.work_dir / f"cc-{running}" / "pid"
        stopped = api.post(f"{API}/run/cancel", json={"run_id": running})
        assert stopped.status_code == 200, stopped.text
        assert stopped.json()["data"]["status"] == "KILLED"
        assert not _alive(pid_file)
        again = api.post(f"{API}/run/cancel", json={"run_id": running})
        assert again.status_code == 409
        assert "KILLED" in again.json()["error"]
        runs = _runs(api, experiment_name)
    assert not (one_slot.work_dir / f"cc-{queued}" / "pid").exists()
    assert {runs[r]["status"] for r in (running, queued)} == {"KILLED"}
    assert runs[queued]["cancelled"].endswith("wrong labels")
    assert MlflowClient().search_model_versions(f"run_id='{running}'") == []


def _client(service: str) -> Any:
    return boto3.client(
        service, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x",
        endpoint_url=f"https://{service}.us-east-1.amazonaws.com",
    )  # fmt: skip


def test_cancel_stops_sagemaker_and_ecs_jobs(
    settings: Settings, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    """The job launched through /process is stopped by /run/cancel with the launcher's own
    call (botocore's Stubber checks each request; moto has no StopTrainingJob)."""
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    sm_settings = settings.model_copy(update={
        "launcher": "sagemaker", "sagemaker_role_arn": "arn:aws:iam::123456789012:role/cc",
        "training_image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/cc:1"})  # fmt: skip
    sagemaker = SageMakerLauncher(sm_settings, _client("sagemaker"))
    ecs_settings = settings.model_copy(update={
        "launcher": "ecs", "ecs_cluster": "cc", "ecs_task_definition": "cc-training:1",
        "ecs_subnets": ["subnet-1"]})  # fmt: skip
    ecs = EcsLauncher(ecs_settings, _client("ecs"))
    task = "arn:aws:ecs:us-east-1:123456789012:task/cc/0123456789abcdef"
    for launcher, launcher_settings in ((sagemaker, sm_settings), (ecs, ecs_settings)):
        stub = Stubber(launcher.client)
        experiment = f"{experiment_name}-{launcher_settings.launcher}"
        if launcher is sagemaker:
            stub.add_client_error("describe_training_job", "ValidationException", "none")
            stub.add_response("create_training_job", {"TrainingJobArn": "arn:x"})
        else:
            stub.add_response("list_tasks", {"taskArns": []})
            stub.add_response("list_tasks", {"taskArns": []})
            stub.add_response("run_task", {"tasks": [{"taskArn": task}], "failures": []})
        services = Services(launcher_settings, launcher=launcher)
        with stub, TestClient(create_app(launcher_settings, services)) as api:
            started = _process(api, dataset_prefix, experiment)
            run_id, job_id = started["info"]["run_id"], started["job_id"]
            if launcher is sagemaker:
                assert job_id == f"cc-{run_id}"
                stub.add_response("stop_training_job", {}, {"TrainingJobName": job_id})
            else:
                assert job_id == task
                stub.add_response("stop_task", {"task": {"taskArn": task}}, {
                    "cluster": "cc", "task": task,
                    "reason": "cancelled through the custom classifier API"})  # fmt: skip
            cancelled = api.post(f"{API}/run/cancel", json={"run_id": run_id, "reason": "test"})
            assert cancelled.status_code == 200, cancelled.text
            stub.assert_no_pending_responses()
        assert MlflowClient().get_run(run_id).info.status == "KILLED"
