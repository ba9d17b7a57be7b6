"""GET /: the web UI (static files in functions/api/static, served by the API itself)."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

STATIC = Path(__file__).resolve().parents[1] / "static"
_INDEX = (STATIC / "index.html").read_text(encoding="utf-8")

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    # The page's URLs are relative to <base>: the app's root path (an API Gateway stage).
    base = request.scope.get("root_path", "").rstrip("/") + "/"
    return HTMLResponse(_INDEX.replace("__BASE__", html.escape(base, quote=True)))
