"""GET /health: is each dependency reachable? 503 names the one that is not."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from functions.api.deps import SettingsDep, StoreDep, TrackingDep
from functions.core.errors import DependencyUnavailable

router = APIRouter(tags=["health"])


def _check(ping: Callable[..., None], *args: str) -> str:
    try:
        ping(*args)
    except DependencyUnavailable as exc:
        return f"down: {exc.message}"
    return "ok"


@router.get("/health")
def health(store: StoreDep, tracking: TrackingDep, settings: SettingsDep) -> JSONResponse:
    checks = {
        "s3": _check(store.ping, settings.data_bucket),
        "mlflow": _check(tracking.ping),
    }
    healthy = all(value == "ok" for value in checks.values())
    body = {"status": "ok" if healthy else "degraded", **checks}
    return JSONResponse(status_code=200 if healthy else 503, content=body)
