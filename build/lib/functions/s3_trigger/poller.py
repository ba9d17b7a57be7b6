"""The local stack's stand-in for S3 event notifications (moto's server does not send them
to a process): every few seconds, each top-level dataset's `_train.json` whose result file
does not record this very upload is passed to the Lambda handler as an S3 event.

    python -m functions.s3_trigger.poller [--once]
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterator
from typing import Any

from functions.core.config import get_settings
from functions.core.models import ObjectInfo
from functions.core.ports import ObjectStore
from functions.core.runs import reap
from functions.core.tenancy import TENANTS_FOLDER
from functions.core.trigger import MANIFEST_NAME, ManifestUpload
from functions.logs import configure_logging
from functions.s3_trigger.handler import RetryLater, handle
from functions.services import Services

log = logging.getLogger("functions.s3_trigger.poller")


def _handled(upload: ManifestUpload, store: ObjectStore) -> bool:
    text = store.get_text(upload.bucket, upload.result_key)
    try:
        return bool(text) and json.loads(text or "{}").get("trigger_id") == upload.trigger_id
    except json.JSONDecodeError:
        return False


def s3_event(uploads: list[ManifestUpload], region: str) -> dict[str, Any]:
    """An S3 notification as AWS shapes it (the fields the handler reads, and a few more)."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": region,
                "eventTime": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                "eventName": "ObjectCreated:Put",
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "bucket": {"name": u.bucket, "arn": f"arn:aws:s3:::{u.bucket}"},
                    "object": {"key": u.key, "eTag": u.etag},
                },
            }
            for u in uploads
        ]
    }


def _manifests(store: ObjectStore, bucket: str) -> Iterator[ObjectInfo]:
    """`<dataset>/_train.json` of each top-level dataset and `tenants/<t>/<dataset>/...` of
    each tenant's: one listing per dataset, never a walk through the documents."""
    datasets = [f"{folder}/" for folder in store.list_folders(bucket, "")]
    if f"{TENANTS_FOLDER}/" in datasets:
        for tenant in store.list_folders(bucket, f"{TENANTS_FOLDER}/"):
            prefix = f"{TENANTS_FOLDER}/{tenant}/"
            datasets += [f"{prefix}{folder}/" for folder in store.list_folders(bucket, prefix)]
    for dataset in datasets:
        key = f"{dataset}{MANIFEST_NAME}"
        yield from (info for info in store.list_objects(bucket, key) if info.key == key)


def poll_once(services: Services) -> dict[str, Any]:
    settings = services.settings
    store = services.store
    pending = [
        upload
        for info in _manifests(store, settings.data_bucket)
        for upload in [ManifestUpload(settings.data_bucket, info.key, info.etag)]
        if not _handled(upload, store)
    ]
    if not pending:
        return {"results": []}
    return handle(s3_event(pending, settings.aws_region), services)


def main(argv: list[str]) -> int:
    configure_logging("trigger-poller")
    services = Services(get_settings())
    next_reap = 0.0
    while True:
        try:
            poll_once(services)
            if time.monotonic() >= next_reap:  # the local stand-in for the scheduled reaper
                reap(services.tracking, services.launcher)
                next_reap = time.monotonic() + services.settings.reaper_seconds
        except RetryLater as exc:
            log.warning("will retry: %s", exc)
        except Exception:  # keep watching: one bad pass must not stop the local trigger
            log.exception("poll failed")
        if "--once" in argv:
            return 0
        time.sleep(services.settings.trigger_poll_seconds)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
