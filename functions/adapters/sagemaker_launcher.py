"""JobLauncher on SageMaker training jobs, with boto3 alone (the SageMaker SDK is too heavy
for a Lambda and clashes with MLflow's dependencies; see README "Deploy to AWS").

The job name is the idempotency key: SageMaker keeps names unique per account and region,
so a repeated launch finds the existing job instead of starting a second one.
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from functions.core.config import Settings
from functions.core.models import JobSpec, Launch

log = logging.getLogger(__name__)

ACTIVE = {"InProgress", "Stopping"}
CHANNEL = "training"
# A batch job over N instances: the channel that deals one shard descriptor to each.
SHARDS_CHANNEL = "shards"
# Machine types with NVIDIA GPUs: they run the CUDA image where one is configured.
GPU_FAMILIES = ("ml.g4dn.", "ml.g5.", "ml.g6.", "ml.g6e.", "ml.p3.", "ml.p4d.", "ml.p5.")


def sagemaker_client(settings: Settings) -> Any:
    config = Config(connect_timeout=3, read_timeout=20, retries={"max_attempts": 3})
    return boto3.client("sagemaker", region_name=settings.aws_region, config=config)


def _channel(name: str, uri: str, distribution: str) -> dict[str, Any]:
    return {
        "ChannelName": name,
        "DataSource": {
            "S3DataSource": {
                "S3DataType": "S3Prefix",
                "S3Uri": uri.rstrip("/") + "/",
                "S3DataDistributionType": distribution,
            }
        },
    }


class SageMakerLauncher:
    def __init__(self, settings: Settings, client: Any | None = None) -> None:
        if not settings.training_image_uri or not settings.sagemaker_role_arn:
            raise ValueError(
                "the sagemaker launcher needs CC_TRAINING_IMAGE_URI and CC_SAGEMAKER_ROLE_ARN"
            )
        self.settings = settings
        self.client = client or sagemaker_client(settings)

    def output_uri(self) -> str:
        return self.settings.sagemaker_output_uri or (
            f"s3://{self.settings.artifacts_bucket}/sagemaker"
        )

    def request(self, spec: JobSpec, job_name: str) -> dict[str, Any]:
        """The CreateTrainingJob request for a spec."""
        s = self.settings
        stopping: dict[str, int] = {"MaxRuntimeInSeconds": s.sagemaker_max_runtime_seconds}
        if s.sagemaker_use_spot:
            stopping["MaxWaitTimeInSeconds"] = max(
                s.sagemaker_max_wait_seconds, s.sagemaker_max_runtime_seconds
            )
        instance_type = spec.instance_type or s.sagemaker_instance_type
        gpu = instance_type.startswith(GPU_FAMILIES) and s.sagemaker_gpu_image_uri
        request: dict[str, Any] = {
            "TrainingJobName": job_name,
            "AlgorithmSpecification": {
                "TrainingImage": s.sagemaker_gpu_image_uri if gpu else s.training_image_uri,
                "TrainingInputMode": "File",
                "ContainerEntrypoint": ["python", "-m", "training_job"],
                "ContainerArguments": [spec.command],
            },
            "RoleArn": s.sagemaker_role_arn,
            "HyperParameters": dict(spec.hyperparameters),
            "OutputDataConfig": {"S3OutputPath": self.output_uri()},
            "ResourceConfig": {
                "InstanceType": instance_type,
                "InstanceCount": spec.instances,
                "VolumeSizeInGB": s.sagemaker_volume_gb,
            },
            "StoppingCondition": stopping,
            "EnableManagedSpotTraining": s.sagemaker_use_spot,
            "Environment": {"MLFLOW_TRACKING_URI": s.mlflow_tracking_uri},
            "Tags": [{"Key": "custom-classifier:job", "Value": spec.job_name}],
        }
        if s.sagemaker_subnets:
            request["VpcConfig"] = {
                "Subnets": s.sagemaker_subnets,
                "SecurityGroupIds": s.sagemaker_security_groups,
            }
        data_uri = spec.hyperparameters.get("data_uri", "")
        if data_uri:  # training: SageMaker copies the dataset prefix into the channel
            request["InputDataConfig"] = [_channel(CHANNEL, data_uri, "FullyReplicated")]
        shards_uri = spec.hyperparameters.get("shards_uri", "")
        if spec.instances > 1 and shards_uri:
            # N descriptors over N instances: each gets its shard's (the job reads the
            # documents itself, so a restart with any N finds the same parts)
            request["InputDataConfig"] = [_channel(SHARDS_CHANNEL, shards_uri, "ShardedByS3Key")]
        return request

    def _status(self, job_name: str) -> str | None:
        try:
            answer = self.client.describe_training_job(TrainingJobName=job_name)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ValidationException":
                return None  # no such job
            raise
        return str(answer["TrainingJobStatus"])

    def _attempt_name(self, job_name: str) -> str:
        """The next free `<name>-<n>` for a restartable job (SageMaker never reuses names)."""
        n = 2
        while self._status(f"{job_name}-{n}") is not None:
            n += 1
        return f"{job_name}-{n}"

    def launch(self, spec: JobSpec) -> Launch:
        status = self._status(spec.job_name)
        name = spec.job_name
        if status is not None:
            if not spec.restartable or status in ACTIVE or status == "Completed":
                return Launch(spec.job_name, created=False)
            name = self._attempt_name(spec.job_name)
        try:
            self.client.create_training_job(**self.request(spec, name))
        except ClientError as exc:
            error = exc.response["Error"]
            if error["Code"] == "ResourceInUse" or "already exists" in error.get("Message", ""):
                return Launch(name, created=False)  # a concurrent launch of the same job won
            raise
        log.info("started SageMaker training job %s", name)
        return Launch(name)

    def queue_position(self, job_id: str) -> int | None:
        return None  # SageMaker starts every job (capacity waits show in its status)

    def cancel(self, job_id: str) -> None:
        """StopTrainingJob: SageMaker sends the container SIGTERM, then SIGKILL after 120 s."""
        try:
            self.client.stop_training_job(TrainingJobName=job_id)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ValidationException":
                raise  # ValidationException: the job has ended already
        log.info("stopped SageMaker training job %s", job_id)

    def failure(self, job_id: str) -> str | None:
        try:
            answer = self.client.describe_training_job(TrainingJobName=job_id)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ValidationException":
                return f"SageMaker has no training job {job_id}"
            log.warning("describe_training_job %s: %s", job_id, exc)
            return None
        except BotoCoreError as exc:  # unreachable now: report nothing rather than a failure
            log.warning("describe_training_job %s: %s", job_id, exc)
            return None
        status = answer["TrainingJobStatus"]
        if status == "Failed":
            reason = answer.get("FailureReason", "no reason given")
            return f"SageMaker job {job_id} failed: {reason}"
        if status == "Stopped":
            return f"SageMaker job {job_id} was stopped ({answer.get('SecondaryStatus', '')})"
        return None
