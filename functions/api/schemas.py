"""Request and response bodies, shaped as the seed contract shows them."""

from __future__ import annotations

from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")

MAX_LABELS_IN_BODY = 1000
MAX_TEXT_FIELD = 2048
# Schema-level caps; the service's own (smaller, configurable) limits answer clearer 422s.
MAX_BODY_TEXT = 5_000_000
MAX_TEXTS_IN_BODY = 10_000


class Status(BaseModel):
    code: int
    message: str


SUCCESS = Status(code=200, message="Success")  # never mutated: one instance serves all


class RequestBody(BaseModel):
    """A request body: a field it does not know is a 422 naming it, never silently dropped
    (a `multi_label` the service ignored once trained the wrong model)."""

    model_config = ConfigDict(extra="forbid")


class Envelope(BaseModel, Generic[T]):
    """The seed's response envelope."""

    status: Status
    data: T | None = None
    error: str = ""
    number_documents_treated: int = 0
    number_documents_non_treated: int = 0
    list_id_not_treated: list[str] = Field(default_factory=list)


class ProcessRequest(RequestBody):
    labels: list[str] = Field(max_length=MAX_LABELS_IN_BODY, examples=[["business", "sport"]])
    path: str = Field(max_length=MAX_TEXT_FIELD, examples=["demo-bbc"])
    experiment_name: str = Field(max_length=MAX_TEXT_FIELD, examples=["Custom_Classifier"])
    mode: Literal["auto", "tfidf", "head", "contrastive", "finetune", "ensemble"] = Field(
        default="auto", description="auto: the best candidate on validation"
    )
    time_budget_seconds: float = Field(
        default=0.0, ge=0, le=86_400, description="seconds the job may take; 0: no limit"
    )
    hpo_trials: int = Field(
        default=0, ge=0, description="Optuna trials over the chosen model's hyperparameters"
    )
    min_macro_f1: float | None = Field(
        default=None, description="the registration bar, 0-1 (default: the service's)"
    )
    multi_label: bool = Field(
        default=False,
        description="a document may have several labels: the same file name under several "
        "label folders; predictions then answer `labels`",
    )
    label_delimiter: str = Field(
        default="|",
        description="a CSV dataset's separator between a row's labels (multi-label)",
    )
    promote: Literal["always", "if_better"] = Field(
        default="always",
        description="if_better: the new model becomes @champion only where it beats the "
        "current champion on the same held-out documents (paired bootstrap interval of the "
        "macro-F1 difference above 0); otherwise it is registered without the alias",
    )
    instance_type: str = Field(
        default="",
        max_length=64,
        description="the machine type to train on (SageMaker, e.g. ml.g5.xlarge for a GPU), "
        "one of CC_SAGEMAKER_INSTANCE_TYPES; empty: the deployment's default",
    )


class ExperimentRequest(RequestBody):
    experiment_name: str = Field(max_length=MAX_TEXT_FIELD)


class RunRequest(RequestBody):
    run_id: str = Field(max_length=MAX_TEXT_FIELD)


class PredictRequest(RequestBody):
    """`text` for one document, `texts` for several (answered in the same order), or
    `document`: a file (PDF, DOCX, HTML, e-mail or text) in base64."""

    runid: str = Field(max_length=MAX_TEXT_FIELD, examples=["2092651bbf294a918310ad609aab2a09"])
    text: str | None = Field(default=None, max_length=MAX_BODY_TEXT)
    texts: list[str] | None = Field(default=None, max_length=MAX_TEXTS_IN_BODY)
    document: str | None = Field(
        default=None,
        max_length=MAX_BODY_TEXT,
        description="a file's bytes in base64; its format is found from its content",
    )
    all_scores: bool = Field(
        default=False, description="also answer `scores`: the probability of every label"
    )


class PredictionOut(BaseModel):
    label: str
    prediction: int
    score: float
    abstained: bool = Field(
        default=False,
        description="the score is under the service's bar; multi-label: no label passes its "
        "threshold",
    )
    labels: list[str] | None = Field(
        default=None, description="multi-label models: every label over its threshold"
    )
    scores: dict[str, float] | None = Field(
        default=None,
        description="with `all_scores`, and always from a multi-label model: {label: "
        "probability} (single-label: summing to 1; multi-label: each label on its own)",
    )
    ood_score: float | None = Field(
        default=None,
        description="how unlike the model's training documents the text is, 0-1 (about 0.5: "
        "typical); absent from models trained before scopes",
    )
    out_of_scope: bool | None = Field(
        default=None,
        description="ood_score is over the threshold that 95% of held-out training documents "
        "stay under: the text may belong to none of the labels",
    )
    format: str | None = Field(
        default=None, description="a `document` or uploaded file: what it was read as (pdf, "
        "docx, html, email or text)",
    )  # fmt: skip


class BatchPredictRequest(RequestBody):
    runid: str = Field(max_length=MAX_TEXT_FIELD)
    input_path: str = Field(max_length=MAX_TEXT_FIELD, examples=["incoming/2026-11"])
    output_path: str = Field(max_length=MAX_TEXT_FIELD, examples=["predictions/2026-11"])
    instances: int = Field(
        default=1,
        description="machines (SageMaker instances, ECS tasks, local processes) that classify "
        "shards of the input at once, 1 to CC_BATCH_MAX_INSTANCES",
    )
    instance_type: str = Field(
        default="",
        max_length=64,
        description="their machine type (SageMaker), one of CC_SAGEMAKER_INSTANCE_TYPES; "
        "empty: the deployment's default",
    )


class SuggestRequest(RequestBody):
    runid: str = Field(max_length=MAX_TEXT_FIELD)
    input_path: str = Field(max_length=MAX_TEXT_FIELD, examples=["unlabelled/2026-11"])
    n: int = Field(default=20, ge=1, description="how many documents to suggest")
    output_path: str = Field(
        default="",
        max_length=MAX_TEXT_FIELD,
        description="where the job writes (default: `_suggestions/<folder>` beside the "
        "folder read, which no dataset takes for a label)",
    )


class SuggestionOut(BaseModel):
    rank: int
    key: str = Field(description="the document's S3 key")
    label: str = Field(description="the model's guess")
    score: float
    margin: float = Field(description="top-two score gap (0: a coin toss)")
    labels: list[str] | None = None
    text: str = Field(description="the document's text (its first 2,000 characters)")


class SkippedDocument(BaseModel):
    key: str
    reason: str


class ShardOut(BaseModel):
    index: int
    status: str = Field(description="RUNNING, DONE or FAILED")
    done: int = Field(description="documents of this shard's parts done")
    error: str = ""


class BatchJobOut(BaseModel):
    job_id: str
    run_id: str
    status: str
    input_uri: str
    output_uri: str
    total: int | None = None
    done: int = 0
    treated: int = Field(default=0, description="documents classified (one output row each)")
    not_treated: int = Field(default=0, description="documents that could not be used")
    not_treated_documents: list[SkippedDocument] = Field(
        default_factory=list,
        description="once COMPLETED: the first 100 not treated, with why (all: manifest_uri)",
    )
    manifest_uri: str
    error: str = ""
    suggestions: list[SuggestionOut] | None = Field(
        default=None, description="/suggest jobs, once COMPLETED: what to label next, best first"
    )
    instances: int = Field(default=1, description="shards classified at once")
    shards: list[ShardOut] = Field(
        default_factory=list, description="a sharded job's shards while it runs: each one's state"
    )


class NotTreatedDocument(BaseModel):
    key: str
    label: str
    reason: str


class DatasetReport(BaseModel):
    data_uri: str
    documents_per_label: dict[str, int]
    not_treated: list[NotTreatedDocument]
    formats_per_label: dict[str, dict[str, int]] = Field(
        default_factory=dict, description="label -> format -> usable documents"
    )


class ProcessData(BaseModel):
    """MLflow's run ({info, data}) as the seed returns it, plus the dataset check and job id."""

    info: dict[str, Any]
    data: dict[str, Any]
    dataset: DatasetReport
    job_id: str
    queue_position: int | None = Field(
        default=None, description="SCHEDULED: the job's place in the queue (1: next)"
    )


class RunStatusItem(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    run_id: str
    status: str
    label2id: str | None = Field(default=None, alias="params.label2id")
    id2label: str | None = Field(default=None, alias="params.id2label")
    run_name: str | None = Field(default=None, alias="tags.mlflow.runName")
    macro_f1: float | None = Field(default=None, alias="metrics.test_macro_f1")
    accuracy: float | None = Field(default=None, alias="metrics.test_accuracy")
    registered: bool = False
    registered_model: str | None = None  # "<name>/<version>" once registered
    model_name: str | None = Field(
        default=None, description="the registered model this run registers into"
    )
    failure_reason: str | None = None
    model_kind: str | None = None
    start_time: int | None = None  # ms since the epoch
    queue_position: int | None = Field(
        default=None, description="SCHEDULED runs: place in the job queue (1: next to start)"
    )
    cancelled: str | None = Field(default=None, description="who cancelled the run, and why")
    phase: str | None = Field(
        default=None,
        description="what the job is doing: reading, splitting, training, tuning, exporting, "
        "evaluating, logging_model, registering, done, failed or cancelled",
    )
    phase_detail: str | None = Field(
        default=None, description="e.g. `candidate 2 of 4: head · epoch 3`"
    )
    progress_percent: float | None = Field(
        default=None, description="share of the job done, from its measured plan"
    )
    eta_seconds: float | None = Field(
        default=None, description="seconds left, where the job could estimate them"
    )
    promotion: str | None = Field(
        default=None,
        description="whether the registered version took @champion, and why (promote)",
    )
    gate: str | None = Field(default=None, description="passed or failed: the registration bar")
    gate_reason: str | None = Field(
        default=None, description="the estimate, and which bar it met or missed by how much"
    )
    passes_bar_up_to: float | None = Field(
        default=None,
        description="the highest `min_macro_f1` the run's estimate passes: `POST /promote` "
        "registers a run the bar refused at a bar up to it; absent where no bar would (its "
        "estimate does not clearly beat the majority-class baseline)",
    )


class ExperimentItem(BaseModel):
    experiment_name: str
    experiment_id: str


class LastRunItem(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    run_id: str
    status: str
    experiment_name: str
    run_name: str | None = Field(default=None, alias="tags.mlflow.runName")


class DeleteStatus(BaseModel):
    status: str


class Health(BaseModel):
    status: str
    s3: str
    mlflow: str


class UploadFileIn(RequestBody):
    path: str = Field(max_length=MAX_TEXT_FIELD, examples=["sports/001.txt"])
    size: int = Field(ge=0)
    md5: str = Field(default="", max_length=32, description="lets an upload resume safely")


class UploadRequest(RequestBody):
    path: str = Field(max_length=MAX_TEXT_FIELD, description="the dataset", examples=["news"])
    files: list[UploadFileIn] = Field(max_length=MAX_TEXTS_IN_BODY)


class PresignedUpload(BaseModel):
    path: str
    key: str
    url: str


class RejectedFile(BaseModel):
    path: str
    reason: str


class UploadPlanOut(BaseModel):
    data_uri: str
    expires_in: int
    uploads: list[PresignedUpload]
    skipped: list[str]
    rejected: list[RejectedFile]


class DatasetRequest(RequestBody):
    path: str = Field(max_length=MAX_TEXT_FIELD, description="the dataset", examples=["news"])


class DatasetDeletedOut(BaseModel):
    data_uri: str
    objects_removed: int
    batch_jobs_removed: int = Field(description="records of batch jobs whose output it held")


class FileDocumentRequest(RequestBody):
    """Label a document: copy it into `<path>/<label>/` (a new label makes a new folder)."""

    document: str = Field(max_length=MAX_TEXT_FIELD, examples=["s3://cc-data/inbox/a.txt"])
    path: str = Field(max_length=MAX_TEXT_FIELD, examples=["tickets"])
    label: str = Field(max_length=MAX_TEXT_FIELD, examples=["billing"])


class FiledDocumentOut(BaseModel):
    key: str = Field(description="where the labelled copy is: s3://<bucket>/<path>/<label>/<name>")


class LabelFolderOut(BaseModel):
    label: str
    documents: int
    not_usable: int
    not_usable_documents: list[NotTreatedDocument] = Field(
        default_factory=list,
        description="the first 50 documents training would not use, and why",
    )
    formats: dict[str, int] = Field(
        default_factory=dict,
        description="usable documents by format (text, pdf, docx, html, email), found from "
        "the first 2 KiB of those not named as text; `other`: not opened, over the limit",
    )


class DriftPointOut(BaseModel):
    hour: int = Field(description="epoch seconds at the start of the hour (overall: of the period)")
    predictions: int
    out_of_scope_share: float
    mean_ood_score: float
    drift_auc: float = Field(
        description="chance a live text scores further out than a held-out training document "
        "(0.5: no drift)"
    )
    label_shift: float = Field(
        description="total variation distance between predicted and training label shares"
    )


class DriftReportOut(BaseModel):
    run_id: str
    method: str = Field(
        description="distance+unsureness (kinds with sentence features) or unsureness "
        "(one minus the top probability)"
    )
    threshold: float
    expected_out_of_scope_share: float
    hours: list[DriftPointOut]
    overall: DriftPointOut | None
    drifted: bool
    verdict: str


class RunDetailOut(BaseModel):
    run_id: str
    experiment_name: str
    status: str
    run_name: str | None
    start_time: int
    params: dict[str, str]
    metrics: dict[str, float]
    model_kind: str | None
    registered_model: str | None
    model_name: str | None
    queue_position: int | None = None
    cancelled: str | None = None
    phase: str | None = None
    phase_detail: str | None = None
    promotion: str | None = None
    champion: bool = Field(default=False, description="its registered version is @champion now")
    gate: str | None
    gate_reason: str | None
    failure_reason: str | None
    report: dict[str, Any] | None
    artifacts: list[str]


class EvaluatedDocumentOut(BaseModel):
    key: str = Field(description="the document's S3 key")
    true_labels: list[str]
    predicted_labels: list[str]
    score: float = Field(description="the predicted label's calibrated probability")
    scores: dict[str, float] = Field(description="every label's calibrated probability")
    wrong: bool


class EvaluatedDocumentsOut(BaseModel):
    estimate: str = Field(description="what was evaluated, e.g. 'test split of 120 documents'")
    documents: int = Field(description="documents evaluated")
    wrong: int = Field(description="of those, misclassified")
    matching: int = Field(description="documents passing the filters; `rows` is a page of them")
    rows: list[EvaluatedDocumentOut]


class DocumentTextOut(BaseModel):
    key: str
    text: str
    truncated: bool = Field(description="the text was cut (documents show 100,000 characters)")


class CancelRequest(RequestBody):
    run_id: str = Field(max_length=MAX_TEXT_FIELD)
    reason: str = Field(default="", max_length=500, description="kept on the run")


class PromoteRequest(RequestBody):
    run_id: str = Field(max_length=MAX_TEXT_FIELD)
    min_macro_f1: float | None = Field(
        default=None,
        description="a finished run the bar refused is registered first where its estimate "
        "passes this bar, 0-1 (the gate's rule: never one that does not clearly beat the "
        "majority class)",
    )


class PromotedOut(BaseModel):
    registered_model: str
    version: str
    alias: str


# Every error answers the envelope with the reason in `error`; documented on each route.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": Envelope[None], "description": description}
    for code, description in {
        400: "the body is not JSON",
        401: "no API key, or an unknown one (when CC_AUTH=api_key)",
        404: "not found (experiment, run, model, batch job, dataset)",
        409: "conflict with the current state (model not ready, deleted experiment, "
        "dataset in use)",
        413: "the body is larger than CC_MAX_REQUEST_BYTES (refused before parsing)",
        422: "invalid request; nothing was created",
        500: "unexpected error (the response's x-request-id locates it in the logs)",
        503: "S3, MLflow or the job launcher is unreachable",
    }.items()
}
