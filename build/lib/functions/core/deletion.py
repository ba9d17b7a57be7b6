"""Use cases: soft deletes and their restore, hard deletes. Each returns a sentence saying
exactly what happened. A hard delete touches only the experiment it names."""

from __future__ import annotations

from functions.core.batch import remove_experiment_batch_jobs
from functions.core.config import Settings
from functions.core.errors import Conflict, ExperimentNotFound
from functions.core.ports import ObjectStore, Tracking
from functions.core.runs import active_experiment, experiment_name


def soft_delete_experiment(tracking: Tracking, name: str) -> str:
    experiment = active_experiment(tracking, name)
    tracking.delete_experiment(experiment.experiment_id)
    return (
        f"Experiment {name} soft-deleted: hidden from listings, its runs, models and "
        "artifacts are kept; hard delete removes them"
    )


def soft_delete_run(tracking: Tracking, run_id: str) -> str:
    run = tracking.get_run(run_id)
    tracking.delete_run(run.run_id)
    return f"Run {run_id} soft-deleted: hidden from listings, its artifacts are kept"


def restore_experiment(tracking: Tracking, name: str) -> str:
    experiment = tracking.get_experiment(experiment_name(name))
    if experiment is None:
        raise ExperimentNotFound(f"experiment {name!r} not found")
    if experiment.active:
        raise Conflict(f"experiment {name!r} is not deleted; there is nothing to restore")
    tracking.restore_experiment(experiment.experiment_id)
    return f"Experiment {name} restored with its runs, models and artifacts"


def restore_run(tracking: Tracking, run_id: str) -> str:
    run = tracking.get_run(run_id, include_deleted=True)
    if run.lifecycle_stage == "active":
        raise Conflict(f"run {run_id} is not deleted; there is nothing to restore")
    if run.experiment_id not in {e.experiment_id for e in tracking.list_experiments()}:
        raise Conflict(f"run {run_id}'s experiment is deleted; restore the experiment instead")
    tracking.restore_run(run.run_id)
    return f"Run {run_id} restored: listed and served again"


def hard_delete_experiment(
    tracking: Tracking, store: ObjectStore, settings: Settings, name: str
) -> str:
    """Remove the experiment everywhere: registry, logged models, runs, rows, S3 objects and
    the records of its runs' batch jobs (their outputs in the data bucket are the user's)."""
    # Soft-deleted experiments can be purged too.
    experiment = tracking.get_experiment(experiment_name(name))
    if experiment is None:
        raise ExperimentNotFound(f"experiment {name!r} not found")
    report = tracking.purge_experiment(experiment)
    # Proxied artifacts live under <experiment_id>/ in the artifacts bucket; remove what is left.
    objects = store.delete_prefix(settings.artifacts_bucket, f"{experiment.experiment_id}/")
    batch_jobs = remove_experiment_batch_jobs(experiment.experiment_id, store, settings)
    rows = (
        "its rows purged, the name can be reused"
        if report.rows_purged
        else "its rows kept (set CC_MLFLOW_BACKEND_STORE_URI to purge them)"
    )
    return (
        f"Experiment {name} hard-deleted: {report.runs} runs, {report.model_versions} "
        f"registered model versions, {report.logged_models} logged models, "
        f"{objects} remaining artifact objects and {batch_jobs} batch job records removed "
        f"(batch outputs are kept); {rows}"
    )
