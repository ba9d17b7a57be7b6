"""Extracted texts kept by content hash, so a retrain reads a PDF, Word file, page or
e-mail without extracting it again.

One object per (document bytes, limits, extractor versions):
`<cache uri>/<sha256[:2]>/<sha256>-<tag>.json` holding the text and how it was read, or the
reason it could not be. The tag changes with the limits and with the installed extractor
libraries, so a new pypdf or a higher page limit extracts afresh. Plain text is not cached:
decoding it costs less than a GET. The cache is an optimisation: a failed GET or PUT is a
miss, never a failed document or job.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass
from importlib import metadata
from typing import Any
from urllib.parse import urlparse

from documents.extract import EXTRACTOR_PACKAGES, Extracted, Limits

log = logging.getLogger(__name__)


def _versions() -> dict[str, str]:
    found = {}
    for package in EXTRACTOR_PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "absent"
    return found


@dataclass
class CacheCounts:
    hits: int = 0
    misses: int = 0
    errors: int = 0


class S3TextCache:
    """Extracted texts under an S3 prefix (the artifacts bucket's `extracted/`)."""

    def __init__(self, client: Any, uri: str, limits: Limits) -> None:
        parsed = urlparse(uri)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"extraction_cache_uri must look like s3://bucket/prefix: {uri!r}")
        self._client = client
        self.bucket = parsed.netloc
        self.prefix = parsed.path.strip("/")
        described = json.dumps({"limits": asdict(limits), "versions": _versions()},
                               sort_keys=True)  # fmt: skip
        self.tag = hashlib.sha256(described.encode()).hexdigest()[:12]
        self.counts = CacheCounts()

    def _key(self, sha256: str) -> str:
        name = f"{sha256[:2]}/{sha256}-{self.tag}.json"
        return f"{self.prefix}/{name}" if self.prefix else name

    def get(self, sha256: str) -> Extracted | str | None:
        """The cached outcome of extracting the document of this hash, or None."""
        try:
            body = self._client.get_object(Bucket=self.bucket, Key=self._key(sha256))["Body"]
            found = json.loads(body.read())
        except self._client.exceptions.NoSuchKey:
            self.counts.misses += 1
            return None
        except Exception as exc:  # unreachable, denied, damaged: extract instead
            self.counts.errors += 1
            log.warning("extraction cache read failed (%s): extracting", type(exc).__name__)
            return None
        self.counts.hits += 1
        if "reason" in found:
            return str(found["reason"])
        return Extracted(found["text"], found["format"], found["extractor"])

    def put(self, sha256: str, outcome: Extracted | str) -> None:
        body = {"reason": outcome} if isinstance(outcome, str) else asdict(outcome)
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(sha256),
                                    Body=json.dumps(body).encode(),
                                    ContentType="application/json")  # fmt: skip
        except Exception as exc:
            self.counts.errors += 1
            log.warning("extraction cache write failed (%s)", type(exc).__name__)
