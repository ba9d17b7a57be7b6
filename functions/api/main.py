"""Run the API locally under uvicorn: `python -m functions.api.main`."""

from __future__ import annotations

import uvicorn

from functions.api.app import create_app
from functions.core.config import get_settings


def main() -> None:
    settings = get_settings()
    uvicorn.run(
        create_app(settings),
        host=settings.api_host,
        port=settings.api_port,
        root_path=settings.api_base_path,
    )


if __name__ == "__main__":
    main()
