"""The Celery application, configured for long GPU tasks.

Importing this module never imports torch: the API process uses it to enqueue (`send_task`) and
to probe the broker; task modules are imported by the worker process only (`include`).
"""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_init

from app.core.config import Settings, get_settings
from worker.broker import filesystem_transport_options, tolerate_closed_redis_transport

TASK_MODULES = ["worker.tasks.system", "worker.tasks.webhooks", "worker.tasks.pipeline", "worker.tasks.sweep"]


def _broker_transport_options(settings: Settings) -> dict[str, object]:
    if settings.embedded:
        return filesystem_transport_options(settings)
    # Redis redelivers an unacked message after visibility_timeout; a job can run for hours, so the
    # ledger's lease (not this timeout) decides whether a redelivered message may run.
    return {"visibility_timeout": settings.task_time_limit_s + 600}


def create_celery(settings: Settings) -> Celery:
    if settings.broker_url.startswith(("redis://", "rediss://")):
        tolerate_closed_redis_transport()
    app = Celery("grin", broker=settings.broker_url, backend=settings.result_backend, include=TASK_MODULES)
    app.conf.update(
        broker_transport_options=_broker_transport_options(settings),
        broker_connection_retry_on_startup=True,
        task_acks_late=True,  # a message is acked only after the task ends, so a crash requeues it
        task_reject_on_worker_lost=True,  # ...including when the child process is SIGKILLed
        worker_prefetch_multiplier=1,  # a long job never holds a second message hostage
        worker_max_tasks_per_child=1,  # one job per child: GPU memory is returned to the driver after each job
        task_soft_time_limit=settings.task_soft_time_limit_s,
        task_time_limit=settings.task_time_limit_s,
        task_default_queue=settings.cpu_queue,
        task_routes={"grin.pipeline.*": {"queue": settings.gpu_queue}},
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_expires=24 * 3600,
        worker_hijack_root_logger=False,
        # Our JSON log lines go to the real stderr; Celery's stdout/stderr proxy would wrap each in a line of its own.
        worker_redirect_stdouts=False,
        broker_connection_timeout=3,
        redis_socket_timeout=5,
        redis_socket_connect_timeout=3,
    )
    return app


celery_app = create_celery(get_settings())


@worker_init.connect
def _migrate_on_start(**_: object) -> None:
    from app.core.db import migrate
    from app.observability.logging import configure_logging

    # JSON lines with job ids (`job_context` in the pipeline); Celery's root handler must not print them again.
    configure_logging(propagate=False)

    migrate(get_settings())
