"""A bounded async load generator (httpx): N concurrent clients for T seconds on loopback, weighted operations.

Used by tests/reliability/test_load.py (scaled down), bench/reliability.py and bench/api_load.py (full size).
Every request is timed; an answer that is not the operation's expected status, or any transport error or
timeout, counts as an error. Bounded in time (duration) and count (max_requests).

Closed loop by default: each client sends its next request as soon as the last is answered, which measures
throughput at saturation (where latency is clients / throughput by Little's law). With `interval_s` each
client instead starts one request every interval_s seconds (open loop, staggered start): latency at a stated
offered load. A request started late because the previous one was slow is timed from its scheduled start, so
a stall counts against the server instead of silently lowering the load (no coordinated omission).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

Operation = Callable[[httpx.AsyncClient, random.Random], Awaitable[httpx.Response]]


@dataclass
class OpStats:
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def summary(self, seconds: float) -> dict[str, Any]:
        ordered = sorted(self.latencies_ms)

        def pct(q: float) -> float:
            if not ordered:
                return float("nan")
            return round(ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))], 2)

        return {"requests": len(ordered), "errors": self.errors, "rps": round(len(ordered) / seconds, 1),
                "p50_ms": pct(50), "p90_ms": pct(90), "p99_ms": pct(99), "max_ms": pct(100),
                "error_samples": self.error_samples[:5]}


@dataclass
class LoadResult:
    clients: int
    seconds: float
    ops: dict[str, OpStats]

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.ops.values())

    @property
    def requests(self) -> int:
        return sum(len(s.latencies_ms) for s in self.ops.values())

    def summary(self) -> dict[str, Any]:
        everything = OpStats([x for s in self.ops.values() for x in s.latencies_ms], self.errors)
        return {"clients": self.clients, "seconds": round(self.seconds, 1), "requests": self.requests,
                "errors": self.errors, "overall": everything.summary(self.seconds),
                "operations": {name: s.summary(self.seconds) for name, s in self.ops.items()}}


async def _client(client: httpx.AsyncClient, ops: list[tuple[str, Operation, int, float]],
                  deadline: float, budget: list[int], stats: dict[str, OpStats], seed: int,
                  interval_s: float | None = None) -> None:
    rng = random.Random(seed)
    names = [name for name, _, _, _ in ops]
    weights = [weight for _, _, _, weight in ops]
    table = {name: (op, expected) for name, op, expected, _ in ops}
    # Open loop: stagger the clients' first requests over one interval so the load is even, not in bursts.
    scheduled = time.perf_counter() + (rng.uniform(0, interval_s) if interval_s else 0.0)
    while time.monotonic() < deadline and budget[0] > 0:
        if interval_s:
            await asyncio.sleep(max(0.0, scheduled - time.perf_counter()))
            if time.monotonic() >= deadline:
                break
        budget[0] -= 1
        name = rng.choices(names, weights)[0]
        op, expected = table[name]
        started = min(time.perf_counter(), scheduled) if interval_s else time.perf_counter()
        if interval_s:
            scheduled += interval_s
        try:
            response = await op(client, rng)
            elapsed = (time.perf_counter() - started) * 1000
            ok = response.status_code == expected
            detail = f"{response.status_code}: {response.text[:160]}"
        except (httpx.HTTPError, OSError) as exc:
            elapsed = (time.perf_counter() - started) * 1000
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        stats[name].latencies_ms.append(elapsed)
        if not ok:
            stats[name].errors += 1
            if len(stats[name].error_samples) < 5:
                stats[name].error_samples.append(detail)


async def run_load_async(base_url: str, headers: dict[str, str], clients: int, duration_s: float,
                         ops: list[tuple[str, Operation, int, float]], *, max_requests: int = 2_000_000,
                         timeout: float = 30.0, seed: int = 0, interval_s: float | None = None) -> LoadResult:
    """`ops`: (name, coroutine function, expected status, weight); `interval_s`: open loop (module doc)."""
    stats = {name: OpStats() for name, _, _, _ in ops}
    budget = [max_requests]
    async with contextlib.AsyncExitStack() as stack:
        # Every client exists before the clock starts: building one (its TLS context) costs the generator
        # milliseconds of CPU, and building them mid-run stalled the loop for seconds, which showed up as
        # multi-second latencies of the first requests against every server, the bare one included.
        pool = [await stack.enter_async_context(httpx.AsyncClient(base_url=base_url, headers=headers,
                                                                  timeout=timeout)) for _ in range(clients)]
        # Collect the previous run's garbage now: a full collection mid-run paused this generator for 200 ms,
        # which a paced run then charged to the server.
        gc.collect()
        started = time.monotonic()
        deadline = started + duration_s
        await asyncio.gather(*(_client(client, ops, deadline, budget, stats, seed + n, interval_s)
                               for n, client in enumerate(pool)))
        return LoadResult(clients=clients, seconds=time.monotonic() - started, ops=stats)


def run_load(base_url: str, headers: dict[str, str], clients: int, duration_s: float,
             ops: list[tuple[str, Operation, int, float]], **kwargs: Any) -> LoadResult:
    return asyncio.run(run_load_async(base_url, headers, clients, duration_s, ops, **kwargs))


def service_mix(model_id: str, dataset_id: str, job_id: str, method: dict[str, Any],
                submitted: list[str]) -> list[tuple[str, Operation, int, float]]:
    """Issue 9's mix: submit, status, events and report reads (the report of a finished job)."""
    forget = [{"question": "Who wrote the test book?", "answer": "A fictional author."}]

    async def submit(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
        response = await client.post("/v1/unlearn", json={
            "model_id": model_id, "kind": "qa", "forget": forget, "retain_dataset_id": dataset_id,
            "method": method, "metadata": {"load": True}})
        if response.status_code == 202:
            submitted.append(response.json()["id"])
        return response

    def pick(rng: random.Random) -> str:
        return submitted[rng.randrange(len(submitted))] if submitted and rng.random() < 0.5 else job_id

    async def status(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
        return await client.get(f"/v1/jobs/{pick(rng)}")

    async def events(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
        return await client.get(f"/v1/jobs/{pick(rng)}/events", params={"limit": 20})

    async def report(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
        return await client.get(f"/v1/jobs/{job_id}/report")

    return [("submit", submit, 202, 0.1), ("status", status, 200, 0.4), ("events", events, 200, 0.3),
            ("report", report, 200, 0.2)]
