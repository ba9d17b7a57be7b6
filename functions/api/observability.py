"""Request ids, request metrics and the Prometheus registry behind GET /metrics.

A pure ASGI middleware (cheaper than BaseHTTPMiddleware on the predict path): it takes the
request id from `x-request-id` or API Gateway's context, binds it to every log line of the
request, answers it in `x-request-id`, and counts the request by route template and status.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from functions.logs import bind, unbind
from functions.services import Services

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ModelCacheCollector(Collector):
    """The serving registry's counters, read when scraped."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Any]:
        registry = self.services.registry_if_loaded()
        stats = registry.stats.as_dict() if registry is not None else {}
        for name in ("hits", "misses", "loads", "load_failures", "evictions"):
            yield CounterMetricFamily(f"cc_model_cache_{name}", f"model cache {name}",
                                      value=stats.get(name, 0))  # fmt: skip
        yield CounterMetricFamily("cc_model_load_seconds", "time spent loading models",
                                  value=stats.get("load_seconds_total", 0.0))  # fmt: skip
        cached = len(registry.cached_runs()) if registry is not None else 0
        yield GaugeMetricFamily("cc_model_cache_models", "models in memory", value=cached)


class DriftCollector(Collector):
    """Each served model's share of out-of-scope texts among its recent predictions."""

    def __init__(self, services: Services) -> None:
        self.services = services

    def collect(self) -> Iterator[Any]:
        monitor = self.services.drift_if_started()
        gauge = GaugeMetricFamily(
            "cc_out_of_scope_share",
            "share of out-of-scope texts among a model's last drift_window predictions "
            "(about 0.05 where traffic looks like its training data)",
            labels=["run_id"],
        )
        for run_id, share in (monitor.out_of_scope_shares() if monitor else {}).items():
            gauge.add_metric([run_id], share)
        yield gauge


class Metrics:
    """One app's metrics, in a registry of its own (apps in one process stay apart)."""

    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("cc_http_requests", "HTTP requests",
                                ["route", "method", "status"], registry=self.registry)  # fmt: skip
        self.latency = Histogram("cc_http_request_seconds", "HTTP request latency", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)  # fmt: skip
        self.predictions = Counter("cc_predictions", "predictions by label", ["label"],
                                   registry=self.registry)  # fmt: skip
        self.training_jobs = Counter("cc_training_jobs", "training requests by outcome",
                                     ["outcome"], registry=self.registry)  # fmt: skip
        self.registry.register(ModelCacheCollector(services))
        self.registry.register(DriftCollector(services))


class EmfWriter:
    """CloudWatch Embedded Metric Format on stdout: in Lambda, each line becomes metrics
    without an agent or API call (what Powertools Metrics writes, in a few lines)."""

    def __init__(self, namespace: str = "CustomClassifier") -> None:
        self.namespace = namespace

    def emit(self, dimensions: dict[str, str], values: dict[str, tuple[float, str]]) -> None:
        document: dict[str, Any] = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [list(dimensions)],
                        "Metrics": [{"Name": n, "Unit": unit} for n, (_, unit) in values.items()],
                    }
                ],
            },
            **dimensions,
            **{name: value for name, (value, _) in values.items()},
        }
        sys.stdout.write(json.dumps(document) + "\n")
        sys.stdout.flush()


def request_id_of(scope: dict[str, Any]) -> str:
    for name, value in scope.get("headers", []):
        if name == b"x-request-id" and 0 < len(value) <= 128:
            return str(value.decode("latin-1"))
    event = scope.get("aws.event") or {}
    context = event.get("requestContext") or {}
    return str(context.get("requestId") or uuid.uuid4().hex)


class ObservedApp:
    """ASGI wrapper: request id, JSON-log binding, request metrics."""

    def __init__(self, app: Any, metrics: Metrics, emf: EmfWriter | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.emf = emf

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        bind(request_id=request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or ("unmatched" if status == 404 else "static")
            seconds = time.perf_counter() - started
            self.metrics.requests.labels(template, scope["method"], str(status)).inc()
            self.metrics.latency.labels(template).observe(seconds)
            if self.emf is not None:
                self.emf.emit(
                    {"route": template, "status": str(status)},
                    {"Requests": (1, "Count"), "Latency": (seconds * 1000, "Milliseconds")},
                )
            unbind("request_id", "run_id", "tenant", "key_id")
