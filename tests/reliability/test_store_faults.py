"""The artifact store fills up or turns read-only while a job saves its mask and checkpoint.

The store is a small tmpfs mounted by the test (tests run as root) over the stack's artifact root; the
pipeline hook (tests/reliability/hooks.py) fills it to ENOSPC, or remounts it read-only, when the job enters
its `report` stage, which is where the mask and the new checkpoint are written to the store. The job must end
`failed` with the OS error in its reason (after its attempts: space may come back between them), no version is
promoted, the model's current version is unchanged, no partial blob or ledger row is left; once the store is
healthy again the next job succeeds.
"""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import Artifact, JobInput, Mask, ModelVersion
from tests.reliability.conftest import PrivatePostgres, PrivateRedis, Stack, stack_on
from tests.reliability.figures import record


@pytest.fixture(scope="module")
def stack(private_servers: tuple[PrivatePostgres, PrivateRedis], tmp_path_factory: pytest.TempPathFactory,
          tiny_model_dir: Path) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("store-faults")
    store = tmp / "data" / "artifacts"
    store.mkdir(parents=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "grin-test-store", str(store)], check=True)
    try:
        yield from stack_on(private_servers, tmp, tiny_model_dir)
    finally:
        subprocess.run(["umount", "-l", str(store)], check=False)


def _store(stack: Stack) -> Path:
    return stack.settings.data_dir / "artifacts"


def _blobs(stack: Stack) -> set[str]:
    return {p.name for p in (_store(stack) / "sha256").rglob("*") if p.is_file()}


@pytest.mark.slow
@pytest.mark.parametrize("fault, errno_text", [("full", "No space left on device"),
                                               ("readonly", "Read-only file system")])
def test_store_fault_during_checkpoint_save_fails_the_job_cleanly(stack: Stack, fault: str, errno_text: str) -> None:
    with stack.client() as c:
        current = c.get(f"/v1/models/{stack.model_id}").json()["current_version_id"]
    blobs_before = _blobs(stack)
    with stack.ledger() as session:
        artifacts_before = set(session.scalars(select(Artifact.key)))
    job_id = stack.submit(metadata={"store_fault_at": "report", "store_fault": fault})
    try:
        job = stack.wait(job_id, timeout=180)
        assert stack.marker(job_id, "store_fault").exists()
    finally:
        if fault == "readonly":
            subprocess.run(["mount", "-o", "remount,rw", str(_store(stack))], check=True)
        for filler in _store(stack).glob("filler*.bin"):
            filler.unlink()
    assert job["status"] == "failed", job
    assert errno_text in job["error"], job["error"]
    assert job["result_version_id"] is None
    jid = uuid.UUID(job_id)
    with stack.ledger() as session:
        assert session.scalars(select(ModelVersion).where(ModelVersion.job_id == jid)).all() == []
        assert session.scalars(select(Mask).where(Mask.job_id == jid)).all() == []
        assert set(session.scalars(select(Artifact.key))) == artifacts_before  # no row for a half-saved blob
        assert session.get(JobInput, jid) is None
    assert not list(_store(stack).rglob("*.tmp")), "a partial blob was left in the store"
    for blob in (_store(stack) / "sha256").rglob("*"):  # whatever landed is whole: its name is its hash
        if blob.is_file() and blob.name not in blobs_before:
            assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    with stack.client() as c:
        assert c.get(f"/v1/models/{stack.model_id}").json()["current_version_id"] == current
    if fault == "readonly":  # the store is healthy again: the next job succeeds and becomes current
        after = stack.wait(stack.submit(), timeout=180)
        assert after["status"] == "succeeded", after
        with stack.client() as c:
            assert c.get(f"/v1/models/{stack.model_id}").json()["current_version_id"] == after["result_version_id"]
    record(f"store_{fault}", job_status=job["status"], error=job["error"], attempts=job["attempts"],
           promoted=0, previous_version_kept=True, partial_blobs=0)
