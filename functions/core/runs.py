"""Use cases: the status of an experiment's runs and of the latest runs overall."""

from __future__ import annotations

from functions.core.errors import ExperimentNotFound
from functions.core.models import Experiment, RunSummary
from functions.core.ports import JobLauncher, Tracking
from functions.core.tags import TAG_JOB_ID

EXPERIMENT_RUNS = 3
LATEST_RUNS = 10


def active_experiment(tracking: Tracking, name: str) -> Experiment:
    experiment = tracking.get_experiment(name)
    if experiment is None or not experiment.active:
        raise ExperimentNotFound(f"experiment {name!r} not found")
    return experiment


def reconcile(run: RunSummary, tracking: Tracking, launcher: JobLauncher) -> RunSummary:
    """A RUNNING run whose job has ended without logging (killed, failed to start, spot
    capacity never came) is marked FAILED with the launcher's reason."""
    job_id = run.tags.get(TAG_JOB_ID)
    if run.status != "RUNNING" or not job_id:
        return run
    reason = launcher.failure(job_id)
    if reason is None:
        return run
    latest = tracking.get_run(run.run_id)  # the job may have logged its end meanwhile
    if latest.status != "RUNNING":
        return latest
    tracking.fail_run(run.run_id, reason)
    return tracking.get_run(run.run_id)


def experiment_runs(
    tracking: Tracking, launcher: JobLauncher, name: str, limit: int = EXPERIMENT_RUNS
) -> list[RunSummary]:
    """The newest runs of one experiment, each checked against its job."""
    experiment = active_experiment(tracking, name)
    runs = tracking.search_runs([experiment.experiment_id], max_results=limit)
    return [reconcile(run, tracking, launcher) for run in runs]


def latest_runs(tracking: Tracking, limit: int = LATEST_RUNS) -> list[tuple[RunSummary, str]]:
    """The newest runs across all active experiments, with their experiment names."""
    experiments = {e.experiment_id: e.name for e in tracking.list_experiments()}
    if not experiments:
        return []
    runs = tracking.search_runs(list(experiments), max_results=limit)
    return [(run, experiments[run.experiment_id]) for run in runs]
