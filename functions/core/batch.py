"""Use cases: launch a batch prediction over an S3 prefix, and report its progress."""

from __future__ import annotations

import hashlib
import json
import re
import time

from functions.core.config import Settings
from functions.core.errors import InvalidRequest, JobNotFound
from functions.core.models import BatchJobRecord, BatchJobStatus, DatasetLocation, JobSpec
from functions.core.ports import JobLauncher, ObjectStore, Tracking
from functions.core.serving import MODEL_REFERENCE_PREFIX, check_servable
from functions.core.tenancy import Tenant
from functions.core.validation import check_name, resolve_location

BATCH_COMMAND = "batch"
JOB_ID = re.compile(r"batch-[0-9a-f]{16}")


def batch_job_id(run_id: str, input_uri: str, output_uri: str) -> str:
    """The same request names the same job, so a retry resumes instead of duplicating."""
    digest = hashlib.sha256(f"{run_id}\n{input_uri}\n{output_uri}".encode()).hexdigest()
    return f"batch-{digest[:16]}"


def _record_key(job_id: str) -> str:
    return f"batch-jobs/{job_id}.json"


def _inside(inner: DatasetLocation, outer: DatasetLocation) -> bool:
    return inner.bucket == outer.bucket and (
        inner.prefix == outer.prefix or inner.prefix.startswith(f"{outer.prefix}/")
    )


def start_batch(
    reference: str,
    input_path: str,
    output_path: str,
    tracking: Tracking,
    store: ObjectStore,
    launcher: JobLauncher,
    settings: Settings,
    tenant: Tenant,
) -> BatchJobRecord:
    """Check the model and the paths, record the job, launch it; returns the job record.
    `tracking` is the tenant's (functions/core/tenancy.py)."""
    reference = check_name("runid", reference, settings.max_name_length)
    source = resolve_location(input_path, settings, tenant)
    target = resolve_location(output_path, settings, tenant)
    if _inside(target, source) or _inside(source, target):
        raise InvalidRequest("output_path must not overlap input_path")
    run_id = (
        tracking.resolve_model_reference(reference)
        if reference.startswith(MODEL_REFERENCE_PREFIX)
        else reference
    )
    check_servable(tracking.get_run(run_id))
    if next(iter(store.list_objects(source.bucket, f"{source.prefix}/")), None) is None:
        raise InvalidRequest(f"no documents under {source.uri}/")
    job_id = batch_job_id(run_id, source.uri, target.uri)
    record = BatchJobRecord(job_id, run_id, source.uri, target.uri, time.time(), tenant.name)
    store.put_text(settings.artifacts_bucket, _record_key(job_id), json.dumps(record.__dict__))
    launcher.launch(
        JobSpec(
            job_name=job_id,
            command=BATCH_COMMAND,
            restartable=True,
            hyperparameters={
                "run_id": run_id,
                "input_uri": source.uri,
                "output_uri": target.uri,
                "job_id": job_id,
                "tracking_uri": settings.mlflow_tracking_uri,
                "max_document_bytes": str(settings.max_document_bytes),
            },
        )
    )
    return record


def batch_status(
    job_id: str, store: ObjectStore, settings: Settings, tenant: Tenant
) -> BatchJobStatus:
    """PENDING until the job writes its progress, then RUNNING, COMPLETED or FAILED."""
    text = (
        store.get_text(settings.artifacts_bucket, _record_key(job_id))
        if JOB_ID.fullmatch(job_id)
        else None
    )
    record = BatchJobRecord(**json.loads(text)) if text else None
    if record is None or not tenant.owns_tag(record.tenant):
        raise JobNotFound(f"batch job {job_id!r} not found")
    bucket, _, prefix = record.output_uri.removeprefix("s3://").partition("/")
    progress_text = store.get_text(bucket, f"{prefix}/_progress.json")
    progress = json.loads(progress_text) if progress_text else {}
    return BatchJobStatus(
        record=record,
        status=progress.get("status", "PENDING"),
        total=progress.get("total"),
        done=progress.get("done", 0),
        number_documents_treated=progress.get("number_documents_treated", 0),
        number_documents_non_treated=progress.get("number_documents_non_treated", 0),
        error=progress.get("error", ""),
    )
