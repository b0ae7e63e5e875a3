"""Admission control (app/core/admission.py) on a bare ASGI app: the limit holds, waiting is bounded by a 503,
health probes and event streams pass untouched, and the thread pool is sized above the limit."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import anyio.to_thread
import pytest

from app.core.admission import AdmissionMiddleware
from app.core.config import Settings, get_settings


def _scope(settings: Settings, path: str = "/v1/jobs", accept: str = "application/json") -> dict[str, Any]:
    app = SimpleNamespace(dependency_overrides={get_settings: lambda: settings})
    return {"type": "http", "method": "GET", "path": path, "app": app, "headers": [(b"accept", accept.encode())]}


class _Held:
    """An ASGI app whose requests stay inside until released; counts how many are inside at once."""

    def __init__(self) -> None:
        self.inside = 0
        self.most_inside = 0
        self.release = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        await self.release.wait()
        self.inside -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def _call(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def test_at_most_the_limit_run_and_the_rest_wait_their_turn(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, api_max_concurrent_requests=3, api_queue_timeout_s=10)

    async def scenario() -> tuple[int, list[int]]:
        held = _Held()
        app = AdmissionMiddleware(held)
        calls = [asyncio.create_task(_call(app, _scope(settings))) for _ in range(8)]
        await asyncio.sleep(0.05)
        assert held.inside == 3  # five wait on the event loop
        held.release.set()
        answers = await asyncio.gather(*calls)
        return held.most_inside, [a[0]["status"] for a in answers]

    most_inside, statuses = asyncio.run(scenario())
    assert most_inside == 3 and statuses == [200] * 8


def test_a_request_that_waits_too_long_gets_a_503_problem(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, api_max_concurrent_requests=1, api_queue_timeout_s=0.1)

    async def scenario() -> list[dict[str, Any]]:
        held = _Held()
        app = AdmissionMiddleware(held)
        first = asyncio.create_task(_call(app, _scope(settings)))
        await asyncio.sleep(0.02)
        refused = await _call(app, _scope(settings))
        held.release.set()
        await first
        return refused

    start, body = asyncio.run(scenario())
    headers = dict(start["headers"])
    assert start["status"] == 503 and headers[b"retry-after"] == b"1"
    assert headers[b"content-type"] == b"application/problem+json"
    assert json.loads(body["body"])["detail"] == "the API is at capacity; retry later"


@pytest.mark.parametrize("path,accept", [("/healthz", "*/*"), ("/readyz", "*/*"),
                                         ("/v1/jobs/x/events", "text/event-stream")])
def test_probes_and_event_streams_are_not_counted(tmp_path: Path, path: str, accept: str) -> None:
    settings = Settings(data_dir=tmp_path, api_max_concurrent_requests=1, api_queue_timeout_s=0.1)

    async def scenario() -> int:
        held = _Held()
        app = AdmissionMiddleware(held)
        calls = [asyncio.create_task(_call(app, _scope(settings, path, accept))) for _ in range(4)]
        await asyncio.sleep(0.05)
        inside = held.inside
        held.release.set()
        await asyncio.gather(*calls)
        return inside

    assert asyncio.run(scenario()) == 4


def test_the_thread_pool_has_room_beyond_the_admitted_requests(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, api_max_concurrent_requests=70)

    async def scenario() -> float:
        held = _Held()
        held.release.set()
        await _call(AdmissionMiddleware(held), _scope(settings))
        return anyio.to_thread.current_default_thread_limiter().total_tokens

    assert asyncio.run(scenario()) >= 70 + 20
