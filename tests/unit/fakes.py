"""In-memory implementations of the domain's ports, for fast tests of functions/core's use
cases (the adapters have their own tests against moto and a real MLflow server)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from functions.core.errors import ModelNotReady, run_not_found
from functions.core.models import Experiment, JobSpec, Launch, ObjectInfo, RunSummary
from functions.core.tags import TAG_REGISTERED


def _raw(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


class FakeStore:
    """Objects as text, or bytes where a test puts a file (a PDF, an image)."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], str | bytes] = {}

    def list_objects(self, bucket: str, prefix: str, start_after: str = ""
                     ) -> Iterator[ObjectInfo]:  # fmt: skip
        for (b, key), text in sorted(self.objects.items()):
            if b == bucket and key.startswith(prefix) and key > start_after:
                yield ObjectInfo(key, len(_raw(text)))

    def list_folders(self, bucket: str, prefix: str) -> list[str]:
        names = {k[len(prefix) :].split("/")[0] for b, k in self.objects if b == bucket
                 and k.startswith(prefix) and "/" in k[len(prefix) :]}  # fmt: skip
        return sorted(names)

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        doomed = [k for k in self.objects if k[0] == bucket and k[1].startswith(prefix)]
        for key in doomed:
            del self.objects[key]
        return len(doomed)

    def put_text(self, bucket: str, key: str, text: str) -> None:
        self.objects[(bucket, key)] = text

    def copy(self, bucket: str, source: str, target: str) -> None:
        self.objects[(bucket, target)] = self.objects[(bucket, source)]

    def get_text(self, bucket: str, key: str) -> str | None:
        found = self.objects.get((bucket, key))
        return found.decode() if isinstance(found, bytes) else found

    def get_bytes(self, bucket: str, key: str, limit: int | None = None) -> bytes | None:
        found = self.objects.get((bucket, key))
        return None if found is None else _raw(found)[:limit]

    def presign_put(self, bucket: str, key: str, expires_seconds: int) -> str:
        return f"http://s3.local/{bucket}/{key}?expires={expires_seconds}"

    def ping(self, bucket: str) -> None:
        return None


class FakeTracking:
    def __init__(self) -> None:
        self.experiments: dict[str, Experiment] = {}
        self.runs: dict[str, RunSummary] = {}
        self.models: dict[str, str] = {}  # registered model name -> owner experiment id
        self.artifacts: dict[tuple[str, str], bytes] = {}  # (run id, path) -> content
        self.versions: dict[str, str] = {}  # "<name>/<version>" -> run id
        self.aliases: dict[str, str] = {}  # "<name>@<alias>" -> version
        self._ids = itertools.count(1)

    def get_experiment(self, name: str) -> Experiment | None:
        return next((e for e in self.experiments.values() if e.name == name), None)

    def create_experiment(self, name: str) -> str:
        experiment_id = str(next(self._ids))
        self.experiments[experiment_id] = Experiment(experiment_id, name, "active")
        return experiment_id

    def list_experiments(self) -> list[Experiment]:
        return [e for e in self.experiments.values() if e.active]

    def create_run(self, experiment_id: str, run_name: str, params: dict[str, str],
                   tags: dict[str, str]) -> RunSummary:  # fmt: skip
        run_id = f"{next(self._ids):032x}"
        document = {"info": {"run_id": run_id, "status": "RUNNING"}, "data": {}}
        run = RunSummary(run_id, experiment_id, "RUNNING", 0, dict(params),
                         {"mlflow.runName": run_name, **tags}, document=document)  # fmt: skip
        self.runs[run_id] = run
        return run

    def get_run(self, run_id: str, include_deleted: bool = False) -> RunSummary:
        run = self.runs.get(run_id)
        if run is None or (run.lifecycle_stage != "active" and not include_deleted):
            raise run_not_found(run_id)
        return run

    def _update(self, run_id: str, **changes: Any) -> None:
        self.runs[run_id] = replace(self.runs[run_id], **changes)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._update(run_id, tags={**self.runs[run_id].tags, **tags})

    def schedule_run(self, run_id: str) -> None:
        self._update(run_id, status="SCHEDULED")

    def kill_run(self, run_id: str) -> None:
        self._update(run_id, status="KILLED")

    def fail_run(self, run_id: str, reason: str) -> None:
        self._update(run_id, status="FAILED")

    def delete_run(self, run_id: str) -> None:
        self._update(run_id, lifecycle_stage="deleted")

    def restore_run(self, run_id: str) -> None:
        self._update(run_id, lifecycle_stage="active")

    def delete_experiment(self, experiment_id: str) -> None:
        self.experiments[experiment_id] = replace(
            self.experiments[experiment_id], lifecycle_stage="deleted"
        )

    def restore_experiment(self, experiment_id: str) -> None:
        self.experiments[experiment_id] = replace(
            self.experiments[experiment_id], lifecycle_stage="active"
        )

    def find_run(self, experiment_id: str, tag: str, value: str) -> RunSummary | None:
        found = (r for r in self.search_runs([experiment_id], 1000) if r.tags.get(tag) == value)
        return next(found, None)

    def search_runs(self, experiment_ids: list[str], max_results: int) -> list[RunSummary]:
        runs = [r for r in self.runs.values()
                if r.experiment_id in experiment_ids and r.lifecycle_stage == "active"]  # fmt: skip
        return runs[::-1][:max_results]  # newest first

    def active_runs(self, max_results: int) -> list[RunSummary]:
        return [r for r in self.runs.values() if r.status in {"RUNNING", "SCHEDULED"}]

    def download_artifact(self, run_id: str, path: str) -> bytes | None:
        return self.artifacts.get((run_id, path))

    def model_owner(self, name: str) -> str | None:
        return self.models.get(name)

    def claim_model_name(self, name: str, experiment_id: str) -> None:
        self.models.setdefault(name, experiment_id)

    def register(self, run_id: str, model_uri: str, name: str) -> str:
        version = str(1 + sum(v.startswith(f"{name}/") for v in self.versions))
        self.versions[f"{name}/{version}"] = run_id
        self.set_tags(run_id, {TAG_REGISTERED: f"{name}/{version}"})
        return version

    def promote(self, run_id: str, alias: str) -> tuple[str, str]:
        registered = self.get_run(run_id).tags.get(TAG_REGISTERED)
        if registered is None:
            raise ModelNotReady(f"run {run_id} has no registered model version")
        name, version = registered.rsplit("/", 1)
        self.aliases[f"{name}@{alias}"] = version
        return name, version


class FakeLauncher:
    """Runs nothing: remembers launches, starts `slots` of them, queues the rest."""

    def __init__(self, slots: int = 10) -> None:
        self.slots = slots
        self.jobs: dict[str, JobSpec] = {}
        self.queue: list[str] = []
        self.cancelled: list[str] = []
        self.failures: dict[str, str] = {}  # job id -> why it ended without reporting

    def launch(self, spec: JobSpec) -> Launch:
        if spec.job_name in self.jobs:
            return Launch(spec.job_name, created=False)
        self.jobs[spec.job_name] = spec
        if len(self.jobs) - len(self.queue) > self.slots:
            self.queue.append(spec.job_name)
            return Launch(spec.job_name, queue_position=len(self.queue))
        return Launch(spec.job_name)

    def failure(self, job_id: str) -> str | None:
        return self.failures.get(job_id)

    def queue_position(self, job_id: str) -> int | None:
        return self.queue.index(job_id) + 1 if job_id in self.queue else None

    def cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)
        if job_id in self.queue:
            self.queue.remove(job_id)
