"""Domain records passed between use cases and ports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class DatasetLocation:
    bucket: str
    prefix: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def label_prefix(self, label: str) -> str:
        return f"{self.prefix}/{label}/"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    etag: str = ""  # without S3's quotes, as S3 event notifications spell it


@dataclass(frozen=True)
class NotTreated:
    key: str
    label: str
    reason: str


@dataclass(frozen=True)
class DatasetSummary:
    """What the validation saw under each label folder (from the listing, not the content)."""

    location: DatasetLocation
    documents_per_label: dict[str, int]
    not_treated: list[NotTreated]
    # label -> format (pdf, docx, html, email, text) -> usable documents
    formats_per_label: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def number_treated(self) -> int:
        return sum(self.documents_per_label.values())


@dataclass(frozen=True)
class TrainingRequest:
    labels: list[str]
    path: str
    experiment_name: str
    # "auto" picks the best of the kinds (training_job/kinds) on the selection measure.
    mode: str = "auto"
    # Seconds the job may take (0 = no limit).
    time_budget_seconds: float = 0.0
    # Optuna trials over the chosen candidate's main hyperparameters (0 = none).
    hpo_trials: int = 0
    # The registration bar (macro-F1); None: the service's (Settings.min_macro_f1, else
    # relative to chance: Settings.min_gain_over_chance).
    min_macro_f1: float | None = None
    # A document may carry several labels: one filed under several label folders.
    multi_label: bool = False
    # Between the labels of a CSV row (Comprehend's LabelDelimiter), multi-label CSVs only.
    label_delimiter: str = "|"
    # "always": the new version becomes @champion; "if_better": only where it beats it.
    promote: str = "always"
    # The machine type to train on (Settings.sagemaker_instance_types); "": the default.
    instance_type: str = ""


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    lifecycle_stage: str

    @property
    def active(self) -> bool:
        return self.lifecycle_stage == "active"


@dataclass(frozen=True)
class RunSummary:
    """One MLflow run; `document` is the run as MLflow renders it ({info, data})."""

    run_id: str
    experiment_id: str
    status: str
    start_time: int
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    document: dict[str, Any] = field(default_factory=dict)
    # "deleted" once soft-deleted (only a restore reads such runs).
    lifecycle_stage: str = "active"
    # A SCHEDULED run's place in its launcher's queue (1: next to start).
    queue_position: int | None = None

    @property
    def run_name(self) -> str | None:
        return self.tags.get("mlflow.runName")


@dataclass(frozen=True)
class JobSpec:
    """What a launcher needs: a deterministic job name, the image's command and parameters.

    `restartable` jobs (batch prediction) are started again when an earlier attempt is
    no longer running; they resume from what they wrote.
    """

    job_name: str
    hyperparameters: dict[str, str]
    # The training image's command: "train" or "batch" (`python -m training_job <command>`).
    command: str = "train"
    restartable: bool = False
    # Machines (or tasks, or local processes) that run it at once, each with its shard index;
    # and the machine type ("": the launcher's default).
    instances: int = 1
    instance_type: str = ""


@dataclass(frozen=True)
class Launch:
    """A launcher's answer: the job's id, and whether this call created it (False: a job of
    that name already existed, so a repeated request started nothing new)."""

    job_id: str
    created: bool = True
    # Where the job waits when the launcher runs at most so many at once (1: next); None
    # when it started.
    queue_position: int | None = None


@dataclass(frozen=True)
class StartedTraining:
    run: RunSummary
    dataset: DatasetSummary
    job_id: str
    queue_position: int | None = None


@dataclass(frozen=True)
class PurgeReport:
    """What a hard delete removed from MLflow."""

    runs: int
    model_versions: int
    logged_models: int
    rows_purged: bool


@dataclass(frozen=True)
class Prediction:
    label: str
    prediction: int
    score: float
    # True when the score is below the service's abstention threshold.
    abstained: bool = False
    # The calibrated probability of every label (answered on request: `all_scores`, and
    # always by a multi-label model).
    scores: dict[str, float] | None = None
    # A multi-label model's answer: every label whose probability passes its threshold.
    labels: list[str] | None = None
    # How unlike the model's training documents the text is, in [0, 1], and whether that
    # passes the threshold fitted on held-out documents (None: a model without a scope).
    ood_score: float | None = None
    out_of_scope: bool | None = None


@dataclass(frozen=True)
class BatchJobRecord:
    job_id: str
    run_id: str
    input_uri: str
    output_uri: str
    created_at: float
    tenant: str | None = None  # who started it; others are told it does not exist
    # The run's experiment: a hard delete of it removes the record. "" in older records.
    experiment_id: str = ""
    # > 0: a /suggest job, which also writes the best this many documents to label next.
    suggest: int = 0
    # Shards classified at once (machines, tasks or processes), and the machine type asked.
    instances: int = 1
    instance_type: str = ""
    # What the launcher calls the job (an ECS task ARN, a SageMaker attempt's name).
    launch_id: str = ""


@dataclass(frozen=True)
class ShardProgress:
    index: int
    status: str  # RUNNING, DONE or FAILED
    done: int
    error: str = ""


@dataclass(frozen=True)
class BatchJobStatus:
    record: BatchJobRecord
    status: str
    total: int | None
    done: int
    number_documents_treated: int
    number_documents_non_treated: int
    error: str = ""
    shards: list[ShardProgress] = field(default_factory=list)  # a sharded job's, by index
