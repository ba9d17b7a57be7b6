"""The job's logs as JSON lines carrying its run id and job name, like the API's (the two
images share no code, so the job configures structlog itself)."""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import structlog


def configure_job_logging(command: str) -> None:
    chain: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=chain,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.ExceptionRenderer(),
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    job = os.path.basename(os.environ.get("SM_ROOT", "")) or os.environ.get("TRAINING_JOB_NAME", "")
    structlog.contextvars.bind_contextvars(service=f"job-{command}", job=job)


def bind_run(run_id: str) -> None:
    structlog.contextvars.bind_contextvars(run_id=run_id)
