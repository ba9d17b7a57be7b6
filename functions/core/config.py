"""The one settings class: every knob of the service, read once from CC_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from documents.extract import Limits

ENV_PREFIX = "CC_"


def _comma_separated(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


# A list given in the environment as "a,b" (how CloudFormation passes CommaDelimitedList).
CommaList = Annotated[list[str], NoDecode, BeforeValidator(_comma_separated)]


class Settings(BaseSettings):
    """Defaults are the local stack's (`make up`); AWS deployments set CC_* variables."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    # Object storage.
    data_bucket: str = "cc-data"
    artifacts_bucket: str = "cc-artifacts"
    # Buckets besides data_bucket that `s3://` paths may name (comma-separated in the env).
    allowed_buckets: CommaList = Field(default_factory=list)
    # "" in AWS; the local stack serves S3 from moto here.
    s3_endpoint_url: str = "http://127.0.0.1:4566"
    aws_region: str = "us-east-1"

    # MLflow.
    mlflow_tracking_uri: str = "http://127.0.0.1:5000"
    # Needed only by hard delete, to purge rows with `mlflow gc` (a SQLAlchemy URI). Secret:
    # it may hold the database password, so it never shows in a repr, log or error.
    mlflow_backend_store_uri: SecretStr = SecretStr("")
    mlflow_timeout_seconds: int = 10
    # How long an experiment's name -> id lookup is reused (deletes here drop it at once).
    experiment_cache_seconds: float = 10.0

    # Dataset validation.
    min_docs_per_label: int = 8
    max_document_bytes: int = 10_485_760
    # Reading PDF, DOCX, HTML and e-mail (documents/extract.py) in the job, batch and predict.
    max_pdf_pages: int = Limits.max_pdf_pages
    max_unpacked_bytes: int = Limits.max_unpacked_bytes
    max_extracted_chars: int = Limits.max_extracted_chars
    # The dataset survey opens (2 KiB of) at most this many documents not named as text.
    survey_open_max: int = 1000
    # A Comprehend-format CSV dataset is read whole by the API to validate it.
    max_csv_bytes: int = 104_857_600
    max_labels: int = 100
    max_hpo_trials: int = 100
    # The most documents one /suggest job answers.
    max_suggestions: int = 500
    max_name_length: int = 200
    # Request bodies above this are refused (413) before they are read or parsed.
    max_request_bytes: int = 10 * 1024**2
    # Uploads: presigned PUT URLs live this long (an hour at most: they are bearer
    # credentials for one object); at most this many files per request.
    presign_seconds: int = Field(default=900, ge=1, le=3600)
    max_upload_files: int = 1000
    # How long an Idempotency-Key on /process is remembered.
    idempotency_ttl_seconds: float = Field(default=24 * 3600.0, gt=0)

    # Training jobs.
    # Where jobs run: "local" (a detached process), "sagemaker" (training jobs) or "ecs"
    # (Fargate tasks), the last two running the training image.
    launcher: Literal["local", "sagemaker", "ecs"] = "local"
    training_image_uri: str = ""
    # The training image built on CUDA torch, for GPU machine types (ml.g*, ml.p*); "": those
    # run training_image_uri, on their CPUs.
    sagemaker_gpu_image_uri: str = ""
    # SageMaker.
    sagemaker_role_arn: str = ""
    sagemaker_instance_type: str = "ml.m5.xlarge"
    # The machine types a request may ask for (`instance_type`); GPUs (g5, g6) where the
    # account has the quota. The default type is always allowed.
    sagemaker_instance_types: CommaList = Field(
        default_factory=lambda: [
            "ml.m5.xlarge", "ml.m5.2xlarge", "ml.m5.4xlarge", "ml.c5.2xlarge", "ml.c5.4xlarge",
            "ml.g5.xlarge", "ml.g5.2xlarge", "ml.g6.xlarge", "ml.g6.2xlarge",
        ]
    )  # fmt: skip
    # The most machines (SageMaker instances, ECS tasks, local processes) one batch job may
    # shard its input over.
    batch_max_instances: int = Field(default=10, ge=1)
    sagemaker_volume_gb: int = 30
    sagemaker_max_runtime_seconds: int = 24 * 3600
    # Managed spot training; the job may then wait this long for capacity, in total.
    sagemaker_use_spot: bool = False
    sagemaker_max_wait_seconds: int = 48 * 3600
    # Where SageMaker writes model.tar.gz and output ("" = s3://<artifacts bucket>/sagemaker).
    sagemaker_output_uri: str = ""
    # Run jobs inside the VPC (to reach a private MLflow): subnets and security groups.
    sagemaker_subnets: CommaList = Field(default_factory=list)
    sagemaker_security_groups: CommaList = Field(default_factory=list)
    # ECS (Fargate).
    ecs_cluster: str = ""
    ecs_task_definition: str = ""
    ecs_container_name: str = "training"
    ecs_subnets: CommaList = Field(default_factory=list)
    ecs_security_groups: CommaList = Field(default_factory=list)
    ecs_assign_public_ip: bool = False
    # The local stack's stand-in for S3 notifications checks for new manifests this often.
    trigger_poll_seconds: float = 5.0
    # How often the local stack's reaper looks for RUNNING runs whose job has ended.
    reaper_seconds: float = 30.0
    work_dir: Path = Path(".local/jobs")
    training_python: str = ""
    # Local jobs run at this nice level, below the API that launched them.
    local_job_nice: int = 10
    # And under SCHED_IDLE (Linux, `chrt`): they get a core only when the API leaves it idle,
    # so trainings never slow predictions down.
    local_job_idle: bool = True
    # At most this many local jobs run at once (0: half the cores, at least 1); the others
    # wait in order as SCHEDULED runs.
    local_max_jobs: int = Field(default=0, ge=0)
    # The registration bar of every run that names none: this macro-F1, or where it is unset,
    # the share min_gain_over_chance of the way from chance to 1 (0.7 for two labels, 0.52
    # for five, 0.43 for twenty).
    min_macro_f1: float | None = Field(default=None, ge=0, le=1)
    min_gain_over_chance: float = Field(default=0.4, ge=0, le=1)
    # Base encoder for training jobs ("" = the packaged all-MiniLM-L6-v2).
    base_model: str = ""
    # Extra job hyperparameters for every run, e.g. {"epochs": "2"}.
    training_defaults: dict[str, str] = Field(default_factory=dict)

    # Serving: the in-memory model LRU and its on-disk download cache (/tmp in Lambda).
    model_cache_dir: Path = Path(".local/model-cache")
    model_cache_max_models: int = 4
    model_cache_max_bytes: int = 2 * 1024**3
    # How long a cached run is served before its status is checked again.
    model_recheck_seconds: float = 60.0
    # Predictions scoring below this are marked "abstained" for a person to check (0 = off).
    abstain_below: float = 0.0
    max_texts_per_request: int = 64
    max_text_chars: int = 100_000
    # Torch threads for predict (0 = one per core).
    predict_threads: int = 0
    # The audit log of predict requests: "jsonl" (a local file), "stdout" (CloudWatch in
    # Lambda) or "off"; the text itself only when audit_include_text is set.
    audit_sink: Literal["jsonl", "stdout", "off"] = "jsonl"
    audit_log_path: Path = Path(".local/audit/predict.jsonl")
    audit_include_text: bool = False
    # Drift: the /metrics gauge reads each model's last `drift_window` predictions; every
    # `drift_flush_seconds` a process writes its hourly sums under `traffic_prefix` in the
    # artifacts bucket, where GET /runs/{id}/drift reads every process's.
    drift_window: int = Field(default=500, ge=1)
    drift_flush_seconds: float = Field(default=60.0, ge=0)
    traffic_prefix: str = "_traffic/"
    # Also write request metrics as CloudWatch EMF lines on stdout (template.yaml: on).
    metrics_emf: bool = False

    # Authentication, which also names the caller's tenant: "api_key" (x-api-key header, keys
    # made by `custom-classifier-admin`), "jwt" (behind API Gateway's JWT authorizer: the
    # tenant is the verified token's `jwt_tenant_claim`) or "off" (one tenant; local default).
    auth: Literal["off", "api_key", "jwt"] = "off"
    jwt_tenant_claim: str = "custom:tenant"
    # How long a known key is trusted before it is looked up again (revocation delay).
    auth_cache_seconds: float = 60.0

    # The local stack's folder (pids, logs, mlflow.db, s3/); a setting so tests run one in tmp.
    stack_dir: Path = Path(".local")

    # HTTP.
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # The API Gateway stage path the app is deployed under (e.g. "/prod"), if any.
    api_base_path: str = ""

    @property
    def extraction_limits(self) -> dict[str, str]:
        """The reading limits (documents/extract.py Limits), as job hyperparameters."""
        return {name: str(getattr(self, name)) for name in Limits.__dataclass_fields__}

    def readable_buckets(self) -> set[str]:
        return {self.data_bucket, *self.allowed_buckets}


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """Settings from the environment, read once per process."""
    return Settings()
