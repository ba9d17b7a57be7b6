"""Use case: an idempotent `/process`. A client that retries with the same `Idempotency-Key`
(after a timeout, say) gets the run its first request started, not a second run and job.

The key, hashed with the tenant, names a record in the artifacts bucket: the request's
fingerprint and what it started. Within `idempotency_ttl_seconds` the same key with the same
body answers that run, and with another body is a conflict. Concurrent requests with one key
are kept to one job by the launcher: the job is named after the key and the body, and the run
that loses the launch is deleted again (as for manifest uploads).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict
from typing import Any

from functions.core.config import Settings
from functions.core.errors import Conflict, DuplicateJob, InvalidRequest, RunNotFound
from functions.core.models import (
    DatasetLocation,
    DatasetSummary,
    NotTreated,
    StartedTraining,
    TrainingRequest,
)
from functions.core.ports import JobLauncher, ObjectStore, Tracking
from functions.core.tags import TAG_IDEMPOTENCY, TAG_JOB_ID
from functions.core.tenancy import Tenant
from functions.core.training import start_training

RECORD_PREFIX = "_idempotency/"
# Printable ASCII without spaces, like the header values clients generate (UUIDs, hashes).
KEY = re.compile(r"[\x21-\x7e]{1,255}")
# How long a request that lost the launch to a concurrent one waits for the winner's run.
WINNER_LOOKS = 50
WINNER_PAUSE_SECONDS = 0.2


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def request_fingerprint(request: TrainingRequest) -> str:
    return _digest(json.dumps(asdict(request), sort_keys=True))


def _record_key(key_id: str) -> str:
    return f"{RECORD_PREFIX}{key_id}.json"


def _dataset_json(dataset: DatasetSummary) -> dict[str, Any]:
    return {
        "bucket": dataset.location.bucket,
        "prefix": dataset.location.prefix,
        "documents_per_label": dataset.documents_per_label,
        "not_treated": [asdict(item) for item in dataset.not_treated],
    }


def _dataset(raw: dict[str, Any]) -> DatasetSummary:
    return DatasetSummary(
        DatasetLocation(raw["bucket"], raw["prefix"]),
        dict(raw["documents_per_label"]),
        [NotTreated(**item) for item in raw["not_treated"]],
    )


def _replay(record: dict[str, Any], tracking: Tracking, launcher: JobLauncher) -> StartedTraining:
    try:
        run = tracking.get_run(record["run_id"])
    except RunNotFound:
        raise Conflict(
            f"the run this Idempotency-Key started ({record['run_id']}) was deleted; "
            "send the request with a new key to train again"
        ) from None
    position = launcher.queue_position(record["job_id"]) if run.status == "SCHEDULED" else None
    return StartedTraining(run, _dataset(record["dataset"]), record["job_id"], position)


def _winner(
    request: TrainingRequest, tracking: Tracking, duplicate: DuplicateJob
) -> StartedTraining:
    """The run of a concurrent request with the same key, which launched the job first: the
    one run tagged with that job (a losing run is deleted, never tagged; the winner tags its
    run just after the launch, so it is looked for a few times)."""
    job_id = str(duplicate.details["job_id"])
    experiment = tracking.get_experiment(request.experiment_name.strip())
    for _ in range(WINNER_LOOKS):
        run = (
            tracking.find_run(experiment.experiment_id, TAG_JOB_ID, job_id)
            if experiment is not None
            else None
        )
        if run is not None:
            dataset: DatasetSummary = duplicate.details["dataset"]
            return StartedTraining(run, dataset, job_id)
        time.sleep(WINNER_PAUSE_SECONDS)
    raise Conflict(
        "this Idempotency-Key already started a job whose run is gone; "
        "send the request with a new key to train again"
    )


def start_training_once(
    request: TrainingRequest,
    idempotency_key: str | None,
    store: ObjectStore,
    tracking: Tracking,
    launcher: JobLauncher,
    settings: Settings,
    tenant: Tenant,
) -> StartedTraining:
    """`start_training`, answered once per key and body (every time without a key)."""
    if idempotency_key is None:
        return start_training(request, store, tracking, launcher, settings, tenant)
    if not KEY.fullmatch(idempotency_key):
        raise InvalidRequest("Idempotency-Key must be 1 to 255 printable ASCII characters")
    key_id = _digest(tenant.name or "", idempotency_key)
    fingerprint = request_fingerprint(request)
    text = store.get_text(settings.artifacts_bucket, _record_key(key_id))
    record = json.loads(text) if text else None
    now = time.time()
    if record is not None and now - record["created_at"] < settings.idempotency_ttl_seconds:
        if record["request_sha256"] != fingerprint:
            raise Conflict(
                "this Idempotency-Key was used with a different request at "
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(record['created_at']))}; "
                "use a new key for a new request"
            )
        return _replay(record, tracking, launcher)
    try:
        started = start_training(
            request, store, tracking, launcher, settings, tenant,
            job_name=f"cc-i-{_digest(key_id, fingerprint)}", tags={TAG_IDEMPOTENCY: key_id},
        )  # fmt: skip
    except DuplicateJob as duplicate:
        started = _winner(request, tracking, duplicate)
    record = {
        "request_sha256": fingerprint,
        "created_at": now,
        "run_id": started.run.run_id,
        "job_id": started.job_id,
        "dataset": _dataset_json(started.dataset),
    }
    store.put_text(settings.artifacts_bucket, _record_key(key_id), json.dumps(record))
    return started
