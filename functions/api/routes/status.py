"""Run status: the last runs of an experiment, and the last runs overall."""

from __future__ import annotations

from fastapi import APIRouter, Query

from functions.api.deps import LauncherDep, TrackingDep
from functions.api.schemas import (
    ERROR_RESPONSES,
    ExperimentItem,
    ExperimentRequest,
    LastRunItem,
    RunStatusItem,
)
from functions.core.models import RunSummary
from functions.core.runs import experiment_runs, latest_runs
from functions.core.tags import (
    METRIC_ETA,
    METRIC_PASSES_BAR_UP_TO,
    METRIC_PERCENT,
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

router = APIRouter(prefix="/custom_classifier", tags=["status"], responses=ERROR_RESPONSES)


def status_item(run: RunSummary) -> RunStatusItem:
    registered = run.tags.get(TAG_REGISTERED)
    return RunStatusItem(
        run_id=run.run_id,
        status=run.status,
        label2id=run.params.get("label2id"),
        id2label=run.params.get("id2label"),
        run_name=run.run_name,
        macro_f1=run.metrics.get("test_macro_f1"),
        accuracy=run.metrics.get("test_accuracy"),
        registered=registered is not None,
        registered_model=registered,
        model_name=run.tags.get(TAG_MODEL_NAME),
        failure_reason=run.tags.get(TAG_FAILURE),
        model_kind=run.tags.get(TAG_MODEL_KIND),
        start_time=run.start_time or None,
        queue_position=run.queue_position,
        cancelled=run.tags.get(TAG_CANCELLED),
        phase=run.tags.get(TAG_PHASE),
        phase_detail=run.tags.get(TAG_PHASE_DETAIL) or None,
        progress_percent=run.metrics.get(METRIC_PERCENT),
        eta_seconds=run.metrics.get(METRIC_ETA) if run.status == "RUNNING" else None,
        promotion=run.tags.get(TAG_PROMOTION),
        gate=run.tags.get(TAG_GATE),
        gate_reason=run.tags.get(TAG_GATE_REASON),
        passes_bar_up_to=run.metrics.get(METRIC_PASSES_BAR_UP_TO),
    )


@router.post("/job_status", response_model=list[RunStatusItem])
def job_status(
    body: ExperimentRequest, tracking: TrackingDep, launcher: LauncherDep
) -> list[RunStatusItem]:
    """The last 3 runs of an experiment, newest first."""
    return [status_item(run) for run in experiment_runs(tracking, launcher, body.experiment_name)]


@router.get("/runid/status", response_model=list[RunStatusItem])
def runid_status(
    tracking: TrackingDep,
    launcher: LauncherDep,
    experiment_name: str = Query(max_length=2048),
    limit: int = Query(default=3, ge=1, le=100),
) -> list[RunStatusItem]:
    """The last `limit` (3) runs of an experiment, newest first (GET form)."""
    runs = experiment_runs(tracking, launcher, experiment_name, limit)
    return [status_item(run) for run in runs]


@router.get("/all_experiments/last_run", response_model=list[LastRunItem])
def all_experiments_last_run(tracking: TrackingDep) -> list[LastRunItem]:
    """The last 10 runs across all experiments, newest first."""
    return [
        LastRunItem(
            run_id=run.run_id, status=run.status, experiment_name=name, run_name=run.run_name
        )
        for run, name in latest_runs(tracking)
    ]


@router.get("/experiments", response_model=list[ExperimentItem])
def experiments(tracking: TrackingDep) -> list[ExperimentItem]:
    """Every experiment (not deleted) by name: what the UI lets a user pick from."""
    mine = [e for e in tracking.list_experiments() if e.experiment_id != "0"]  # MLflow's Default
    found = sorted(mine, key=lambda e: e.name.lower())
    return [ExperimentItem(experiment_name=e.name, experiment_id=e.experiment_id) for e in found]
