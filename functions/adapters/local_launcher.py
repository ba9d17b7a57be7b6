"""JobLauncher that runs the training image's entrypoint as a detached local process.

The job gets the SageMaker layout under <work_dir>/<job_name>/ (hyperparameters.json,
model/, output/failure) and outlives the API process that started it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from functions.core.config import ENV_PREFIX, Settings
from functions.core.models import JobSpec, Launch

JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,127}")


class LocalProcessLauncher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.work_dir = Path(settings.work_dir).resolve()

    def job_dir(self, job_name: str) -> Path:
        return self.work_dir / job_name

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

    @staticmethod
    def _running(pid_file: Path) -> bool:
        try:
            pid = int(pid_file.read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return False
        try:  # an exited child not yet reaped by its parent is a zombie, not a running job
            return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return True

    def launch(self, spec: JobSpec) -> Launch:
        root = self.job_dir(spec.job_name)
        pid_file = root / "pid"
        # The same job name is the same job: never two at once, and a finished training
        # job is not started again; a restartable one resumes.
        if pid_file.exists() and (self._running(pid_file) or not spec.restartable):
            return Launch(spec.job_name, created=False)
        config = root / "input" / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "hyperparameters.json").write_text(json.dumps(spec.hyperparameters, indent=2))
        python = self.settings.training_python or sys.executable
        with (root / "job.log").open("ab") as log:
            process = subprocess.Popen(
                # Niced: on a shared machine the API's predictions keep the CPU first.
                [
                    "nice",
                    "-n",
                    str(self.settings.local_job_nice),
                    python,
                    "-m",
                    "training_job",
                    spec.command,
                ],
                cwd=root,
                env=self._environment(root),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the API process and its signals
            )
        pid_file.write_text(str(process.pid))
        return Launch(spec.job_name)

    def failure(self, job_id: str) -> str | None:
        if not JOB_NAME.fullmatch(job_id):
            return None
        root = self.job_dir(job_id)
        pid_file = root / "pid"
        if not pid_file.exists() or self._running(pid_file):
            return None
        failure_file = root / "output" / "failure"
        if failure_file.exists():
            return failure_file.read_text(errors="replace").strip()[:2000] or "the job failed"
        return "the job process ended without reporting an outcome (killed or out of memory?)"
