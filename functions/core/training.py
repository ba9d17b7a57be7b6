"""Use case: validate a training request, open its MLflow run and launch the job."""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace

from functions.core.config import Settings
from functions.core.errors import Conflict, DependencyUnavailable, DuplicateJob
from functions.core.models import Experiment, JobSpec, StartedTraining, TrainingRequest
from functions.core.ports import JobLauncher, ObjectStore, Tracking
from functions.core.tags import TAG_DATA_URI, TAG_JOB_ID, TAG_LAUNCHER, TAG_MODEL_NAME
from functions.core.tenancy import Tenant
from functions.core.validation import validate_training_request

EXTRACTED_FOLDER = "extracted"  # in the artifacts bucket; expires by a lifecycle rule


def extraction_cache_uri(settings: Settings, tenant: Tenant) -> str:
    """Where training jobs keep extracted texts by content hash, apart for each tenant."""
    return f"s3://{settings.artifacts_bucket}/{EXTRACTED_FOLDER}/{tenant.data_prefix}".rstrip("/")


def label_maps(labels: list[str]) -> tuple[str, str]:
    """label2id and id2label in the seed's format: Python dict reprs."""
    return str({label: i for i, label in enumerate(labels)}), str(dict(enumerate(labels)))


def training_run_name(now: float | None = None) -> str:
    return time.strftime("training_classifier%Y-%m-%d_%H%M%S", time.gmtime(now))


# What a registered model's name cannot hold (MLflow refuses "/" and ":").
_NOT_IN_MODEL_NAMES = re.compile(r"[/:]")


def registered_model_name(mlflow_experiment_name: str) -> str:
    """`<experiment>-classifier`, readable (spaces and any script kept); "/" and ":" become
    "-". The job has its copy (training_job/tracking.py); a test keeps them equal."""
    return f"{_NOT_IN_MODEL_NAMES.sub('-', mlflow_experiment_name.strip())}-classifier"


def _usable_experiment(tracking: Tracking, name: str) -> Experiment | None:
    experiment = tracking.get_experiment(name)
    if experiment is not None and not experiment.active:
        raise Conflict(
            f"experiment {name!r} is soft-deleted; restore it, hard delete it to reuse the "
            "name, or choose another name"
        )
    return experiment


def _check_model_name(
    tracking: Tracking, model_name: str, experiment: Experiment | None, name: str
) -> tuple[str | None, Experiment | None]:
    """Each experiment registers into a model of its own: refuse a name another one holds.
    Returns the owner's experiment id (None: the name is free) and the experiment, which a
    concurrent request of the same name may have created since it was looked up."""
    owner = tracking.model_owner(model_name)
    if owner is not None and experiment is None:
        experiment = _usable_experiment(tracking, name)
    if owner is None or (experiment is not None and owner == experiment.experiment_id):
        return owner, experiment
    holder = next((e.name for e in tracking.list_experiments() if e.experiment_id == owner), None)
    raise Conflict(
        f"experiment {name!r} would register its models as {model_name!r}, which already "
        f"holds the models of {'experiment ' + repr(holder) if holder else 'another experiment'}"
        "; choose another experiment name",
        model_name=model_name,
    )


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
    experiment = _usable_experiment(tracking, experiment_name)
    model_name = registered_model_name(tenant.qualify(experiment_name))
    owner, experiment = _check_model_name(tracking, model_name, experiment, experiment_name)
    experiment_id = (
        experiment.experiment_id if experiment else tracking.create_experiment(experiment_name)
    )
    if owner is None:  # taken now, so a second experiment of the same name is refused at once
        tracking.claim_model_name(model_name, experiment_id)
    label2id, id2label = label_maps(labels)
    run = tracking.create_run(
        experiment_id,
        training_run_name(),
        params={"label2id": label2id, "id2label": id2label},
        tags={TAG_DATA_URI: dataset.location.uri, TAG_LAUNCHER: settings.launcher,
              TAG_MODEL_NAME: model_name, **(tags or {})},
    )  # fmt: skip
    spec = JobSpec(
        job_name=job_name or f"cc-{run.run_id}",
        hyperparameters={
            **settings.training_defaults,
            **settings.extraction_limits,
            **({"base_model": settings.base_model} if settings.base_model else {}),
            "labels": json.dumps(labels),
            "data_uri": dataset.location.uri,
            "extraction_cache_uri": extraction_cache_uri(settings, tenant),
            "experiment_name": tenant.qualify(experiment_name),
            "registered_model_name": model_name,
            "run_id": run.run_id,
            "tracking_uri": settings.mlflow_tracking_uri,
            "min_macro_f1": str(
                settings.min_macro_f1 if request.min_macro_f1 is None else request.min_macro_f1
            ),  # "None": the bar relative to chance, below
            "min_gain_over_chance": str(settings.min_gain_over_chance),
            "mode": request.mode,
            "multi_label": str(request.multi_label).lower(),
            "label_delimiter": request.label_delimiter,
            "time_budget_seconds": str(request.time_budget_seconds),
            "hpo_trials": str(request.hpo_trials),
            "promote": request.promote,
        },
        instance_type=request.instance_type,
    )
    try:
        launch = launcher.launch(spec)
    except Exception as exc:  # the run must not stay RUNNING without a job behind it
        tracking.fail_run(run.run_id, f"job launch failed: {exc}")
        raise DependencyUnavailable(f"could not launch the training job: {exc}") from exc
    if not launch.created:  # another delivery of this request owns the job and its run
        tracking.delete_run(run.run_id)
        raise DuplicateJob(
            f"job {spec.job_name} already exists", job_id=launch.job_id, dataset=dataset
        )
    tracking.set_tags(run.run_id, {TAG_JOB_ID: launch.job_id})
    if launch.queue_position is not None:
        # The job starts seconds after a slot frees and sets RUNNING itself; this is long done.
        tracking.schedule_run(run.run_id)
        info = {**run.document["info"], "status": "SCHEDULED"}
        run = replace(run, status="SCHEDULED", document={**run.document, "info": info})
    return StartedTraining(run, dataset, launch.job_id, launch.queue_position)
