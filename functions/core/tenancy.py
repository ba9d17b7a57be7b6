"""Tenants: whose datasets, experiments, runs and models a request may see.

With authentication on, every request belongs to the tenant of its API key (or JWT claim).
A tenant's datasets live under `tenants/<tenant>/` in the data bucket, its experiments are
named `<tenant>__<name>` in MLflow (tenant names have no "_", so the prefix is unambiguous),
and its runs carry the tag `custom_classifier.tenant`. Use cases receive a Tracking already
scoped to the caller: another tenant's experiment, run or model does not exist for it, so
the answer is the same 404 as for an unknown id and ids do not leak.

`Tenant(None)` is the single-tenant service (authentication off): names and paths are used
as given and everything is visible.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from functions.core.errors import ExperimentNotFound, RunNotFound, model_not_found, run_not_found
from functions.core.models import Experiment, PurgeReport, RunSummary
from functions.core.ports import Tracking
from functions.core.tags import TAG_TENANT

SEPARATOR = "__"
TENANTS_FOLDER = "tenants"


@dataclass(frozen=True)
class Tenant:
    name: str | None = None

    @property
    def restricted(self) -> bool:
        return self.name is not None

    @property
    def data_prefix(self) -> str:
        """Where the tenant's datasets live in the data bucket ("" for no tenant)."""
        return f"{TENANTS_FOLDER}/{self.name}/" if self.name else ""

    def qualify(self, experiment: str) -> str:
        """The MLflow name of one of the tenant's experiments."""
        return f"{self.name}{SEPARATOR}{experiment}" if self.name else experiment

    def local_name(self, mlflow_name: str) -> str | None:
        """The tenant's name for an MLflow experiment name, or None when it is not theirs."""
        if not self.name:
            return mlflow_name
        prefix = f"{self.name}{SEPARATOR}"
        return mlflow_name[len(prefix) :] if mlflow_name.startswith(prefix) else None

    def owns(self, run: RunSummary) -> bool:
        return self.owns_tag(run.tags.get(TAG_TENANT))

    def owns_tag(self, tenant_tag: str | None) -> bool:
        return not self.name or tenant_tag == self.name


# The single-tenant service: what runs without authentication see (everything).
NO_TENANT = Tenant(None)


def tenant_of_key(key: str) -> Tenant:
    """The tenant whose folder holds an S3 key (`tenants/<tenant>/...`), else no tenant."""
    folder, _, rest = key.partition("/")
    name, sep, _ = rest.partition("/")
    return Tenant(name) if folder == TENANTS_FOLDER and sep and name else NO_TENANT


def scoped(tracking: Tracking, tenant: Tenant) -> Tracking:
    """The tracking as this tenant sees it."""
    return TenantTracking(tracking, tenant) if tenant.restricted else tracking


class TenantTracking:
    """A Tracking (the port) that shows one tenant its own experiments and runs only.

    Experiments are reached by name, so their names carry the tenant; runs are reached by
    id, so each run is tagged with its tenant when created and checked on every access.
    Experiment ids are only accepted once this object has handed them out.
    """

    def __init__(self, inner: Tracking, tenant: Tenant) -> None:
        self.inner = inner
        self.tenant = tenant
        self._experiment_ids: set[str] = set()
        self._run_ids: set[str] = set()

    def _local(self, experiment: Experiment | None) -> Experiment | None:
        if experiment is None:
            return None
        name = self.tenant.local_name(experiment.name)
        if name is None:
            return None
        self._experiment_ids.add(experiment.experiment_id)
        return replace(experiment, name=name)

    def _own_experiment(self, experiment_id: str) -> None:
        if experiment_id not in self._experiment_ids:
            raise ExperimentNotFound(f"experiment {experiment_id!r} not found")

    def _own_run(self, run: RunSummary) -> RunSummary:
        if not self.tenant.owns(run):
            raise run_not_found(run.run_id)
        self._run_ids.add(run.run_id)
        return run

    def _check_run(self, run_id: str) -> None:
        if run_id not in self._run_ids:
            self.get_run(run_id)

    def get_experiment(self, name: str) -> Experiment | None:
        return self._local(self.inner.get_experiment(self.tenant.qualify(name)))

    def create_experiment(self, name: str) -> str:
        experiment_id = self.inner.create_experiment(self.tenant.qualify(name))
        self._experiment_ids.add(experiment_id)
        return experiment_id

    def list_experiments(self) -> list[Experiment]:
        found = (self._local(e) for e in self.inner.list_experiments())
        return [e for e in found if e is not None]

    def create_run(
        self, experiment_id: str, run_name: str, params: dict[str, str], tags: dict[str, str]
    ) -> RunSummary:
        self._own_experiment(experiment_id)
        tagged = {**tags, TAG_TENANT: str(self.tenant.name)}
        return self._own_run(self.inner.create_run(experiment_id, run_name, params, tagged))

    def get_run(self, run_id: str, include_deleted: bool = False) -> RunSummary:
        return self._own_run(self.inner.get_run(run_id, include_deleted))

    def fail_run(self, run_id: str, reason: str) -> None:
        self._check_run(run_id)
        self.inner.fail_run(run_id, reason)

    def active_runs(self, max_results: int) -> list[RunSummary]:
        return [r for r in self.inner.active_runs(max_results) if self.tenant.owns(r)]

    def schedule_run(self, run_id: str) -> None:
        self._check_run(run_id)
        self.inner.schedule_run(run_id)

    def kill_run(self, run_id: str) -> None:
        self._check_run(run_id)
        self.inner.kill_run(run_id)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._check_run(run_id)
        self.inner.set_tags(run_id, {k: v for k, v in tags.items() if k != TAG_TENANT})

    def find_run(self, experiment_id: str, tag: str, value: str) -> RunSummary | None:
        self._own_experiment(experiment_id)
        run = self.inner.find_run(experiment_id, tag, value)
        return run if run is not None and self.tenant.owns(run) else None

    def search_runs(self, experiment_ids: list[str], max_results: int) -> list[RunSummary]:
        for experiment_id in experiment_ids:
            self._own_experiment(experiment_id)
        runs = self.inner.search_runs(experiment_ids, max_results)
        return [r for r in runs if self.tenant.owns(r)]

    def delete_experiment(self, experiment_id: str) -> None:
        self._own_experiment(experiment_id)
        self.inner.delete_experiment(experiment_id)

    def delete_run(self, run_id: str) -> None:
        self._check_run(run_id)
        self.inner.delete_run(run_id)

    def restore_experiment(self, experiment_id: str) -> None:
        self._own_experiment(experiment_id)
        self.inner.restore_experiment(experiment_id)

    def restore_run(self, run_id: str) -> None:
        if run_id not in self._run_ids:
            self.get_run(run_id, include_deleted=True)
        self.inner.restore_run(run_id)

    def purge_experiment(self, experiment: Experiment) -> PurgeReport:
        self._own_experiment(experiment.experiment_id)
        mlflow_name = self.tenant.qualify(experiment.name)
        return self.inner.purge_experiment(replace(experiment, name=mlflow_name))

    def model_owner(self, name: str) -> str | None:
        return self.inner.model_owner(name)  # names carry the tenant: never another's

    def claim_model_name(self, name: str, experiment_id: str) -> None:
        self._own_experiment(experiment_id)
        self.inner.claim_model_name(name, experiment_id)

    def resolve_model_reference(self, reference: str) -> str:
        run_id = self.inner.resolve_model_reference(reference)
        try:
            self._check_run(run_id)
        except RunNotFound:
            raise model_not_found(reference) from None
        return run_id

    def list_artifacts(self, run_id: str, folder: str) -> list[str]:
        self._check_run(run_id)
        return self.inner.list_artifacts(run_id, folder)

    def download_artifact(self, run_id: str, path: str) -> bytes | None:
        self._check_run(run_id)
        return self.inner.download_artifact(run_id, path)

    def register(self, run_id: str, model_uri: str, name: str) -> str:
        self._check_run(run_id)
        return self.inner.register(run_id, model_uri, name)

    def promote(self, run_id: str, alias: str) -> tuple[str, str]:
        self._check_run(run_id)
        return self.inner.promote(run_id, alias)

    def ping(self) -> None:
        self.inner.ping()
