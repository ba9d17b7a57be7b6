"""Run the API locally under uvicorn: `python -m functions.api.main`."""

from __future__ import annotations

import uvicorn

from functions.api.app import create_app, with_root_path
from functions.core.config import get_settings
from functions.logs import configure_logging


def main() -> None:
    settings = get_settings()
    configure_logging("api")
    base = settings.api_base_path.rstrip("/")
    app = create_app(settings)
    uvicorn.run(
        # Served under the base path itself, as an API Gateway stage URL is (/prod/...).
        with_root_path(app, base) if base else app,
        host=settings.api_host,
        port=settings.api_port,
        log_config=None,  # uvicorn's own records go through the JSON formatter too
        # Longer than clients' and load balancers' idle pools (ALB: 60 s), so the server
        # never closes a kept-alive connection a client is about to reuse.
        timeout_keep_alive=65,
    )


if __name__ == "__main__":
    main()
