"""Use cases: the status of an experiment's runs and of the latest runs overall."""

from __future__ import annotations

from functions.core.errors import ExperimentNotFound
from functions.core.models import Experiment, RunSummary
from functions.core.ports import Tracking

EXPERIMENT_RUNS = 3
LATEST_RUNS = 10


def active_experiment(tracking: Tracking, name: str) -> Experiment:
    experiment = tracking.get_experiment(name)
    if experiment is None or not experiment.active:
        raise ExperimentNotFound(f"experiment {name!r} not found")
    return experiment


def experiment_runs(
    tracking: Tracking, name: str, limit: int = EXPERIMENT_RUNS
) -> list[RunSummary]:
    """The newest runs of one experiment."""
    experiment = active_experiment(tracking, name)
    return tracking.search_runs([experiment.experiment_id], max_results=limit)


def latest_runs(tracking: Tracking, limit: int = LATEST_RUNS) -> list[tuple[RunSummary, str]]:
    """The newest runs across all active experiments, with their experiment names."""
    experiments = {e.experiment_id: e.name for e in tracking.list_experiments()}
    if not experiments:
        return []
    runs = tracking.search_runs(list(experiments), max_results=limit)
    return [(run, experiments[run.experiment_id]) for run in runs]
