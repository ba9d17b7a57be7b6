"""JobLauncher that runs the training image's entrypoint as a detached local process.

The job gets the SageMaker layout under <work_dir>/<job_name>/ (hyperparameters.json,
model/, output/failure) and outlives the API process that started it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from functions.core.config import Settings
from functions.core.models import JobSpec


class LocalProcessLauncher:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.work_dir = Path(settings.work_dir).resolve()

    def job_dir(self, job_name: str) -> Path:
        return self.work_dir / job_name

    def _environment(self, root: Path) -> dict[str, str]:
        env = {
            **os.environ,
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
            os.kill(int(pid_file.read_text()), 0)
        except (OSError, ValueError):
            return False
        return True

    def launch(self, spec: JobSpec) -> str:
        root = self.job_dir(spec.job_name)
        pid_file = root / "pid"
        # The same job name is the same job: never two at once, and a finished training
        # job is not started again; a restartable one resumes.
        if pid_file.exists() and (self._running(pid_file) or not spec.restartable):
            return spec.job_name
        config = root / "input" / "config"
        config.mkdir(parents=True, exist_ok=True)
        (config / "hyperparameters.json").write_text(json.dumps(spec.hyperparameters, indent=2))
        python = self.settings.training_python or sys.executable
        with (root / "job.log").open("ab") as log:
            process = subprocess.Popen(
                [python, "-m", spec.entrypoint, "train"],
                cwd=root,
                env=self._environment(root),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the API process and its signals
            )
        pid_file.write_text(str(process.pid))
        return spec.job_name
