"""One run for the UI: its metrics, evaluation report and images; promotion to champion."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from functions.api.deps import LauncherDep, TenantDep, TrackingDep
from functions.api.routes.status import status_item
from functions.api.schemas import (
    ERROR_RESPONSES,
    SUCCESS,
    CancelRequest,
    Envelope,
    PromotedOut,
    PromoteRequest,
    RunDetailOut,
    RunStatusItem,
)
from functions.core.runs import CHAMPION_ALIAS, cancel_run, promote, run_artifact, run_detail
from functions.core.tags import (
    TAG_CANCELLED,
    TAG_FAILURE,
    TAG_GATE,
    TAG_GATE_REASON,
    TAG_MODEL_KIND,
    TAG_MODEL_NAME,
    TAG_REGISTERED,
)

router = APIRouter(prefix="/custom_classifier", tags=["runs"], responses=ERROR_RESPONSES)


@router.get("/runs/{run_id}", response_model=Envelope[RunDetailOut])
def run(run_id: str, tracking: TrackingDep, launcher: LauncherDep) -> Envelope[RunDetailOut]:
    """A run with all its metrics, the per-class report and the evaluation images' paths."""
    detail = run_detail(tracking, launcher, run_id)
    summary = detail.run
    return Envelope(
        status=SUCCESS,
        data=RunDetailOut(
            run_id=summary.run_id,
            experiment_name=detail.experiment_name,
            status=summary.status,
            run_name=summary.run_name,
            start_time=summary.start_time,
            params=summary.params,
            metrics=summary.metrics,
            model_kind=summary.tags.get(TAG_MODEL_KIND),
            registered_model=summary.tags.get(TAG_REGISTERED),
            model_name=summary.tags.get(TAG_MODEL_NAME),
            queue_position=summary.queue_position,
            cancelled=summary.tags.get(TAG_CANCELLED),
            gate=summary.tags.get(TAG_GATE),
            gate_reason=summary.tags.get(TAG_GATE_REASON),
            failure_reason=summary.tags.get(TAG_FAILURE),
            report=detail.report,
            artifacts=detail.artifacts,
        ),
    )


@router.get("/runs/{run_id}/artifacts/{path:path}", response_class=Response)
def artifact(run_id: str, path: str, tracking: TrackingDep) -> Response:
    """An evaluation artifact (report JSON, confusion matrix, ROC/PR curves)."""
    content, media_type = run_artifact(tracking, run_id, path)
    return Response(content, media_type=media_type,
                    headers={"cache-control": "private, max-age=3600"})  # fmt: skip


@router.post("/promote", response_model=Envelope[PromotedOut])
def promote_run(body: PromoteRequest, tracking: TrackingDep) -> Envelope[PromotedOut]:
    """Move the `champion` alias to this run's registered version (atomic)."""
    name, version = promote(tracking, body.run_id.strip())
    return Envelope(
        status=SUCCESS,
        data=PromotedOut(registered_model=name, version=version, alias=CHAMPION_ALIAS),
    )


@router.post("/run/cancel", response_model=Envelope[RunStatusItem])
def cancel(
    body: CancelRequest, tracking: TrackingDep, launcher: LauncherDep, tenant: TenantDep
) -> Envelope[RunStatusItem]:
    """Stop a queued or running training job; the run ends KILLED and registers nothing."""
    who = f"tenant {tenant.name}" if tenant.name else "an API caller"
    run = cancel_run(tracking, launcher, body.run_id.strip(), who, body.reason.strip())
    return Envelope(status=SUCCESS, data=status_item(run))
