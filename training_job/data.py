"""Read a labelled dataset laid out as `<prefix>/<label>/<doc>` from S3 or a local folder.

Which documents are used is decided by the `documents` package, the rule that batch and
predict apply too (its docstring states the decoding policy). Documents decoded with a
fallback encoding are used and listed in `decoded_with_fallback`. Documents that are hidden,
empty, binary or larger than the size limit are not used and are listed with their reason;
they never stop the job on their own.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from documents import decode_document, listing_problem


class DatasetError(ValueError):
    """The dataset cannot be trained on (not enough labels or documents)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


@dataclass(frozen=True)
class Document:
    key: str
    label: str
    text: str
    size: int
    sha256: str
    encoding: str


@dataclass(frozen=True)
class RejectedDocument:
    key: str
    label: str
    reason: str


@dataclass
class Dataset:
    labels: list[str]
    documents: list[Document] = field(default_factory=list)
    rejected: list[RejectedDocument] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        found = Counter(doc.label for doc in self.documents)
        return {label: found.get(label, 0) for label in self.labels}

    @property
    def decoded_with_fallback(self) -> list[str]:
        return [doc.key for doc in self.documents if doc.encoding != "utf-8"]

    def manifest_lines(self) -> list[str]:
        """One JSON line per used document, sorted by key: the dataset version."""
        rows = sorted(self.documents, key=lambda doc: doc.key)
        return [
            json.dumps(
                {"key": d.key, "label": d.label, "size": d.size, "sha256": d.sha256},
                sort_keys=True,
            )
            for d in rows
        ]

    def fingerprint(self) -> str:
        return hashlib.sha256("\n".join(self.manifest_lines()).encode()).hexdigest()

    def report(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "documents_per_label": self.counts(),
            "number_documents_treated": len(self.documents),
            "number_documents_non_treated": len(self.rejected),
            "list_id_not_treated": [asdict(r) for r in self.rejected],
            "decoded_with_fallback": self.decoded_with_fallback,
            "dataset_sha256": self.fingerprint(),
        }


class DocumentSource(Protocol):
    """Where documents come from: S3 or a folder (a SageMaker channel)."""

    def list_objects(self, label: str) -> Iterator[ObjectInfo]: ...

    def read(self, key: str) -> bytes: ...


class S3Source:
    """Paginated listing and plain gets against one bucket and prefix."""

    def __init__(self, client: Any, bucket: str, prefix: str) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def from_uri(cls, client: Any, uri: str) -> S3Source:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise DatasetError(f"data_uri must look like s3://bucket/prefix, got {uri!r}")
        return cls(client, parsed.netloc, parsed.path)

    def _label_prefix(self, label: str) -> str:
        return f"{self.prefix}/{label}/" if self.prefix else f"{label}/"

    def list_objects(self, label: str) -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._label_prefix(label)):
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):  # folder markers are not documents
                    yield ObjectInfo(key=item["Key"], size=int(item["Size"]))

    def read(self, key: str) -> bytes:
        body: bytes = self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return body


class FolderSource:
    """A local copy of the dataset; keys are reported as they were on S3 (`key_prefix`)."""

    def __init__(self, root: Path, key_prefix: str = "") -> None:
        self.root = root
        self.key_prefix = key_prefix.strip("/")

    def _key(self, path: Path) -> str:
        relative = path.relative_to(self.root).as_posix()
        return f"{self.key_prefix}/{relative}" if self.key_prefix else relative

    def list_objects(self, label: str) -> Iterator[ObjectInfo]:
        folder = self.root / label
        if not folder.is_dir():
            return
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                yield ObjectInfo(key=self._key(path), size=path.stat().st_size)

    def read(self, key: str) -> bytes:
        relative = key[len(self.key_prefix) + 1 :] if self.key_prefix else key
        return (self.root / relative).read_bytes()


def _load(source: DocumentSource, info: ObjectInfo, label: str) -> Document | RejectedDocument:
    try:
        raw = source.read(info.key)
    except OSError as exc:  # a transient read failure is reported, not fatal
        return RejectedDocument(info.key, label, f"unreadable: {exc}")
    decoded = decode_document(raw)
    if isinstance(decoded, str):
        return RejectedDocument(info.key, label, decoded)
    text, encoding = decoded
    digest = hashlib.sha256(raw).hexdigest()
    return Document(info.key, label, text, len(raw), digest, encoding)


def _candidates(
    source: DocumentSource, labels: Iterable[str], max_bytes: int
) -> tuple[list[tuple[ObjectInfo, str]], list[RejectedDocument]]:
    wanted: list[tuple[ObjectInfo, str]] = []
    rejected: list[RejectedDocument] = []
    for label in labels:
        for info in source.list_objects(label):
            reason = listing_problem(info.key, info.size, max_bytes)
            if reason is None:
                wanted.append((info, label))
            else:
                rejected.append(RejectedDocument(info.key, label, reason))
    return wanted, rejected


def read_dataset(
    source: DocumentSource, labels: list[str], max_bytes: int, workers: int = 16
) -> Dataset:
    """Read every document of the requested labels concurrently; classify the unusable ones."""
    wanted, rejected = _candidates(source, labels, max_bytes)
    dataset = Dataset(labels=list(labels), rejected=rejected)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for outcome in pool.map(lambda item: _load(source, *item), wanted):
            if isinstance(outcome, Document):
                dataset.documents.append(outcome)
            else:
                dataset.rejected.append(outcome)
    dataset.rejected.sort(key=lambda r: r.key)
    return dataset


def check_trainable(dataset: Dataset, min_per_label: int) -> None:
    """Raise DatasetError naming every label that cannot be split into train/val/test."""
    if len(set(dataset.labels)) < 2:
        raise DatasetError(f"at least two distinct labels are needed, got {dataset.labels}")
    short = {label: n for label, n in dataset.counts().items() if n < min_per_label}
    if short:
        detail = ", ".join(f"{label!r}: {n}" for label, n in sorted(short.items()))
        raise DatasetError(
            f"each label needs at least {min_per_label} usable documents; too few for {detail}"
        )
