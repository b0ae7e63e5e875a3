"""Structured logs: one JSON object a line, carrying the request id and job id of the work being done.

    {"ts": "2026-05-01T12:00:00.123Z", "level": "INFO", "logger": "grin.access", "msg": "request",
     "request_id": "9f0c...", "method": "POST", "route": "/v1/unlearn", "status": 202, "duration_ms": 41.2,
     "key_prefix": "0a1b2c3d4e5f", "job_id": "..."}

What is never logged: request or response bodies (forget records), query strings, headers, and API key
secrets: any `grin_<prefix>_<secret>` that reaches a message anyway is cut to `grin_<prefix>_***` by
`redact` (the prefix names a key, it is not a credential). `GRIN_LOG_FORMAT=text` switches to plain lines,
`GRIN_LOG_LEVEL` sets the level (INFO).

The worker uses the same formatter: call `configure_logging()` at process start and run each job inside
`with job_context(job_id): ...` so every line it logs names the job.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("grin_request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("grin_job_id", default=None)

KEY_PATTERN = re.compile(r"\bgrin_([0-9a-f]{12})_[A-Za-z0-9_\-]+")
_STANDARD = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {"message", "asctime",
                                                                                    "taskName"}
_CONFIGURED = "_grin_json_handler"


def redact(text: str) -> str:
    return KEY_PATTERN.sub(r"grin_\1_***", text)


@contextmanager
def job_context(job_id: object) -> Iterator[None]:
    token = job_id_var.set(str(job_id))
    try:
        yield
    finally:
        job_id_var.reset(token)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00",
                                                                                                          "Z"),
            "level": record.levelname,
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        job_id = getattr(record, "job_id", None) or job_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        if job_id:
            entry["job_id"] = str(job_id)
        for name, value in vars(record).items():
            if name not in _STANDARD and name not in entry and not name.startswith("_"):
                entry[name] = value if isinstance(value, (int, float, bool, type(None))) else redact(str(value))
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)


class RedactingTextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        request_id = request_id_var.get()
        job_id = job_id_var.get()
        prefix = "".join(f"[{k}={v}] " for k, v in (("request", request_id), ("job", job_id)) if v)
        return redact(prefix + super().format(record))


def make_formatter() -> logging.Formatter:
    if os.environ.get("GRIN_LOG_FORMAT", "json").lower() == "text":
        return RedactingTextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    return JsonFormatter()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(*, propagate: bool = True) -> None:
    """JSON lines on stderr for the `grin` loggers, and uvicorn's re-formatted to match (idempotent).

    `propagate=False` where the root logger has a handler of its own (a Celery worker), so lines are not
    written twice; the API process leaves it on (uvicorn configures no root handler; pytest's caplog sees it).
    """
    level = os.environ.get("GRIN_LOG_LEVEL", "INFO").upper()
    formatter = make_formatter()
    grin = logging.getLogger("grin")
    if not any(getattr(h, _CONFIGURED, False) for h in grin.handlers):
        handler = _StderrHandler()
        setattr(handler, _CONFIGURED, True)
        grin.addHandler(handler)
    for handler in grin.handlers:
        if getattr(handler, _CONFIGURED, False):
            handler.setFormatter(formatter)
    grin.setLevel(level)
    grin.propagate = propagate
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)
