"""Entrypoint of the training image: `python -m training_job [train|batch] [--name value ...]`.

`train` (what SageMaker passes) or nothing runs a training job; `batch` a batch prediction.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import traceback
from types import FrameType

from training_job.config import JobPaths, load_hyperparameters, parse_args
from training_job.job import run_job
from training_job.logs import bind_run, configure_job_logging
from training_job.tracking import RunTracker


class JobTerminated(BaseException):
    """SIGTERM arrived (SageMaker stop, spot interruption, container shutdown). A
    BaseException, like KeyboardInterrupt: no `except Exception` on the way (ours, MLflow's
    retries, a library's) may swallow it and train on."""


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise JobTerminated(f"terminated by signal {signum}")


def write_failure(paths: JobPaths, reason: str) -> None:
    paths.output_dir.mkdir(parents=True, exist_ok=True)
    try:
        paths.failure_file.write_text(reason)
    except OSError:  # a full disk: the failed run's partial model makes room for its reason
        shutil.rmtree(paths.model_dir, ignore_errors=True)
        paths.failure_file.write_text(reason)


def main(argv: list[str] | None = None) -> int:
    """Run one training job; returns the process exit code (0 success, 1 failure)."""
    if argv and argv[0] == "batch":
        from training_job.batch import main as batch_main

        return batch_main(argv[1:])
    configure_job_logging("train")
    paths = JobPaths.from_env()
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    tracker: RunTracker | None = None
    try:
        hp = load_hyperparameters(paths, parse_args(argv))
        tracker = RunTracker(hp)
        bind_run(tracker.open())
        result = run_job(hp, paths, tracker)
        tracker.finish()
        print(json.dumps({"run_id": result.run_id, "passed_gate": result.passed_gate}))
        return 0
    except (Exception, JobTerminated) as exc:
        reason = f"{type(exc).__name__}: {exc}"
        logging.getLogger("training_job").error(
            "job failed: %s\n%s", reason, traceback.format_exc()
        )
        write_failure(paths, reason)
        if tracker is not None:
            tracker.fail(reason)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    code = main(sys.argv[1:])
    # The outcome is recorded (failure file, MLflow, logs flushed below); interpreter teardown
    # with native thread pools stopped mid-step by SIGTERM could still abort (exit -6).
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
