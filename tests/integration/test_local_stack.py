"""`scripts/stack.py` end to end: a whole local stack in a temp dir on free ports survives
`kill -9` of every one of its processes, and `up` after a crash recovers by itself."""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from tests.conftest import ROOT, free_port
from tests.support import ARTIFACTS_BUCKET, BBC_LABELS, DATA_BUCKET, wait_until

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads process groups in /proc")

STACK = [sys.executable, str(ROOT / "scripts" / "stack.py")]
SERVICES = ("s3", "mlflow", "api", "trigger")
API = "/custom_classifier"
EXPERIMENT = "stack-crash"
TEXT = "The striker scored twice as the club won the league match on Saturday."
SNAPSHOT = {
    (DATA_BUCKET, "old-dataset/notes/a.txt"): b"from the moto snapshot",
    (ARTIFACTS_BUCKET, "old-run/b.json"): b'{"kept": true}',
}


def _live(pid: int) -> tuple[int, str] | None:
    """(pgid, state) of a process, None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[2]), fields[0]


def _gone(pid: int) -> bool:
    """Ended: no process, or a zombie (the exited `up` was its parent; PID 1 may not reap)."""
    info = _live(pid)
    return info is None or info[1] in {"Z", "X"}


def _group(pgid: int) -> list[int]:
    """Live (not zombie) processes whose process group is `pgid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            info = _live(int(entry.name))
            if info is not None and info[0] == pgid and info[1] not in {"Z", "X"}:
                found.append(int(entry.name))
    return found


def _kill9(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    wait_until(lambda: all(map(_gone, pids)), timeout=15, what="killed processes", every=0.1)


@dataclass
class Stack:
    root: Path
    env: dict[str, str]
    s3_url: str
    mlflow_url: str
    api_url: str
    groups: set[int] = field(default_factory=set)

    @property
    def dir(self) -> Path:
        return self.root / "stack"

    def run(self, command: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*STACK, command],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self.groups.update(self.pids().values())
        return result

    def up(self) -> str:
        result = self.run("up")
        logs = "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted((self.dir / "logs").glob("*.log"))
        )
        assert result.returncode == 0, f"{result.stdout}\n{result.stderr}\n{logs}"
        return result.stdout

    def pids(self) -> dict[str, int]:
        return {
            name: int((self.dir / "pids" / f"{name}.pid").read_text())
            for name in SERVICES
            if (self.dir / "pids" / f"{name}.pid").exists()
        }

    def s3(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.s3_url,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = requests.post(f"{self.api_url}{API}{path}", json=body, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    s3_port, mlflow_port, api_port = free_port(), free_port(), free_port()
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("CC_") and k != "AWS_ENDPOINT_URL"
    }
    env.update(
        CC_STACK_DIR=str(tmp_path / "stack"),
        CC_WORK_DIR=str(tmp_path / "jobs"),
        CC_MODEL_CACHE_DIR=str(tmp_path / "model-cache"),
        CC_AUDIT_LOG_PATH=str(tmp_path / "audit" / "predict.jsonl"),
        CC_S3_ENDPOINT_URL=f"http://127.0.0.1:{s3_port}",
        CC_MLFLOW_TRACKING_URI=f"http://127.0.0.1:{mlflow_port}",
        CC_API_PORT=str(api_port),
    )
    stack = Stack(
        tmp_path,
        env,
        s3_url=env["CC_S3_ENDPOINT_URL"],
        mlflow_url=env["CC_MLFLOW_TRACKING_URI"],
        api_url=f"http://127.0.0.1:{api_port}",
    )
    try:
        yield stack
    finally:
        stack.groups.update(stack.pids().values())
        with contextlib.suppress(subprocess.TimeoutExpired):
            stack.run("down", timeout=60)
        # Whatever `down` left (or could not reach): the stack's groups and its jobs'.
        jobs = {int(p.read_text()) for p in (tmp_path / "jobs").glob("*/pid")}
        for pgid in stack.groups | jobs:
            for pid in _group(pgid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _objects(stack: Stack) -> dict[tuple[str, str], str]:
    """(bucket, key) -> ETag of every object of both buckets."""
    client = stack.s3()
    found = {}
    for bucket in (DATA_BUCKET, ARTIFACTS_BUCKET):
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for item in page.get("Contents", []):
                found[(bucket, item["Key"])] = item["ETag"]
    return found


def _mlflow_state(stack: Stack) -> tuple[list[tuple[str, str]], list[str]]:
    """The experiment's (run id, status) and the registered models' names."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=stack.mlflow_url)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    models = client.search_registered_models()
    return sorted((r.info.run_id, r.info.status) for r in runs), sorted(m.name for m in models)


def _predict(stack: Stack) -> str:
    body = stack.post(
        "/predict", {"runid": f"models:/{EXPERIMENT}-classifier@champion", "text": TEXT}
    )
    label: str = body["data"]["label"]
    return label


def _finished_run(stack: Stack) -> dict[str, Any]:
    def finished() -> dict[str, Any] | None:
        run: dict[str, Any] = stack.post("/job_status", {"experiment_name": EXPERIMENT})[0]
        return run if run["status"] in {"FINISHED", "FAILED"} else None

    run: dict[str, Any] = wait_until(finished, timeout=240, what="training run", every=1)
    return run


@pytest.mark.slow  # about 100 s: `make slow` (and .ci/run) runs it, `make test` does not
def test_the_stack_survives_kill_9_of_every_process_and_migrates_a_snapshot(
    stack: Stack,
) -> None:
    # given: a snapshot of the earlier moto stack, left by its `make down`
    for (bucket, key), body in SNAPSHOT.items():
        path = stack.dir / "s3-snapshot" / bucket / key
        path.parent.mkdir(parents=True)
        path.write_bytes(body)

    # when: the stack comes up for the first time
    first = stack.up()

    # then: the snapshot is in S3 once, its folder renamed (kept), and the demo dataset is there
    assert "migrated 2 objects" in first, first
    assert not (stack.dir / "s3-snapshot").exists()
    assert (stack.dir / "s3-snapshot.migrated").is_dir()
    s3 = stack.s3()
    for (bucket, key), body in SNAPSHOT.items():
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body
    demo = [key for (bucket, key) in _objects(stack) if key.startswith("demo-bbc/")]
    assert len(demo) == 40 * len(BBC_LABELS)
    assert (stack.dir / "s3" / DATA_BUCKET / "demo-bbc").is_dir()  # plain files on disk

    # when: a model is trained through the API and registered
    started = stack.post(
        "/process",
        {"labels": BBC_LABELS, "path": "demo-bbc", "experiment_name": EXPERIMENT, "mode": "tfidf"},
    )
    run = _finished_run(stack)
    assert run["status"] == "FINISHED", run
    assert run["run_id"] == started["data"]["info"]["run_id"]
    assert run["registered"] is True, run
    label = _predict(stack)

    # and: one more file is uploaded the way the web UI does (presigned PUT)
    body = b"a late document about the markets"
    file = {"path": "misc/late.txt", "size": len(body), "md5": hashlib.md5(body).hexdigest()}
    plan = stack.post("/uploads", {"path": "late-upload", "files": [file]})["data"]
    assert requests.put(plan["uploads"][0]["url"], data=body, timeout=10).status_code == 200
    # the upload is judged done by size and MD5 ETag: asking again skips it
    assert stack.post("/uploads", {"path": "late-upload", "files": [file]})["data"]["skipped"] == [
        "misc/late.txt"
    ]
    objects = _objects(stack)
    runs, models = _mlflow_state(stack)
    assert f"{EXPERIMENT}-classifier" in models

    # when: every process of the stack is killed at once, without `down`
    pids = stack.pids()
    assert set(pids) == set(SERVICES)
    everything = sorted({pid for pgid in pids.values() for pid in _group(pgid)})
    assert len(everything) > len(SERVICES)  # MLflow's workers are in its group
    _kill9(everything)

    # then: `up` starts again by itself
    second = stack.up()
    assert "migrated" not in second
    assert stack.pids() != pids

    # and: nothing is lost: objects, the finished run, the registered model, its answers
    after = _objects(stack)
    counts = {
        b: sum(1 for bucket, _ in after if bucket == b) for b in (DATA_BUCKET, ARTIFACTS_BUCKET)
    }
    print(f"\nobjects before kill -9: {len(objects)}, after: {len(after)} {counts}; runs {runs}")
    assert after == objects
    assert _mlflow_state(stack) == (runs, models)
    again = _finished_run(stack)
    assert (again["run_id"], again["status"], again["registered"]) == (
        run["run_id"],
        "FINISHED",
        True,
    )
    assert _predict(stack) == label

    # when: only MLflow's leader dies (its uvicorn workers keep the port: the reported bug)
    mlflow = stack.pids()["mlflow"]
    orphans = [pid for pid in _group(mlflow) if pid != mlflow]
    assert orphans
    _kill9([mlflow])
    assert requests.get(f"{stack.mlflow_url}/health", timeout=5).ok  # still served by workers

    # then: `up` ends the leftover group and starts MLflow again
    third = stack.up()
    assert "mlflow: leader" in third and "leftover" in third, third
    assert all(map(_gone, orphans))
    assert stack.pids()["mlflow"] != mlflow
    assert _mlflow_state(stack) == (runs, models)

    # when: the stack is stopped
    down = stack.run("down", timeout=60)

    # then: every group has ended and the data stays on disk
    assert down.returncode == 0, down.stderr
    assert all(not _group(pgid) for pgid in stack.groups)
    assert (
        stack.dir / "s3" / DATA_BUCKET / "late-upload" / "misc" / "late.txt"
    ).read_bytes() == body


def test_up_refuses_a_port_taken_by_a_process_that_is_not_ours(stack: Stack) -> None:
    import socket

    port = int(stack.s3_url.rsplit(":", 1)[1])
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        result = stack.run("up", timeout=60)
    assert result.returncode != 0
    assert f"s3: port {port} is taken by another process" in result.stderr
    assert not stack.pids()
