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
import tempfile
import traceback
from types import FrameType

from training_job.config import JobPaths, load_hyperparameters, parse_args
from training_job.job import run_job
from training_job.logs import bind_run, configure_job_logging
from training_job.tracking import RunTracker

log = logging.getLogger("training_job")


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
    tracker: RunTracker | None = None
    # The job's temporary files in one folder, removed however the job ends.
    scratch = tempfile.mkdtemp(prefix="training-job-")
    previous_tempdir, tempfile.tempdir = tempfile.tempdir, scratch

    def fail(reason: str, where: str) -> None:
        log.error("job failed: %s\n%s", reason, where)
        write_failure(paths, reason)
        if tracker is not None:
            tracker.fail(reason)

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # SageMaker stop, spot interruption, a local cancel. Recorded and gone from here: an
        # exception raised into Python code that native code called (torch's import does)
        # aborts the process (SIGABRT) before any handler of it could record the outcome.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            fail(f"terminated by signal {signum}", "".join(traceback.format_stack(frame)))
        finally:  # gone even where the failure could not be written
            shutil.rmtree(scratch, ignore_errors=True)
            _leave(1)

    previous_handler = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        hp = load_hyperparameters(paths, parse_args(argv))
        tracker = RunTracker(hp)
        bind_run(tracker.open())
        result = run_job(hp, paths, tracker)
        tracker.finish()
        print(json.dumps({"run_id": result.run_id, "passed_gate": result.passed_gate}))
        return 0
    except Exception as exc:
        fail(f"{type(exc).__name__}: {exc}", traceback.format_exc())
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        tempfile.tempdir = previous_tempdir
        shutil.rmtree(scratch, ignore_errors=True)


def _leave(code: int) -> None:
    # The outcome is recorded (failure file, MLflow); interpreter teardown with native thread
    # pools stopped mid-step could still abort (exit -6), so the process leaves at once.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _leave(main(sys.argv[1:]))
