"""POST /custom_classifier/process: validate, open the run, launch the job."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header

from functions.api.deps import (
    LauncherDep,
    MetricsDep,
    SettingsDep,
    StoreDep,
    TenantDep,
    TrackingDep,
)
from functions.api.schemas import (
    ERROR_RESPONSES,
    SUCCESS,
    DatasetReport,
    Envelope,
    NotTreatedDocument,
    ProcessData,
    ProcessRequest,
)
from functions.core.errors import DependencyUnavailable, DomainError
from functions.core.idempotency import start_training_once
from functions.core.models import TrainingRequest
from functions.logs import bind

router = APIRouter(prefix="/custom_classifier", tags=["training"], responses=ERROR_RESPONSES)


@router.post("/process", response_model=Envelope[ProcessData])
def process(
    body: ProcessRequest,
    store: StoreDep,
    tracking: TrackingDep,
    launcher: LauncherDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    tenant: TenantDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            max_length=255,
            description="a retry with the same key and body answers the same run "
            "(CC_IDEMPOTENCY_TTL_SECONDS, 24 h); another body with it is 409",
        ),
    ] = None,
) -> Envelope[ProcessData]:
    """Start training a classifier on `path/<label>/` documents; answers the new run (RUNNING,
    or SCHEDULED with its place in the queue when the launcher runs the maximum already)."""
    request = TrainingRequest(
        body.labels,
        body.path,
        body.experiment_name,
        body.mode,
        body.time_budget_seconds,
        body.hpo_trials,
        body.min_macro_f1,
        body.multi_label,
        body.label_delimiter,
        body.promote,
        body.instance_type,
    )
    try:
        started = start_training_once(
            request, idempotency_key, store, tracking, launcher, settings, tenant
        )
    except DependencyUnavailable:
        metrics.training_jobs.labels("unavailable").inc()
        raise
    except DomainError:
        metrics.training_jobs.labels("rejected").inc()
        raise
    metrics.training_jobs.labels("started").inc()
    bind(run_id=started.run.run_id)
    dataset = started.dataset
    not_treated = [
        NotTreatedDocument(key=d.key, label=d.label, reason=d.reason) for d in dataset.not_treated
    ]
    data = ProcessData(
        info=started.run.document["info"],
        data=started.run.document.get("data", {}),
        dataset=DatasetReport(
            data_uri=dataset.location.uri,
            documents_per_label=dataset.documents_per_label,
            not_treated=not_treated,
            formats_per_label=dataset.formats_per_label,
        ),
        job_id=started.job_id,
        queue_position=started.queue_position,
    )
    return Envelope(
        status=SUCCESS,
        data=data,
        number_documents_treated=dataset.number_treated,
        number_documents_non_treated=len(not_treated),
        list_id_not_treated=[d.key for d in not_treated],
    )
