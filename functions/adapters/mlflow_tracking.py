"""Tracking on the MLflow client (REST to the tracking server)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import requests
from mlflow import MlflowClient
from mlflow.entities import RunStatus, ViewType
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException, RestException

from functions.adapters import mlflow_gc
from functions.core.config import Settings
from functions.core.errors import (
    Conflict,
    DependencyUnavailable,
    InvalidRequest,
    ModelNotReady,
    model_not_found,
    run_not_found,
)
from functions.core.models import Experiment, PurgeReport, RunSummary
from functions.core.tags import TAG_FAILURE, TAG_MODEL_OWNER, TAG_REGISTERED

T = TypeVar("T")
# Registry searches take at most this many run ids in one IN (...) filter.
RUN_ID_BATCH = 50
# MLflow run ids are 32 hex digits; allow a little more, never a path separator or quote.
RUN_ID = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,63}")  # MLflow refuses a leading "-" or "_"


def configure_mlflow_http(settings: Settings) -> None:
    """Bound MLflow's HTTP retries so an outage becomes a 503 in seconds, not minutes."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(settings.mlflow_timeout_seconds))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


def _is_not_found(exc: MlflowException) -> bool:
    return exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"} and (
        "not found" in str(exc).lower() or "does not exist" in str(exc).lower()
    )


@contextmanager
def _reachable(uri: str) -> Iterator[None]:
    """Turn connection failures into DependencyUnavailable; leave answers from MLflow alone."""
    try:
        yield
    except RestException as exc:
        if exc.error_code == "INVALID_PARAMETER_VALUE" and not _is_not_found(exc):
            # MLflow refused a value the API let through: the caller's mistake, not ours
            raise InvalidRequest(f"MLflow rejected the request: {exc.message}") from exc
        raise
    except requests.RequestException as exc:
        raise DependencyUnavailable(f"MLflow tracking server at {uri} is unreachable") from exc
    except MlflowException as exc:
        if "API request to" in str(exc) and "failed with exception" in str(exc):
            raise DependencyUnavailable(f"MLflow tracking server at {uri} is unreachable") from exc
        raise


def _document(run: Any) -> dict[str, Any]:
    """MLflow's own rendering of the run, with the seed's `run_uuid` (MLflow 3 dropped it)."""
    document: dict[str, Any] = run.to_dictionary()
    document["info"].setdefault("run_uuid", run.info.run_id)
    return document


def _summary(run: Any) -> RunSummary:
    return RunSummary(
        run_id=run.info.run_id,
        experiment_id=run.info.experiment_id,
        status=run.info.status,
        start_time=int(run.info.start_time or 0),
        params=dict(run.data.params),
        tags=dict(run.data.tags),
        metrics=dict(run.data.metrics),
        document=_document(run),
        lifecycle_stage=run.info.lifecycle_stage,
    )


_CREDENTIALS = re.compile(r"(://[^/\s:@]+):[^@\s/]+@")


def redact_credentials(text: str) -> str:
    """`scheme://user:password@host` -> `scheme://user:***@host`."""
    return _CREDENTIALS.sub(r"\1:***@", text)


def _quoted(value: str) -> str:
    """A value inside single quotes of an MLflow search filter."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


def _experiment(exp: Any) -> Experiment:
    return Experiment(exp.experiment_id, exp.name, exp.lifecycle_stage)


class MlflowTracking:
    def __init__(self, settings: Settings, client: MlflowClient | None = None) -> None:
        configure_mlflow_http(settings)
        self.settings = settings
        self.uri = settings.mlflow_tracking_uri
        self.client = client or MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)
        # name -> (experiment, fetched at): status polling asks for the same names often.
        self._experiments: dict[str, tuple[Experiment, float]] = {}

    def _do(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with _reachable(self.uri):
            return fn(*args, **kwargs)

    def get_experiment(self, name: str) -> Experiment | None:
        cached = self._experiments.get(name)
        if cached and time.monotonic() - cached[1] < self.settings.experiment_cache_seconds:
            return cached[0]
        exp = self._do(self.client.get_experiment_by_name, name)
        if exp is None:
            return None
        experiment = _experiment(exp)
        if experiment.active:  # only active experiments are cached; deletes drop them
            self._experiments[name] = (experiment, time.monotonic())
        return experiment

    def _forget_experiment(self, experiment_id: str) -> None:
        self._experiments = {
            name: entry
            for name, entry in self._experiments.items()
            if entry[0].experiment_id != experiment_id
        }

    def create_experiment(self, name: str) -> str:
        try:
            return str(self._do(self.client.create_experiment, name))
        except RestException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        # A concurrent request created it first: both runs go to that experiment.
        existing = self._do(self.client.get_experiment_by_name, name)
        if existing is None or existing.lifecycle_stage != "active":
            raise Conflict(f"experiment {name!r} exists but is deleted; hard delete it first")
        return str(existing.experiment_id)

    def active_runs(self, max_results: int) -> list[RunSummary]:
        runs = self._do(
            self.client.search_runs,
            [e.experiment_id for e in self.list_experiments()] or ["0"],
            # Not ended: RUNNING or SCHEDULED (status takes no IN list in MLflow's search).
            filter_string=" AND ".join(
                f"attributes.status != '{status}'" for status in ("FINISHED", "FAILED", "KILLED")
            ),
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=max_results,
        )
        return [_summary(run) for run in runs]

    def list_experiments(self) -> list[Experiment]:
        found: list[Experiment] = []
        token = None
        while True:
            page = self._do(
                self.client.search_experiments,
                view_type=ViewType.ACTIVE_ONLY,
                max_results=1000,
                page_token=token,
            )
            found.extend(_experiment(e) for e in page)
            token = page.token
            if not token:
                return found

    def create_run(
        self, experiment_id: str, run_name: str, params: dict[str, str], tags: dict[str, str]
    ) -> RunSummary:
        def create() -> Any:
            run = self.client.create_run(experiment_id, run_name=run_name, tags=tags)
            run_id = run.info.run_id
            from mlflow.entities import Param

            self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
            return self.client.get_run(run_id)

        return _summary(self._do(create))

    def get_run(self, run_id: str, include_deleted: bool = False) -> RunSummary:
        if not RUN_ID.fullmatch(run_id):  # never send a malformed id into a REST path
            raise run_not_found(run_id)
        try:
            run = self._do(self.client.get_run, run_id)
        except MlflowException as exc:
            if _is_not_found(exc):
                raise run_not_found(run_id) from exc
            raise
        if run.info.lifecycle_stage != "active" and not include_deleted:
            raise run_not_found(run_id)
        return _summary(run)

    def fail_run(self, run_id: str, reason: str) -> None:
        def fail() -> None:
            self.client.set_tag(run_id, TAG_FAILURE, reason[:5000])
            self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED))

        self._do(fail)

    def schedule_run(self, run_id: str) -> None:
        self._do(self.client.update_run, run_id, status="SCHEDULED")

    def kill_run(self, run_id: str) -> None:
        self._do(self.client.set_terminated, run_id, RunStatus.to_string(RunStatus.KILLED))

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self._do(self.client.log_batch, run_id, tags=[RunTag(k, v) for k, v in tags.items()])

    def find_run(self, experiment_id: str, tag: str, value: str) -> RunSummary | None:
        quoted = value.replace("'", "")  # tag values here are hex digests; never let quotes in
        runs = self._do(
            self.client.search_runs,
            [experiment_id],
            filter_string=f"tags.`{tag}` = '{quoted}'",
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=1,
            order_by=["attributes.start_time DESC"],
        )
        return _summary(runs[0]) if runs else None

    def search_runs(self, experiment_ids: list[str], max_results: int) -> list[RunSummary]:
        runs = self._do(
            self.client.search_runs,
            experiment_ids,
            run_view_type=ViewType.ACTIVE_ONLY,
            max_results=max_results,
            order_by=["attributes.start_time DESC"],
        )
        return [_summary(run) for run in runs]

    def delete_experiment(self, experiment_id: str) -> None:
        self._forget_experiment(experiment_id)
        self._do(self.client.delete_experiment, experiment_id)

    def delete_run(self, run_id: str) -> None:
        self._do(self.client.delete_run, run_id)

    def restore_experiment(self, experiment_id: str) -> None:
        self._forget_experiment(experiment_id)
        self._do(self.client.restore_experiment, experiment_id)

    def restore_run(self, run_id: str) -> None:
        self._do(self.client.restore_run, run_id)

    def _all_run_ids(self, experiment_id: str) -> list[str]:
        ids: list[str] = []
        token = None
        while True:
            page = self._do(
                self.client.search_runs,
                [experiment_id],
                run_view_type=ViewType.ALL,
                max_results=1000,
                page_token=token,
            )
            ids.extend(run.info.run_id for run in page)
            token = page.token
            if not token:
                return ids

    def _delete_model_versions(self, run_ids: list[str]) -> int:
        deleted = 0
        touched: set[str] = set()
        for start in range(0, len(run_ids), RUN_ID_BATCH):
            quoted = ", ".join(f"'{rid}'" for rid in run_ids[start : start + RUN_ID_BATCH])
            versions = self._do(self.client.search_model_versions, f"run_id IN ({quoted})")
            for version in versions:
                self._do(self.client.delete_model_version, version.name, version.version)
                touched.add(version.name)
                deleted += 1
        for name in touched:  # a registered model with no versions left goes too
            if not self._do(self.client.search_model_versions, f"name='{_quoted(name)}'"):
                self._do(self.client.delete_registered_model, name)
        return deleted

    def _delete_owned_models(self, experiment_id: str) -> None:
        """Registered models the experiment owns go with it, even ones left without versions."""
        owned = self._do(
            self.client.search_registered_models,
            filter_string=f"tags.`{TAG_MODEL_OWNER}` = '{experiment_id}'",
        )
        for model in owned:
            self._do(self.client.delete_registered_model, model.name)

    def _delete_logged_models(self, experiment_id: str) -> list[str]:
        ids: list[str] = []
        token = None
        while True:
            page = self._do(self.client.search_logged_models, [experiment_id], page_token=token)
            ids.extend(model.model_id for model in page)
            token = page.token
            if not token:
                break
        for model_id in ids:
            self._do(self.client.delete_logged_model, model_id)
        return ids

    def _gc(self, experiment_id: str, logged_model_ids: list[str]) -> bool:
        """Purge the experiment's rows (and proxied artifacts), and nothing else's
        (functions/adapters/mlflow_gc.py); needs the backend store URI."""
        backend = self.settings.mlflow_backend_store_uri.get_secret_value()
        if not backend:
            return False
        command = [sys.executable, "-m", mlflow_gc.__name__, self.uri, experiment_id,
                   *logged_model_ids]  # fmt: skip
        # The URI (it may hold a password) goes by environment, never on a command line.
        env = {**os.environ, "MLFLOW_TRACKING_URI": self.uri, mlflow_gc.BACKEND_ENV: backend}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            detail = redact_credentials(done.stderr.strip()[-500:])
            raise DependencyUnavailable(f"mlflow gc failed: {detail}")
        return True

    def purge_experiment(self, experiment: Experiment) -> PurgeReport:
        self._forget_experiment(experiment.experiment_id)
        run_ids = self._all_run_ids(experiment.experiment_id)
        versions = self._delete_model_versions(run_ids)
        self._delete_owned_models(experiment.experiment_id)
        logged = self._delete_logged_models(experiment.experiment_id)
        if experiment.active:
            self.delete_experiment(experiment.experiment_id)
        purged = self._gc(experiment.experiment_id, logged)
        return PurgeReport(
            runs=len(run_ids),
            model_versions=versions,
            logged_models=len(logged),
            rows_purged=purged,
        )

    def model_owner(self, name: str) -> str | None:
        try:
            model = self._do(self.client.get_registered_model, name)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        owner = model.tags.get(TAG_MODEL_OWNER)
        if owner:
            return str(owner)
        # Registered before models had owners: its versions' runs tell whose it is.
        versions = self._do(self.client.search_model_versions, f"name='{_quoted(name)}'")
        for version in versions:
            try:
                return str(self._do(self.client.get_run, version.run_id).info.experiment_id)
            except MlflowException:
                continue  # a version whose run is gone says nothing
        return None

    def claim_model_name(self, name: str, experiment_id: str) -> None:
        try:
            self._do(self.client.create_registered_model, name,
                     tags={TAG_MODEL_OWNER: experiment_id})  # fmt: skip
        except RestException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise

    def resolve_model_reference(self, reference: str) -> str:
        rest = reference.removeprefix("models:/")
        try:
            if "@" in rest:
                name, alias = rest.rsplit("@", 1)  # as MLflow parses it: names may hold "@"
                version = self._do(self.client.get_model_version_by_alias, name, alias)
            elif "/" in rest:
                name, number = rest.rsplit("/", 1)
                version = self._do(self.client.get_model_version, name, number)
            else:
                raise InvalidRequest(
                    f"model reference {reference!r} must be models:/<name>@<alias> "
                    "or models:/<name>/<version>"
                )
        except MlflowException as exc:
            if exc.error_code in {"RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"}:
                raise model_not_found(reference) from exc
            raise
        return str(version.run_id)

    def list_artifacts(self, run_id: str, folder: str) -> list[str]:
        entries = self._do(self.client.list_artifacts, run_id, folder)
        return [str(entry.path) for entry in entries if not entry.is_dir]

    def download_artifact(self, run_id: str, path: str) -> bytes | None:
        import tempfile

        from mlflow.artifacts import download_artifacts

        def fetch() -> bytes | None:
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    local = download_artifacts(run_id=run_id, artifact_path=path, dst_path=tmp,
                                               tracking_uri=self.uri)  # fmt: skip
                except (MlflowException, OSError):
                    return None
                with open(local, "rb") as handle:
                    return handle.read()

        return self._do(fetch)

    def register(self, run_id: str, model_uri: str, name: str) -> str:
        # as the job registers: the logged model's id with its source run
        logged = model_uri.startswith("models:/m-")
        model_id = model_uri.removeprefix("models:/") if logged else None
        created = self._do(self.client.create_model_version, name, model_uri, run_id=run_id,
                           tags={"run_id": run_id}, model_id=model_id)  # fmt: skip
        # Requests racing to register one run (two promotes at a bar) each create a version;
        # each keeps the run's first and deletes its own: one version, whatever the order.
        first = self._first_version(run_id)
        if first.version != created.version:
            self._do(self.client.delete_model_version, name, created.version)
        self._do(self.client.set_tag, run_id, TAG_REGISTERED, f"{first.name}/{first.version}")
        return str(first.version)

    def _first_version(self, run_id: str) -> ModelVersion:
        """The run's earliest registered model version; ModelNotReady where it has none."""
        versions = self._do(self.client.search_model_versions, f"run_id='{run_id}'")
        if not versions:
            raise ModelNotReady(
                f"run {run_id} has no registered model version (it did not pass the bar "
                "or is not finished); only registered models can be promoted: a finished run "
                "the bar refused registers with min_macro_f1, a bar its estimate passes"
            )
        return min(versions, key=lambda v: int(v.version))

    def promote(self, run_id: str, alias: str) -> tuple[str, str]:
        version = self._first_version(run_id)
        # One call: the alias moves atomically, callers never see it unset.
        self._do(self.client.set_registered_model_alias, version.name, alias, version.version)
        return str(version.name), str(version.version)

    def ping(self) -> None:
        def check() -> None:
            response = requests.get(f"{self.uri}/health", timeout=3)
            response.raise_for_status()

        if self.uri.startswith("http"):
            self._do(check)
        else:
            self._do(self.client.search_experiments, max_results=1)
