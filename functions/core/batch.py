"""Use cases: launch a batch prediction over an S3 prefix, and report its progress.

A job is recorded at `batch-jobs/<job_id>.json` in the artifacts bucket, with three index
entries beside it (empty objects named after the job), so that what a dataset delete, the
dataset listing and a hard delete ask about many jobs is one listing, not a read of every
record:

    batch-jobs/inputs/<bucket>/<input prefix>/<job_id>     the jobs that read a folder
    batch-jobs/outputs/<bucket>/<output prefix>/<job_id>   the folders that hold outputs
    batch-jobs/experiments/<experiment_id>/<job_id>        the jobs of an experiment's runs

Index entries are written before the record and removed after it, so an entry may outlive
its record (readers skip it) but a record always has its entries.

A job over N > 1 machines has N shard descriptors at `batch-jobs/shards/<job_id>/<N>/`, which
a SageMaker channel hands out one an instance (ShardedByS3Key); local processes and ECS tasks
get their shard index from their launcher. Its progress is the sum of its shards' reports.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import asdict, replace
from typing import Any

from functions.core.config import Settings
from functions.core.errors import InvalidRequest, JobNotFound
from functions.core.models import (
    BatchJobRecord,
    BatchJobStatus,
    DatasetLocation,
    JobSpec,
    ShardProgress,
)
from functions.core.ports import JobLauncher, ObjectStore, Tracking
from functions.core.serving import MODEL_REFERENCE_PREFIX, check_servable
from functions.core.tenancy import Tenant
from functions.core.validation import check_machines, check_name, resolve_location

BATCH_COMMAND = "batch"
# The shard index a local process or an ECS task of a job over several instances reads.
SHARD_ENV = "JOB_SHARD_INDEX"
BATCH_FOLDER = "batch-jobs"
JOB_ID = re.compile(r"batch-[0-9a-f]{16}")
# A job in these states has ended: it no longer reads its input nor writes its output.
ENDED = frozenset({"COMPLETED", "FAILED"})
# How many of a completed job's unusable documents its status lists (all: the manifest).
NOT_TREATED_SHOWN = 100


def batch_job_id(run_id: str, input_uri: str, output_uri: str, suggest: int = 0) -> str:
    """The same request names the same job, so a retry resumes instead of duplicating."""
    asked = f"{run_id}\n{input_uri}\n{output_uri}" + (f"\nsuggest {suggest}" if suggest else "")
    digest = hashlib.sha256(asked.encode()).hexdigest()
    return f"batch-{digest[:16]}"


def _record_key(job_id: str) -> str:
    return f"{BATCH_FOLDER}/{job_id}.json"


def _shards_folder(job_id: str) -> str:
    return f"{BATCH_FOLDER}/shards/{job_id}/"


def shard_descriptor(index: int) -> str:
    """The object that hands shard `index` to a machine (training_job/batch.py reads the name)."""
    return f"shard-{index:05d}"


def shard_report(index: int, count: int) -> str:
    """Where shard `index` of `count` reports, beside the job's output."""
    return f"_shards/shard-{index:05d}-of-{count:05d}.json"


def location_of(uri: str) -> DatasetLocation:
    """The bucket and prefix of an `s3://<bucket>/<prefix>` URI."""
    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    return DatasetLocation(bucket=bucket, prefix=prefix.strip("/"))


def _inside(inner: DatasetLocation, outer: DatasetLocation) -> bool:
    return inner.bucket == outer.bucket and (
        inner.prefix == outer.prefix or inner.prefix.startswith(f"{outer.prefix}/")
    )


def overlaps(one: DatasetLocation, other: DatasetLocation) -> bool:
    """Whether the two folders share objects: one is the other or inside it."""
    return _inside(one, other) or _inside(other, one)


def _index_folder(kind: str, location: DatasetLocation) -> str:
    return f"{BATCH_FOLDER}/{kind}/{location.bucket}/{location.prefix}/"


def _experiment_folder(experiment_id: str) -> str:
    return f"{BATCH_FOLDER}/experiments/{experiment_id}/"


def index_keys(record: BatchJobRecord) -> list[str]:
    """The keys (in the artifacts bucket) of the index entries of one job."""
    keys = [
        _index_folder("inputs", location_of(record.input_uri)) + record.job_id,
        _index_folder("outputs", location_of(record.output_uri)) + record.job_id,
    ]
    if record.experiment_id:
        keys.append(_experiment_folder(record.experiment_id) + record.job_id)
    return keys


def start_batch(
    reference: str,
    input_path: str,
    output_path: str,
    tracking: Tracking,
    store: ObjectStore,
    launcher: JobLauncher,
    settings: Settings,
    tenant: Tenant,
    suggest: int = 0,
    instances: int = 1,
    instance_type: str = "",
) -> BatchJobRecord:
    """Check the model and the paths, record the job, launch it; returns the job record.
    `tracking` is the tenant's (functions/core/tenancy.py). `suggest` > 0: also rank the
    documents to label next and keep the best this many (training_job/suggest.py).
    `instances` > 1 shards the input over that many machines of `instance_type`."""
    if not 0 <= suggest <= settings.max_suggestions:
        raise InvalidRequest(f"n must be between 1 and {settings.max_suggestions}")
    check_machines(instance_type, instances, settings, settings.batch_max_instances)
    reference = check_name("runid", reference, settings.max_name_length)
    source = resolve_location(input_path, settings, tenant)
    target = resolve_location(output_path, settings, tenant)
    if overlaps(source, target):
        raise InvalidRequest("output_path must not overlap input_path")
    run_id = (
        tracking.resolve_model_reference(reference)
        if reference.startswith(MODEL_REFERENCE_PREFIX)
        else reference
    )
    run = tracking.get_run(run_id)
    check_servable(run)
    if next(iter(store.list_objects(source.bucket, f"{source.prefix}/")), None) is None:
        raise InvalidRequest(f"no documents under {source.uri}/")
    job_id = batch_job_id(run_id, source.uri, target.uri, suggest)
    previous = _load_record(job_id, store, settings)
    record = BatchJobRecord(job_id, run_id, source.uri, target.uri, time.time(), tenant.name,
                            run.experiment_id, suggest, instances, instance_type,
                            previous.launch_id if previous else "")  # fmt: skip
    for key in index_keys(record):
        store.put_text(settings.artifacts_bucket, key, "")
    store.put_text(settings.artifacts_bucket, _record_key(job_id), json.dumps(asdict(record)))
    hyperparameters = {
        "run_id": run_id,
        "input_uri": source.uri,
        "output_uri": target.uri,
        "job_id": job_id,
        "tracking_uri": settings.mlflow_tracking_uri,
        "max_document_bytes": str(settings.max_document_bytes),
        **settings.extraction_limits,
        "suggest": str(suggest),
        "instances": str(instances),
    }
    if instances > 1:  # one descriptor a shard, for a channel to deal out (ShardedByS3Key)
        folder = f"{_shards_folder(job_id)}{instances}/"
        for index in range(instances):
            store.put_text(settings.artifacts_bucket, folder + shard_descriptor(index),
                           json.dumps({"shard": index, "of": instances}))  # fmt: skip
        hyperparameters["shards_uri"] = f"s3://{settings.artifacts_bucket}/{folder}"
    launch = launcher.launch(
        JobSpec(
            job_name=job_id,
            command=BATCH_COMMAND,
            restartable=True,
            hyperparameters=hyperparameters,
            instances=instances,
            instance_type=instance_type,
        )
    )
    if launch.created:  # which job to ask the launcher about, should none report
        record = replace(record, launch_id=launch.job_id)
    elif previous is not None:  # still running as first asked: its shards report as such
        record = replace(record, instances=previous.instances,
                         instance_type=previous.instance_type)  # fmt: skip
    store.put_text(settings.artifacts_bucket, _record_key(job_id), json.dumps(asdict(record)))
    return record


def _load_record(job_id: str, store: ObjectStore, settings: Settings) -> BatchJobRecord | None:
    text = (
        store.get_text(settings.artifacts_bucket, _record_key(job_id))
        if JOB_ID.fullmatch(job_id)
        else None
    )
    return BatchJobRecord(**json.loads(text)) if text else None


def _output_json(record: BatchJobRecord, name: str, store: ObjectStore) -> dict[str, Any]:
    """One of the files the job writes beside its output (`_progress.json`, `_manifest.json`)."""
    output = location_of(record.output_uri)
    text = store.get_text(output.bucket, f"{output.prefix}/{name}")
    found = json.loads(text) if text else {}
    return found if isinstance(found, dict) else {}


def suggestions_path(input_path: str) -> str:
    """Where a /suggest job writes unless told: `_suggestions/<folder>` beside the folder it
    reads (`ds/weather` -> `ds/_suggestions/weather`): a "_" folder is never taken for a
    label, so suggesting inside a dataset does not grow it a label."""
    parent, _, folder = input_path.rstrip("/").rpartition("/")
    return f"{parent}/_suggestions/{folder}" if parent else f"_suggestions/{folder}"


def suggestions(job: BatchJobStatus, store: ObjectStore) -> list[dict[str, Any]]:
    """A completed /suggest job's documents to label next, best first (nothing before)."""
    if job.status != "COMPLETED" or not job.record.suggest:
        return []
    found = _output_json(job.record, "suggestions.json", store).get("suggestions", [])
    return [item for item in found if isinstance(item, dict)]


def _sharded_status(record: BatchJobRecord, store: ObjectStore) -> BatchJobStatus:
    """A sharded job not yet COMPLETED: the sum of its shards' reports; FAILED where a shard
    failed (until it is started again), RUNNING once any reported, else PENDING."""
    reports = [(index, _output_json(record, shard_report(index, record.instances), store))
               for index in range(record.instances)]  # fmt: skip
    shards = [ShardProgress(index, str(r.get("status", "")), int(r.get("done", 0)),
                            str(r.get("error", ""))) for index, r in reports if r]  # fmt: skip
    failed = [s for s in shards if s.status == "FAILED"]
    status = "FAILED" if failed else "RUNNING" if shards else "PENDING"
    totals = [int(r.get("total", 0)) for _, r in reports if r]
    return BatchJobStatus(
        record=record,
        status=status,
        total=max(totals) if totals else None,
        done=sum(s.done for s in shards),
        number_documents_treated=sum(int(r.get("treated", 0)) for _, r in reports),
        number_documents_non_treated=sum(int(r.get("not_treated_count", 0)) for _, r in reports),
        error="; ".join(f"shard {s.index}: {s.error}" for s in failed),
        shards=shards,
    )


def _status_of(record: BatchJobRecord, store: ObjectStore) -> BatchJobStatus:
    progress = _output_json(record, "_progress.json", store)
    if record.instances > 1 and progress.get("status") != "COMPLETED":
        return _sharded_status(record, store)
    return BatchJobStatus(
        record=record,
        status=progress.get("status", "PENDING"),
        total=progress.get("total"),
        done=progress.get("done", 0),
        number_documents_treated=progress.get("number_documents_treated", 0),
        number_documents_non_treated=progress.get("number_documents_non_treated", 0),
        error=progress.get("error", ""),
    )


def batch_status(
    job_id: str, store: ObjectStore, settings: Settings, tenant: Tenant,
    launcher: JobLauncher | None = None,
) -> BatchJobStatus:  # fmt: skip
    """PENDING until the job writes its progress, then RUNNING, COMPLETED or FAILED. A job
    that ended before writing any (bad parameters, a model it could not load, a process
    killed) is FAILED with the launcher's reason."""
    record = _load_record(job_id, store, settings)
    if record is None or not tenant.owns_tag(record.tenant):
        raise JobNotFound(f"batch job {job_id!r} not found")
    job = _status_of(record, store)
    if job.status == "PENDING" and launcher is not None:
        reason = launcher.failure(record.launch_id or record.job_id)
        if reason:
            return replace(job, status="FAILED", error=reason)
    return job


def not_treated_documents(job: BatchJobStatus, store: ObjectStore) -> list[tuple[str, str]]:
    """(key, reason) of the first documents a completed job could not use, from its manifest;
    nothing is read while the job runs (the manifest is written last)."""
    if job.status != "COMPLETED" or not job.number_documents_non_treated:
        return []
    items = _output_json(job.record, "_manifest.json", store).get("list_id_not_treated", [])
    return [
        (str(item.get("key", "")), str(item.get("reason", "")))
        for item in items[:NOT_TREATED_SHOWN]
        if isinstance(item, dict)
    ]


def _job_ids_under(folder: str, store: ObjectStore, settings: Settings) -> set[str]:
    """The jobs indexed in the index folder or anywhere below it."""
    names = (
        i.key.rpartition("/")[2] for i in store.list_objects(settings.artifacts_bucket, folder)
    )
    return {name for name in names if JOB_ID.fullmatch(name)}


def _job_ids_at(folder: str, store: ObjectStore, settings: Settings) -> set[str]:
    """The jobs indexed in the index folder itself (not below it)."""
    infos = store.list_objects(settings.artifacts_bucket, f"{folder}batch-")
    names = (info.key[len(folder) :] for info in infos)
    return {name for name in names if JOB_ID.fullmatch(name)}


def _overlapping_job_ids(
    kind: str, location: DatasetLocation, store: ObjectStore, settings: Settings
) -> set[str]:
    """The jobs whose input (kind "inputs") or output ("outputs") overlaps the location."""
    found = _job_ids_under(_index_folder(kind, location), store, settings)
    parts = location.prefix.split("/")
    for depth in range(1, len(parts)):  # the folders around it, one listing each
        around = DatasetLocation(location.bucket, "/".join(parts[:depth]))
        found |= _job_ids_at(_index_folder(kind, around), store, settings)
    return found


def batch_jobs_in_use(
    location: DatasetLocation, store: ObjectStore, settings: Settings
) -> list[str]:
    """The ids of the batch jobs not yet ended (queued or running) that read or write the
    location, a folder inside it or one around it."""
    ids = _overlapping_job_ids("inputs", location, store, settings)
    ids |= _overlapping_job_ids("outputs", location, store, settings)
    records = (_load_record(job_id, store, settings) for job_id in sorted(ids))
    return [
        record.job_id
        for record in records
        if record is not None and _status_of(record, store).status not in ENDED
    ]


def batch_output_folders(store: ObjectStore, settings: Settings, tenant: Tenant) -> set[str]:
    """The top-level folders of the data bucket (of the tenant's folder) that hold the
    outputs of batch jobs."""
    root = f"{BATCH_FOLDER}/outputs/{settings.data_bucket}/{tenant.data_prefix}"
    return set(store.list_folders(settings.artifacts_bucket, root))


def _remove_job(record: BatchJobRecord, store: ObjectStore, settings: Settings) -> None:
    store.delete_prefix(settings.artifacts_bucket, _shards_folder(record.job_id))
    store.delete_prefix(settings.artifacts_bucket, _record_key(record.job_id))
    for key in index_keys(record):
        # The port deletes by prefix; a job id (fixed length) names this one entry.
        store.delete_prefix(settings.artifacts_bucket, key)


def _remove_jobs(job_ids: set[str], store: ObjectStore, settings: Settings) -> int:
    records = (_load_record(job_id, store, settings) for job_id in sorted(job_ids))
    removed = 0
    for record in records:
        if record is not None:
            _remove_job(record, store, settings)
            removed += 1
    return removed


def forget_batch_jobs_in(location: DatasetLocation, store: ObjectStore, settings: Settings) -> int:
    """Once a folder's objects are deleted: remove the jobs whose output was inside it (their
    results are gone) and every index entry under it; returns how many jobs were removed."""
    outputs = _job_ids_under(_index_folder("outputs", location), store, settings)
    removed = _remove_jobs(outputs, store, settings)
    for kind in ("inputs", "outputs"):
        store.delete_prefix(settings.artifacts_bucket, _index_folder(kind, location))
    return removed


def remove_experiment_batch_jobs(experiment_id: str, store: ObjectStore, settings: Settings) -> int:
    """Remove the records and index entries of the batch jobs of an experiment's runs; their
    outputs stay (they are the user's data). Returns how many jobs were removed."""
    folder = _experiment_folder(experiment_id)
    removed = _remove_jobs(_job_ids_under(folder, store, settings), store, settings)
    store.delete_prefix(settings.artifacts_bucket, folder)  # entries that outlived a record
    return removed
