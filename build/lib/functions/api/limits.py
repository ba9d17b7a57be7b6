"""Refuse request bodies above CC_MAX_REQUEST_BYTES before reading or parsing them: a
declared Content-Length is judged at once; a streamed body is counted as it arrives."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException

from functions.api.errors import error_response

TOO_LARGE = "the request body is larger than {} bytes"


class BodyLimit:
    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(scope, receive, send)
            return
        seen = 0

        async def counting_receive() -> dict[str, Any]:
            nonlocal seen
            message: dict[str, Any] = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:  # the error handlers answer it in the envelope
                raise HTTPException(413, TOO_LARGE.format(self.max_bytes))
            return message

        await self.app(scope, counting_receive, send)

    async def _refuse(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        response = error_response(413, TOO_LARGE.format(self.max_bytes))
        await response(scope, receive, send)
