"""Serving policy: which runs may answer predictions, and the cache of loaded models.

A run is served only when it FINISHED and passed the evaluation gate. Loaded models are
kept in an LRU bounded by count and bytes; concurrent first requests for one run load it
once. A run's servability is re-checked every `recheck_seconds`, so a run deleted by another
process stops answering without reloading models on every request.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from functions.core.errors import ModelNotReady, RunNotFound, model_not_found, run_not_found
from functions.core.models import Prediction, RunSummary
from functions.core.ports import LoadedModel, ModelLoader, Tracking
from functions.core.runs import ACTIVE_STATUSES
from functions.core.tags import (
    METRIC_PASSES_BAR_UP_TO,
    TAG_FAILURE,
    TAG_GATE,
    TAG_GATE_REASON,
    TAG_TENANT,
)
from functions.core.tenancy import NO_TENANT, Tenant

MODEL_REFERENCE_PREFIX = "models:/"


def check_servable(run: RunSummary) -> None:
    """Raise ModelNotReady unless the run finished and passed the evaluation gate."""
    if run.status in ACTIVE_STATUSES:
        raise ModelNotReady(f"run {run.run_id} is still training")
    if run.status != "FINISHED":
        reason = run.tags.get(TAG_FAILURE, "no reason recorded")
        raise ModelNotReady(f"run {run.run_id} {run.status.lower()}: {reason}")
    gate = run.tags.get(TAG_GATE)
    if gate == "failed":
        reason = run.tags.get(TAG_GATE_REASON, "")
        highest = run.metrics.get(METRIC_PASSES_BAR_UP_TO)
        how = ""  # the next step, said where the caller reads this
        if highest is not None:
            how = (
                f"; POST /promote with its run_id and a min_macro_f1 up to {highest:.4f} "
                "registers it at that bar, and it serves"
            )
        raise ModelNotReady(
            f"run {run.run_id} did not pass the evaluation bar ({reason}); it is not served{how}"
        )
    if gate != "passed":
        raise ModelNotReady(f"run {run.run_id} has no evaluated model to serve")


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    loads: int = 0
    load_failures: int = 0
    evictions: int = 0
    load_seconds_total: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return dict(self.__dict__)


@dataclass
class _Entry:
    model: LoadedModel
    checked_at: float
    tenant: str | None  # whose run it is: the cache is shared, answers are not


@dataclass
class ServingRegistry:
    """Resolve a run id or `models:/name@alias`, check it may serve, and predict."""

    tracking: Tracking
    loader: ModelLoader
    max_models: int = 4
    max_bytes: int = 2 * 1024**3
    recheck_seconds: float = 60.0
    stats: CacheStats = field(default_factory=CacheStats)

    def __post_init__(self) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._aliases: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def resolve(self, reference: str) -> str:
        """The run id behind a run id or a registered-model reference (cached for a while)."""
        if not reference.startswith(MODEL_REFERENCE_PREFIX):
            return reference
        cached = self._aliases.get(reference)
        if cached and time.monotonic() - cached[1] < self.recheck_seconds:
            return cached[0]
        run_id = self.tracking.resolve_model_reference(reference)
        self._aliases[reference] = (run_id, time.monotonic())
        return run_id

    def model(self, reference: str, tenant: Tenant = NO_TENANT) -> LoadedModel:
        """The loaded model of a run the tenant owns; another tenant's run is not found."""
        run_id = self.resolve(reference)
        with self._lock:
            entry = self._entries.get(run_id)
            if entry is not None:
                self._entries.move_to_end(run_id)
        if entry is None:
            return self._load(run_id, reference, tenant)
        self._check_owner(entry.tenant, reference, run_id, tenant)
        if time.monotonic() - entry.checked_at >= self.recheck_seconds:
            self._recheck(run_id, entry)
        self.stats.hits += 1
        return entry.model

    @staticmethod
    def _check_owner(owner: str | None, reference: str, run_id: str, tenant: Tenant) -> None:
        if not tenant.owns_tag(owner):
            if reference.startswith(MODEL_REFERENCE_PREFIX):
                raise model_not_found(reference)
            raise run_not_found(run_id)

    def _recheck(self, run_id: str, entry: _Entry) -> None:
        try:
            check_servable(self.tracking.get_run(run_id))
        except (RunNotFound, ModelNotReady):
            self.forget(run_id)
            raise
        entry.checked_at = time.monotonic()

    def _load(self, run_id: str, reference: str, tenant: Tenant) -> LoadedModel:
        with self._lock:
            gate = self._loading.setdefault(run_id, threading.Lock())
        with gate:  # one loader per run; the others wait and then hit the cache
            with self._lock:
                entry = self._entries.get(run_id)
            if entry is not None:
                self._check_owner(entry.tenant, reference, run_id, tenant)
                self.stats.hits += 1
                return entry.model
            self.stats.misses += 1
            run = self.tracking.get_run(run_id)
            # Ownership before servability: another tenant's run must not say "training".
            self._check_owner(run.tags.get(TAG_TENANT), reference, run_id, tenant)
            check_servable(run)
            started = time.monotonic()
            try:
                model = self.loader.load(run_id)
            except Exception:
                self.stats.load_failures += 1
                raise
            self.stats.loads += 1
            self.stats.load_seconds_total += time.monotonic() - started
            with self._lock:
                self._entries[run_id] = _Entry(model, time.monotonic(), run.tags.get(TAG_TENANT))
                self._evict()
            return model

    def _evict(self) -> None:
        def total() -> int:
            return sum(e.model.size_bytes for e in self._entries.values())

        while len(self._entries) > 1 and (
            len(self._entries) > self.max_models or total() > self.max_bytes
        ):
            self._entries.popitem(last=False)
            self.stats.evictions += 1

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._entries.pop(run_id, None)
            self._aliases = {k: v for k, v in self._aliases.items() if v[0] != run_id}

    def predict(
        self, reference: str, texts: list[str], tenant: Tenant = NO_TENANT
    ) -> list[Prediction]:
        return self.model(reference, tenant).predict(texts)

    def cached_runs(self) -> list[str]:
        with self._lock:
            return list(self._entries)
