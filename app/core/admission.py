"""Admission control: at most `api_max_concurrent_requests` requests run at once; the rest wait their turn on the
event loop, where waiting costs nothing.

Why: the routes are synchronous (SQLAlchemy sessions) and each request hops to the thread pool several times
(its dependencies, the endpoint, the session's close), holding its pooled database connection between hops.
Unbounded, 100 clients filled both pools crosswise: requests holding connections queued for a thread while
every thread waited for a connection, until `pool_timeout` answered 503s (issue 6: 17 req/s and 20% errors on
`GET /v1/jobs/{id}`). With fewer requests admitted than there are connections or threads, neither wait happens.

Exempt: the health probes (a load balancer must see a live process) and server-sent-event streams, which stay
open for a job's whole life and hold no connection while they wait (each poll opens its own short session).
"""

from __future__ import annotations

import asyncio

import anyio.to_thread
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from app.core.deps import settings_of_app
from app.core.problems import problem_response

EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
SSE_MEDIA_TYPE = "text/event-stream"
# Thread-pool headroom over the admitted requests: event-stream polls and startup work run there too.
THREAD_HEADROOM = 20


def exempt(scope: Scope) -> bool:
    return scope["path"] in EXEMPT_PATHS or SSE_MEDIA_TYPE in Headers(scope=scope).get("accept", "")


class AdmissionMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._slots: asyncio.Semaphore | None = None

    def _admission(self, limit: int) -> asyncio.Semaphore:
        if self._slots is None:  # created on the first request, inside the server's event loop
            self._slots = asyncio.Semaphore(limit)
            limiter = anyio.to_thread.current_default_thread_limiter()
            limiter.total_tokens = max(limiter.total_tokens, limit + THREAD_HEADROOM)
        return self._slots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or exempt(scope):
            await self.app(scope, receive, send)
            return
        settings = settings_of_app(scope)
        slots = self._admission(settings.api_max_concurrent_requests)
        try:
            async with asyncio.timeout(settings.api_queue_timeout_s):
                await slots.acquire()
        except TimeoutError:
            response = problem_response(503, "Service Unavailable", "the API is at capacity; retry later",
                                        instance=scope["path"], headers={"Retry-After": "1"})
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            slots.release()
