"""Control-plane cost: job_status through the API vs MlflowClient.search_runs, and import time.

Needs the local stack (`make up`). Creates one experiment with 1,000 runs, times
`POST /custom_classifier/job_status` through the app in-process (httpx over ASGI, no
network hop of its own) against the same MLflow query made directly, then hard-deletes
the experiment. Also times a fresh interpreter importing the Lambda handler.

    python bench/control_plane.py [--runs 1000] [--repeat 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from functions.api.app import create_app  # noqa: E402
from functions.core.config import get_settings  # noqa: E402

# The local stack's S3 takes any credentials; a real account's come from the environment.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
# As `make up` runs the API: hard delete may purge rows from the local store.
os.environ.setdefault("CC_MLFLOW_BACKEND_STORE_URI", f"sqlite:///{ROOT / '.local' / 'mlflow.db'}")


def _p50(samples: list[float]) -> float:
    return statistics.median(samples)


def _p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20)[-1]


def _seed_runs(client: MlflowClient, experiment_id: str, count: int) -> None:
    labels = "{'non-cv': 0, 'cv': 1}"
    ids = "{0: 'non-cv', 1: 'cv'}"
    now = int(time.time() * 1000)
    for i in range(count):
        run = client.create_run(
            experiment_id, start_time=now + i, run_name=f"training_classifier-bench-{i:04d}"
        )
        client.log_batch(
            run.info.run_id,
            metrics=[Metric("test_macro_f1", 0.9, now, 0), Metric("test_accuracy", 0.9, now, 0)],
            params=[Param("label2id", labels), Param("id2label", ids)],
            tags=[RunTag("custom_classifier.registered_model", "bench/1")],
        )
        client.set_terminated(run.info.run_id)


def _app_client() -> httpx.AsyncClient:
    """The app in-process over ASGI: no socket, no server, one event loop."""
    app = create_app(get_settings())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")


async def _compare(
    client: MlflowClient, experiment_id: str, name: str, repeat: int
) -> tuple[list[float], list[float]]:
    """Interleaved timings of MlflowClient.search_runs and POST /job_status (same query)."""
    async with _app_client() as api:

        def direct() -> None:
            client.search_runs(
                [experiment_id], max_results=3, order_by=["attributes.start_time DESC"]
            )

        async def through_api() -> None:
            response = await api.post(
                "/custom_classifier/job_status", json={"experiment_name": name}
            )
            assert response.status_code == 200 and len(response.json()) == 3

        direct()
        await through_api()  # warm both paths
        base, ours = [], []
        for _ in range(repeat):  # interleaved so drift hits both alike
            started = time.perf_counter()
            direct()
            base.append(time.perf_counter() - started)
            started = time.perf_counter()
            await through_api()
            ours.append(time.perf_counter() - started)
    return base, ours


async def _hard_delete(name: str) -> str:
    async with _app_client() as api:
        response = await api.post(
            "/custom_classifier/experiment/hard_delete", json={"experiment_name": name}
        )
    status: str = response.json()["status"]
    return status


def _import_seconds(statement: str, repeat: int = 7) -> float:
    """Median wall time of a fresh interpreter importing `statement`, minus a bare start."""

    def run(code: str) -> float:
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
        return time.perf_counter() - started

    bare = statistics.median(run("pass") for _ in range(repeat))
    return statistics.median(run(statement) for _ in range(repeat)) - bare


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=100)
    args = parser.parse_args()

    settings = get_settings()
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    name = f"bench-control-plane-{uuid.uuid4().hex[:8]}"
    experiment_id = client.create_experiment(name)
    print(f"seeding {args.runs} runs in {name} ...", flush=True)
    _seed_runs(client, experiment_id, args.runs)
    try:
        base, ours = asyncio.run(_compare(client, experiment_id, name, args.repeat))
        print(f"search_runs p50 {_p50(base) * 1000:.1f} ms  p95 {_p95(base) * 1000:.1f} ms")
        print(f"job_status  p50 {_p50(ours) * 1000:.1f} ms  p95 {_p95(ours) * 1000:.1f} ms")
        print(f"job_status p50 ratio {_p50(ours) / _p50(base):.2f}")
    finally:
        print(f"cleanup: {asyncio.run(_hard_delete(name))}")

    bare = _import_seconds("import fastapi, mangum")
    handler = _import_seconds("import functions.api.handler")
    print(f"import fastapi+mangum {bare * 1000:.0f} ms  handler {handler * 1000:.0f} ms")
    print(f"handler import ratio {handler / bare:.2f}")


if __name__ == "__main__":
    main()
