"""Soft deletes, their restore, and hard deletes; each answers {"status": "<what happened>"}."""

from __future__ import annotations

from fastapi import APIRouter

from functions.api.deps import SettingsDep, StoreDep, TrackingDep
from functions.api.schemas import ERROR_RESPONSES, DeleteStatus, ExperimentRequest, RunRequest
from functions.core.deletion import (
    hard_delete_experiment,
    restore_experiment,
    restore_run,
    soft_delete_experiment,
    soft_delete_run,
)

router = APIRouter(prefix="/custom_classifier", tags=["deletes"], responses=ERROR_RESPONSES)


@router.post("/experiment/soft_delete", response_model=DeleteStatus)
def experiment_soft_delete(body: ExperimentRequest, tracking: TrackingDep) -> DeleteStatus:
    """Hide an experiment (MLflow's deleted lifecycle stage); nothing is removed."""
    return DeleteStatus(status=soft_delete_experiment(tracking, body.experiment_name))


@router.post("/experiment/hard_delete", response_model=DeleteStatus)
def experiment_hard_delete(
    body: ExperimentRequest, tracking: TrackingDep, store: StoreDep, settings: SettingsDep
) -> DeleteStatus:
    """Remove an experiment, its runs, registered versions, logged models and S3 artifacts."""
    return DeleteStatus(
        status=hard_delete_experiment(tracking, store, settings, body.experiment_name)
    )


@router.post("/run/soft_delete", response_model=DeleteStatus)
def run_soft_delete(body: RunRequest, tracking: TrackingDep) -> DeleteStatus:
    """Hide one run (MLflow's deleted lifecycle stage); its artifacts stay."""
    return DeleteStatus(status=soft_delete_run(tracking, body.run_id))


@router.post("/experiment/restore", response_model=DeleteStatus)
def experiment_restore(body: ExperimentRequest, tracking: TrackingDep) -> DeleteStatus:
    """Undo a soft delete: the experiment and its runs are listed (and served) again."""
    return DeleteStatus(status=restore_experiment(tracking, body.experiment_name))


@router.post("/run/restore", response_model=DeleteStatus)
def run_restore(body: RunRequest, tracking: TrackingDep) -> DeleteStatus:
    """Undo a run's soft delete (its experiment must be active)."""
    return DeleteStatus(status=restore_run(tracking, body.run_id.strip()))
