"""The Lambda entrypoint: the FastAPI app behind API Gateway, through Mangum."""

from __future__ import annotations

from mangum import Mangum

from functions.api.app import create_app, with_root_path
from functions.core.config import Settings, get_settings
from functions.logs import configure_logging


def build_handler(settings: Settings) -> Mangum:
    # lifespan="off": nothing heavy runs per invocation; adapters load on first use.
    base = settings.api_base_path.rstrip("/")
    app = create_app(settings)
    return Mangum(
        with_root_path(app, base) if base else app,
        lifespan="off",
        api_gateway_base_path=base or "/",
    )


configure_logging("api")
handler = build_handler(get_settings())
