"""GET /health: is each dependency reachable? 503 names the one that is not."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from functions.api.deps import ServicesDep
from functions.core.errors import DependencyUnavailable

router = APIRouter(tags=["health"])


def _check(ping: Callable[..., None], *args: str) -> str:
    try:
        ping(*args)
    except DependencyUnavailable as exc:
        return f"down: {exc.message}"
    return "ok"


@router.get("/health")
def health(services: ServicesDep) -> JSONResponse:
    """Reachability of S3 and MLflow, and the model cache's counters (no key needed)."""
    checks = {
        "s3": _check(services.store.ping, services.settings.data_bucket),
        "mlflow": _check(services.tracking.ping),
    }
    healthy = all(value == "ok" for value in checks.values())
    body: dict[str, object] = {"status": "ok" if healthy else "degraded", **checks}
    registry = services.registry_if_loaded()
    if registry is not None:
        body["model_cache"] = {**registry.stats.as_dict(), "cached_runs": registry.cached_runs()}
    return JSONResponse(status_code=200 if healthy else 503, content=body)
