"""Run the API locally under uvicorn: `python -m functions.api.main`."""

from __future__ import annotations

import uvicorn

from functions.api.app import create_app
from functions.core.config import get_settings
from functions.logs import configure_logging


def main() -> None:
    settings = get_settings()
    configure_logging("api")
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        root_path=settings.api_base_path,
        log_config=None,  # uvicorn's own records go through the JSON formatter too
    )


if __name__ == "__main__":
    main()
