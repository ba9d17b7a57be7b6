"""Upload and listing speed on the durable local S3 (`rclone serve s3`, what `make up` runs)
against moto's in-memory server (what it ran before), measured in the same run.

For each store: start it on a free port with the two buckets, start the API against it, then
time `custom-classifier upload` of N small documents (2 labels) and the `/process` validation
of that dataset (the listing of every label; a third, empty label makes it stop with 422
before MLflow is involved, so only validation is timed). Prints, rclone over moto:

    upload ratio <x>        CLI upload of N documents
    validation ratio <x>    /process validation of the dataset (median of 3)
    labels ratio <x>        GET /datasets/labels (median of 3)

    python bench/store.py [--documents 10000]
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BUCKETS = ("cc-data", "cc-artifacts")
AWS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
       "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
DATASET = "bench-store"
API = "/custom_classifier"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait(url: str, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise SystemExit(f"{what} did not come up at {url}")


@contextmanager
def process(command: list[str], env: dict[str, str], log: Path) -> Iterator[None]:
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, env=env, stdout=sink, stderr=sink, cwd=ROOT)
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextmanager
def store(kind: str, folder: Path) -> Iterator[str]:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    if kind == "rclone":
        for bucket in BUCKETS:
            (folder / "s3" / bucket).mkdir(parents=True)
        command = [str(BIN / "rclone"), "serve", "s3", "--addr", f"127.0.0.1:{port}",
                   str(folder / "s3")]  # fmt: skip
    else:
        command = [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
    with process(command, {**os.environ, **AWS}, folder / f"{kind}.log"):
        wait(endpoint, kind)
        if kind == "moto":
            s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip
            for bucket in BUCKETS:
                s3.create_bucket(Bucket=bucket)
        yield endpoint


@contextmanager
def api(endpoint: str, folder: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, **AWS, "CC_S3_ENDPOINT_URL": endpoint, "CC_API_PORT": str(port),
           "CC_MLFLOW_TRACKING_URI": "http://127.0.0.1:9", "CC_AUDIT_SINK": "off",
           "CC_MAX_UPLOAD_FILES": "1000"}  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with process([sys.executable, "-m", "functions.api.main"], env, folder / "api.log"):
        wait(f"{url}/openapi.json", "API")
        yield url


def documents(folder: Path, count: int) -> Path:
    root = folder / "docs"
    for i in range(count):
        label = root / ("alpha" if i % 2 else "beta")
        label.mkdir(parents=True, exist_ok=True)
        (label / f"{i:06d}.txt").write_text(f"document {i} about {label.name} " * 8)
    return root


def measure(kind: str, docs: Path, work: Path) -> dict[str, float]:
    folder = work / kind
    folder.mkdir()
    with store(kind, folder) as endpoint, api(endpoint, folder) as url:
        began = time.perf_counter()
        done = subprocess.run(
            [str(BIN / "custom-classifier"), "--url", url, "upload", str(docs), DATASET],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        upload = time.perf_counter() - began
        if done.returncode != 0:
            raise SystemExit(f"upload to {kind} failed: {done.stderr[-500:]}")
        body = {"labels": ["alpha", "beta", "missing"], "path": DATASET,
                "experiment_name": "bench-store"}  # fmt: skip
        validation, labels = [], []
        with httpx.Client(base_url=url, timeout=300) as client:
            for _ in range(3):
                began = time.perf_counter()
                answer = client.post(f"{API}/process", json=body)
                validation.append(time.perf_counter() - began)
                assert answer.status_code == 422, answer.text  # 'missing' has no documents
                counted = answer.json()["number_documents_treated"]
                began = time.perf_counter()
                client.get(f"{API}/datasets/labels", params={"path": DATASET}).raise_for_status()
                labels.append(time.perf_counter() - began)
    print(f"{kind}: upload {upload:.1f} s, validation {statistics.median(validation):.2f} s "
          f"({counted} documents), labels {statistics.median(labels):.2f} s")  # fmt: skip
    return {"upload": upload, "validation": statistics.median(validation),
            "labels": statistics.median(labels)}  # fmt: skip


def main(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        work = Path(tmp)
        docs = documents(work, args.documents)
        baseline = measure("moto", docs, work)
        durable = measure("rclone", docs, work)
    for name in ("upload", "validation", "labels"):
        print(f"{name} ratio {durable[name] / baseline[name]:.2f}")
    worst = max(durable[n] / baseline[n] for n in ("upload", "validation"))
    return 0 if worst <= args.max_ratio else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=10_000)
    parser.add_argument("--max-ratio", type=float, default=1.5)
    sys.exit(main(parser.parse_args()))
