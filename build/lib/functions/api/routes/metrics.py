"""GET /metrics: the app's counters in Prometheus' text format."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from functions.api.deps import MetricsDep

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response)
def metrics(metrics: MetricsDep) -> Response:
    """Requests by route and status, latency, predictions by label, model cache, jobs."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
