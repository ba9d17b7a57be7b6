"""API keys: created by the admin command, stored hashed, required on every route but the
health check and the UI page when CC_AUTH=api_key; unknown and revoked keys answer 401."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from functions.admin import main as admin
from functions.api.app import create_app
from functions.core.config import Settings
from tests.support import ARTIFACTS_BUCKET, admin_cli

API = "/custom_classifier"


def test_keys_are_required_hashed_at_rest_and_revocable(
    secured: Settings, s3: Any, caplog: pytest.LogCaptureFixture
) -> None:
    created = json.loads(admin_cli("create-key", "--tenant", "acme"))
    key, key_id = created["api_key"], created["key_id"]
    secret = key.split("_", 2)[2]  # cc_<id>_<secret>: the secret itself may hold "_"
    # stored as a SHA-256 only
    digest = hashlib.sha256(key.encode()).hexdigest()
    stored = s3.get_object(Bucket=ARTIFACTS_BUCKET, Key=f"_auth/api-keys/{digest}.json")
    record = stored["Body"].read().decode()
    assert key not in record and secret not in record
    assert json.loads(record)["tenant"] == "acme"
    assert key_id in admin_cli("list-keys")
    with TestClient(create_app(secured)) as api:
        # open: the health check and the UI page
        assert api.get("/health").status_code == 200
        assert api.get("/").status_code == 200
        # no key, a malformed key, an unknown key: 401 in the envelope
        for headers in ({}, {"x-api-key": "nope"}, {"x-api-key": key[:-1] + "x"}):
            answer = api.get(f"{API}/all_experiments/last_run", headers=headers)
            assert answer.status_code == 401, headers
            assert answer.json()["status"]["code"] == 401
        assert api.get("/metrics").status_code == 401
        assert api.post(f"{API}/predict", json={"runid": "x", "text": "y"}).status_code == 401
        # the key opens every route
        ok = {"x-api-key": key}
        assert api.get(f"{API}/all_experiments/last_run", headers=ok).status_code == 200
        assert api.get("/metrics", headers=ok).status_code == 200
        # revoked: refused again
        assert "revoked" in admin_cli("revoke-key", key_id)
        assert api.get(f"{API}/all_experiments/last_run", headers=ok).status_code == 401
    # the key never reaches a log line; its id does
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert secret not in logged


def test_tenant_names_are_checked(secured: Settings) -> None:
    result = CliRunner().invoke(admin, ["create-key", "--tenant", "Not Valid/"])
    assert result.exit_code == 1
    assert "tenant must be" in result.output


def test_the_admin_command_needs_no_aws_credentials_against_the_local_s3(
    secured: Settings,
) -> None:
    # a new user's shell next to `make up`: no AWS credentials anywhere
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"AWS_SHARED_CREDENTIALS_FILE": "/nonexistent", "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    admin = Path(sys.executable).parent / "custom-classifier-admin"

    def run(*args: str) -> str:
        done = subprocess.run([str(admin), *args], env=env, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    created = json.loads(run("create-key", "--tenant", "newcomer"))
    assert created["key_id"] in run("list-keys")
