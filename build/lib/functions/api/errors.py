"""The one map from errors to HTTP status codes, rendered in the seed envelope."""

from __future__ import annotations

import logging
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from functions.api.schemas import Envelope, Status
from functions.core.errors import (
    Conflict,
    DatasetNotFound,
    DependencyUnavailable,
    DomainError,
    ExperimentNotFound,
    InvalidDataset,
    InvalidRequest,
    JobNotFound,
    ModelNotReady,
    ModelUnavailable,
    RunNotFound,
    Unauthorized,
)
from functions.core.models import DatasetSummary

log = logging.getLogger(__name__)

STATUS_BY_ERROR: dict[type[DomainError], int] = {
    Unauthorized: 401,
    InvalidRequest: 422,
    InvalidDataset: 422,
    ExperimentNotFound: 404,
    RunNotFound: 404,
    JobNotFound: 404,
    DatasetNotFound: 404,
    Conflict: 409,
    ModelNotReady: 409,
    DependencyUnavailable: 503,
    ModelUnavailable: 503,
}


def error_response(code: int, message: str, summary: DatasetSummary | None = None) -> JSONResponse:
    envelope: Envelope[None] = Envelope(
        status=Status(code=code, message=HTTPStatus(code).phrase), error=message
    )
    if summary is not None:
        envelope.number_documents_treated = summary.number_treated
        envelope.number_documents_non_treated = len(summary.not_treated)
        envelope.list_id_not_treated = [item.key for item in summary.not_treated]
    return JSONResponse(status_code=code, content=envelope.model_dump())


def _status_for(exc: DomainError) -> int:
    for kind in type(exc).__mro__:
        if kind in STATUS_BY_ERROR:
            return STATUS_BY_ERROR[kind]
    return 500


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    code = _status_for(exc)
    log.warning("request failed", extra={"status": code, "error": exc.message})
    summary = exc.details.get("summary")
    return error_response(
        code, exc.message, summary if isinstance(summary, DatasetSummary) else None
    )


def _describe(error: dict[str, object]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ()) if part != "body")  # type: ignore[attr-defined]
    if error.get("type") == "extra_forbidden":
        return f"{where}: unknown field, not part of this request"
    return f"{where or 'body'}: {error.get('msg')}"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    message = "; ".join(_describe(error) for error in exc.errors()[:10])
    return error_response(422, f"invalid request: {message}")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return error_response(exc.status_code, str(exc.detail))


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error", exc_info=exc)
    return error_response(500, "internal error; the request id in x-request-id locates it")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(Exception, _unexpected)
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
