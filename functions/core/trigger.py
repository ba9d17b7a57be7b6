"""Use case: a `_train.json` manifest uploaded next to a dataset starts its training.

    s3://<bucket>/<dataset>/_train.json  {"experiment_name": "...", "labels": [...]}

Labels are optional (every label folder of the dataset). The outcome is written next to the
manifest as `_train.result.json`. Delivery is at least once, so the upload (bucket, key,
etag) names the job: the same upload delivered twice, or the same manifest uploaded again,
starts one job; a changed manifest starts a new run. A manifest under
`tenants/<tenant>/<dataset>/` trains for that tenant (functions/core/tenancy.py).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any

from functions.core.config import Settings
from functions.core.errors import (
    DependencyUnavailable,
    DomainError,
    DuplicateJob,
    InvalidRequest,
)
from functions.core.models import DatasetSummary, RunSummary, TrainingRequest
from functions.core.ports import JobLauncher, ObjectStore, Tracking
from functions.core.tags import TAG_JOB_ID, TAG_TRIGGER
from functions.core.tenancy import Tenant, scoped, tenant_of_key
from functions.core.training import start_training

MANIFEST_NAME = "_train.json"
RESULT_NAME = "_train.result.json"
MANIFEST_FIELDS = {
    "experiment_name", "labels", "mode", "time_budget_seconds", "hpo_trials", "min_macro_f1",
    "multi_label", "label_delimiter", "promote",
}  # fmt: skip
MAX_MANIFEST_CHARS = 100_000


@dataclass(frozen=True)
class ManifestUpload:
    bucket: str
    key: str
    etag: str

    @property
    def dataset_prefix(self) -> str:
        return self.key[: -len(MANIFEST_NAME)].rstrip("/")

    @property
    def result_key(self) -> str:
        return f"{self.dataset_prefix}/{RESULT_NAME}"

    @property
    def trigger_id(self) -> str:
        return hashlib.sha256(f"{self.bucket}\n{self.key}\n{self.etag}".encode()).hexdigest()[:32]

    @property
    def job_name(self) -> str:
        return f"cc-m-{self.trigger_id}"

    @property
    def tenant(self) -> Tenant:
        """A manifest in `tenants/<tenant>/<dataset>/` trains for that tenant."""
        return tenant_of_key(self.key)


def is_manifest(key: str) -> bool:
    return key.endswith("/" + MANIFEST_NAME) and len(key) > len(MANIFEST_NAME) + 1


def _field(raw: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = raw.get(name, default)
    if kind is bool:
        if not isinstance(value, bool):
            raise InvalidRequest(f"manifest field {name!r} must be true or false")
        return value
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise InvalidRequest(f"manifest field {name!r} must be a {kind.__name__}")
    return value


def read_manifest(upload: ManifestUpload, store: ObjectStore) -> TrainingRequest:
    """The training request a manifest describes (labels default to every label folder)."""
    text = store.get_text(upload.bucket, upload.key)
    if text is None:
        raise InvalidRequest(f"the manifest s3://{upload.bucket}/{upload.key} is gone")
    if len(text) > MAX_MANIFEST_CHARS:
        raise InvalidRequest(f"the manifest is larger than {MAX_MANIFEST_CHARS} characters")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"the manifest is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise InvalidRequest("the manifest must be a JSON object")
    unknown = sorted(set(raw) - MANIFEST_FIELDS)
    if unknown:
        raise InvalidRequest(
            f"unknown manifest fields: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(MANIFEST_FIELDS))})"
        )
    if "experiment_name" not in raw:
        raise InvalidRequest("the manifest needs an experiment_name")
    labels = raw.get("labels")
    if labels is None:
        folders = store.list_folders(upload.bucket, f"{upload.dataset_prefix}/")
        labels = sorted(f for f in folders if not f.startswith(("_", ".")))
    elif not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise InvalidRequest("manifest field 'labels' must be a list of strings")
    return TrainingRequest(
        labels=labels,
        path=f"s3://{upload.bucket}/{upload.dataset_prefix}",
        experiment_name=_field(raw, "experiment_name", str, ""),
        mode=_field(raw, "mode", str, "auto"),
        time_budget_seconds=_field(raw, "time_budget_seconds", float, 0.0),
        hpo_trials=_field(raw, "hpo_trials", int, 0),
        min_macro_f1=_field(raw, "min_macro_f1", float, None) if "min_macro_f1" in raw else None,
        multi_label=_field(raw, "multi_label", bool, False),
        label_delimiter=_field(raw, "label_delimiter", str, "|"),
        promote=_field(raw, "promote", str, "always"),
        instance_type=_field(raw, "instance_type", str, ""),
    )


def _existing_run(tracking: Tracking, experiment_name: str, trigger_id: str) -> RunSummary | None:
    experiment = tracking.get_experiment(experiment_name)
    if experiment is None or not experiment.active:
        return None
    return tracking.find_run(experiment.experiment_id, TAG_TRIGGER, trigger_id)


def _previous_result(upload: ManifestUpload, store: ObjectStore) -> dict[str, Any] | None:
    """The written outcome of this same upload, when it started a job."""
    text = store.get_text(upload.bucket, upload.result_key)
    try:
        previous = json.loads(text) if text else None
    except json.JSONDecodeError:
        return None
    if (
        isinstance(previous, dict)
        and previous.get("trigger_id") == upload.trigger_id
        and previous.get("status") == "started"
    ):
        return previous
    return None


def _counts(summary: DatasetSummary | None) -> dict[str, Any]:
    if summary is None:
        return {}
    return {
        "labels": sorted(summary.documents_per_label),
        "number_documents_treated": summary.number_treated,
        "number_documents_non_treated": len(summary.not_treated),
        "list_id_not_treated": [item.key for item in summary.not_treated],
    }


def _run_fields(run: RunSummary) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "experiment_id": run.experiment_id,
        "job_id": run.tags.get(TAG_JOB_ID, ""),
    }


def train_from_manifest(
    upload: ManifestUpload,
    store: ObjectStore,
    tracking: Tracking,
    launcher: JobLauncher,
    settings: Settings,
) -> dict[str, Any]:
    """Start (at most once) the training a manifest upload asks for; write and return the
    outcome. DependencyUnavailable propagates so that the event is delivered again.

    Three layers keep it to one job: the result file of this very upload, the run tagged
    with it in MLflow, and the launcher's refusal to start a job name twice. A rejected
    upload is judged again when it comes back (the dataset may have been fixed meanwhile).
    """
    previous = _previous_result(upload, store)
    if previous is not None:
        return previous
    tenant = upload.tenant
    tracking = scoped(tracking, tenant)
    result: dict[str, Any] = {
        "manifest": f"s3://{upload.bucket}/{upload.key}",
        "manifest_etag": upload.etag,
        "trigger_id": upload.trigger_id,
        "error": "",
    }
    request: TrainingRequest | None = None
    try:
        request = read_manifest(upload, store)
        result["experiment_name"] = request.experiment_name
        existing = _existing_run(tracking, request.experiment_name, upload.trigger_id)
        if existing is None:
            started = start_training(
                request, store, tracking, launcher, settings, tenant,
                job_name=upload.job_name, tags={TAG_TRIGGER: upload.trigger_id},
            )  # fmt: skip
            result.update(status="started", **_run_fields(started.run), **_counts(started.dataset))
            result["job_id"] = started.job_id
        else:
            result.update(status="duplicate", **_run_fields(existing))
    except DuplicateJob as exc:  # a concurrent delivery launched it first
        assert request is not None
        existing = _existing_run(tracking, request.experiment_name, upload.trigger_id)
        result.update(status="duplicate", job_id=exc.details.get("job_id", ""))
        if existing is not None:
            result.update(_run_fields(existing))
        else:
            result["error"] = (
                f"this manifest upload already started job {upload.job_name}, whose run is "
                "gone; upload a changed manifest to train again"
            )
    except DependencyUnavailable:
        raise
    except DomainError as exc:
        result.update(status="rejected", error=exc.message, **_counts(exc.details.get("summary")))
    result["written_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    store.put_text(upload.bucket, upload.result_key, json.dumps(result, indent=2))
    return result
