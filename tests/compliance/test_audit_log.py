"""The hash-chained audit log: hashes checkable by hand, tampering named at the exact entry, no forks."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.compliance import audit_log
from app.models import AuditLogEntry
from tests.conftest import REPO_ROOT
from tests.processes import service_env

TENANT = uuid.UUID("11111111-1111-1111-1111-111111111111")
JOB = uuid.UUID("22222222-2222-2222-2222-222222222222")


def _fill(make_session: sessionmaker[Session], count: int = 5) -> list[int]:
    ids = []
    with make_session() as session:
        for n in range(count):
            entry = audit_log.append(session, audit_log.JOB_STAGE_DONE, tenant_id=TENANT, job_id=JOB,
                                     data={"stage": f"s{n}", "sha256": hashlib.sha256(bytes([n])).hexdigest(),
                                           "n": n, "loss": 0.5 / (n + 1)})
            session.commit()
            ids.append(entry.id)
    return ids


def test_entry_hash_is_sha256_of_the_canonical_json(make_session: sessionmaker[Session]) -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    with make_session() as session:
        first = audit_log.append(session, "job.submitted", tenant_id=TENANT, job_id=JOB,
                                 data={"forget_count": 3, "merkle_root": "ab" * 32}, now=at)
        second = audit_log.append(session, "report.issued", tenant_id=TENANT, job_id=None, data={}, now=at)
        session.commit()
    # Written out by hand: sorted keys, no spaces, the timestamp in UTC with microseconds and a Z.
    material = ('{"created_at":"2026-01-02T03:04:05.678901Z","data":{"forget_count":3,"merkle_root":"'
                + "ab" * 32 + '"},"event":"job.submitted","job_id":"22222222-2222-2222-2222-222222222222",'
                '"prev_hash":"' + "0" * 64 + '","tenant_id":"11111111-1111-1111-1111-111111111111"}')
    assert first.prev_hash == "0" * 64
    assert first.entry_hash == hashlib.sha256(material.encode()).hexdigest()
    assert second.prev_hash == first.entry_hash
    with make_session() as session:
        stored = session.scalars(select(AuditLogEntry).order_by(AuditLogEntry.id)).all()
        assert [e.entry_hash for e in stored] == [first.entry_hash, second.entry_hash]
        assert stored[0].created_at == at  # the timestamp round-trips to the microsecond
        assert audit_log.verify_chain(session) is None
        assert audit_log.head(session).entry_hash == second.entry_hash


def test_altered_data_is_reported_at_exactly_that_entry(make_session: sessionmaker[Session],
                                                        ledger_engine: Engine) -> None:
    ids = _fill(make_session)
    with make_session() as session:
        assert audit_log.verify_chain(session, with_count=True) == (None, 5)
    target = ids[2]
    with ledger_engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET data = :d WHERE id = :id"),
                           {"d": json.dumps({"stage": "s2", "sha256": "f" * 64, "n": 2, "loss": 0.5 / 3}),
                            "id": target})
    with make_session() as session:
        broken = audit_log.verify_chain(session)
    assert broken is not None and broken.id == target
    assert "altered" in broken.reason


def test_rehashed_or_removed_entry_breaks_the_next_link(make_session: sessionmaker[Session],
                                                        ledger_engine: Engine) -> None:
    ids = _fill(make_session)
    # A forger who also recomputes the altered entry's own hash is caught at the next entry.
    with make_session() as session:
        entry = session.get(AuditLogEntry, ids[1])
        entry.data = {**entry.data, "n": 99}
        entry.entry_hash = audit_log.entry_hash_of(entry)
        session.commit()
        broken = audit_log.verify_chain(session)
    assert broken is not None and broken.id == ids[2]
    assert f"entry {ids[1]}" in broken.reason

    with ledger_engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE id IN (:a, :b)"), {"a": ids[1], "b": ids[2]})
    with make_session() as session:
        broken = audit_log.verify_chain(session)
    assert broken is not None and broken.id == ids[3]


def test_audit_data_refuses_text(make_session: sessionmaker[Session]) -> None:
    with make_session() as session, pytest.raises(audit_log.AuditDataError, match="never text"):
        audit_log.append(session, "job.submitted", tenant_id=TENANT, data={"records": ["x" * 600]})


def test_concurrent_appends_never_fork_the_chain(make_session: sessionmaker[Session], ledger_url: str) -> None:
    threads, per_thread = 6, 8
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def worker(n: int) -> None:
        try:
            start.wait()
            for i in range(per_thread):
                with make_session() as session:
                    audit_log.append(session, "job.stage_done", tenant_id=TENANT, data={"thread": n, "i": i})
                    session.commit()
        except BaseException as exc:
            errors.append(exc)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    assert errors == []
    with make_session() as session:
        entries = session.scalars(select(AuditLogEntry).order_by(AuditLogEntry.id)).all()
        assert len(entries) == threads * per_thread
        assert len({e.prev_hash for e in entries}) == len(entries)  # no two entries share a parent
        assert audit_log.verify_chain(session) is None


def test_the_chain_lock_is_taken_once_per_transaction(make_session: sessionmaker[Session],
                                                      ledger_engine: Engine) -> None:
    """A caller may take the lock before appending (the in-flight count does); appends in the same transaction
    do not take it again (a round trip under the lock), and the next transaction takes it afresh."""
    locks: list[str] = []

    def count_locks(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if "pg_advisory_xact_lock" in statement or "UPDATE audit_log SET id = id" in statement:
            locks.append(statement)

    event.listen(ledger_engine, "before_cursor_execute", count_locks)
    try:
        with make_session() as session:
            audit_log.lock_chain(session)
            audit_log.append(session, "job.submitted", tenant_id=TENANT, data={"n": 1})
            audit_log.append(session, "job.finished", tenant_id=TENANT, data={"n": 2})
            session.commit()
            assert len(locks) == 1
            audit_log.append(session, "report.issued", tenant_id=TENANT, data={"n": 3})
            session.commit()
            assert len(locks) == 2
            assert audit_log.verify_chain(session) is None
    finally:
        event.remove(ledger_engine, "before_cursor_execute", count_locks)


def test_grin_audit_verify_command(make_session: sessionmaker[Session], ledger_engine: Engine, ledger_url: str,
                                   tmp_path) -> None:  # type: ignore[no-untyped-def]
    ids = _fill(make_session, 3)
    env = service_env({"GRIN_DATA_DIR": str(tmp_path), "GRIN_DATABASE_URL": ledger_url})
    code = "from app.compliance.cli import compliance_cli; compliance_cli(prog_name='grin')"

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code, "audit", "verify"], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    ok = run()
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "OK: 3 audit log entries, hash chain intact"
    with ledger_engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET event = 'job.forged' WHERE id = :id"), {"id": ids[1]})
    failed = run()
    assert failed.returncode == 1
    assert failed.stderr.strip() == (f"FAILED: audit log entry {ids[1]} is the first broken link: its contents do "
                                     "not match its entry_hash (entry altered)")
    assert "Traceback" not in failed.stderr
