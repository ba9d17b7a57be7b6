"""The composition root: one process's adapters, built from Settings on first use.

Shared by the API (through functions/api/deps.py) and the S3-trigger Lambda; tests inject
their own adapters through the constructor.
"""

from __future__ import annotations

import threading

from functions.adapters.audit import build_audit_sink
from functions.core.auth import Authenticator
from functions.core.config import Settings
from functions.core.drift import DriftMonitor, TrafficLog
from functions.core.ports import AuditSink, JobLauncher, ObjectStore, Tracking
from functions.core.serving import ServingRegistry


class Services:
    """The adapters of one app. Heavy clients (boto3, MLflow) load on first use, not at import."""

    def __init__(
        self,
        settings: Settings,
        store: ObjectStore | None = None,
        tracking: Tracking | None = None,
        launcher: JobLauncher | None = None,
        registry: ServingRegistry | None = None,
        audit: AuditSink | None = None,
    ) -> None:
        self.settings = settings
        self.audit = audit or build_audit_sink(settings)
        self._store = store
        self._tracking = tracking
        self._launcher = launcher
        self._registry = registry
        self._authenticator: Authenticator | None = None
        self._drift: DriftMonitor | None = None
        self._lock = threading.Lock()

    @property
    def store(self) -> ObjectStore:
        with self._lock:
            if self._store is None:
                from functions.adapters.s3_store import S3ObjectStore, s3_client

                self._store = S3ObjectStore(s3_client(self.settings))
            return self._store

    @property
    def tracking(self) -> Tracking:
        with self._lock:
            if self._tracking is None:
                from functions.adapters.mlflow_tracking import MlflowTracking

                self._tracking = MlflowTracking(self.settings)
            return self._tracking

    @property
    def launcher(self) -> JobLauncher:
        with self._lock:
            if self._launcher is None:
                self._launcher = build_launcher(self.settings)
            return self._launcher

    @property
    def registry(self) -> ServingRegistry:
        tracking = self.tracking
        with self._lock:
            if self._registry is None:
                from functions.adapters.model_loader import MlflowModelLoader

                self._registry = ServingRegistry(
                    tracking=tracking,
                    loader=MlflowModelLoader(self.settings),
                    max_models=self.settings.model_cache_max_models,
                    max_bytes=self.settings.model_cache_max_bytes,
                    recheck_seconds=self.settings.model_recheck_seconds,
                )
            return self._registry

    @property
    def authenticator(self) -> Authenticator:
        store = self.store
        with self._lock:
            if self._authenticator is None:
                self._authenticator = Authenticator(store, self.settings)
            return self._authenticator

    @property
    def traffic(self) -> TrafficLog:
        return TrafficLog(self.store, self.settings.artifacts_bucket, self.settings.traffic_prefix)

    @property
    def drift(self) -> DriftMonitor:
        traffic = self.traffic
        with self._lock:
            if self._drift is None:
                self._drift = DriftMonitor(traffic, self.settings.drift_window,
                                           self.settings.drift_flush_seconds)  # fmt: skip
            return self._drift

    def drift_if_started(self) -> DriftMonitor | None:
        return self._drift

    def registry_if_loaded(self) -> ServingRegistry | None:
        return self._registry


def build_launcher(settings: Settings) -> JobLauncher:
    """The launcher CC_LAUNCHER names (Settings only admits known names)."""
    if settings.launcher == "sagemaker":
        from functions.adapters.sagemaker_launcher import SageMakerLauncher

        return SageMakerLauncher(settings)
    if settings.launcher == "ecs":
        from functions.adapters.ecs_launcher import EcsLauncher

        return EcsLauncher(settings)
    from functions.adapters.local_launcher import LocalProcessLauncher

    return LocalProcessLauncher(settings)
