"""A job that ends without logging its outcome (killed, refused by SageMaker) shows as FAILED,
with the launcher's reason, in the status endpoints."""

from __future__ import annotations

import os
import signal
from typing import Any

import boto3
from botocore.stub import ANY, Stubber
from fastapi.testclient import TestClient

from functions.adapters.sagemaker_launcher import SageMakerLauncher
from functions.api.app import create_app
from functions.core.config import Settings
from functions.services import Services
from tests.support import DATA_BUCKET, TOPICS, keyword_tree, upload_tree, wait_until


def _start(api: TestClient, prefix: str, experiment: str) -> str:
    body = {"labels": sorted(TOPICS), "path": prefix, "experiment_name": experiment}
    response = api.post("/custom_classifier/process", json=body)
    assert response.status_code == 200, response.text
    return str(response.json()["data"]["info"]["run_id"])


def _status(api: TestClient, experiment: str) -> dict[str, Any]:
    runs = api.post("/custom_classifier/job_status", json={"experiment_name": experiment})
    return dict(runs.json()[0])


def test_a_killed_local_job_is_reported_failed(
    api: TestClient, settings: Settings, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    # given: a training job running as a local process
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    run_id = _start(api, dataset_prefix, experiment_name)
    pid = int((settings.work_dir / f"cc-{run_id}" / "pid").read_text())
    # when: it is killed before it can log anything (OOM killer, kill -9)
    os.kill(pid, signal.SIGKILL)
    # then: the status endpoint marks its run FAILED, with why
    run = wait_until(
        lambda: (r := _status(api, experiment_name))["status"] == "FAILED" and r,
        timeout=30,
        what="FAILED status",
    )
    assert run["run_id"] == run_id
    assert "ended without reporting an outcome" in run["failure_reason"]


def test_a_sagemaker_job_that_failed_before_logging_shows_its_reason(
    settings: Settings, s3: Any, dataset_prefix: str, experiment_name: str
) -> None:
    # given: the API on the SageMaker launcher; SageMaker takes the job, then fails it
    aws = settings.model_copy(
        update={
            "launcher": "sagemaker",
            "training_image_uri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/cc:1",
            "sagemaker_role_arn": "arn:aws:iam::123456789012:role/cc-sagemaker",
        }
    )
    client = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    stub = Stubber(client)
    stub.add_client_error("describe_training_job", "ValidationException", "not found")
    stub.add_response("create_training_job", {"TrainingJobArn": "arn:aws:sagemaker:x"},
                      {"TrainingJobName": ANY, **{k: ANY for k in (
                          "AlgorithmSpecification", "RoleArn", "HyperParameters",
                          "OutputDataConfig", "ResourceConfig", "StoppingCondition",
                          "EnableManagedSpotTraining", "Environment", "Tags",
                          "InputDataConfig")}})  # fmt: skip
    reason = "ClientError: Unable to pull the training image: access denied"
    stub.add_response(
        "describe_training_job",
        {
            "TrainingJobName": "cc",
            "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/cc",
            "ModelArtifacts": {"S3ModelArtifacts": ""},
            "TrainingJobStatus": "Failed",
            "SecondaryStatus": "Failed",
            "FailureReason": reason,
            "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "ResourceConfig": {"InstanceCount": 1, "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 60},
            "CreationTime": "2026-11-23T12:00:00Z",
        },
    )
    services = Services(aws, launcher=SageMakerLauncher(aws, client))
    upload_tree(s3, DATA_BUCKET, dataset_prefix, keyword_tree(TOPICS, 8))
    with stub, TestClient(create_app(aws, services)) as api:
        run_id = _start(api, dataset_prefix, experiment_name)
        run = _status(api, experiment_name)
        again = _status(api, experiment_name)  # FAILED now lives in MLflow: no second call
    stub.assert_no_pending_responses()
    assert run["run_id"] == run_id
    assert run["status"] == again["status"] == "FAILED"
    assert run["failure_reason"] == f"SageMaker job cc-{run_id} failed: {reason}"
