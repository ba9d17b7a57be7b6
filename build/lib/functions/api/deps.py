"""FastAPI dependencies over the process's Services (functions/services.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import APIKeyHeader

from functions.api.observability import Metrics
from functions.core.auth import tenant_from_claims
from functions.core.config import Settings
from functions.core.ports import JobLauncher, ObjectStore, Tracking
from functions.core.serving import ServingRegistry
from functions.core.tenancy import NO_TENANT, Tenant, scoped
from functions.logs import bind
from functions.services import Services


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


async def get_launcher(request: Request) -> JobLauncher:
    return _services_of(request).launcher


async def get_registry(request: Request) -> ServingRegistry:
    return _services_of(request).registry


async def get_metrics(request: Request) -> Metrics:
    metrics: Metrics = request.app.state.metrics
    return metrics


async def get_request_id(request: Request) -> str:
    return str(request.scope.get("state", {}).get("request_id", ""))


API_KEY = APIKeyHeader(name="x-api-key", auto_error=False, description="CC_AUTH=api_key")


def _authorizer_claims(request: Request) -> dict[str, object] | None:
    """The claims API Gateway's JWT (HTTP API) or Cognito (REST API) authorizer verified.
    Only Mangum's event carries them, so no header sent to a bare server can fake them."""
    event = request.scope.get("aws.event") or {}
    authorizer = event.get("requestContext", {}).get("authorizer") or {}
    claims = (authorizer.get("jwt") or {}).get("claims") or authorizer.get("claims")
    return claims if isinstance(claims, dict) else None


async def get_tenant(request: Request, key: Annotated[str | None, Security(API_KEY)]) -> Tenant:
    """Whose request this is (401 when it cannot be told); NO_TENANT with CC_AUTH=off."""
    services = _services_of(request)
    settings = services.settings
    if settings.auth == "off":
        return NO_TENANT
    if settings.auth == "jwt":
        tenant = tenant_from_claims(_authorizer_claims(request), settings.jwt_tenant_claim)
        bind(tenant=tenant)
        return Tenant(tenant)
    authenticator = services.authenticator
    record = await run_in_threadpool(authenticator.authenticate, key)  # S3 on a cache miss
    bind(tenant=record.tenant, key_id=record.key_id)
    return Tenant(record.tenant)


async def get_tracking(
    request: Request, tenant: Annotated[Tenant, Depends(get_tenant)]
) -> Tracking:
    """MLflow as the caller's tenant sees it: other tenants' runs do not exist."""
    return scoped(_services_of(request).tracking, tenant)


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
TrackingDep = Annotated[Tracking, Depends(get_tracking)]
TenantDep = Annotated[Tenant, Depends(get_tenant)]
LauncherDep = Annotated[JobLauncher, Depends(get_launcher)]
RegistryDep = Annotated[ServingRegistry, Depends(get_registry)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
RequestIdDep = Annotated[str, Depends(get_request_id)]
ServicesDep = Annotated[Services, Depends(_services)]
