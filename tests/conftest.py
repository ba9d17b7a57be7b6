"""Real components for the tests: moto's S3 server and an `mlflow server`, on free ports."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from fastapi.testclient import TestClient

from functions.api.app import create_app
from functions.api.handler import build_handler
from functions.core.config import Settings
from tests.support import (
    ARTIFACTS_BUCKET,
    DATA_BUCKET,
    TOPICS,
    LambdaApi,
    keyword_tree,
    settings_env,
    upload_tree,
    wait_until,
)

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
# The tiny model learns keyword datasets with a high rate and no early stop.
TINY_TRAINING = {
    "learning_rate": "0.003",
    "min_train_steps": "60",
    "max_epochs": "60",
    "early_stopping_patience": "100",
    "contrastive_max_steps": "6",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stop(process: subprocess.Popen[bytes], group: bool = False) -> None:
    """SIGTERM (to the process group when asked: MLflow's workers), then SIGKILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if group:
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
        try:
            process.wait(timeout=15)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="session")
def aws_env() -> Iterator[dict[str, str]]:
    """Dummy credentials so nothing in the tests can reach a real AWS account."""
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    yield env
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def s3_endpoint(aws_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's standalone S3 server; AWS_ENDPOINT_URL points every boto3 client at it."""
    port = free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    process = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log
    )
    endpoint = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(endpoint, timeout=1).ok, timeout=30, what="moto server")
    saved = os.environ.get("AWS_ENDPOINT_URL")
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    client = boto3.client("s3", endpoint_url=endpoint)
    for bucket in (DATA_BUCKET, ARTIFACTS_BUCKET):
        client.create_bucket(Bucket=bucket)
    yield endpoint
    if saved is None:
        os.environ.pop("AWS_ENDPOINT_URL", None)
    else:
        os.environ["AWS_ENDPOINT_URL"] = saved
    _stop(process)


@pytest.fixture(scope="session")
def s3(s3_endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=s3_endpoint)


@dataclass(frozen=True)
class MlflowServer:
    uri: str
    backend_store_uri: str


def start_mlflow(folder: Path, port: int, s3_endpoint: str) -> subprocess.Popen[bytes]:
    """A real `mlflow server` on this port: sqlite in the folder, artifacts proxied to S3;
    returns once it answers /health (started again on the same folder, it has the same data)."""
    env = {**os.environ, "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    log = (folder / "server.log").open("ab")
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination", f"s3://{ARTIFACTS_BUCKET}",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=log, stderr=log, env=env, start_new_session=True,
    )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    wait_until(lambda: requests.get(f"{uri}/health", timeout=1).ok, timeout=90, what="mlflow")
    # /health answers before the worker opens its store (migrations on first use): a first
    # API call past the API's 10 s timeout on a loaded machine was a 503 in the first test.
    search = f"{uri}/api/2.0/mlflow/experiments/search?max_results=1"
    wait_until(lambda: requests.get(search, timeout=60).ok, timeout=120, what="mlflow store")
    return process


@pytest.fixture(scope="session")
def mlflow_server(
    s3_endpoint: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MlflowServer]:
    """The session's MLflow server."""
    folder = tmp_path_factory.mktemp("mlflow")
    port = free_port()
    backend = f"sqlite:///{folder / 'mlflow.db'}"
    process = start_mlflow(folder, port, s3_endpoint)
    uri = f"http://127.0.0.1:{port}"
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    yield MlflowServer(uri, backend)
    if saved is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = saved
    _stop(process, group=True)  # the server's workers live in its process group


@pytest.fixture(scope="session")
def mlflow_uri(mlflow_server: MlflowServer) -> str:
    return mlflow_server.uri


@pytest.fixture
def dataset_prefix() -> str:
    return f"ds-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def experiment_name() -> str:
    return f"exp-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A 1-layer BERT with the real tokenizer: trains in well under a second per epoch."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from training_job.kinds.base import resolve_base_model

    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)  # the same random encoder every session: no test rides on the draw
    tokenizer = AutoTokenizer.from_pretrained(resolve_base_model(""))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def _stop_jobs(root: Path) -> None:
    """Empty the job queues under root and kill the local jobs still running there (each
    leads its own session): a training a test left behind would share the cores with the
    tests after it (the trigger tests' three trainings slowed the next test 1.6x)."""
    for entry in root.rglob(".queue/*"):
        entry.unlink(missing_ok=True)
    for pid_file in root.rglob("pid*"):
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text())
            if b"training_job" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.killpg(pid, signal.SIGKILL)


@pytest.fixture
def settings(
    s3_endpoint: str, mlflow_server: MlflowServer, tmp_path: Path, tiny_base_model: str
) -> Iterator[Settings]:
    """The service's settings for the test stack; jobs train the tiny model."""
    yield Settings(
        data_bucket=DATA_BUCKET,
        artifacts_bucket=ARTIFACTS_BUCKET,
        s3_endpoint_url=s3_endpoint,
        mlflow_tracking_uri=mlflow_server.uri,
        mlflow_backend_store_uri=mlflow_server.backend_store_uri,
        work_dir=tmp_path / "jobs",
        model_cache_dir=tmp_path / "models",
        audit_log_path=tmp_path / "audit.jsonl",
        base_model=tiny_base_model,
        training_defaults=TINY_TRAINING,
        # Plumbing, not quality, is under test here: every finished run registers.
        min_macro_f1=0.0,
    )
    _stop_jobs(tmp_path)


@pytest.fixture
def secured(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings with API keys required; also in the environment, where the admin command
    reads them as the API does."""
    from functions.core.config import get_settings

    secure = settings.model_copy(update={"auth": "api_key", "auth_cache_seconds": 0.0})
    for name, value in settings_env(secure).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield secure
    get_settings.cache_clear()


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


@pytest.fixture
def lambda_api(settings: Settings) -> LambdaApi:
    """The Mangum handler, deployed under the `prod` stage, fed real API Gateway events."""
    return LambdaApi(build_handler(settings.model_copy(update={"api_base_path": "/prod"})))


@dataclass(frozen=True)
class TrainedModel:
    run_id: str
    experiment_name: str
    registered_name: str
    labels: list[str]


def train_tiny(prefix: str, experiment: str, base_model: str, root: Path, **extra: str) -> str:
    """Run the training job in-process on s3://DATA_BUCKET/prefix; returns the run id."""
    from mlflow import MlflowClient

    from training_job.__main__ import main

    args = [
        "--data_uri",
        f"s3://{DATA_BUCKET}/{prefix}",
        "--labels",
        json.dumps(list(TOPICS)),
        "--experiment_name",
        experiment,
        "--base_model",
        base_model,
        "--min_macro_f1",
        "0",
    ]
    for key, value in {**TINY_TRAINING, **extra}.items():
        args += [f"--{key}", value]
    saved = os.environ.get("SM_ROOT")
    os.environ["SM_ROOT"] = str(root)
    try:
        assert main(args) == 0
    finally:
        if saved is None:
            os.environ.pop("SM_ROOT", None)
        else:
            os.environ["SM_ROOT"] = saved
    client = MlflowClient()
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    return str(client.search_runs([experiment_id])[0].info.run_id)


@pytest.fixture(scope="session")
def trained_model(
    s3: Any, mlflow_uri: str, tiny_base_model: str, tmp_path_factory: pytest.TempPathFactory
) -> TrainedModel:
    """A registered (champion) tiny model trained once for the session."""
    prefix = f"ds-trained-{uuid.uuid4().hex[:6]}"
    upload_tree(s3, DATA_BUCKET, prefix, keyword_tree(TOPICS, 12))
    experiment = f"exp-trained-{uuid.uuid4().hex[:6]}"
    run_id = train_tiny(prefix, experiment, tiny_base_model, tmp_path_factory.mktemp("sm"))
    return TrainedModel(run_id, experiment, f"{experiment}-classifier", list(TOPICS))


@dataclass(frozen=True)
class LiveApi:
    url: str
    settings: Settings
    log: Path


def _live_api(settings: Settings, tmp_path: Path, base_path: str = "") -> Iterator[LiveApi]:
    """The API as `make up` runs it: `python -m functions.api.main`, a process of its own."""
    port = free_port()
    update = {
        "api_port": port,
        "audit_log_path": tmp_path / "audit.jsonl",
        "api_base_path": base_path,
    }
    live = settings.model_copy(update=update)
    log = tmp_path / "api.log"
    env = {**os.environ, **settings_env(live)}
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "functions.api.main"], env=env,
                                   stdout=sink, stderr=sink, cwd=ROOT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: requests.get(f"{url}{base_path}/health", timeout=2).status_code == 200,
                   timeout=60, what="API")  # fmt: skip
        yield LiveApi(url, live, log)
    finally:
        _stop(process)


@pytest.fixture
def live_api(settings: Settings, tmp_path: Path) -> Iterator[LiveApi]:
    """The API as `make up` runs it: `python -m functions.api.main`, a process of its own."""
    yield from _live_api(settings, tmp_path)


@pytest.fixture
def staged_api(settings: Settings, tmp_path: Path) -> Iterator[LiveApi]:
    """The same, served under /prod as behind an API Gateway stage."""
    yield from _live_api(settings, tmp_path, "/prod")
