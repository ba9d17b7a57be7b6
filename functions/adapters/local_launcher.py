"""JobLauncher that runs the training image's entrypoint as a detached local process, at most
`local_max_jobs` at once; the others wait in a queue on disk and start in order.

The job gets the SageMaker layout under <work_dir>/<job_name>/ (hyperparameters.json,
model/, output/failure) and outlives the API process that started it. A job of N instances
is N processes in that folder, each with its shard index (`pid`, `pid.1`, ... hold their
process ids); it takes one slot of the queue. The queue is a folder
of `<sequence>-<job name>` entries beside the jobs, changed only under a file lock, so the
API, the local poller and a restarted API share it; any of them starts the next job once a
slot is free (a thread ticks while the queue is not empty).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from functions.core.batch import SHARD_ENV
from functions.core.config import ENV_PREFIX, Settings
from functions.core.models import JobSpec, Launch

log = logging.getLogger(__name__)

JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,127}")
HYPERPARAMETERS = Path("input") / "config" / "hyperparameters.json"
# How often a waiting queue is looked at, and how long a cancelled job gets to stop.
TICK_SECONDS = 1.0
STOP_GRACE_SECONDS = 10.0


def default_max_jobs() -> int:
    """Half the cores this process may use, at least one: the API keeps the rest."""
    return max(1, len(os.sched_getaffinity(0)) // 2)


def _alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    try:  # an exited child not yet reaped by its parent is a zombie, not a running job
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _pid_files(root: Path) -> list[Path]:
    """The process id files of a job: `pid`, then one a further shard (`pid.1`, ...)."""
    return sorted(root.glob("pid*")) if root.is_dir() else []


def _running(root: Path) -> bool:
    """Whether any process of the job is alive."""
    return any(_alive(pid_file) for pid_file in _pid_files(root))


class LocalProcessLauncher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.work_dir = Path(settings.work_dir).resolve()
        self.queue_dir = self.work_dir / ".queue"
        self.max_jobs = settings.local_max_jobs or default_max_jobs()
        self._ticker: threading.Thread | None = None
        self._ticker_lock = threading.Lock()
        if self._queued():  # jobs queued before this process started (an API restart)
            self._ensure_ticker()

    def job_dir(self, job_name: str) -> Path:
        return self.work_dir / job_name

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The queue's lock, across threads and processes (one open file each time)."""
        self.queue_dir.mkdir(parents=True, exist_ok=True)
        with (self.work_dir / ".queue.lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _queued(self) -> list[Path]:
        """Waiting jobs' entries, oldest first."""
        if not self.queue_dir.is_dir():
            return []
        return sorted(self.queue_dir.iterdir())

    @staticmethod
    def _job_of(entry: Path) -> str:
        """The job name of a queue entry (`<sequence>-<job name>`)."""
        return entry.name.split("-", 1)[1]

    def _entry(self, job_name: str) -> Path | None:
        return next((e for e in self._queued() if self._job_of(e) == job_name), None)

    def _environment(self, root: Path) -> dict[str, str]:
        env = {
            # The job is configured by its hyperparameters; the service's CC_* settings (some
            # secret, like the MLflow database URI) stay with the service.
            **{k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)},
            "SM_ROOT": str(root),
            "MLFLOW_TRACKING_URI": self.settings.mlflow_tracking_uri,
            "AWS_DEFAULT_REGION": self.settings.aws_region,
            "PYTHONUNBUFFERED": "1",
        }
        if self.settings.s3_endpoint_url:
            env["AWS_ENDPOINT_URL"] = self.settings.s3_endpoint_url
        return env

    def _start(self, job_name: str, command: str, instances: int = 1) -> None:
        root = self.job_dir(job_name)
        python = self.settings.training_python or sys.executable
        # Niced (and idle-scheduled where chrt exists): predictions keep the CPU first.
        priority = ["nice", "-n", str(self.settings.local_job_nice)]
        chrt = shutil.which("chrt") if self.settings.local_job_idle else None
        if chrt:
            priority = [chrt, "--idle", "0", *priority]
        for shard in range(instances):
            env = self._environment(root)
            if instances > 1:
                env[SHARD_ENV] = str(shard)
            with (root / "job.log").open("ab") as log_file:
                process = subprocess.Popen(
                    [*priority, python, "-m", "training_job", command],
                    cwd=root,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # survives the API process and its signals
                )
            (root / ("pid" if shard == 0 else f"pid.{shard}")).write_text(str(process.pid))

    def _dispatch(self) -> None:
        """Start the oldest waiting jobs while slots are free (the queue lock is held)."""
        entries = self._queued()
        if not entries:
            return
        running = sum(1 for job in self.work_dir.iterdir() if _running(job))
        for entry in entries[: max(0, self.max_jobs - running)]:
            job_name = self._job_of(entry)
            command, _, instances = (entry.read_text() or "train").partition(" ")
            self._start(job_name, command, int(instances or 1))
            entry.unlink()
            log.info("started queued local job %s", job_name)

    def dispatch(self) -> None:
        with self._locked():
            self._dispatch()

    def _tick(self) -> None:
        while True:
            time.sleep(TICK_SECONDS)
            try:
                self.dispatch()
            except OSError:
                log.exception("local job queue")
            with self._ticker_lock:
                if not self._queued():
                    self._ticker = None
                    return

    def _ensure_ticker(self) -> None:
        with self._ticker_lock:
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="job-queue", daemon=True)
                self._ticker.start()

    def launch(self, spec: JobSpec) -> Launch:
        root = self.job_dir(spec.job_name)
        with self._locked():
            # The same job name is the same job: never two at once, and a finished training
            # job is not started again; a restartable one resumes.
            if (root / HYPERPARAMETERS).exists() and (
                not spec.restartable or _running(root) or self._entry(spec.job_name)
            ):
                return Launch(spec.job_name, created=False)
            (root / HYPERPARAMETERS).parent.mkdir(parents=True, exist_ok=True)
            (root / HYPERPARAMETERS).write_text(json.dumps(spec.hyperparameters, indent=2))
            for pid_file in _pid_files(root):
                pid_file.unlink()
            (root / "output" / "failure").unlink(missing_ok=True)  # an earlier attempt's
            entry = spec.command if spec.instances <= 1 else f"{spec.command} {spec.instances}"
            (self.queue_dir / f"{time.time_ns():020d}-{spec.job_name}").write_text(entry)
            self._dispatch()
            position = self.queue_position(spec.job_name)
        if position is not None:
            self._ensure_ticker()
        return Launch(spec.job_name, queue_position=position)

    def queue_position(self, job_id: str) -> int | None:
        names = [self._job_of(entry) for entry in self._queued()]
        return names.index(job_id) + 1 if job_id in names else None

    def cancel(self, job_id: str) -> None:
        if not JOB_NAME.fullmatch(job_id):
            return
        with self._locked():
            entry = self._entry(job_id)
            if entry is not None:  # still waiting: it never starts
                entry.unlink()
                return
        root = self.job_dir(job_id)
        # SIGTERM first: the job ends its run itself; then the whole group, unasked.
        for sig, wait in ((signal.SIGTERM, STOP_GRACE_SECONDS), (signal.SIGKILL, 2.0)):
            alive = [pid_file for pid_file in _pid_files(root) if _alive(pid_file)]
            if not alive:
                break
            for pid_file in alive:
                with suppress(ProcessLookupError):
                    os.killpg(int(pid_file.read_text()), sig)
            deadline = time.monotonic() + wait
            while _running(root) and time.monotonic() < deadline:
                time.sleep(0.1)
        self.dispatch()  # its slot is free

    def failure(self, job_id: str) -> str | None:
        if not JOB_NAME.fullmatch(job_id):
            return None
        root = self.job_dir(job_id)
        if self._entry(job_id) is not None or _running(root):
            return None
        if not (root / "pid").exists():
            if (root / HYPERPARAMETERS).exists():
                return "the job left the queue without starting (cancelled?)"
            return None
        failure_file = root / "output" / "failure"
        if failure_file.exists():
            return failure_file.read_text(errors="replace").strip()[:2000] or "the job failed"
        return "the job process ended without reporting an outcome (killed or out of memory?)"
