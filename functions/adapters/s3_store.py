"""ObjectStore on boto3: paginated listing, batched deletes, bounded retries."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from functions.core.config import Settings
from functions.core.errors import DependencyUnavailable, InvalidDataset
from functions.core.models import ObjectInfo

# S3 DeleteObjects takes at most this many keys per call.
DELETE_BATCH = 1000


def s3_client(settings: Settings) -> Any:
    """One client per process; short timeouts so an outage answers 503 quickly."""
    config = Config(
        connect_timeout=3,
        read_timeout=20,
        retries={"max_attempts": 2, "mode": "standard"},
        max_pool_connections=32,
        # SigV4 presigned URLs: SigV2 is refused by newer regions and KMS-encrypted buckets.
        signature_version="s3v4",
    )
    session = boto3.session.Session()
    # The local S3 (moto) takes any credentials: a shell without AWS ones still works.
    local = bool(settings.s3_endpoint_url) and session.get_credentials() is None
    return session.client(
        "s3",
        region_name=settings.aws_region,
        endpoint_url=settings.s3_endpoint_url or None,
        config=config,
        aws_access_key_id="local" if local else None,
        aws_secret_access_key="local" if local else None,
    )


class S3ObjectStore:
    def __init__(self, client: Any) -> None:
        self._client = client

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in {"NoSuchBucket", "AccessDenied", "403", "404"}:
                raise InvalidDataset(f"{what}: {code} for bucket {kwargs.get('Bucket')!r}") from exc
            raise DependencyUnavailable(f"S3 {what} failed: {exc}") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable(f"S3 is unreachable ({what}): {exc}") from exc

    def _pages(self, **kwargs: Any) -> Iterator[dict[str, Any]]:
        while True:
            page: dict[str, Any] = self._call("list", self._client.list_objects_v2, **kwargs)
            yield page
            if not page.get("IsTruncated"):
                return
            kwargs["ContinuationToken"] = page["NextContinuationToken"]

    def list_objects(self, bucket: str, prefix: str, start_after: str = ""
                     ) -> Iterator[ObjectInfo]:  # fmt: skip
        after = {"StartAfter": start_after} if start_after else {}
        for page in self._pages(Bucket=bucket, Prefix=prefix, **after):
            for item in page.get("Contents", []):
                etag = str(item.get("ETag", "")).strip('"')
                yield ObjectInfo(key=item["Key"], size=int(item["Size"]), etag=etag)

    def list_folders(self, bucket: str, prefix: str) -> list[str]:
        return [
            common["Prefix"][len(prefix) :].rstrip("/")
            for page in self._pages(Bucket=bucket, Prefix=prefix, Delimiter="/")
            for common in page.get("CommonPrefixes", [])
        ]

    def delete_prefix(self, bucket: str, prefix: str) -> int:
        keys = [info.key for info in self.list_objects(bucket, prefix)]
        for start in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": key} for key in keys[start : start + DELETE_BATCH]]
            self._call(
                "delete",
                self._client.delete_objects,
                Bucket=bucket,
                Delete={"Objects": batch, "Quiet": True},
            )
        return len(keys)

    def put_text(self, bucket: str, key: str, text: str) -> None:
        self._call("put", self._client.put_object, Bucket=bucket, Key=key, Body=text.encode())

    def copy(self, bucket: str, source: str, target: str) -> None:
        self._call("copy", self._client.copy_object, Bucket=bucket, Key=target,
                   CopySource={"Bucket": bucket, "Key": source})  # fmt: skip

    def presign_put(self, bucket: str, key: str, expires_seconds: int) -> str:
        url: str = self._client.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_seconds
        )
        return url

    def get_text(self, bucket: str, key: str) -> str | None:
        body = self.get_bytes(bucket, key)
        return None if body is None else body.decode("utf-8", errors="replace")

    def get_bytes(self, bucket: str, key: str, limit: int | None = None) -> bytes | None:
        extra = {} if limit is None else {"Range": f"bytes=0-{limit - 1}"}
        try:
            response = self._client.get_object(Bucket=bucket, Key=key, **extra)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            if code in {"NoSuchKey", "404"}:
                return None
            if code == "InvalidRange":  # an empty object has no first byte
                return b""
            raise DependencyUnavailable(f"S3 get failed: {exc}") from exc
        except BotoCoreError as exc:
            raise DependencyUnavailable(f"S3 is unreachable (get): {exc}") from exc
        body: bytes = response["Body"].read()
        return body

    def ping(self, bucket: str) -> None:
        try:
            self._client.head_bucket(Bucket=bucket)
        except (ClientError, BotoCoreError) as exc:
            raise DependencyUnavailable(f"S3 bucket {bucket!r} is unreachable: {exc}") from exc
