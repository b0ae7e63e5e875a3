"""Smoke test of the API load benchmark: the real script, scaled down (5 clients, 1 s per run, one round), on
the test Postgres and Redis, so that bench/api_load.py and its bare app cannot rot. It checks that every
endpoint was measured without errors and the summary is complete, not any speed."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_api_load_benchmark_runs_every_endpoint(postgres_url: str, redis_url: str, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIN_TEST_DATABASE_URL", postgres_url)
    monkeypatch.setenv("GRIN_TEST_REDIS_URL", redis_url)
    spec = importlib.util.spec_from_file_location("bench_api_load", REPO_ROOT / "bench" / "api_load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)

    summary = module.main(["--clients", "5", "--seconds", "1", "--repeats", "1", "--interval", "0.5",
                           "--out", str(tmp_path / "api_load.json")])

    endpoints = {"bare GET /bare", "GET /v1/jobs/{id}", "bare POST /bare-write", "POST /v1/unlearn"}
    assert set(summary["results"]) == set(summary["paced"]["results"]) == endpoints
    for results in (summary["results"], summary["paced"]["results"]):
        for name, figures in results.items():
            assert figures["errors"] == 0, (name, summary["runs"])
            assert figures["requests"] > 0 and figures["p50_ms"] <= figures["p99_ms"], (name, figures)
    assert summary["share_of_bare"]["bare GET /bare"] == 1.0
    assert set(summary["met"]) == {"GET /v1/jobs/{id}", "POST /v1/unlearn"}  # the references set no goal
    assert (tmp_path / "api_load.json").exists()
