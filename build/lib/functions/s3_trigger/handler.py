"""Lambda entrypoint for S3 `ObjectCreated` events on `<dataset>/_train.json` manifests,
and for the scheduled reaper (runs whose job ended without logging are marked FAILED).

Takes the events straight from S3 or wrapped by SQS (S3 -> SQS -> Lambda). A manifest that
cannot be handled now because S3 or MLflow is down fails the invocation, so Lambda (or SQS)
delivers it again; everything else is answered in the manifest's result file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote_plus

from functions.core.config import Settings, get_settings
from functions.core.errors import DependencyUnavailable
from functions.core.runs import reap
from functions.core.trigger import ManifestUpload, is_manifest, train_from_manifest
from functions.logs import bind, configure_logging, unbind
from functions.services import Services

log = logging.getLogger(__name__)


class RetryLater(RuntimeError):
    """Some manifests could not be handled now; the event must be delivered again."""


def _records(event: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for record in event.get("Records", []):
        if record.get("eventSource") == "aws:sqs":
            body = json.loads(record.get("body") or "{}")
            yield from body.get("Records", [])
        else:
            yield record


def manifest_uploads(event: dict[str, Any]) -> list[ManifestUpload]:
    """The manifest uploads in an S3 notification (keys arrive URL-encoded)."""
    uploads = []
    for record in _records(event):
        s3 = record.get("s3")
        if not s3 or not str(record.get("eventName", "")).startswith("ObjectCreated"):
            continue
        key = unquote_plus(s3["object"]["key"])
        if is_manifest(key):
            etag = str(s3["object"].get("eTag", "")).strip('"')
            uploads.append(ManifestUpload(s3["bucket"]["name"], key, etag))
    return uploads


def handle(event: dict[str, Any], services: Services) -> dict[str, Any]:
    if event.get("detail-type") == "Scheduled Event":  # EventBridge schedule: the reaper
        reaped = reap(services.tracking, services.launcher)
        log.info("reaper: %d runs whose job had ended marked FAILED", len(reaped))
        return {"reaped": reaped}
    results, retry = [], []
    for upload in manifest_uploads(event):
        bind(manifest=f"s3://{upload.bucket}/{upload.key}", trigger_id=upload.trigger_id)
        try:
            result = train_from_manifest(
                upload, services.store, services.tracking, services.launcher, services.settings
            )
        except DependencyUnavailable as exc:
            log.warning("manifest s3://%s/%s: %s", upload.bucket, upload.key, exc.message)
            retry.append(f"s3://{upload.bucket}/{upload.key}: {exc.message}")
            continue
        log.info("manifest %s: %s %s", upload.key, result["status"], result.get("run_id", ""))
        results.append(result)
    unbind("manifest", "trigger_id")
    if retry:
        raise RetryLater("; ".join(retry))
    return {"results": results}


Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def build_handler(settings: Settings | None = None) -> Handler:
    """A Lambda handler over one process's Services (settings from CC_* when not given)."""
    services: Services | None = None

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        nonlocal services
        if services is None:  # built on the first event, reused while the Lambda is warm
            services = Services(settings or get_settings())
        return handle(event, services)

    return handler


configure_logging("trigger")
handler = build_handler()
