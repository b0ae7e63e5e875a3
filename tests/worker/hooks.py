"""Fault injection for the worker tests, loaded by the pipeline through GRIN_PIPELINE_HOOK.

A job's `metadata` says what to do, on its first attempt only unless `on_attempts` says otherwise:
- `pause_at`: "localize", "noise", "evaluate", "report" or "finetune:<step>": write the marker file
  `<data_dir>/hook/<job id>.<stage>` and block until the job's cancel is requested (or 60 s pass);
- `crash_at`: the same places: raise RuntimeError("injected crash") (a transient failure: retried);
- `exit_at`: the same places: the worker process dies on the spot (os._exit), as on an OOM kill.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from app.core.config import get_settings
from app.core.db import open_session
from app.models import Job

_cache: dict[str, tuple[dict[str, Any], int]] = {}


def _job(job_id: str) -> tuple[dict[str, Any], int]:
    if job_id not in _cache:
        with open_session(get_settings()) as session:
            job = session.get_one(Job, uuid.UUID(job_id))
            _cache[job_id] = (dict(job.request_metadata or {}), job.attempts)
    return _cache[job_id]


def _matches(spec: str | None, stage: str, step: int | None) -> bool:
    if not spec:
        return False
    name, _, at = spec.partition(":")
    if name != stage:
        return False
    return step is None if not at else step == int(at)


def hook(job_id: str, stage: str, step: int | None) -> None:
    meta, attempt = _job(job_id)
    if attempt not in meta.get("on_attempts", [1]):
        return
    if _matches(meta.get("crash_at"), stage, step):
        raise RuntimeError("injected crash")
    if _matches(meta.get("exit_at"), stage, step):
        os._exit(9)
    if _matches(meta.get("pause_at"), stage, step):
        settings = get_settings()
        folder = settings.data_dir / "hook"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{job_id}.{stage}").write_text(str(os.getpid()))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with open_session(settings) as session:
                if session.get_one(Job, uuid.UUID(job_id)).cancel_requested:
                    return
            time.sleep(0.1)
