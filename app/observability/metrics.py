"""Prometheus metrics at `GET /metrics` (text exposition format).

- `grin_http_request_duration_seconds{method,route,status}`: histogram per route *template*, observed by
  the middleware in the API process (time to the response's first byte).
- `grin_jobs{state}`: jobs in each state, counted in the ledger at scrape time (every state, zeros too).
- `grin_queue_depth{queue}`: messages waiting on the gpu and cpu queues: LLEN on Redis (all priority
  lists), the number of message files in embedded mode (kombu's filesystem transport).
- `grin_stage_duration_seconds{stage,quantile}` and `grin_stage_duration_samples{stage}`: stage durations
  derived from the ledger's `job_events` (the time between a job entering a stage and its next status
  change) over jobs that ended in the last 24 h. A gauge from the ledger rather than a histogram observed
  by the worker: workers are separate processes (Celery prefork, one child per job), so an in-process
  histogram would need a multiprocess directory shared with the API; the ledger already has the timings.
- `grin_ledger_up` / `grin_broker_up`: 0 when that part of the scrape failed (the rest is still served).
- `grin_submissions_committed_total` / `grin_submission_transactions_total`: jobs this API process committed,
  and the transactions they took (app/jobs/submissions.py groups waiting submissions into one); the ratio of
  their rates is the mean batch size.

`GRIN_METRICS_TOKEN`, when set, must be presented as `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import hmac
import logging
import os
import statistics
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from app.core.config import Settings
from app.core.deps import SettingsDep
from app.core.problems import ProblemError

logger = logging.getLogger("grin.metrics")
STAGE_WINDOW = timedelta(hours=24)
STAGE_WINDOW_MAX_JOBS = 2000
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
REDIS_PRIORITY_SEPARATOR = "\x06\x16"


class MetricsRegistry:
    """The API process's own registry (one per app, so tests can build many apps)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.latency = Histogram("grin_http_request_duration_seconds", "API latency to the first response byte",
                                 ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.latency.labels(method, route, str(status)).observe(seconds)


def new_registry() -> MetricsRegistry:
    return MetricsRegistry()


def queue_depths(settings: Settings) -> dict[str, int]:
    queues = [settings.gpu_queue, settings.cpu_queue]
    if settings.embedded:
        folder = Path(settings.broker_folder) / "queue"
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        return {q: sum(1 for n in names if n.endswith(f".{q}.msg")) for q in queues}
    import redis

    client = redis.Redis.from_url(settings.broker_url, socket_timeout=2, socket_connect_timeout=2)
    try:
        pipe = client.pipeline()
        for queue in queues:
            pipe.llen(queue)
            for priority in range(1, 10):
                pipe.llen(f"{queue}{REDIS_PRIORITY_SEPARATOR}{priority}")
        lengths = pipe.execute()
    finally:
        client.close()
    return {queue: int(sum(lengths[i * 10:(i + 1) * 10])) for i, queue in enumerate(queues)}


def stage_durations(session: Any, now: Any = None) -> dict[str, list[float]]:
    """Seconds spent in each stage by the jobs that ended within STAGE_WINDOW, from their status events."""
    from app.models import Job, JobEvent
    from app.models.base import utcnow

    since = (now or utcnow()) - STAGE_WINDOW
    job_ids = select(Job.id).where(Job.finished_at >= since).order_by(Job.finished_at.desc()) \
        .limit(STAGE_WINDOW_MAX_JOBS).scalar_subquery()
    rows = session.execute(
        select(JobEvent.job_id, JobEvent.stage, JobEvent.data, JobEvent.created_at)
        .where(JobEvent.type == "status", JobEvent.job_id.in_(job_ids))
        .order_by(JobEvent.job_id, JobEvent.id)
    ).all()
    durations: dict[str, list[float]] = {}
    current: tuple[uuid.UUID, str, Any] | None = None
    for job_id, stage, data, created_at in rows:
        if current is not None and current[0] != job_id:
            current = None  # the previous job's history ended (at a terminal event, closed below)
        entering = stage if (data or {}).get("to") == "running" else None
        if current is not None and entering == current[1]:
            continue  # same stage: a progress or lease update
        if current is not None:
            durations.setdefault(current[1], []).append((created_at - current[2]).total_seconds())
            current = None
        if entering:
            current = (job_id, entering, created_at)
    return durations


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    return float(statistics.quantiles(ordered, n=100, method="inclusive")[round(q * 100) - 1]) if q < 1 \
        else ordered[-1]


class LedgerCollector(Collector):
    """Read at scrape time: job counts, queue depths and stage durations."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        from app.core.db import open_api_session
        from app.jobs.state import STAGES, STATUSES
        from app.models import Job

        ledger_up = GaugeMetricFamily("grin_ledger_up", "1 when the ledger answered this scrape")
        broker_up = GaugeMetricFamily("grin_broker_up", "1 when the broker answered this scrape")
        try:
            with open_api_session(self.settings, read_only=True) as session:
                counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
                durations = stage_durations(session)
            jobs = GaugeMetricFamily("grin_jobs", "Jobs in each state (ledger, at scrape time)", labels=["state"])
            for state in STATUSES:
                jobs.add_metric([state], float(counts.get(state, 0)))
            yield jobs
            quantiles = GaugeMetricFamily(
                "grin_stage_duration_seconds", "Seconds jobs spent in each stage (ledger job_events, jobs ended "
                "in the last 24 h)", labels=["stage", "quantile"])
            samples = GaugeMetricFamily("grin_stage_duration_samples", "Stage periods behind the quantiles",
                                        labels=["stage"])
            for stage in STAGES:
                values = durations.get(stage, [])
                samples.add_metric([stage], float(len(values)))
                for q in (0.5, 0.95, 1.0):
                    if values:
                        quantiles.add_metric([stage, str(q)], _quantile(values, q))
            yield quantiles
            yield samples
            ledger_up.add_metric([], 1.0)
        except Exception as exc:  # a scrape must not fail because the ledger is down
            logger.warning("metrics: ledger unavailable: %s", type(exc).__name__)
            ledger_up.add_metric([], 0.0)
        try:
            depths = queue_depths(self.settings)
            depth = GaugeMetricFamily("grin_queue_depth", "Messages waiting on each Celery queue", labels=["queue"])
            for queue, value in depths.items():
                depth.add_metric([queue], float(value))
            yield depth
            broker_up.add_metric([], 1.0)
        except Exception as exc:
            logger.warning("metrics: broker unavailable: %s", type(exc).__name__)
            broker_up.add_metric([], 0.0)
        yield ledger_up
        yield broker_up
        yield from self._submission_counters()

    def _submission_counters(self) -> Iterator[CounterMetricFamily]:
        from app.jobs.service import submission_writer

        writer = submission_writer(self.settings)
        yield CounterMetricFamily("grin_submissions_committed", "Jobs this API process committed",
                                  value=writer.committed)
        yield CounterMetricFamily("grin_submission_transactions",
                                  "Transactions that committed them (one per batch of waiting submissions)",
                                  value=writer.transactions)


metrics_router = APIRouter(tags=["health"])


@metrics_router.get("/metrics", summary="Prometheus metrics (text exposition format)", response_class=Response,
                    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def read_metrics(request: Request, settings: SettingsDep) -> Response:
    token = os.environ.get("GRIN_METRICS_TOKEN")
    if token:
        presented = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise ProblemError(401, "Unauthorized", "send `Authorization: Bearer <GRIN_METRICS_TOKEN>`",
                               headers={"WWW-Authenticate": "Bearer"})
    ledger = CollectorRegistry(auto_describe=False)
    ledger.register(LedgerCollector(settings))
    metrics: MetricsRegistry = request.app.state.metrics
    body = generate_latest(metrics.registry) + generate_latest(ledger)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
