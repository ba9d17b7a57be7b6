"""Control-plane cost: job_status through the API vs MlflowClient.search_runs, and import time.

Needs the local stack (`make up`). Creates one experiment with 1,000 runs, times
`POST /custom_classifier/job_status` through the app in-process (ASGI, no network hop of
its own) against the same MLflow query made directly, then hard-deletes the experiment.

    python bench/control_plane.py [--runs 1000] [--repeat 50]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

from fastapi.testclient import TestClient
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from functions.api.app import create_app  # noqa: E402
from functions.core.config import get_settings  # noqa: E402


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


def _time(call: object, repeat: int) -> list[float]:
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()  # type: ignore[operator]
        samples.append(time.perf_counter() - started)
    return samples


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
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()

    settings = get_settings()
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    name = f"bench-control-plane-{uuid.uuid4().hex[:8]}"
    experiment_id = client.create_experiment(name)
    print(f"seeding {args.runs} runs in {name} ...", flush=True)
    _seed_runs(client, experiment_id, args.runs)
    api = TestClient(create_app(settings))
    try:

        def direct() -> object:
            return client.search_runs(
                [experiment_id], max_results=3, order_by=["attributes.start_time DESC"]
            )

        def through_api() -> object:
            response = api.post("/custom_classifier/job_status", json={"experiment_name": name})
            assert response.status_code == 200 and len(response.json()) == 3
            return response

        for call in (direct, through_api):  # warm both paths
            _time(call, 3)
        base, ours = [], []
        for _ in range(args.repeat):  # interleaved so drift hits both alike
            base += _time(direct, 1)
            ours += _time(through_api, 1)
        print(f"search_runs p50 {_p50(base) * 1000:.1f} ms  p95 {_p95(base) * 1000:.1f} ms")
        print(f"job_status  p50 {_p50(ours) * 1000:.1f} ms  p95 {_p95(ours) * 1000:.1f} ms")
        print(f"job_status p50 ratio {_p50(ours) / _p50(base):.2f}")
    finally:
        api.post("/custom_classifier/experiment/hard_delete", json={"experiment_name": name})

    bare = _import_seconds("import fastapi, mangum")
    handler = _import_seconds("import functions.api.handler")
    print(f"import fastapi+mangum {bare * 1000:.0f} ms  handler {handler * 1000:.0f} ms")
    print(f"handler import ratio {handler / bare:.2f}")


if __name__ == "__main__":
    main()
