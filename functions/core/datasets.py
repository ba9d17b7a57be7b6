"""Use cases for the UI and CLI: list datasets, suggest labels, plan a (resumable) upload,
delete a dataset.

Uploads never pass through the API: it hands out presigned PUT URLs for the files the
bucket does not already hold with the same size (and MD5, when the client sends it), so an
interrupted upload resumes where it stopped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from documents import CsvError, is_csv_dataset, label_counts, listing_problem
from functions.core.batch import (
    batch_jobs_in_use,
    batch_output_folders,
    forget_batch_jobs_in,
    location_of,
    overlaps,
)
from functions.core.config import Settings
from functions.core.errors import Conflict, DatasetNotFound, InvalidRequest
from functions.core.formats import survey_formats
from functions.core.models import DatasetLocation, NotTreated, ObjectInfo, RunSummary
from functions.core.ports import ObjectStore, Tracking
from functions.core.tags import TAG_DATA_URI
from functions.core.tenancy import Tenant
from functions.core.validation import label_problem, resolve_location

MD5 = re.compile(r"[0-9a-f]{32}")
# How many queued or running runs a dataset delete looks at for one reading the dataset.
IN_USE_RUNS = 1000


# How many of a folder's unusable documents the label listing names (all are counted).
NOT_USABLE_LISTED = 50


@dataclass(frozen=True)
class LabelFolder:
    label: str
    documents: int  # usable, judged from the listing as /process judges them
    not_usable: int
    # The first NOT_USABLE_LISTED of them and why, shown before a training starts.
    not_usable_documents: tuple[NotTreated, ...] = ()
    formats: dict[str, int] = field(default_factory=dict)  # of the usable documents


@dataclass(frozen=True)
class UploadFile:
    path: str  # "<label>/<name>" inside the dataset
    size: int
    md5: str = ""


@dataclass(frozen=True)
class UploadPlan:
    location: DatasetLocation
    uploads: list[tuple[str, str, str]] = field(default_factory=list)  # path, key, url
    skipped: list[str] = field(default_factory=list)  # already there, same size and MD5
    rejected: list[tuple[str, str]] = field(default_factory=list)  # path, reason


@dataclass(frozen=True)
class DatasetDeletion:
    location: DatasetLocation
    objects: int  # removed from the data bucket
    batch_jobs: int  # records of the batch jobs whose output was inside the dataset


def list_datasets(store: ObjectStore, settings: Settings, tenant: Tenant) -> list[str]:
    """The datasets: top-level folders of the data bucket, or of the tenant's folder, except
    those that hold batch outputs (known from the batch index, not from a walk of the data)."""
    folders = store.list_folders(settings.data_bucket, tenant.data_prefix)
    outputs = batch_output_folders(store, settings, tenant)
    return sorted(name for name in folders if name and name not in outputs)


def _reads(run: RunSummary, location: DatasetLocation) -> bool:
    data_uri = run.tags.get(TAG_DATA_URI)
    return bool(data_uri) and overlaps(location_of(str(data_uri)), location)


def delete_dataset(
    path: str, tracking: Tracking, store: ObjectStore, settings: Settings, tenant: Tenant
) -> DatasetDeletion:
    """Remove every object under the dataset's prefix, and its batch index entries; Conflict
    while a queued or running training run or batch job reads (or writes) it. `tracking` is
    the tenant's (functions/core/tenancy.py)."""
    location = resolve_location(path, settings, tenant)
    if location.bucket != settings.data_bucket:
        raise InvalidRequest("only datasets of the data bucket can be deleted: give its name")
    if next(iter(store.list_objects(location.bucket, f"{location.prefix}/")), None) is None:
        raise DatasetNotFound(f"dataset {location.uri} not found: no objects under it")
    runs = [run.run_id for run in tracking.active_runs(IN_USE_RUNS) if _reads(run, location)]
    jobs = batch_jobs_in_use(location, store, settings)
    if runs or jobs:
        users = [*(f"run {run_id}" for run_id in runs), *(f"batch job {job}" for job in jobs)]
        raise Conflict(
            f"dataset {location.uri} is in use by queued or running jobs ({', '.join(users)}); "
            "delete it once they end",
            run_ids=runs,
            job_ids=jobs,
        )
    objects = store.delete_prefix(location.bucket, f"{location.prefix}/")
    return DatasetDeletion(location, objects, forget_batch_jobs_in(location, store, settings))


def label_folders(
    path: str, store: ObjectStore, settings: Settings, tenant: Tenant
) -> list[LabelFolder]:
    """Each label folder of a dataset with its usable and unusable document counts (a CSV
    dataset: each label named in its rows, with their count)."""
    location = resolve_location(path, settings, tenant)
    if is_csv_dataset(location.prefix):
        return _csv_labels(store, location, settings)
    usable: list[tuple[str, ObjectInfo]] = []
    unusable: list[NotTreated] = []
    for info in store.list_objects(location.bucket, f"{location.prefix}/"):
        rest = info.key[len(location.prefix) + 1 :]
        label, sep, name = rest.partition("/")
        if not sep or not name or name.endswith("/") or label.startswith(("_", ".")):
            continue  # a file beside the labels (a manifest), or a folder marker
        problem = listing_problem(info.key, info.size, settings.max_document_bytes)
        if problem is None:
            usable.append((label, info))
        else:
            unusable.append(NotTreated(info.key, label, problem))
    formats = survey_formats(store, location.bucket, usable, settings)
    unusable += formats.unreadable
    named: dict[str, list[NotTreated]] = {}
    for item in unusable:
        named.setdefault(item.label, []).append(item)
    return [
        LabelFolder(label, sum(formats.per_label(label).values()), len(named.get(label, [])),
                    tuple(named.get(label, [])[:NOT_USABLE_LISTED]), formats.per_label(label))
        for label in sorted({label for label, _ in usable} | set(named))
    ]  # fmt: skip


def _csv_labels(store: ObjectStore, location: DatasetLocation, settings: Settings
                ) -> list[LabelFolder]:  # fmt: skip
    found = next((i for i in store.list_objects(location.bucket, location.prefix)
                  if i.key == location.prefix), None)  # fmt: skip
    if found is None or found.size > settings.max_csv_bytes:
        return []
    try:
        counts = label_counts(store.get_bytes(location.bucket, location.prefix) or b"")
    except CsvError:
        return []  # /process says why
    return [LabelFolder(label, n, 0) for label, n in sorted(counts.items())]


def _check_file(upload: UploadFile, settings: Settings) -> str | None:
    parts = upload.path.split("/")
    if len(parts) != 2 or not all(parts):
        return "path must be <label>/<file name>"
    problem = label_problem(parts[0])
    if problem is not None:
        return problem
    reason = listing_problem(upload.path, upload.size, settings.max_document_bytes)
    if reason is not None:
        return reason  # "." and ".." are hidden names too
    if upload.md5 and not MD5.fullmatch(upload.md5):
        return "md5 must be 32 lowercase hex digits"
    return None


def plan_upload(
    path: str, files: list[UploadFile], store: ObjectStore, settings: Settings, tenant: Tenant
) -> UploadPlan:
    """Presigned PUT URLs for the files not yet in the dataset; the rest skipped or rejected."""
    if not files:
        raise InvalidRequest("no files to upload")
    if len(files) > settings.max_upload_files:
        raise InvalidRequest(f"at most {settings.max_upload_files} files per request")
    location = resolve_location(path, settings, tenant)
    if location.bucket != settings.data_bucket:
        raise InvalidRequest("uploads go to the data bucket: give a dataset name, not a URI")
    existing = {
        info.key: info for info in store.list_objects(location.bucket, f"{location.prefix}/")
    }
    plan = UploadPlan(location)
    for upload in files:
        reason = _check_file(upload, settings)
        if reason is not None:
            plan.rejected.append((upload.path, reason))
            continue
        key = f"{location.prefix}/{upload.path}"
        there = existing.get(key)
        if (
            there is not None
            and there.size == upload.size
            and (not upload.md5 or there.etag == upload.md5)
        ):
            plan.skipped.append(upload.path)
            continue
        url = store.presign_put(location.bucket, key, settings.presign_seconds)
        plan.uploads.append((upload.path, key, url))
    return plan


def file_document(source: str, dataset: str, label: str, store: ObjectStore,
                  settings: Settings, tenant: Tenant) -> str:  # fmt: skip
    """Label a document: copy it (server side) into `<dataset>/<label>/` under its own name,
    a new label folder if need be; returns where it now is. Both are the tenant's."""
    document = resolve_location(source, settings, tenant)
    target = resolve_location(dataset, settings, tenant)
    label = label.strip()
    problem = label_problem(label)
    if problem is not None:
        raise InvalidRequest(problem)
    if label.startswith(("_", ".")):
        raise InvalidRequest("a label must not start with '_' or '.' (such folders are skipped)")
    if document.bucket != target.bucket:
        raise InvalidRequest("the document and the dataset must be in the same bucket")
    listed = store.list_objects(document.bucket, document.prefix)
    if not any(info.key == document.prefix for info in listed):
        raise DatasetNotFound(f"document {source!r} not found")
    key = f"{target.prefix}/{label}/{document.prefix.rpartition('/')[2]}"
    if key != document.prefix:
        store.copy(document.bucket, document.prefix, key)
    return f"s3://{document.bucket}/{key}"
