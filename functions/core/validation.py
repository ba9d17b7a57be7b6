"""Validate a training request before anything is created.

The API judges documents from the listing alone (name and size), so it stays fast on large
datasets; the training job reads the content and reports binary or undecodable files. Both
apply the one rule of the `documents` package.
"""

from __future__ import annotations

import unicodedata
from collections import Counter

from documents import CsvError, is_csv_dataset, listing_problem, read_labelled_csv, row_key
from functions.core.config import Settings
from functions.core.errors import InvalidDataset, InvalidRequest
from functions.core.formats import survey_formats
from functions.core.models import (
    DatasetLocation,
    DatasetSummary,
    NotTreated,
    ObjectInfo,
    TrainingRequest,
)
from functions.core.ports import ObjectStore
from functions.core.tenancy import Tenant


def _has_control_chars(text: str) -> bool:
    return any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in text)


def check_name(kind: str, value: str, max_length: int) -> str:
    """A printable, non-blank name of bounded length (experiment names, run ids)."""
    name = value.strip()
    if not name:
        raise InvalidRequest(f"{kind} must not be empty")
    if len(name) > max_length:
        raise InvalidRequest(f"{kind} is longer than {max_length} characters")
    if _has_control_chars(name):
        raise InvalidRequest(f"{kind} contains control characters")
    return name


def label_problem(label: str) -> str | None:
    """Why a label cannot be one S3 folder name, or None."""
    if not label:
        return "labels must not be empty"
    if "/" in label or label in {".", ".."} or _has_control_chars(label):
        return f"label {label!r} is not a valid folder name"
    return None


def check_labels(labels: list[str], max_labels: int) -> list[str]:
    """At least two distinct labels, each usable as one S3 folder name."""
    cleaned = [label.strip() for label in labels]
    problems = [p for p in map(label_problem, cleaned) if p is not None]
    duplicates = sorted(label for label, n in Counter(cleaned).items() if n > 1 and label)
    if duplicates:
        problems.append(f"labels must be distinct; repeated: {', '.join(duplicates)}")
    if len(set(cleaned)) < 2:
        problems.append("at least two distinct labels are needed")
    if len(cleaned) > max_labels:
        problems.append(f"at most {max_labels} labels are supported")
    if problems:
        raise InvalidRequest("; ".join(dict.fromkeys(problems)))
    return cleaned


def resolve_location(path: str, settings: Settings, tenant: Tenant) -> DatasetLocation:
    """`prefix` in the data bucket, or `s3://bucket/prefix` in an allowed bucket. A tenant's
    paths are inside its folder: a name is taken from there, a URI must point there."""
    raw = path.strip()
    bucket = settings.data_bucket
    is_uri = raw.startswith("s3://")
    if is_uri:
        bucket, _, raw = raw[len("s3://") :].partition("/")
        readable = {settings.data_bucket} if tenant.restricted else settings.readable_buckets()
        if bucket not in readable:
            raise InvalidRequest(f"bucket {bucket!r} is not one this service may read")
    elif "://" in raw:
        raise InvalidRequest("path must be a prefix in the data bucket or an s3:// URI")
    if _has_control_chars(raw):
        raise InvalidRequest("path contains control characters")
    parts = [part for part in raw.strip("/").split("/") if part]
    if any(part in {".", ".."} for part in parts):
        raise InvalidRequest("path must not contain '.' or '..' segments")
    prefix = "/".join(parts)
    if tenant.restricted:
        own = tenant.data_prefix
        if not is_uri:
            prefix = f"{own}{prefix}" if prefix else ""
        elif not prefix.startswith(own):
            raise InvalidRequest(
                f"path must be one of your datasets: a name, or s3://{bucket}/{own}<name>"
            )
    if not prefix:
        raise InvalidRequest("path must name a dataset folder, not the bucket root")
    return DatasetLocation(bucket=bucket, prefix=prefix)


def survey_dataset(
    store: ObjectStore, location: DatasetLocation, labels: list[str], settings: Settings,
    multi_label: bool = False, delimiter: str = "|",
) -> DatasetSummary:  # fmt: skip
    """Count usable documents per label, and their formats, from the listing (and the
    opening bytes of those not named as text); list the ones that cannot be used.

    A document filed under several label folders (the same name and content under each) is
    counted in each in multi-label mode, copies whose content differs are listed as
    conflicting; in single-label mode such documents are an InvalidDataset. A `.csv`
    path is a Comprehend-format CSV (survey_csv)."""
    if is_csv_dataset(location.prefix):
        return survey_csv(store, location, labels, settings, multi_label, delimiter)
    not_treated: list[NotTreated] = []
    copies: dict[str, list[tuple[str, ObjectInfo]]] = {}  # by the name under the label folder
    for label in labels:
        folder = location.label_prefix(label)
        for info in store.list_objects(location.bucket, folder):
            if info.key.endswith("/"):
                continue  # a folder marker, not a document
            reason = listing_problem(info.key, info.size, settings.max_document_bytes)
            if reason is None:
                copies.setdefault(info.key[len(folder) :], []).append((label, info))
            else:
                not_treated.append(NotTreated(info.key, label, reason))
    if not multi_label:
        _refuse_shared(copies, location)
    usable: list[tuple[str, ObjectInfo]] = []
    for name, found in copies.items():
        if multi_label and len({(info.size, info.etag) for _, info in found}) > 1:
            folders = ", ".join(label for label, _ in found)
            reason = f"conflicting copies: {name!r} differs between the label folders {folders}"
            not_treated.extend(NotTreated(info.key, label, reason) for label, info in found)
            continue
        usable += found
    formats = survey_formats(store, location.bucket, usable, settings)
    not_treated += formats.unreadable
    counts = {label: sum(formats.per_label(label).values()) for label in labels}
    per_label = {label: formats.per_label(label) for label in labels}
    return DatasetSummary(location, counts, not_treated, per_label)


def survey_csv(store: ObjectStore, location: DatasetLocation, labels: list[str],
               settings: Settings, multi_label: bool, delimiter: str
               ) -> DatasetSummary:  # fmt: skip
    """Rows a label of a Comprehend-format CSV; its unusable rows listed by line number.
    A file that cannot be read as one is an InvalidRequest."""
    key = location.prefix
    found = next((i for i in store.list_objects(location.bucket, key) if i.key == key), None)
    if found is None:
        raise InvalidRequest(f"there is no CSV file at {location.uri}")
    if found.size > settings.max_csv_bytes:
        raise InvalidRequest(
            f"{location.uri} is {found.size} bytes; a CSV dataset may have at most "
            f"{settings.max_csv_bytes} (CC_MAX_CSV_BYTES): split it, or use label folders"
        )
    raw = store.get_bytes(location.bucket, key) or b""
    try:
        parsed = read_labelled_csv(raw, labels, delimiter, multi_label)
    except CsvError as exc:
        raise InvalidRequest(f"{location.uri}: {exc}") from exc
    not_treated = [NotTreated(row_key(key, p.line), "", f"line {p.line}: {p.reason}")
                   for p in parsed.problems]  # fmt: skip
    return DatasetSummary(location, parsed.counts(labels), not_treated)


def _refuse_shared(copies: dict[str, list[tuple[str, ObjectInfo]]], location: DatasetLocation
                   ) -> None:  # fmt: skip
    """Single-label: one document (same name, size and ETag) in several label folders."""
    shared = sorted(
        name for name, found in copies.items()
        if len(found) > 1 and len({(info.size, info.etag) for _, info in found}) == 1
    )  # fmt: skip
    if shared:
        examples = "; ".join(
            f"{name!r} under {', '.join(label for label, _ in copies[name])}" for name in shared[:3]
        )
        raise InvalidRequest(
            f"{len(shared)} documents are filed under several label folders of "
            f"{location.uri} ({examples}): train with multi_label: true to give a document "
            "several labels, or keep each document in one label folder"
        )


def require_enough_documents(summary: DatasetSummary, minimum: int) -> None:
    """Refuses a label with too few documents, saying what would do: more documents, or
    the labels that have enough (a user's imbalanced set often has one rare label)."""
    short = {label: n for label, n in summary.documents_per_label.items() if n < minimum}
    if short:
        detail = ", ".join(f"{label!r} has {n}" for label, n in short.items())
        enough = [label for label in summary.documents_per_label if label not in short]
        them = "them" if len(short) > 1 else "it"
        remedy = f"add documents to {them}"
        if len(enough) >= 2:
            remedy += f", or train on the others (labels: {', '.join(map(repr, enough))})"
        raise InvalidDataset(
            f"each label needs at least {minimum} usable documents in "
            f"{summary.location.uri}: {detail}; {remedy}",
            summary=summary,
        )


TRAINING_MODES = ("auto", "tfidf", "head", "contrastive", "finetune", "ensemble")
PROMOTE_MODES = ("always", "if_better")


def check_machines(instance_type: str, instances: int, settings: Settings,
                   max_instances: int = 1) -> None:  # fmt: skip
    """A job's machine type is one of the allowed (or "": the default) and its machine count
    within 1..max_instances."""
    allowed = {settings.sagemaker_instance_type, *settings.sagemaker_instance_types}
    if instance_type and instance_type not in allowed:
        choices = ", ".join(sorted(allowed))
        raise InvalidRequest(f"instance_type {instance_type!r} is not allowed; one of: {choices}")
    if not 1 <= instances <= max_instances:
        raise InvalidRequest(f"instances must be between 1 and {max_instances}, got {instances}")


def check_training_options(request: TrainingRequest, max_hpo_trials: int) -> None:
    if request.mode not in TRAINING_MODES:
        raise InvalidRequest(f"mode must be one of {', '.join(TRAINING_MODES)}")
    if request.promote not in PROMOTE_MODES:
        raise InvalidRequest(f"promote must be one of {', '.join(PROMOTE_MODES)}")
    if request.time_budget_seconds < 0:
        raise InvalidRequest("time_budget_seconds must not be negative")
    if not 0 <= request.hpo_trials <= max_hpo_trials:
        raise InvalidRequest(f"hpo_trials must be between 0 and {max_hpo_trials}")
    if len(request.label_delimiter) != 1 or request.label_delimiter in ',"\r\n ':
        raise InvalidRequest("label_delimiter must be one character other than a comma, a "
                             "quote, a space or a line break")  # fmt: skip
    if request.min_macro_f1 is not None:
        check_bar(request.min_macro_f1)


def check_bar(bar: float) -> None:
    """A registration bar (`min_macro_f1`) is a macro-F1: 0-1 (the majority-class rule holds
    at any bar)."""
    if not 0.0 <= bar <= 1.0:
        raise InvalidRequest("min_macro_f1 must be between 0 and 1")


def validate_training_request(
    request: TrainingRequest, store: ObjectStore, settings: Settings, tenant: Tenant
) -> tuple[list[str], str, DatasetSummary]:
    """Labels, experiment name and dataset summary of a valid request, or a domain error."""
    check_training_options(request, settings.max_hpo_trials)
    check_machines(request.instance_type, 1, settings)
    labels = check_labels(request.labels, settings.max_labels)
    experiment = check_name("experiment_name", request.experiment_name, settings.max_name_length)
    location = resolve_location(request.path, settings, tenant)
    summary = survey_dataset(store, location, labels, settings, request.multi_label,
                             request.label_delimiter)  # fmt: skip
    require_enough_documents(summary, settings.min_docs_per_label)
    return labels, experiment, summary
