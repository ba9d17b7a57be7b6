"""Secrets stay where they are: credentials, API keys and the MLflow database URI never
reach MLflow params or tags, job files, logs or answers."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient

from functions.api.app import create_app
from functions.core.config import Settings
from tests.support import DATA_BUCKET, TOPICS, admin_cli, keyword_tree, upload_tree, wait_until

API = "/custom_classifier"


def _texts(folder: Path) -> str:
    return "\n".join(
        path.read_text(errors="replace") for path in sorted(folder.rglob("*")) if path.is_file()
    )


def test_no_secret_reaches_mlflow_job_files_logs_or_answers(
    secured: Settings, s3: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    aws_secret = f"aws-canary-{uuid.uuid4().hex}"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", aws_secret)  # moto takes any credentials
    backend_uri = secured.mlflow_backend_store_uri.get_secret_value()
    tenant = f"acme-{uuid.uuid4().hex[:4]}"
    key = json.loads(admin_cli("create-key", "--tenant", tenant))["api_key"]
    upload_tree(s3, DATA_BUCKET, f"tenants/{tenant}/news", keyword_tree(TOPICS, 8))
    experiment = f"secrets-{uuid.uuid4().hex[:6]}"
    answers = []
    with TestClient(create_app(secured)) as api:
        headers = {"x-api-key": key}
        # tfidf: the settings, environment and logs a job sees are the same for every kind
        started = api.post(f"{API}/process", headers=headers, json={
            "labels": sorted(TOPICS), "path": "news", "experiment_name": experiment,
            "mode": "tfidf"})  # fmt: skip
        assert started.status_code == 200, started.text
        run_id = started.json()["data"]["info"]["run_id"]

        def finished() -> Any:
            run = api.post(f"{API}/job_status", headers=headers,
                           json={"experiment_name": experiment}).json()[0]  # fmt: skip
            return run if run["status"] in {"FINISHED", "FAILED"} else None

        assert wait_until(finished, timeout=240, what="training", every=1)["status"] == "FINISHED"
        answers += [
            started.text,
            api.get(f"{API}/runs/{run_id}", headers=headers).text,
            api.post(f"{API}/predict", headers=headers, json={"runid": run_id, "text": "x"}).text,
        ]
    run = MlflowClient().get_run(run_id)
    seen = {
        "MLflow params and tags": json.dumps([run.data.params, run.data.tags]),
        "job files (hyperparameters, logs, outputs)": _texts(Path(secured.work_dir)),
        "service logs": "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records),
        "answers": "\n".join(answers),
        "settings repr": f"{secured!r} {secured}",
    }
    secrets = {"AWS secret key": aws_secret, "API key": key, "API key secret": key[12:],
               "MLflow database URI": backend_uri}  # fmt: skip
    for where, text in seen.items():
        assert text, where
        for what, secret in secrets.items():
            assert secret not in text, f"{what} found in {where}"
    # and the job did get the credentials it needed, through its environment
    assert run.data.tags["custom_classifier.gate"] == "passed"
