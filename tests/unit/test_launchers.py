"""The SageMaker and ECS launchers: the exact requests they send, idempotency, failure mapping.

SageMaker runs against moto (`mock_aws`), which accepts incomplete requests and completes
jobs at once, so the request is captured on its way out and asserted on. moto 5.2.5 cannot
run Fargate tasks with a network configuration (it crashes building the task's ENI), so the
ECS launcher is checked with botocore's Stubber, which validates every request and response
against the ECS API model.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from functions.adapters.ecs_launcher import EcsLauncher
from functions.adapters.sagemaker_launcher import SageMakerLauncher
from functions.core.config import Settings
from functions.core.models import JobSpec

IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/custom-classifier-training:1.0"
ROLE = "arn:aws:iam::123456789012:role/cc-sagemaker"
CLUSTER = "cc-training"
TASK_DEF = "cc-training:3"
TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/cc-training/0123456789abcdef"
HPS = {
    "labels": '["sports", "weather"]',
    "data_uri": "s3://cc-data/news",
    "run_id": "0" * 32,
    "tracking_uri": "https://mlflow.example.com",
    "mode": "auto",
}
SPEC = JobSpec(job_name="cc-" + "0" * 32, hyperparameters=HPS)


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        yield


def _sagemaker(settings: Settings) -> tuple[SageMakerLauncher, list[dict[str, Any]]]:
    client = boto3.client("sagemaker", region_name="us-east-1")
    sent: list[dict[str, Any]] = []
    client.meta.events.register(
        "provide-client-params.sagemaker.CreateTrainingJob",
        lambda params, **_: sent.append(dict(params)),
    )
    return SageMakerLauncher(settings, client), sent


def _sm_settings(**extra: Any) -> Settings:
    return Settings(
        launcher="sagemaker",
        training_image_uri=IMAGE,
        sagemaker_role_arn=ROLE,
        mlflow_tracking_uri="https://mlflow.example.com",
        artifacts_bucket="cc-artifacts",
        **extra,
    )


def test_sagemaker_request_carries_image_role_channel_and_hyperparameters(aws: None) -> None:
    launcher, sent = _sagemaker(_sm_settings())
    launch = launcher.launch(SPEC)
    assert launch.created and launch.job_id == SPEC.job_name
    assert sent == [
        {
            "TrainingJobName": SPEC.job_name,
            "AlgorithmSpecification": {
                "TrainingImage": IMAGE,
                "TrainingInputMode": "File",
                "ContainerEntrypoint": ["python", "-m", "training_job"],
                "ContainerArguments": ["train"],
            },
            "RoleArn": ROLE,
            "HyperParameters": HPS,
            "OutputDataConfig": {"S3OutputPath": "s3://cc-artifacts/sagemaker"},
            "ResourceConfig": {
                "InstanceType": "ml.m5.xlarge",
                "InstanceCount": 1,
                "VolumeSizeInGB": 30,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
            "EnableManagedSpotTraining": False,
            "Environment": {"MLFLOW_TRACKING_URI": "https://mlflow.example.com"},
            "Tags": [{"Key": "custom-classifier:job", "Value": SPEC.job_name}],
            "InputDataConfig": [
                {
                    "ChannelName": "training",
                    "DataSource": {
                        "S3DataSource": {
                            "S3DataType": "S3Prefix",
                            "S3Uri": "s3://cc-data/news/",
                            "S3DataDistributionType": "FullyReplicated",
                        }
                    },
                }
            ],
        }
    ]
    described = launcher.client.describe_training_job(TrainingJobName=SPEC.job_name)
    assert described["AlgorithmSpecification"]["TrainingImage"] == IMAGE


def test_sagemaker_spot_training_waits_at_least_the_runtime(aws: None) -> None:
    launcher, sent = _sagemaker(
        _sm_settings(
            sagemaker_use_spot=True,
            sagemaker_max_runtime_seconds=7200,
            sagemaker_max_wait_seconds=3600,
        )
    )
    launcher.launch(SPEC)
    assert sent[0]["EnableManagedSpotTraining"] is True
    assert sent[0]["StoppingCondition"] == {
        "MaxRuntimeInSeconds": 7200,
        "MaxWaitTimeInSeconds": 7200,
    }


def test_sagemaker_batch_job_runs_the_batch_command_without_a_channel(aws: None) -> None:
    launcher, sent = _sagemaker(_sm_settings())
    launcher.launch(JobSpec("b-123", {"run_id": "1" * 32}, command="batch", restartable=True))
    assert sent[0]["AlgorithmSpecification"]["ContainerArguments"] == ["batch"]
    assert "InputDataConfig" not in sent[0]


def test_sagemaker_batch_over_n_instances_deals_one_shard_to_each(aws: None) -> None:
    # given: a batch job over 3 GPU instances, with its 3 shard descriptors written
    launcher, sent = _sagemaker(_sm_settings())
    shards = "s3://cc-artifacts/batch-jobs/shards/batch-0123456789abcdef/3/"
    spec = JobSpec("batch-0123456789abcdef", {"run_id": "1" * 32, "shards_uri": shards},
                   command="batch", restartable=True, instances=3,
                   instance_type="ml.g5.xlarge")  # fmt: skip
    # when: it is launched
    launcher.launch(spec)
    # then: one training job of exactly 3 instances of that type, whose channel deals the
    # descriptors out by key (each instance gets its shard), no copy of the documents
    assert sent[0]["ResourceConfig"] == {
        "InstanceType": "ml.g5.xlarge", "InstanceCount": 3, "VolumeSizeInGB": 30,
    }  # fmt: skip
    assert sent[0]["InputDataConfig"] == [
        {
            "ChannelName": "shards",
            "DataSource": {
                "S3DataSource": {
                    "S3DataType": "S3Prefix",
                    "S3Uri": shards,
                    "S3DataDistributionType": "ShardedByS3Key",
                }
            },
        }
    ]
    described = launcher.client.describe_training_job(TrainingJobName=spec.job_name)
    assert described["ResourceConfig"]["InstanceCount"] == 3


def test_sagemaker_launching_the_same_job_twice_creates_one(aws: None) -> None:
    launcher, sent = _sagemaker(_sm_settings())
    first = launcher.launch(SPEC)
    second = launcher.launch(SPEC)
    assert (first.created, second.created) == (True, False)
    assert second.job_id == first.job_id
    assert len(sent) == 1
    names = launcher.client.list_training_jobs()["TrainingJobSummaries"]
    assert [job["TrainingJobName"] for job in names] == [SPEC.job_name]


def _stubbed_sagemaker() -> tuple[SageMakerLauncher, Stubber]:
    client = boto3.client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return SageMakerLauncher(_sm_settings(), client), Stubber(client)


def _described(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": SPEC.job_name,
        "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:123456789012:training-job/{SPEC.job_name}",
        "ModelArtifacts": {"S3ModelArtifacts": ""},
        "TrainingJobStatus": status,
        "SecondaryStatus": extra.pop("SecondaryStatus", "Starting"),
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": IMAGE},
        "ResourceConfig": {
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": 1,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 86400},
        "CreationTime": "2026-11-23T12:00:00Z",
        **extra,
    }


def test_sagemaker_failure_maps_failed_stopped_and_missing_jobs() -> None:
    launcher, stub = _stubbed_sagemaker()
    request = {"TrainingJobName": SPEC.job_name}
    stub.add_response(
        "describe_training_job",
        _described("Failed", FailureReason="CapacityError: no ml.m5.xlarge capacity"),
        request,
    )
    stub.add_response("describe_training_job", _described("Stopped", SecondaryStatus="Stopped"),
                      request)  # fmt: skip
    stub.add_response("describe_training_job", _described("InProgress"), request)
    stub.add_client_error("describe_training_job", "ValidationException",
                          "Requested resource not found.", expected_params=request)  # fmt: skip
    with stub:
        assert launcher.failure(SPEC.job_name) == (
            f"SageMaker job {SPEC.job_name} failed: CapacityError: no ml.m5.xlarge capacity"
        )
        assert "was stopped" in str(launcher.failure(SPEC.job_name))
        assert launcher.failure(SPEC.job_name) is None
        assert launcher.failure(SPEC.job_name) == f"SageMaker has no training job {SPEC.job_name}"
    stub.assert_no_pending_responses()


def test_sagemaker_restarts_a_failed_restartable_job_under_a_new_name() -> None:
    launcher, stub = _stubbed_sagemaker()
    spec = JobSpec(SPEC.job_name, {"run_id": "1" * 32}, command="batch", restartable=True)
    stub.add_response("describe_training_job", _described("Failed", FailureReason="OOM"),
                      {"TrainingJobName": spec.job_name})  # fmt: skip
    stub.add_client_error("describe_training_job", "ValidationException", "not found",
                          expected_params={"TrainingJobName": f"{spec.job_name}-2"})  # fmt: skip
    stub.add_response(
        "create_training_job",
        {"TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/x-2"},
        launcher.request(spec, f"{spec.job_name}-2"),
    )
    with stub:
        launch = launcher.launch(spec)
    assert (launch.job_id, launch.created) == (f"{spec.job_name}-2", True)


def test_launchers_refuse_to_start_without_their_settings() -> None:
    with pytest.raises(ValueError, match="CC_TRAINING_IMAGE_URI"):
        SageMakerLauncher(Settings(launcher="sagemaker"))
    with pytest.raises(ValueError, match="CC_ECS_CLUSTER"):
        EcsLauncher(Settings(launcher="ecs"))


def _ecs() -> tuple[EcsLauncher, Stubber]:
    settings = Settings(
        launcher="ecs",
        ecs_cluster=CLUSTER,
        ecs_task_definition=TASK_DEF,
        ecs_subnets=["subnet-0a1b2c3d"],
        ecs_security_groups=["sg-0a1b2c3d"],
        mlflow_tracking_uri="https://mlflow.example.com",
    )
    client = boto3.client(
        "ecs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return EcsLauncher(settings, client), Stubber(client)


def _list(job: str, desired: str, arns: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    return {"taskArns": arns}, {"cluster": CLUSTER, "startedBy": job, "desiredStatus": desired}


def test_ecs_runs_the_training_image_as_a_fargate_task() -> None:
    launcher, stub = _ecs()
    stub.add_response("list_tasks", *_list(SPEC.job_name, "RUNNING", []))
    stub.add_response("list_tasks", *_list(SPEC.job_name, "STOPPED", []))
    expected = {
        "cluster": CLUSTER,
        "taskDefinition": TASK_DEF,
        "launchType": "FARGATE",
        "count": 1,
        "startedBy": SPEC.job_name,
        "clientToken": SPEC.job_name,
        "networkConfiguration": {
            "awsvpcConfiguration": {
                "subnets": ["subnet-0a1b2c3d"],
                "securityGroups": ["sg-0a1b2c3d"],
                "assignPublicIp": "DISABLED",
            }
        },
        "overrides": {
            "containerOverrides": [
                {
                    "name": "training",
                    "command": ["train"],
                    "environment": [
                        {"name": "SM_HPS", "value": json.dumps(HPS)},
                        {"name": "MLFLOW_TRACKING_URI", "value": "https://mlflow.example.com"},
                    ],
                }
            ]
        },
        "tags": [{"key": "custom-classifier:job", "value": SPEC.job_name}],
    }
    stub.add_response("run_task", {"tasks": [{"taskArn": TASK_ARN}], "failures": []}, expected)
    with stub:
        launch = launcher.launch(SPEC)
    stub.assert_no_pending_responses()
    assert (launch.job_id, launch.created) == (TASK_ARN, True)


def test_ecs_runs_a_job_over_n_instances_as_n_tasks_each_with_its_shard() -> None:
    launcher, stub = _ecs()
    spec = JobSpec("batch-0123456789abcdef", {"run_id": "1" * 32}, command="batch",
                   restartable=True, instances=3)  # fmt: skip
    stub.add_response("list_tasks", *_list(spec.job_name, "RUNNING", []))
    stub.add_response("list_tasks", *_list(spec.job_name, "STOPPED", []))
    for shard in range(3):
        request = launcher.request(spec, attempt=0, shard=shard)
        environment = request["overrides"]["containerOverrides"][0]["environment"]
        assert {"name": "JOB_SHARD_INDEX", "value": str(shard)} in environment
        assert request["clientToken"] == f"{spec.job_name}-shard-{shard}"
        arn = f"{TASK_ARN[:-1]}{shard}"
        stub.add_response("run_task", {"tasks": [{"taskArn": arn}], "failures": []}, request)
    with stub:
        launch = launcher.launch(spec)
    stub.assert_no_pending_responses()  # three RunTask calls, one a shard
    assert launch.created


def test_ecs_does_not_start_a_job_twice_and_reports_capacity_failures() -> None:
    launcher, stub = _ecs()
    stub.add_response("list_tasks", *_list(SPEC.job_name, "RUNNING", [TASK_ARN]))
    stub.add_response("list_tasks", *_list("cc-other", "RUNNING", []))
    stub.add_response("list_tasks", *_list("cc-other", "STOPPED", []))
    stub.add_response("run_task", {"tasks": [], "failures": [{"reason": "RESOURCE:MEMORY"}]})
    with stub:
        assert launcher.launch(SPEC).created is False
        with pytest.raises(RuntimeError, match="RESOURCE:MEMORY"):
            launcher.launch(JobSpec("cc-other", HPS))


def test_ecs_failure_maps_stopped_tasks_by_exit_code() -> None:
    launcher, stub = _ecs()
    request = {"cluster": CLUSTER, "tasks": [TASK_ARN]}

    def task(status: str, code: int | None, reason: str = "") -> dict[str, Any]:
        container: dict[str, Any] = {"name": "training"}
        if code is not None:
            container["exitCode"] = code
        return {"tasks": [{"taskArn": TASK_ARN, "lastStatus": status, "stoppedReason": reason,
                           "containers": [container]}], "failures": []}  # fmt: skip

    stub.add_response("describe_tasks", task("STOPPED", 137, "OutOfMemoryError: killed"), request)
    stub.add_response("describe_tasks", task("STOPPED", 0, "Essential container exited"), request)
    stub.add_response("describe_tasks", task("RUNNING", None), request)
    stub.add_response("describe_tasks", {"tasks": [], "failures": [{"reason": "MISSING"}]},
                      request)  # fmt: skip
    with stub:
        assert "OutOfMemoryError" in str(launcher.failure(TASK_ARN))
        assert launcher.failure(TASK_ARN) is None
        assert launcher.failure(TASK_ARN) is None
        assert "no longer knows" in str(launcher.failure(TASK_ARN))


def test_sagemaker_gpu_machine_types_run_the_cuda_image_where_one_is_set(aws: None) -> None:
    launcher, sent = _sagemaker(_sm_settings(sagemaker_gpu_image_uri=f"{IMAGE}-cuda"))
    launcher.launch(replace(SPEC, job_name="cc-gpu", instance_type="ml.g6.xlarge"))
    launcher.launch(replace(SPEC, job_name="cc-cpu", instance_type="ml.c5.2xlarge"))
    images = [request["AlgorithmSpecification"]["TrainingImage"] for request in sent]
    assert images == [f"{IMAGE}-cuda", IMAGE]
    # without a CUDA image a GPU type runs the CPU image (on its CPUs)
    launcher, sent = _sagemaker(_sm_settings())
    launcher.launch(replace(SPEC, job_name="cc-gpu-2", instance_type="ml.g5.xlarge"))
    assert sent[0]["AlgorithmSpecification"]["TrainingImage"] == IMAGE
