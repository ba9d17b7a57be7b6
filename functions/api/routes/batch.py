"""Batch prediction and suggestions of what to label: launch over an S3 prefix, then follow
its progress."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter

from functions.api.deps import LauncherDep, SettingsDep, StoreDep, TenantDep, TrackingDep
from functions.api.schemas import (
    ERROR_RESPONSES,
    SUCCESS,
    BatchJobOut,
    BatchPredictRequest,
    Envelope,
    ShardOut,
    SkippedDocument,
    SuggestionOut,
    SuggestRequest,
)
from functions.core.batch import (
    batch_status,
    not_treated_documents,
    start_batch,
    suggestions,
    suggestions_path,
)
from functions.core.models import BatchJobStatus
from functions.core.ports import ObjectStore

router = APIRouter(prefix="/custom_classifier", tags=["predict"], responses=ERROR_RESPONSES)


def _out(job: BatchJobStatus, skipped: list[tuple[str, str]],
         suggested: list[dict[str, Any]]) -> BatchJobOut:  # fmt: skip
    record = job.record
    return BatchJobOut(
        job_id=record.job_id,
        run_id=record.run_id,
        status=job.status,
        input_uri=record.input_uri,
        output_uri=record.output_uri,
        total=job.total,
        done=job.done,
        treated=job.number_documents_treated,
        not_treated=job.number_documents_non_treated,
        not_treated_documents=[SkippedDocument(key=k, reason=r) for k, r in skipped],
        manifest_uri=f"{record.output_uri}/_manifest.json",
        error=job.error,
        suggestions=[SuggestionOut.model_validate(item) for item in suggested]
        if record.suggest
        else None,
        instances=record.instances,
        shards=[ShardOut.model_validate(asdict(shard)) for shard in job.shards],
    )


def _envelope(job: BatchJobStatus, store: ObjectStore) -> Envelope[BatchJobOut]:
    skipped = not_treated_documents(job, store)  # read from the manifest once COMPLETED
    return Envelope(
        status=SUCCESS,
        data=_out(job, skipped, suggestions(job, store)),
        number_documents_treated=job.number_documents_treated,
        number_documents_non_treated=job.number_documents_non_treated,
        list_id_not_treated=[key for key, _ in skipped],
    )


@router.post("/batch_predict", response_model=Envelope[BatchJobOut])
def batch_predict(
    body: BatchPredictRequest,
    tracking: TrackingDep,
    store: StoreDep,
    launcher: LauncherDep,
    settings: SettingsDep,
    tenant: TenantDep,
) -> Envelope[BatchJobOut]:
    """Classify every document under `input_path`; results go to `output_path` as JSON Lines.

    The same request again answers the same job (resumed if it stopped early).
    """
    record = start_batch(
        body.runid, body.input_path, body.output_path, tracking, store, launcher, settings,
        tenant, instances=body.instances, instance_type=body.instance_type,
    )  # fmt: skip
    return _envelope(batch_status(record.job_id, store, settings, tenant, launcher), store)


@router.get("/batch_predict/{job_id}", response_model=Envelope[BatchJobOut])
@router.get("/suggest/{job_id}", response_model=Envelope[BatchJobOut])
def batch_predict_status(
    job_id: str, store: StoreDep, settings: SettingsDep, tenant: TenantDep,
    launcher: LauncherDep,
) -> Envelope[BatchJobOut]:  # fmt: skip
    """Progress (documents done / total), treated and not treated, status and where the
    output is; once COMPLETED, the first documents not treated and why, and (a /suggest
    job) the documents to label next."""
    return _envelope(batch_status(job_id, store, settings, tenant, launcher), store)


@router.post("/suggest", response_model=Envelope[BatchJobOut])
def suggest(
    body: SuggestRequest,
    tracking: TrackingDep,
    store: StoreDep,
    launcher: LauncherDep,
    settings: SettingsDep,
    tenant: TenantDep,
) -> Envelope[BatchJobOut]:
    """Rank the unlabelled documents under `input_path` by what labelling them would teach
    the model: the least sure (top-two score gap), spread over what they say. A batch job:
    follow it at GET /suggest/{job_id}; once COMPLETED it answers `suggestions`, best first.
    """
    output = body.output_path or suggestions_path(body.input_path)
    record = start_batch(body.runid, body.input_path, output, tracking, store, launcher,
                         settings, tenant, suggest=body.n)  # fmt: skip
    return _envelope(batch_status(record.job_id, store, settings, tenant, launcher), store)
