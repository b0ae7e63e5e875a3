"""Pipeline hook of the reliability stacks: `tests.worker.hooks.hook` plus faults of the artifact store.

A job's `metadata` may also say (first attempt only, like the other faults):
- `store_fault_at`: a stage ("report" is where the mask and the checkpoint are saved);
- `store_fault`: "full" (fill the artifact store's filesystem until ENOSPC) or "readonly" (remount it read-only).
The marker `<data_dir>/hook/<job id>.store_fault` is written once the fault is in place.
- `stall_at` + `stall_s`: at that stage, sleep without touching the ledger (a long evaluation), first attempt only;
  the marker `<data_dir>/hook/<job id>.stall` is written when the stall begins.
- `step_sleep_s`: sleep this long at every fine-tune step, every attempt (paces a tiny model's fine-tune so a
  kill at a random moment lands inside it).
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from pathlib import Path

from app.core.config import get_settings
from tests.worker import hooks as base


def _fill(root: Path) -> None:
    """Write until the filesystem refuses (ENOSPC), unbuffered, in ever smaller pieces."""
    fd = os.open(root / "filler.bin", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 20, 4096, 512, 1):
            block = b"\xff" * size
            for _ in range(200_000):  # bounded
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)


def hook(job_id: str, stage: str, step: int | None) -> None:
    meta, attempt = base._job(job_id)
    if step is not None and meta.get("step_sleep_s"):
        time.sleep(float(meta["step_sleep_s"]))
    if attempt in meta.get("on_attempts", [1]) and meta.get("stall_at") == stage and step is None:
        folder = get_settings().data_dir / "hook"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{job_id}.stall").write_text(str(os.getpid()))
        time.sleep(float(meta.get("stall_s", 5)))
    if attempt in meta.get("on_attempts", [1]) and meta.get("store_fault_at") == stage and step is None:
        settings = get_settings()
        root = Path(settings.artifact_root)
        if meta.get("store_fault") == "readonly":
            subprocess.run(["mount", "-o", "remount,ro", str(root)], check=True)
        else:
            _fill(root)
        marker = settings.data_dir / "hook"
        marker.mkdir(parents=True, exist_ok=True)
        (marker / f"{job_id}.store_fault").write_text(meta.get("store_fault", "full"))
    base.hook(job_id, stage, step)
