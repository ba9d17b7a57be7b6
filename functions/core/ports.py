"""The ports: how the domain talks to storage, tracking and job execution."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from functions.core.models import (
    Experiment,
    JobSpec,
    Launch,
    ObjectInfo,
    Prediction,
    PurgeReport,
    RunSummary,
)


class ObjectStore(Protocol):
    def list_objects(self, bucket: str, prefix: str, start_after: str = ""
                     ) -> Iterator[ObjectInfo]:  # fmt: skip
        """Every object under the prefix (all pages), in key order; only keys after
        `start_after` where given."""
        ...

    def list_folders(self, bucket: str, prefix: str) -> list[str]:
        """The names of the "folders" directly under the prefix (which ends with "/")."""
        ...

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        """Delete every object under the prefix; returns how many were deleted."""
        ...

    def put_text(self, bucket: str, key: str, text: str) -> None: ...

    def copy(self, bucket: str, source: str, target: str) -> None:
        """Copy an object to another key of the same bucket, server side."""
        ...

    def presign_put(self, bucket: str, key: str, expires_seconds: int) -> str:
        """A URL that lets its holder PUT this one object until it expires."""
        ...

    def get_text(self, bucket: str, key: str) -> str | None:
        """The object's text, or None when there is no such object."""
        ...

    def get_bytes(self, bucket: str, key: str, limit: int | None = None) -> bytes | None:
        """The object's bytes (its first `limit` of them), or None when there is no such
        object."""
        ...

    def ping(self, bucket: str) -> None:
        """Raise DependencyUnavailable if the bucket cannot be reached."""
        ...


class Tracking(Protocol):
    def get_experiment(self, name: str) -> Experiment | None: ...

    def create_experiment(self, name: str) -> str: ...

    def list_experiments(self) -> list[Experiment]:
        """Active experiments."""
        ...

    def create_run(
        self, experiment_id: str, run_name: str, params: dict[str, str], tags: dict[str, str]
    ) -> RunSummary: ...

    def get_run(self, run_id: str, include_deleted: bool = False) -> RunSummary:
        """Raise RunNotFound for an unknown id (and a soft-deleted one unless asked for)."""
        ...

    def fail_run(self, run_id: str, reason: str) -> None: ...

    def active_runs(self, max_results: int) -> list[RunSummary]:
        """Runs that are RUNNING or SCHEDULED (queued), across active experiments."""
        ...

    def schedule_run(self, run_id: str) -> None:
        """Mark a run SCHEDULED: its job waits for a free slot (the job sets RUNNING)."""
        ...

    def kill_run(self, run_id: str) -> None:
        """End a run KILLED (cancelled)."""
        ...

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None: ...

    def find_run(self, experiment_id: str, tag: str, value: str) -> RunSummary | None:
        """The newest active run of the experiment whose tag has this value."""
        ...

    def search_runs(self, experiment_ids: list[str], max_results: int) -> list[RunSummary]:
        """Active runs, newest first."""
        ...

    def delete_experiment(self, experiment_id: str) -> None: ...

    def delete_run(self, run_id: str) -> None: ...

    def restore_experiment(self, experiment_id: str) -> None:
        """Undo a soft delete: the experiment and its runs are active again."""
        ...

    def restore_run(self, run_id: str) -> None: ...

    def purge_experiment(self, experiment: Experiment) -> PurgeReport:
        """Remove registry versions, logged models, runs and rows of an experiment."""
        ...

    def model_owner(self, name: str) -> str | None:
        """The id of the experiment whose models the registered model `name` holds, or None
        when there is no such registered model (or it holds no one's yet)."""
        ...

    def claim_model_name(self, name: str, experiment_id: str) -> None:
        """Create the registered model `name`, owned by the experiment (kept if it exists)."""
        ...

    def resolve_model_reference(self, reference: str) -> str:
        """The run id behind `models:/<name>@<alias>` or `models:/<name>/<version>`."""
        ...

    def list_artifacts(self, run_id: str, folder: str) -> list[str]:
        """Paths of the files in one artifact folder of a run."""
        ...

    def download_artifact(self, run_id: str, path: str) -> bytes | None:
        """One artifact file of a run, or None when the run has no such file."""
        ...

    def register(self, run_id: str, model_uri: str, name: str) -> str:
        """Register the run's logged model as a new version of `name` (whose owner the run's
        experiment is) and tag the run with it; returns the version. A run has one version:
        registrations racing on a run all answer its first."""
        ...

    def promote(self, run_id: str, alias: str) -> tuple[str, str]:
        """Point the alias of the run's registered model at the run's version (atomic);
        returns (model name, version). ModelNotReady when the run has no version."""
        ...

    def ping(self) -> None: ...


class LoadedModel(Protocol):
    """A model in memory, ready to predict."""

    size_bytes: int

    def predict(self, texts: list[str]) -> list[Prediction]: ...


class ModelLoader(Protocol):
    def load(self, run_id: str) -> LoadedModel:
        """Fetch (or reuse from local disk) and load the model logged by a run."""
        ...


class AuditSink(Protocol):
    def record(self, entries: list[dict[str, object]]) -> None:
        """Keep the entries (one per predicted text); never raises into the request."""
        ...


class JobLauncher(Protocol):
    def launch(self, spec: JobSpec) -> Launch:
        """Start the job. A job name that already exists is not started twice: `created` is
        then False (a restartable job whose last attempt ended is started again)."""
        ...

    def failure(self, job_id: str) -> str | None:
        """Why the job ended without success, or None while it waits or runs, or once it
        succeeded."""
        ...

    def queue_position(self, job_id: str) -> int | None:
        """Where a waiting job stands in the launcher's queue (1: next), else None."""
        ...

    def cancel(self, job_id: str) -> None:
        """Stop the job: take it out of the queue, or stop it (SIGTERM first) if it runs."""
        ...
