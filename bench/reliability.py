"""Reliability figures (issue 9): run tests/reliability at full size and write them into docs/RELIABILITY.md.

    .venv/bin/python bench/reliability.py            # full size: 20 SIGKILLs, 5000 fuzz cases, 200 clients x 60 s,
                                                     # 100-job soak, 200 MiB streamed upload (about 30 min on 2 cores)
    .venv/bin/python bench/reliability.py --scaled   # the sizes `pytest tests/reliability` runs (a few minutes)
    .venv/bin/python bench/reliability.py -k sigkill # any pytest selection

Every fault test writes its figures (cases tried, faults injected, lost, duplicated, p99, RSS per job) to
bench/results/reliability/<name>.json; this script runs pytest with GRIN_RELIABILITY_FULL=1 and
GRIN_RELIABILITY_RESULTS set, then renders the table between the `figures` markers of docs/RELIABILITY.md.
Needs what `make test` needs (Postgres and Redis on loopback for the fixtures that use the shared servers; the
fault tests start private ones), and root (private Postgres clusters run as the `postgres` user; tmpfs mounts).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
RESULTS = REPO_ROOT / "bench" / "results" / "reliability"
DOC = REPO_ROOT / "docs" / "RELIABILITY.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


FALLBACK: list[Path] = []  # --fallback: folders of earlier (e.g. scaled) results for figures this run lacks


def _load(name: str) -> dict[str, Any] | None:
    for folder in (RESULTS, *FALLBACK):
        path = folder / f"{name}.json"
        if path.exists():
            return json.loads(path.read_text())
    return None


def _short(error: str) -> str:
    return error.split(": '", 1)[0]


def _size(figures: dict[str, Any]) -> str:
    return "" if figures.get("full_size") else " (scaled-down run)"


def _ops_table(load: dict[str, Any]) -> list[str]:
    rows = ["| operation | requests | errors | req/s | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|---|---|"]
    for name, op in [("all", load["overall"]), *load["operations"].items()]:
        rows.append(f"| {name} | {op['requests']} | {op['errors']} | {op['rps']} | {op['p50_ms']} | {op['p99_ms']} "
                    f"| {op['max_ms']} |")
    return rows


def render(meta: dict[str, Any]) -> str:
    lines = [START, "", f"Run {meta['generated_at']} on {meta['machine']}: `{meta['command']}` "
             f"({'full size' if meta['full'] else 'scaled-down test sizes'}), pytest exit {meta['exit_code']}, "
             f"{meta['seconds']:.0f} s.", ""]
    lines += ["| promise | tried / injected | lost | duplicated | other figures |", "|---|---|---|---|---|"]
    if s := _load("sigkill"):
        lines.append(f"| SIGKILL during fine-tune{_size(s)} | {s['kills']} kills ({s['child_kills']} job child, "
                     f"{s['whole_worker_kills']} whole worker) over {s['jobs']} jobs | {s['lost']} | "
                     f"{s['promoted_twice']} promoted twice | {s['succeeded']} succeeded ({s['resumed']} resumed), "
                     f"{s['failed']} failed after 3 attempts, {s['orphaned_leases']} orphaned leases |")
    if r := _load("redis_restart"):
        lines.append(f"| Redis killed and restarted (empty) | 1 outage, {r['jobs']} jobs ({r['queued_during_outage']} "
                     f"queued or submitted during it) | {r['lost']} | {r['duplicated']} | {r['reads']} reads, "
                     f"{r['read_errors']} errors, {r['reads_during_outage']} during the outage, max "
                     f"{r['max_read_latency_s']} s |")
    if p := _load("postgres_restart"):
        lines.append(f"| Postgres crash-stopped and restarted | 1 outage under reads + a running job | 0 | 0 | "
                     f"{p['reads_during_outage']} reads during it: all 503 problem+json, max "
                     f"{p['max_latency_during_outage_s']} s (no hang); ready again {p['recovered_after_s']} s after "
                     f"restart; job {p['job_status']} (attempts {p['job_attempts']}); half-written rows "
                     f"{p['half_written']} |")
    for fault in ("full", "readonly"):
        if f := _load(f"store_{fault}"):
            lines.append(f"| artifact store {'full (ENOSPC)' if fault == 'full' else 'read-only'} at checkpoint save "
                         f"{_size(f)} | 1 job | 0 | 0 | {f['job_status']}: `{_short(f['error'])}` (and the path); "
                         "previous version kept current; "
                         f"{f['partial_blobs']} partial blobs |")
    if z := _load("schemathesis"):
        lines.append(f"| schemathesis (positive + negative) | {z['sent']} cases over {z['operations']} operations | "
                     f"- | - | {z['server_errors']} 5xx, {z['non_problem_errors']} errors not problem+json; "
                     f"statuses {z['statuses']} |")
    if i := _load("isolation_matrix"):
        lines.append(f"| tenant isolation matrix | {i['checks']} cross-tenant requests over "
                     f"{len(i['operations'])} operations | - | - | {i['cross_tenant_404']} answered 404, "
                     f"{i['leaks']} leaks |")
    if c := _load("path_confinement"):
        lines.append(f"| model path confinement | {c['refused']} hostile paths | - | - | "
                     f"{c['accepted_escapes']} accepted |")
    if u := _load("streamed_upload"):
        lines.append(f"| streamed upload memory | {u['upload_mib']} MiB JSON Lines | - | - | uvicorn RSS "
                     f"{u['rss_before_mib']} -> peak {u['rss_peak_mib']} MiB (+{u['growth_mib']} MiB) |")
    if s := _load("soak"):
        lines.append(f"| soak{_size(s)} | {s['jobs']} queued jobs | 0 | 0 | all succeeded in {s['seconds']} s "
                     f"({s['jobs_per_minute']} jobs/min), {s['queue_depth_at_end']} stale messages at the end, "
                     f"drained in {s['drain_s']} s, {s['sweep_resends']} sweep re-sends; worker parent "
                     f"RSS growth {s['parent_growth_mib']} MiB, job child peak RSS growth "
                     f"{s['child_peak_growth_mib']} MiB |")
    seen: set[int] = set()
    for folder in (RESULTS, *FALLBACK):  # the full-size load and, when given, the scaled one next to it
        path = folder / "load.json"
        if not path.exists():
            continue
        load = json.loads(path.read_text())
        if load["clients"] in seen:
            continue
        seen.add(load["clients"])
        lines += ["", f"Load{_size(load)}: {load['clients']} concurrent clients for {load['seconds']} s on loopback "
                  f"while the worker ran jobs: {load['requests']} requests, {load['errors']} errors, overall p99 "
                  f"{load['overall']['p99_ms']} ms.", ""]
        lines += _ops_table(load)
    if s := _load("soak"):
        lines += ["", f"Soak{_size(s)}, RSS per job (MiB, in finishing order): worker parent "
                  f"{s['parent_rss_mib_per_job']}; job child peak {s['child_peak_rss_mib_per_job']}."]
    lines += ["", END]
    return "\n".join(lines)


def _write_doc(meta: dict[str, Any]) -> None:
    text = DOC.read_text() if DOC.exists() else ""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        tail = rest.split(END, 1)[1]
        DOC.write_text(head + render(meta) + tail)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scaled", action="store_true", help="the test suite's sizes instead of the full ones")
    parser.add_argument("-k", default=None, help="pytest -k selection")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/RELIABILITY.md")
    parser.add_argument("--render-only", action="store_true", help="rewrite the figures from the stored results")
    parser.add_argument("--fallback", type=Path, action="append", default=[],
                        help="with --render-only: a folder of earlier results for figures this run lacks")
    args = parser.parse_args(argv)
    FALLBACK.extend(args.fallback)
    if args.render_only:
        meta = json.loads((RESULTS / "_run.json").read_text()) if (RESULTS / "_run.json").exists() else {
            "generated_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seconds": float("nan"),
            "exit_code": "n/a (partial run)", "full": True, "machine": f"{os.cpu_count()} cores",
            "command": "bench/reliability.py --render-only"}
        _write_doc(meta)
        return 0
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.k is None:
        for old in RESULTS.glob("*.json"):
            old.unlink()
    env = {**os.environ, "GRIN_RELIABILITY_RESULTS": str(RESULTS), "GRIN_RELIABILITY_FULL": "" if args.scaled else "1"}
    # The long soak last, so a run cut short still has every other figure.
    files = sorted(str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / "tests" / "reliability").glob("test_*.py"))
    files = [f for f in files if not f.endswith("test_soak.py")] + ["tests/reliability/test_soak.py"]
    command = [sys.executable, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider", "-s",
               "--timeout", "3600", *(["-k", args.k] if args.k else [])]
    started = time.monotonic()
    code = subprocess.run(command, cwd=REPO_ROOT, env=env, check=False).returncode
    seconds = time.monotonic() - started
    meta = {"generated_at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "seconds": seconds,
            "exit_code": code, "full": not args.scaled,
            "machine": f"{os.cpu_count()} cores, {os.uname().machine}",
            "command": " ".join(["bench/reliability.py", *(["--scaled"] if args.scaled else []),
                                 *(["-k", args.k] if args.k else [])])}
    (RESULTS / "_run.json").write_text(json.dumps(meta, indent=2))
    if not args.no_doc:
        _write_doc(meta)
    print(f"pytest exit {code} in {seconds:.0f} s; figures in {RESULTS}")
    return code


if __name__ == "__main__":
    raise SystemExit(main())
