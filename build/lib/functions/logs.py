"""Structured logs: one JSON object a line, with the correlation ids bound for the current
request or event (request_id, run_id, ...) on every line, our code's and libraries' alike.

structlog renders the standard library's records too, so modules keep `logging.getLogger`.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.stdlib.ExtraAdder(),
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def configure_logging(service: str, level: int = logging.INFO) -> None:
    """JSON lines on stderr for the whole process (idempotent)."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_SHARED,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.ExceptionRenderer(),
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    structlog.configure(
        processors=[*_SHARED, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def bind(**ids: str) -> None:
    """Add correlation ids to every line logged from here on in this context."""
    structlog.contextvars.bind_contextvars(**ids)


def unbind(*names: str) -> None:
    structlog.contextvars.unbind_contextvars(*names)
