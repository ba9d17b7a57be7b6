"""Use case: validate a training request, open its MLflow run and launch the job."""

from __future__ import annotations

import json
import time

from functions.core.config import Settings
from functions.core.errors import Conflict, DependencyUnavailable, DuplicateJob
from functions.core.models import JobSpec, StartedTraining, TrainingRequest
from functions.core.ports import JobLauncher, ObjectStore, Tracking
from functions.core.tags import TAG_DATA_URI, TAG_JOB_ID, TAG_LAUNCHER
from functions.core.tenancy import Tenant
from functions.core.validation import validate_training_request


def label_maps(labels: list[str]) -> tuple[str, str]:
    """label2id and id2label in the seed's format: Python dict reprs."""
    return str({label: i for i, label in enumerate(labels)}), str(dict(enumerate(labels)))


def training_run_name(now: float | None = None) -> str:
    return time.strftime("training_classifier%Y-%m-%d_%H%M%S", time.gmtime(now))


def _experiment_id(tracking: Tracking, name: str) -> str:
    experiment = tracking.get_experiment(name)
    if experiment is None:
        return tracking.create_experiment(name)
    if not experiment.active:
        raise Conflict(
            f"experiment {name!r} is soft-deleted; hard delete it to reuse the name, "
            "or choose another name"
        )
    return experiment.experiment_id


def start_training(
    request: TrainingRequest,
    store: ObjectStore,
    tracking: Tracking,
    launcher: JobLauncher,
    settings: Settings,
    tenant: Tenant,
    job_name: str | None = None,
    tags: dict[str, str] | None = None,
) -> StartedTraining:
    """Validate first (nothing is created for a bad request), then run + job. `tracking` is
    the tenant's (functions/core/tenancy.py).

    `job_name` makes a repeated request idempotent: when that job already exists, the run
    opened here is deleted again and DuplicateJob is raised.
    """
    labels, experiment_name, dataset = validate_training_request(request, store, settings, tenant)
    experiment_id = _experiment_id(tracking, experiment_name)
    label2id, id2label = label_maps(labels)
    run = tracking.create_run(
        experiment_id,
        training_run_name(),
        params={"label2id": label2id, "id2label": id2label},
        tags={TAG_DATA_URI: dataset.location.uri, TAG_LAUNCHER: settings.launcher, **(tags or {})},
    )
    spec = JobSpec(
        job_name=job_name or f"cc-{run.run_id}",
        hyperparameters={
            **settings.training_defaults,
            **({"base_model": settings.base_model} if settings.base_model else {}),
            "labels": json.dumps(labels),
            "data_uri": dataset.location.uri,
            # The MLflow name: the registered model's name derives from it, per tenant.
            "experiment_name": tenant.qualify(experiment_name),
            "run_id": run.run_id,
            "tracking_uri": settings.mlflow_tracking_uri,
            "min_macro_f1": str(settings.min_macro_f1),
            "mode": request.mode,
            "time_budget_seconds": str(request.time_budget_seconds),
            "hpo_trials": str(request.hpo_trials),
        },
    )
    try:
        launch = launcher.launch(spec)
    except Exception as exc:  # the run must not stay RUNNING without a job behind it
        tracking.fail_run(run.run_id, f"job launch failed: {exc}")
        raise DependencyUnavailable(f"could not launch the training job: {exc}") from exc
    if not launch.created:  # another delivery of this request owns the job and its run
        tracking.delete_run(run.run_id)
        raise DuplicateJob(f"job {spec.job_name} already exists", job_id=launch.job_id)
    tracking.set_tags(run.run_id, {TAG_JOB_ID: launch.job_id})
    return StartedTraining(run=run, dataset=dataset, job_id=launch.job_id)
