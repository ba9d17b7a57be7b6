"""create_app(settings): the FastAPI application, cheap to build (no heavy imports)."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles

from functions.api.deps import get_tenant
from functions.api.errors import install_error_handlers
from functions.api.limits import BodyLimit
from functions.api.observability import EmfWriter, Metrics, ObservedApp
from functions.api.routes import (
    batch,
    datasets,
    deletes,
    health,
    metrics,
    predict,
    runs,
    status,
    training,
    ui,
)
from functions.core.config import Settings, get_settings
from functions.services import Services

DESCRIPTION = """Train text classifiers on labelled S3 folders (`<dataset>/<label>/<doc>`) and
manage their MLflow runs. Responses use the envelope
`{status{code,message}, data, error, number_documents_treated, number_documents_non_treated,
list_id_not_treated}`; status listings and deletes answer as the original service did."""


def create_app(settings: Settings | None = None, services: Services | None = None) -> FastAPI:
    """Build the app; `services` lets tests and the local runner inject their adapters."""
    settings = settings or get_settings()
    app = FastAPI(
        title="Custom Classifier",
        version="0.1.0",
        description=DESCRIPTION,
    )
    app.state.services = services or Services(settings)
    app.state.metrics = Metrics(app.state.services)
    emf = EmfWriter() if settings.metrics_emf else None
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes)
    app.add_middleware(ObservedApp, metrics=app.state.metrics, emf=emf)
    install_error_handlers(app)
    # Health, the UI page and the API docs stay open; everything else needs a key (or a JWT)
    # when authentication is on, and sees only the caller's tenant.
    for module in (health, ui):
        app.include_router(module.router)
    for module in (training, predict, batch, status, runs, datasets, deletes, metrics):
        app.include_router(module.router, dependencies=[Depends(get_tenant)])
    app.mount("/static", StaticFiles(directory=ui.STATIC), name="static")
    return app


def with_root_path(app: Any, root_path: str) -> Any:
    """Tell the app it is served under an API Gateway stage, so /docs finds openapi.json."""

    async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] in {"http", "websocket"}:
            scope = {**scope, "root_path": root_path}
        await app(scope, receive, send)

    return asgi
