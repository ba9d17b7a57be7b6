"""Batch prediction over an S3 prefix: `python -m training_job.batch [--name value ...]`.

Streams the sorted listing in parts of `part_size` documents; each part is read
concurrently, predicted and written as `part-NNNNN.jsonl` (key, label, prediction, score),
then `part-NNNNN.meta.json` (its keys' hash and the documents it could not use). A part is
done once its meta file exists, so a rerun after a crash skips finished parts and neither
duplicates nor loses rows. `_progress.json` tracks done/total; `_manifest.json` closes the job.
With `suggest` = n, each row also holds its `margin` and the job ends by writing the n
documents to label next to `suggestions.json` (training_job/suggest.py).

Sharded (`instances` = N > 1): part k belongs to shard k mod N, and every process lists the
whole input but classifies the parts of its own shards (`assigned_shards`: the index its
launcher gave it, or the descriptors SageMaker's ShardedByS3Key channel gave its instance).
Parts keep their global numbers, so a rerun with any N resumes them. Each shard reports in
`_shards/shard-<i>-of-<N>.json`; the process that finds every shard DONE writes the manifest
(all shards' parts and unusable documents, in listing order) and `_progress.json` COMPLETED.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from documents import listing_problem
from documents.extract import Extracted, Limits, extract
from training_job.config import JobPaths, load_parameters, parse_args
from training_job.data import ObjectInfo
from training_job.logs import bind_run, configure_job_logging
from training_job.serving import Assessment, decisions
from training_job.suggest import CANDIDATES, margins, spread

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BatchParameters:
    run_id: str = ""
    input_uri: str = ""
    output_uri: str = ""
    job_id: str = ""
    tracking_uri: str = ""
    part_size: int = 256
    read_workers: int = 16
    max_document_bytes: int = 10_485_760
    # Reading PDF, DOCX, HTML and e-mail (documents/extract.py Limits; the service's settings).
    max_pdf_pages: int = Limits.max_pdf_pages
    max_unpacked_bytes: int = Limits.max_unpacked_bytes
    max_extracted_chars: int = Limits.max_extracted_chars
    # > 0: also rank the documents to label next and write the best this many.
    suggest: int = 0
    # Shards the input is split into (machines or processes classifying at once), and where
    # their descriptors are (what a SageMaker channel deals out; read from the channel).
    instances: int = 1
    shards_uri: str = ""


@dataclass(frozen=True)
class PartOutcome:
    rows: int
    not_treated: list[dict[str, str]]


# The shard a local process or an ECS task classifies (set by its launcher).
SHARD_ENV = "JOB_SHARD_INDEX"
# The objects that hand a shard to a SageMaker instance (functions/core/batch.py names them).
SHARD_DESCRIPTOR = re.compile(r"shard-(\d{5})")


def assigned_shards(count: int, channel: Path, environ: Mapping[str, str] = os.environ
                    ) -> list[int]:  # fmt: skip
    """The shards this process classifies: the index its launcher set (local, ECS), else the
    descriptors SageMaker copied to this instance (ShardedByS3Key may hand one instance two,
    another none), else every shard (one process doing the whole job)."""
    if environ.get(SHARD_ENV, ""):
        index = int(environ[SHARD_ENV])
        if not 0 <= index < count:
            raise ValueError(f"{SHARD_ENV}={index} is not a shard of {count}")
        return [index]
    if channel.is_dir():
        found = (SHARD_DESCRIPTOR.fullmatch(path.name) for path in channel.iterdir())
        return sorted({int(m.group(1)) for m in found if m and int(m.group(1)) < count})
    return list(range(count))


@dataclass
class ShardTally:
    """What one shard has done so far: reported in `_shards/` after each of its parts."""

    status: str = "RUNNING"
    total: int = 0
    done: int = 0
    treated: int = 0
    parts: list[str] = field(default_factory=list)
    not_treated: list[dict[str, str]] = field(default_factory=list)
    error: str = ""

    def add(self, part: str, documents: int, outcome: PartOutcome) -> None:
        self.parts.append(part)
        self.done += documents
        self.treated += outcome.rows
        self.not_treated.extend(outcome.not_treated)


def shard_report(index: int, count: int) -> str:
    return f"_shards/shard-{index:05d}-of-{count:05d}.json"


def split_uri(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ValueError(f"expected s3://bucket/prefix, got {uri!r}")
    return parsed.netloc, parsed.path.strip("/")


def assess(classifier: Any, texts: list[str]) -> Assessment:
    """The model's assessment; a model saved before scopes has only its probabilities."""
    if hasattr(classifier, "assess"):
        found: Assessment = classifier.assess(texts)
        return found
    return Assessment(classifier.probabilities(texts))


class BatchJob:
    def __init__(self, params: BatchParameters, s3: Any, classifier: Any) -> None:
        self.params = params
        self.s3 = s3
        self.classifier = classifier
        self.in_bucket, self.in_prefix = split_uri(params.input_uri)
        self.out_bucket, self.out_prefix = split_uri(params.output_uri)
        self.limits = Limits.of(params)

    def _out_key(self, name: str) -> str:
        return f"{self.out_prefix}/{name}" if self.out_prefix else name

    def _put_json(self, name: str, body: Any) -> None:
        self.s3.put_object(
            Bucket=self.out_bucket, Key=self._out_key(name), Body=json.dumps(body).encode()
        )

    def _get_json(self, name: str) -> Any | None:
        try:
            body = self.s3.get_object(Bucket=self.out_bucket, Key=self._out_key(name))["Body"]
        except self.s3.exceptions.NoSuchKey:
            return None
        return json.loads(body.read())

    def listing(self) -> Iterator[ObjectInfo]:
        """Input documents in S3's (sorted) order; folder markers skipped."""
        prefix = f"{self.in_prefix}/" if self.in_prefix else ""
        paginator = self.s3.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.in_bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):
                    yield ObjectInfo(item["Key"], int(item["Size"]))

    def _read(self, info: ObjectInfo) -> tuple[str, str | None, str | None]:
        """(key, text, reason): text when usable, else the reason it is not (training's rule)."""
        reason = listing_problem(info.key, info.size, self.params.max_document_bytes)
        if reason is not None:
            return info.key, None, reason
        try:
            raw = self.s3.get_object(Bucket=self.in_bucket, Key=info.key)["Body"].read()
        except Exception as exc:  # one unreadable object must not stop millions of others
            return info.key, None, f"unreadable: {exc}"
        found = extract(raw, self.limits)
        if not isinstance(found, Extracted):
            return info.key, None, found
        return info.key, found.text, None

    def run_part(
        self, index: int, infos: list[ObjectInfo], pool: ThreadPoolExecutor
    ) -> PartOutcome:
        name = f"part-{index:05d}"
        keys_hash = hashlib.sha256("\n".join(i.key for i in infos).encode()).hexdigest()
        meta = self._get_json(f"{name}.meta.json")
        if meta is not None:
            if meta["keys_sha256"] != keys_hash:
                raise RuntimeError(
                    f"input changed since {name} was written; write to a new output path"
                )
            return PartOutcome(meta["rows"], meta["not_treated"])
        read = list(pool.map(self._read, infos))
        usable = [(key, text) for key, text, _ in read if text is not None]
        not_treated = [{"key": key, "reason": reason} for key, _, reason in read if reason]
        texts = [text for _, text in usable]
        uncertain = np.zeros(0)
        if not usable:
            predictions = []
        elif self.params.suggest:  # the probabilities once, for the answer and its margin
            assessed = assess(self.classifier, texts)
            predictions = decisions(assessed, self.classifier.config)
            uncertain = margins(assessed.probabilities, self.classifier.config)
        else:  # the model's own rule (models of any age)
            predictions = self.classifier.predict(texts)
        rows = [{k: v for k, v in asdict(p).items() if v is not None} for p in predictions]
        for row, margin in zip(rows, uncertain, strict=False):
            row["margin"] = float(margin)
        lines = [
            json.dumps({"key": key, **row}) for (key, _), row in zip(usable, rows, strict=True)
        ]
        body = ("\n".join(lines) + "\n").encode() if lines else b""
        self.s3.put_object(Bucket=self.out_bucket, Key=self._out_key(f"{name}.jsonl"), Body=body)
        self._put_json(
            f"{name}.meta.json",
            {"keys_sha256": keys_hash, "rows": len(lines), "not_treated": not_treated},
        )
        return PartOutcome(len(lines), not_treated)

    def _progress(self, status: str, total: int, done: int, treated: int, failed: int) -> None:
        self._put_json(
            "_progress.json",
            {
                "job_id": self.params.job_id,
                "status": status,
                "total": total,
                "done": done,
                "number_documents_treated": treated,
                "number_documents_non_treated": failed,
                "output_uri": self.params.output_uri,
                "updated_at": time.time(),
            },
        )

    def _put_tally(self, index: int, tally: ShardTally) -> None:
        """A shard's report: counts while it runs, its parts and unusable documents once DONE
        (rewriting growing lists after every part would cost the square of the parts)."""
        body = asdict(tally)
        body["not_treated_count"] = len(tally.not_treated)
        if tally.status != "DONE":
            del body["parts"], body["not_treated"]
        self._put_json(shard_report(index, self.params.instances), body)

    def _report(self, tallies: dict[int, ShardTally]) -> None:
        """Progress so far: `_progress.json` for a job of one shard, else each shard's file."""
        for shard, tally in tallies.items():
            if self.params.instances <= 1:
                self._progress("RUNNING", tally.total, tally.done, tally.treated,
                               len(tally.not_treated))  # fmt: skip
            else:
                self._put_tally(shard, tally)

    def run(self, shards: list[int] | None = None) -> dict[str, Any] | None:
        """Classify the parts of `shards` (None: all). Returns the manifest, or None where
        other shards are still running (the last to finish writes it)."""
        count = max(1, self.params.instances)
        mine = list(range(count)) if shards is None or count == 1 else shards
        total = sum(1 for _ in self.listing())
        tallies = {shard: ShardTally(total=total) for shard in mine}
        self._report(tallies)
        stream = self.listing()
        parts = iter(lambda: list(islice(stream, self.params.part_size)), [])
        with ThreadPoolExecutor(max_workers=self.params.read_workers) as pool:
            for index, infos in enumerate(parts):
                shard = index % count
                if shard not in tallies:  # another shard's part: listed, not read
                    continue
                outcome = self.run_part(index, infos, pool)
                tallies[shard].add(self._out_key(f"part-{index:05d}.jsonl"), len(infos), outcome)
                self._report({shard: tallies[shard]})
        if count == 1:
            return self._finish(total, tallies[0])
        for shard, tally in tallies.items():
            tally.status = "DONE"
            self._put_tally(shard, tally)
        return self._finish_shards(total)

    def _finish_shards(self, total: int) -> dict[str, Any] | None:
        """Every shard's tally, merged, once all are DONE (else None). Each shard writes DONE
        before it reads the others, so the last one to finish always sees them all."""
        count = self.params.instances
        merged = ShardTally(total=total)
        for shard in range(count):
            found = self._get_json(shard_report(shard, count))
            if not found or found.get("status") != "DONE":
                log.info("shard %d of %d not done yet: the last shard writes the manifest",
                         shard, count)  # fmt: skip
                return None
            merged.done += int(found["done"])
            merged.treated += int(found["treated"])
            merged.parts += found["parts"]
            merged.not_treated += found["not_treated"]
        merged.parts.sort()  # part-NNNNN: listing order
        merged.not_treated.sort(key=lambda item: item["key"])
        return self._finish(total, merged)

    def _finish(self, total: int, tally: ShardTally) -> dict[str, Any]:
        parts, treated, not_treated = tally.parts, tally.treated, tally.not_treated
        suggested = self.suggest(parts) if self.params.suggest else None
        manifest = {
            "job_id": self.params.job_id,
            "run_id": self.params.run_id,
            "input_uri": self.params.input_uri,
            "output_uri": self.params.output_uri,
            "parts": parts,
            "number_documents_treated": treated,
            "number_documents_non_treated": len(not_treated),
            "list_id_not_treated": not_treated,
            **({"suggestions": suggested} if suggested is not None else {}),
        }
        self._put_json("_manifest.json", manifest)
        self._progress("COMPLETED", total, tally.done, treated, len(not_treated))
        return manifest

    def suggest(self, parts: list[str]) -> str:
        """Rank every row by its margin, spread the least sure, write `suggestions.json`;
        returns its key."""
        rows = []
        for key in parts:
            body = self.s3.get_object(Bucket=self.out_bucket, Key=key)["Body"].read().decode()
            rows += [json.loads(line) for line in body.splitlines() if line]
        rows.sort(key=lambda row: (row["margin"], row["key"]))
        candidates = rows[: CANDIDATES * self.params.suggest]
        # usable when their part was written: any size the listing rule accepts will do
        infos = [ObjectInfo(row["key"], 1) for row in candidates]
        with ThreadPoolExecutor(max_workers=self.params.read_workers) as pool:
            texts = [text or "" for _, text, _ in pool.map(self._read, infos)]
        chosen = spread(texts, np.array([row["margin"] for row in candidates]),
                        self.params.suggest)  # fmt: skip
        suggestions = [{"rank": rank, **candidates[index], "text": texts[index][:2000]}
                       for rank, index in enumerate(chosen, start=1)]  # fmt: skip
        self._put_json("suggestions.json", {"run_id": self.params.run_id,
                                            "suggestions": suggestions})  # fmt: skip
        return self._out_key("suggestions.json")

    def fail(self, reason: str, shards: list[int] | None = None) -> None:
        if self.params.instances <= 1:
            previous = self._get_json("_progress.json") or {}
            self._put_json("_progress.json", {**previous, "status": "FAILED", "error": reason})
            return
        for shard in range(self.params.instances) if shards is None else shards:
            previous = self._get_json(shard_report(shard, self.params.instances)) or {}
            self._put_json(shard_report(shard, self.params.instances),
                           {**previous, "status": "FAILED", "error": reason})  # fmt: skip


def load_run_classifier(run_id: str, tracking_uri: str) -> Any:
    import mlflow.pyfunc

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    return mlflow.pyfunc.load_model(f"runs:/{run_id}/model").unwrap_python_model().classifier


def main(argv: list[str] | None = None) -> int:
    configure_job_logging("batch")
    paths = JobPaths.from_env()
    job: BatchJob | None = None
    shards: list[int] | None = None
    try:
        params = load_parameters(paths, parse_args(argv), BatchParameters)
        bind_run(params.run_id)
        import boto3

        shards = assigned_shards(max(1, params.instances), paths.shards)
        job = BatchJob(params, boto3.client("s3"), None)
        job.classifier = load_run_classifier(params.run_id, params.tracking_uri)
        manifest = job.run(shards)
        if manifest is None:
            log.info("batch %s: shards %s done", params.job_id, shards)
        else:
            log.info("batch %s done: %s rows", params.job_id, manifest["number_documents_treated"])
        return 0
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        log.exception("batch job failed")
        paths.output_dir.mkdir(parents=True, exist_ok=True)
        paths.failure_file.write_text(reason)
        if job is not None:
            job.fail(reason, shards)
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
