"""Domain errors. The API maps each to a status code in one place (functions/api/errors.py)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every error the service reports to a caller."""

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Unauthorized(DomainError):
    """No API key, or one this service does not know."""


class InvalidRequest(DomainError):
    """The request itself is malformed (names, labels, paths)."""


class InvalidDataset(DomainError):
    """The dataset the request names cannot be trained on."""


class ExperimentNotFound(DomainError):
    pass


class RunNotFound(DomainError):
    pass


# One wording for "unknown" and "not yours", so a 404 never tells which it was.
def run_not_found(run_id: str) -> RunNotFound:
    return RunNotFound(f"run {run_id!r} not found")


def model_not_found(reference: str) -> RunNotFound:
    return RunNotFound(f"model {reference!r} not found")


class JobNotFound(DomainError):
    pass


class DatasetNotFound(DomainError):
    pass


class ModelNotReady(DomainError):
    """The run exists but has no model to serve (training, failed, or below the bar)."""


class ModelUnavailable(DomainError):
    """The run's model cannot be loaded here (files missing or corrupt in the artifact store,
    or a runtime this process lacks); the next request tries again."""


class Conflict(DomainError):
    """The request is valid but clashes with the current state (e.g. a deleted experiment)."""


class DuplicateJob(Conflict):
    """The job this request would launch already exists (a repeated delivery)."""


class DependencyUnavailable(DomainError):
    """S3, MLflow or the job launcher cannot be reached."""
