"""API load benchmark (issue 6): p50/p99 latency and throughput of `POST /v1/unlearn` and `GET /v1/jobs/{id}` at
100 concurrent clients on loopback, next to a bare FastAPI endpoint measured in the same run.

    .venv/bin/python bench/api_load.py [--clients 100] [--seconds 20] [--repeats 3] [--interval 1.0]
                                       [--out bench/results/api_load.json] [--baseline-tree DIR]

A real uvicorn (one process, as `make run` starts it) on a fresh database of the Postgres at
GRIN_TEST_DATABASE_URL's server and the Redis at GRIN_TEST_REDIS_URL (a queue of its own that nobody consumes,
deleted afterwards); the bare app runs in a second uvicorn with the same flags. The load generator is
tests/reliability/load.py (async httpx, bounded in time and request count). Goal: p99 <= 50 ms and >= 50% of
the bare endpoint's throughput. The generator shares the machine's cores with the server: on a 2-core VM the
figures are a floor. The bare app also measures `POST /bare-write` (the same body stored in one row and
committed, on the same Postgres): what a single durable write costs here, the floor under any submission.

Each operation is measured twice with the same 100 clients: closed loop (every client sends its next request
as soon as it has an answer: throughput at saturation, where the median latency is clients / throughput) and
paced (every client starts one request every --interval seconds, timed from its scheduled start: latency at
that offered load, the way clients that poll a job actually behave).

With --baseline-tree, an API from another checkout runs next to this one on the same database and is measured
in the same rounds: a before/after comparison that a slow minute of the VM cannot bias. The two trees must
share the ledger's schema (no migration between them).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

import httpx  # noqa: E402

from tests.processes import api_args, free_port, running, scratch_database, service_env, wait_http  # noqa: E402
from tests.reliability.load import run_load  # noqa: E402

FORGET = [{"question": "Who wrote the test book?", "answer": "A fictional author."}]
GOAL_P99_MS = 50.0
GOAL_SHARE = 0.5


def _medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each figure's median over the rounds (errors: the total)."""
    figures = ("rps", "p50_ms", "p90_ms", "p99_ms", "max_ms")
    return {"requests": sum(r["requests"] for r in runs), "errors": sum(r["errors"] for r in runs),
            **{f: round(statistics.median(r[f] for r in runs), 2) for f in figures}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0, help="per run")
    parser.add_argument("--repeats", type=int, default=3, help="rounds; the summary holds each figure's median")
    parser.add_argument("--interval", type=float, default=1.0,
                        help="paced phase: seconds between one client's requests (offered load = clients / interval)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results" / "api_load.json")
    parser.add_argument("--baseline-tree", type=Path, default=None,
                        help="another checkout (e.g. `git worktree add /tmp/base <commit>`): its API runs next to this "
                             "one on the same database, and its POST /v1/unlearn and GET /v1/jobs/{id} are measured in "
                             "the same interleaved rounds (a before/after comparison)")
    args = parser.parse_args(argv)

    import tempfile

    import redis

    from app.auth import service as auth
    from app.core.config import Settings
    from app.core.db import migrate, open_session

    database = contextlib.ExitStack()  # drops the scratch database at the end
    database_url = database.enter_context(scratch_database(
        os.environ.get("GRIN_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/grin_test"),
        "grin_bench"))
    redis_url = os.environ.get("GRIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    queue = f"gpu-bench-{uuid.uuid4().hex[:8]}"
    tmp = Path(tempfile.mkdtemp(prefix="grin-api-load-"))
    model_root = tmp / "models"
    model = model_root / "tiny"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    (model / "model.safetensors").write_bytes(b"\x00" * 64)
    settings = Settings(data_dir=tmp / "data", database_url=database_url, broker_url=redis_url,
                        model_roots=[model_root], gpu_queue=queue)
    try:
        migrate(settings)
        with open_session(settings) as session:
            tenant = auth.create_tenant(session, "bench")
            key = auth.issue_key(session, tenant, "bench").secret
            session.commit()
        env = service_env({"GRIN_DATA_DIR": str(settings.data_dir), "GRIN_DATABASE_URL": database_url,
                           "GRIN_BROKER_URL": redis_url, "GRIN_MODEL_ROOTS": str(model_root), "GRIN_GPU_QUEUE": queue,
                           "GRIN_MAX_JOBS_IN_FLIGHT_PER_TENANT": "100000000",
                           **{k: v for k, v in os.environ.items() if k.startswith("GRIN_API_")}})
        api_port, bare_port, baseline_port = free_port(), free_port(), free_port()
        bare_args = [*api_args(bare_port)[:1], "bare_app:app", "--app-dir", str(REPO_ROOT / "bench"),
                     *api_args(bare_port)[2:]]
        with contextlib.ExitStack() as servers:
            servers.enter_context(running(api_args(api_port), env, tmp / "api.log"))
            servers.enter_context(running(bare_args, {**env, "BARE_DATABASE_URL": database_url}, tmp / "bare.log"))
            api, bare = f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{bare_port}"
            baseline = None
            if args.baseline_tree is not None:
                tree = str(args.baseline_tree.resolve())
                servers.enter_context(running([*api_args(baseline_port)[:2], "--app-dir", tree,
                                               *api_args(baseline_port)[2:]], {**env, "PYTHONPATH": tree},
                                              tmp / "baseline.log"))
                baseline = f"http://127.0.0.1:{baseline_port}"
                wait_http(f"{baseline}/readyz", timeout=90)
            wait_http(f"{api}/readyz", timeout=90)
            wait_http(f"{bare}/bare", timeout=90)
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=api, headers=headers, timeout=30) as c:
                model_id = c.post("/v1/models", json={"name": "tiny", "path": str(model)}).json()["id"]
                body = {"model_id": model_id, "kind": "qa", "forget": FORGET}
                job_ids = [c.post("/v1/unlearn", json=body).json()["id"] for _ in range(20)]

            async def submit(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
                return await client.post("/v1/unlearn", json={"model_id": model_id, "kind": "qa", "forget": FORGET})

            async def status(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
                return await client.get(f"/v1/jobs/{rng.choice(job_ids)}")

            async def plain(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
                return await client.get("/bare")

            async def durable_write(client: httpx.AsyncClient, rng: random.Random) -> httpx.Response:
                return await client.post("/bare-write", json={"model_id": model_id, "kind": "qa", "forget": FORGET})

            operations: tuple[tuple[str, str, Any, int], ...] = (
                ("bare GET /bare", bare, plain, 200), ("GET /v1/jobs/{id}", api, status, 200),
                ("bare POST /bare-write", bare, durable_write, 202), ("POST /v1/unlearn", api, submit, 202))
            if baseline is not None:
                operations += (("baseline GET /v1/jobs/{id}", baseline, status, 200),
                               ("baseline POST /v1/unlearn", baseline, submit, 202))
            for name, base, op, expected in operations:
                run_load(base, headers, min(args.clients, 10), 2, [(name, op, expected, 1.0)])  # warm-up
            closed_runs: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in operations}
            paced_runs: dict[str, list[dict[str, Any]]] = {name: [] for name, *_ in operations}
            # Rounds interleave the three servers' runs, so a slow minute of the shared VM hits all of them.
            for round_ in range(args.repeats):
                for name, base, op, expected in operations:
                    mix = [(name, op, expected, 1.0)]
                    closed = run_load(base, headers, args.clients, args.seconds, mix).summary()["operations"][name]
                    paced = run_load(base, headers, args.clients, args.seconds, mix,
                                     interval_s=args.interval).summary()["operations"][name]
                    closed_runs[name].append(closed)
                    paced_runs[name].append(paced)
                    print(f"round {round_} {name:22s} closed {json.dumps(closed)}\n"
                          f"round {round_} {name:22s} paced  {json.dumps(paced)}", flush=True)
    finally:
        client = redis.Redis.from_url(redis_url)
        client.delete(queue)
        client.close()
        database.close()
    results = {name: _medians(runs) for name, runs in closed_runs.items()}
    paced_results = {name: _medians(runs) for name, runs in paced_runs.items()}
    bare_rps = results["bare GET /bare"]["rps"]
    summary = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "clients": args.clients, "seconds_per_run": args.seconds, "rounds": args.repeats,
        "results": results, "runs": closed_runs,
        "paced": {"interval_s": args.interval, "offered_rps": round(args.clients / args.interval, 1),
                  "results": paced_results, "runs": paced_runs},
        "goal": {"p99_ms": GOAL_P99_MS, "share_of_bare_rps": GOAL_SHARE},
        "share_of_bare": {name: round(r["rps"] / bare_rps, 3) for name, r in results.items()},
        "met": {name: bool(r["p99_ms"] <= GOAL_P99_MS and r["rps"] >= GOAL_SHARE * bare_rps)
                for name, r in results.items() if not name.startswith(("bare", "baseline"))},
        "p99_met_when_paced": {name: bool(r["p99_ms"] <= GOAL_P99_MS) for name, r in paced_results.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("share_of_bare", "met", "p99_met_when_paced")}))
    return summary


if __name__ == "__main__":
    main()
