"""Request size limit on the raw body of every route, before any parsing.

Declared sizes (Content-Length) are refused before the app runs; streamed bodies (chunked, or a lying
header) are counted as they arrive and refused the moment they cross the limit, so a client cannot make
the service buffer more than the limit. Dataset uploads get their own, larger limit.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.deps import settings_of_app
from app.core.problems import problem_response

UPLOAD_ROUTES: frozenset[tuple[str, str]] = frozenset({("POST", "/v1/datasets")})


class RequestTooLarge(HTTPException):
    """An HTTPException so FastAPI's body parsing re-raises it as is and the problem handler answers 413."""

    def __init__(self, limit: int, setting: str) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes (GRIN_{setting.upper()})")


class RequestSizeLimitMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        settings = settings_of_app(scope)
        if (scope["method"], scope["path"].rstrip("/")) in UPLOAD_ROUTES:
            limit, setting = settings.max_upload_bytes, "max_upload_bytes"
        else:
            limit, setting = settings.max_request_bytes, "max_request_bytes"
        too_large = RequestTooLarge(limit, setting)

        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _answer(too_large, scope, receive, send)
            return

        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except RequestTooLarge as exc:
            # Raised where no handler saw it (e.g. while a streaming response was reading the body).
            if response_started:
                raise
            await _answer(exc, scope, receive, send)


async def _answer(exc: RequestTooLarge, scope: Scope, receive: Receive, send: Send) -> None:
    response = problem_response(413, "Content Too Large", str(exc.detail), instance=scope["path"],
                                headers={"Connection": "close"})
    await response(scope, receive, send)
