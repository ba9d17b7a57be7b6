"""One run for the UI: its metrics, evaluation report and images; promotion to champion."""

from __future__ import annotations

from fastapi import APIRouter, Query
from fastapi.responses import Response

from functions.api.deps import LauncherDep, ServicesDep, StoreDep, TenantDep, TrackingDep
from functions.api.routes.status import status_item
from functions.api.schemas import (
    ERROR_RESPONSES,
    MAX_TEXT_FIELD,
    SUCCESS,
    CancelRequest,
    DocumentTextOut,
    DriftReportOut,
    Envelope,
    EvaluatedDocumentsOut,
    PromotedOut,
    PromoteRequest,
    RunDetailOut,
    RunStatusItem,
)
from functions.core.drift import MAX_REPORT_HOURS, drift_report
from functions.core.runs import (
    CHAMPION_ALIAS,
    cancel_run,
    evaluated_document_text,
    evaluated_documents,
    promote,
    run_artifact,
    run_detail,
)
from functions.core.tags import (
    TAG_CANCELLED,
    TAG_FAILURE,
    TAG_GATE,
    TAG_GATE_REASON,
    TAG_MODEL_KIND,
    TAG_MODEL_NAME,
    TAG_PHASE,
    TAG_PHASE_DETAIL,
    TAG_PROMOTION,
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
            phase=summary.tags.get(TAG_PHASE),
            phase_detail=summary.tags.get(TAG_PHASE_DETAIL) or None,
            promotion=summary.tags.get(TAG_PROMOTION),
            champion=detail.champion,
            gate=summary.tags.get(TAG_GATE),
            gate_reason=summary.tags.get(TAG_GATE_REASON),
            failure_reason=summary.tags.get(TAG_FAILURE),
            report=detail.report,
            artifacts=detail.artifacts,
        ),
    )


@router.get("/runs/{run_id}/drift", response_model=Envelope[DriftReportOut])
def drift(
    run_id: str,
    tracking: TrackingDep,
    services: ServicesDep,
    hours: int = Query(default=24, ge=1, le=MAX_REPORT_HOURS, description="the last N hours"),
) -> Envelope[DriftReportOut]:
    """How the texts the run's model was asked about lately compare with its training data,
    hour by hour: drift AUC, out-of-scope share, label shift, and a verdict."""
    tracking.get_run(run_id)  # the tenant's run, or 404, before anything is written
    services.drift.flush()  # this process's latest predictions count too
    report = drift_report(tracking, services.traffic, run_id, hours)
    return Envelope(
        status=SUCCESS, data=DriftReportOut.model_validate(report, from_attributes=True)
    )


@router.get("/runs/{run_id}/test_predictions", response_model=Envelope[EvaluatedDocumentsOut])
def test_predictions(
    run_id: str,
    tracking: TrackingDep,
    wrong_only: bool = Query(default=False, description="only the misclassified documents"),
    true_label: str | None = Query(default=None, max_length=MAX_TEXT_FIELD),
    predicted_label: str | None = Query(default=None, max_length=MAX_TEXT_FIELD),
    missed_label: str | None = Query(
        default=None, max_length=MAX_TEXT_FIELD, description="has this label, not given it"
    ),
    added_label: str | None = Query(
        default=None, max_length=MAX_TEXT_FIELD, description="given this label, has it not"
    ),
    offset: int = Query(default=0, ge=0),
    limit: int = Query(default=100, ge=1, le=1000),
) -> Envelope[EvaluatedDocumentsOut]:
    """The documents a finished run was evaluated on, with true and predicted labels and
    scores: which ones it got wrong, filterable by true and predicted label."""
    found = evaluated_documents(
        tracking,
        run_id,
        wrong_only=wrong_only,
        true_label=true_label,
        predicted_label=predicted_label,
        missed_label=missed_label,
        added_label=added_label,
        offset=offset,
        limit=limit,
    )
    # The read model maps field by field (`wrong` is a property of each row).
    return Envelope(
        status=SUCCESS, data=EvaluatedDocumentsOut.model_validate(found, from_attributes=True)
    )


@router.get("/runs/{run_id}/document", response_model=Envelope[DocumentTextOut])
def evaluated_document(
    run_id: str,
    tracking: TrackingDep,
    store: StoreDep,
    key: str = Query(max_length=MAX_TEXT_FIELD, description="a key from test_predictions"),
) -> Envelope[DocumentTextOut]:
    """The text of a document the run was evaluated on (what the run page opens)."""
    text, truncated = evaluated_document_text(tracking, store, run_id, key)
    return Envelope(status=SUCCESS, data=DocumentTextOut(key=key, text=text, truncated=truncated))


@router.get("/runs/{run_id}/artifacts/{path:path}", response_class=Response)
def artifact(run_id: str, path: str, tracking: TrackingDep) -> Response:
    """An evaluation artifact (report JSON, confusion matrix, ROC/PR curves)."""
    content, media_type = run_artifact(tracking, run_id, path)
    return Response(content, media_type=media_type,
                    headers={"cache-control": "private, max-age=3600"})  # fmt: skip


@router.post("/promote", response_model=Envelope[PromotedOut])
def promote_run(body: PromoteRequest, tracking: TrackingDep) -> Envelope[PromotedOut]:
    """Move the `champion` alias to this run's registered version (atomic); with
    `min_macro_f1`, a run the bar refused is registered first if its estimate passes it."""
    name, version = promote(tracking, body.run_id.strip(), body.min_macro_f1)
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
