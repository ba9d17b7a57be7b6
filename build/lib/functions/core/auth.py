"""API keys: created for a tenant by an operator, shown once, stored only as a SHA-256.

A key is `cc_<key id>_<secret>` with 256 bits of secret, so a plain SHA-256 is enough at
rest (nothing to brute-force; a slow hash would only slow every request). Records live in
the artifacts bucket under `_auth/api-keys/<sha256>.json`, found by the hash alone.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass

from functions.core.config import Settings
from functions.core.errors import InvalidRequest, Unauthorized
from functions.core.ports import ObjectStore

PREFIX = "_auth/api-keys/"
TENANT = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
KEY = re.compile(r"cc_[0-9a-f]{8}_[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    tenant: str
    created_at: float


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_tenant(tenant: str) -> str:
    if not TENANT.fullmatch(tenant):
        raise InvalidRequest("tenant must be 1-40 lowercase letters, digits or '-'")
    return tenant


def create_key(store: ObjectStore, settings: Settings, tenant: str) -> tuple[str, ApiKeyRecord]:
    """A new key for the tenant: (the key, shown only now; its stored record)."""
    key_id = secrets.token_hex(4)
    key = f"cc_{key_id}_{secrets.token_urlsafe(32)}"
    record = ApiKeyRecord(key_id, check_tenant(tenant), time.time())
    store.put_text(settings.artifacts_bucket, f"{PREFIX}{key_hash(key)}.json",
                   json.dumps(asdict(record)))  # fmt: skip
    return key, record


def list_keys(store: ObjectStore, settings: Settings) -> list[ApiKeyRecord]:
    records = []
    for info in store.list_objects(settings.artifacts_bucket, PREFIX):
        text = store.get_text(settings.artifacts_bucket, info.key)
        if text:
            records.append(ApiKeyRecord(**json.loads(text)))
    return sorted(records, key=lambda r: r.created_at)


def revoke_key(store: ObjectStore, settings: Settings, key_id: str) -> bool:
    for info in store.list_objects(settings.artifacts_bucket, PREFIX):
        text = store.get_text(settings.artifacts_bucket, info.key)
        if text and json.loads(text).get("key_id") == key_id:
            return store.delete_prefix(settings.artifacts_bucket, info.key) > 0
    return False


def tenant_from_claims(claims: dict[str, object] | None, claim: str) -> str:
    """The tenant named by a token API Gateway has already verified."""
    value = (claims or {}).get(claim)
    if not isinstance(value, str) or not TENANT.fullmatch(value):
        raise Unauthorized(f"the token must carry a valid {claim!r} claim")
    return value


class Authenticator:
    """Key -> record, with known keys remembered for `cache_seconds` (revocation takes
    effect within that time); unknown keys are never cached."""

    def __init__(self, store: ObjectStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._known: dict[str, tuple[ApiKeyRecord, float]] = {}

    def authenticate(self, key: str | None) -> ApiKeyRecord:
        if not key:
            raise Unauthorized("an API key is required (header x-api-key)")
        if not KEY.fullmatch(key):
            raise Unauthorized("invalid API key")
        digest = key_hash(key)
        cached = self._known.get(digest)
        if cached and time.monotonic() - cached[1] < self.settings.auth_cache_seconds:
            return cached[0]
        text = self.store.get_text(self.settings.artifacts_bucket, f"{PREFIX}{digest}.json")
        if not text:
            self._known.pop(digest, None)
            raise Unauthorized("invalid API key")
        record = ApiKeyRecord(**json.loads(text))
        self._known[digest] = (record, time.monotonic())
        return record
