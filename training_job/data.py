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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from documents import CsvError, listing_problem, read_labelled_csv, row_key
from documents.extract import TEXT, Extracted, Limits, detect, extract


class DatasetError(ValueError):
    """The dataset cannot be trained on (not enough labels or documents)."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int


@dataclass(frozen=True)
class Document:
    key: str
    label: str  # its label; multi-label: its rarest label (what splits are stratified on)
    text: str
    size: int
    sha256: str
    encoding: str
    labels: tuple[str, ...] = ()  # multi-label: every label folder it is filed under
    format: str = TEXT  # what it was (documents/extract.py): text, pdf, docx, html, email
    extractor: str = ""  # what read its text (plain text: its encoding)

    @property
    def label_set(self) -> tuple[str, ...]:
        return self.labels or (self.label,)

    def how_read(self) -> dict[str, Any]:
        """A document that was not plain text: its format, extractor and text length."""
        return {"format": self.format, "extractor": self.extractor, "chars": len(self.text)}


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
    # hits, misses and errors of the extraction cache, where one was used
    extraction_cache: dict[str, int] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        found = Counter(label for doc in self.documents for label in doc.label_set)
        return {label: found.get(label, 0) for label in self.labels}

    @property
    def decoded_with_fallback(self) -> list[str]:
        return [doc.key for doc in self.documents if doc.encoding != "utf-8"]

    def manifest_lines(self) -> list[str]:
        """One JSON line per used document, sorted by key: the dataset version."""
        rows = sorted(self.documents, key=lambda doc: doc.key)
        return [
            json.dumps(
                {
                    "key": d.key,
                    "label": d.label,
                    "size": d.size,
                    "sha256": d.sha256,
                    **({"labels": list(d.labels)} if d.labels else {}),
                    # text as before (its fingerprint unchanged); other formats say how read
                    **(d.how_read() if d.format != TEXT else {}),
                },
                sort_keys=True,
            )
            for d in rows
        ]

    def fingerprint(self) -> str:
        return hashlib.sha256("\n".join(self.manifest_lines()).encode()).hexdigest()

    def formats(self) -> dict[str, dict[str, int]]:
        """Documents of each format under each label."""
        found: dict[str, dict[str, int]] = {label: {} for label in self.labels}
        for doc in self.documents:
            for label in doc.label_set:
                found[label][doc.format] = found[label].get(doc.format, 0) + 1
        return found

    def report(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "documents_per_label": self.counts(),
            "formats_per_label": self.formats(),
            # every document not plain text: how its text was found, and how much
            "extracted": [
                {"key": d.key, **d.how_read()}
                for d in sorted(self.documents, key=lambda doc: doc.key)
                if d.format != TEXT
            ],
            "number_documents_treated": len(self.documents),
            "number_documents_non_treated": len(self.rejected),
            "list_id_not_treated": [asdict(r) for r in self.rejected],
            "decoded_with_fallback": self.decoded_with_fallback,
            **({"extraction_cache": self.extraction_cache} if self.extraction_cache else {}),
            "dataset_sha256": self.fingerprint(),
        }


class TextCache(Protocol):
    """Extraction outcomes by the document's SHA-256 (training_job/extraction_cache.py)."""

    def get(self, sha256: str) -> Extracted | str | None: ...

    def put(self, sha256: str, outcome: Extracted | str) -> None: ...


class DocumentSource(Protocol):
    """Where documents come from: S3 or a folder (a SageMaker channel)."""

    def label_prefix(self, label: str) -> str:
        """What every key of the label's documents starts with."""
        ...

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

    def label_prefix(self, label: str) -> str:
        return f"{self.prefix}/{label}/" if self.prefix else f"{label}/"

    def list_objects(self, label: str) -> Iterator[ObjectInfo]:
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.label_prefix(label)):
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

    def label_prefix(self, label: str) -> str:
        return self._key(self.root / label) + "/"

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


def _load(source: DocumentSource, info: ObjectInfo, label: str, limits: Limits,
          cache: TextCache | None) -> Document | RejectedDocument:  # fmt: skip
    try:
        raw = source.read(info.key)
    except OSError as exc:  # a transient read failure is reported, not fatal
        return RejectedDocument(info.key, label, f"unreadable: {exc}")
    digest = hashlib.sha256(raw).hexdigest()
    # Plain text is not cached: decoding it is cheaper than a GET.
    kept = cache if cache is not None and detect(raw) != TEXT else None
    found = kept.get(digest) if kept is not None else None
    if found is None:
        found = extract(raw, limits)
        if kept is not None:
            kept.put(digest, found)
    if not isinstance(found, Extracted):
        return RejectedDocument(info.key, label, found)
    return Document(info.key, label, found.text, len(raw), digest, found.encoding,
                    format=found.format, extractor=found.extractor)  # fmt: skip


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
    source: DocumentSource, labels: list[str], max_bytes: int, workers: int = 16,
    multi_label: bool = False, limits: Limits | None = None, cache: TextCache | None = None,
) -> Dataset:  # fmt: skip
    """Read every document of the requested labels concurrently (its text extracted where
    it is a PDF, DOCX, HTML page or e-mail, or taken from `cache` where extracted before);
    classify the unusable ones.

    A document filed under several label folders (the same name under each) is one
    document with all those labels in multi-label mode (copies that differ are conflicting
    and not used), and a DatasetError in single-label mode."""
    wanted, rejected = _candidates(source, labels, max_bytes)
    dataset = Dataset(labels=list(labels), rejected=rejected)
    copies: dict[str, list[Document]] = {}  # by the name under its label folder
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        limits = limits or Limits()
        read = pool.map(lambda item: _load(source, item[0], item[1], limits, cache), wanted)
        for outcome in read:
            if isinstance(outcome, Document):
                name = outcome.key[len(source.label_prefix(outcome.label)) :]
                copies.setdefault(name, []).append(outcome)
            else:
                dataset.rejected.append(outcome)
    if multi_label:
        documents, conflicting = _merged(copies, labels)
        dataset.documents.extend(documents)
        dataset.rejected.extend(conflicting)
    else:
        _refuse_shared(copies)
        dataset.documents.extend(doc for found in copies.values() for doc in found)
    dataset.rejected.sort(key=lambda r: r.key)
    return dataset


def read_csv_dataset(raw: bytes, csv_key: str, labels: list[str], label_delimiter: str,
                     multi_label: bool) -> Dataset:  # fmt: skip
    """A Comprehend-format CSV (documents/labelled_csv.py): a document a row, keyed by the
    file's key and the row's line; unusable rows listed with their line number."""
    try:
        parsed = read_labelled_csv(raw, labels, label_delimiter, multi_label)
    except CsvError as exc:
        raise DatasetError(f"{csv_key}: {exc}") from exc
    documents = []
    for row in parsed.documents:
        body = row.text.encode()
        documents.append(Document(row_key(csv_key, row.line), row.labels[0], row.text, len(body),
                                  hashlib.sha256(body).hexdigest(), "utf-8",
                                  row.labels if multi_label else ()))  # fmt: skip
    rejected = [RejectedDocument(row_key(csv_key, p.line), "", f"line {p.line}: {p.reason}")
                for p in parsed.problems]  # fmt: skip
    return Dataset(list(labels), _with_rarest_label(documents, labels) if multi_label
                   else documents, rejected)  # fmt: skip


def _with_rarest_label(documents: list[Document], labels: list[str]) -> list[Document]:
    """Each multi-label document's `label`: its rarest (what splits are stratified on)."""
    frequency = Counter(label for doc in documents for label in doc.label_set)

    def rarity(label: str) -> tuple[int, int]:
        return frequency[label], labels.index(label)

    return [replace(doc, label=min(doc.label_set, key=rarity)) for doc in documents]


def _shared(found: list[Document]) -> bool:
    """Copies of one document in several label folders (not merely the same file name)."""
    return len(found) > 1 and len({doc.sha256 for doc in found}) == 1


def _refuse_shared(copies: dict[str, list[Document]]) -> None:
    shared = sorted(name for name, found in copies.items() if _shared(found))
    if shared:
        examples = "; ".join(
            f"{name!r} under {', '.join(doc.label for doc in copies[name])}" for name in shared[:3]
        )
        raise DatasetError(
            f"{len(shared)} documents are filed under several label folders ({examples}): "
            "train with multi_label: true to give a document several labels, or keep each "
            "document in one label folder"
        )


def _merged(copies: dict[str, list[Document]], labels: list[str]
            ) -> tuple[list[Document], list[RejectedDocument]]:  # fmt: skip
    """One document per name with every label it is filed under, its rarest as `label`;
    copies whose contents differ are conflicting (each listed, none used)."""
    merged: list[Document] = []
    conflicting: list[RejectedDocument] = []
    for name, found in copies.items():
        if len({doc.sha256 for doc in found}) > 1:
            folders = ", ".join(doc.label for doc in found)
            reason = f"conflicting copies: {name!r} differs between the label folders {folders}"
            conflicting.extend(RejectedDocument(doc.key, doc.label, reason) for doc in found)
            continue
        found.sort(key=lambda doc: labels.index(doc.label))
        merged.append(replace(found[0], labels=tuple(doc.label for doc in found)))
    return _with_rarest_label(merged, labels), conflicting


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
