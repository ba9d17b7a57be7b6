"""Dependencies: settings and adapters, built lazily once per process and injectable in tests."""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Request

from functions.core.config import Settings
from functions.core.ports import JobLauncher, ObjectStore, Tracking
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
    ) -> None:
        self.settings = settings
        self._store = store
        self._tracking = tracking
        self._launcher = launcher
        self._registry = registry
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

    def registry_if_loaded(self) -> ServingRegistry | None:
        return self._registry


def build_launcher(settings: Settings) -> JobLauncher:
    if settings.launcher == "local":
        from functions.adapters.local_launcher import LocalProcessLauncher

        return LocalProcessLauncher(settings)
    raise ValueError(f"unknown launcher {settings.launcher!r} (CC_LAUNCHER); known: local")


def _services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# Dependencies are async so FastAPI calls them on the event loop: a sync one would cost a
# thread hop per request. Adapters are built once per process, on first use.
async def _services(request: Request) -> Services:
    return _services_of(request)


async def get_settings(request: Request) -> Settings:
    return _services_of(request).settings


async def get_store(request: Request) -> ObjectStore:
    return _services_of(request).store


async def get_tracking(request: Request) -> Tracking:
    return _services_of(request).tracking


async def get_launcher(request: Request) -> JobLauncher:
    return _services_of(request).launcher


async def get_registry(request: Request) -> ServingRegistry:
    return _services_of(request).registry


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
TrackingDep = Annotated[Tracking, Depends(get_tracking)]
LauncherDep = Annotated[JobLauncher, Depends(get_launcher)]
RegistryDep = Annotated[ServingRegistry, Depends(get_registry)]
ServicesDep = Annotated[Services, Depends(_services)]
