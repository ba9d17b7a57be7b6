"""Use cases: soft and hard deletes. Each returns a sentence saying exactly what happened."""

from __future__ import annotations

from functions.core.config import Settings
from functions.core.errors import ExperimentNotFound
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


def hard_delete_experiment(
    tracking: Tracking, store: ObjectStore, settings: Settings, name: str
) -> str:
    """Remove the experiment everywhere: registry, logged models, runs, rows and S3 objects."""
    # Soft-deleted experiments can be purged too.
    experiment = tracking.get_experiment(experiment_name(name))
    if experiment is None:
        raise ExperimentNotFound(f"experiment {name!r} not found")
    report = tracking.purge_experiment(experiment)
    # Proxied artifacts live under <experiment_id>/ in the artifacts bucket; remove what is left.
    objects = store.delete_prefix(settings.artifacts_bucket, f"{experiment.experiment_id}/")
    rows = (
        "its rows purged, the name can be reused"
        if report.rows_purged
        else "its rows kept (set CC_MLFLOW_BACKEND_STORE_URI to purge them)"
    )
    return (
        f"Experiment {name} hard-deleted: {report.runs} runs, {report.model_versions} "
        f"registered model versions, {report.logged_models} logged models and "
        f"{objects} remaining artifact objects removed; {rows}"
    )
