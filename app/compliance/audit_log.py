"""The hash-chained audit log: every ledger event that matters, each entry carrying the previous one's hash.

    entry_hash = sha256(canonical JSON of {prev_hash, event, data, created_at, tenant_id, job_id})

The first entry's prev_hash is 64 zeros. `append` adds an entry inside the caller's transaction (so the
entry commits or rolls back with the ledger change it records) and serialises appenders: on Postgres a
transaction-level advisory lock, on SQLite the database's single writer lock taken before the last entry
is read. `verify_chain` walks the log in id order and returns the first entry whose contents or link do
not check out.

What the chain proves: no entry was altered, inserted or removed *before the last one*. Truncating the
tail is only visible against a head hash kept elsewhere (`head()`; the signed report's predicate carries it).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, overload

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.models.audit import AuditLogEntry

GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key: "grinaudi" as a big-endian int64, the one lock all appenders take.
ADVISORY_LOCK_KEY = int.from_bytes(b"grinaudi", "big")
# Session.info keys: the transaction that holds the chain lock (taking it again would cost a round trip), and
# (transaction, entry_hash) of the last entry that transaction appended: while it holds the lock that entry is
# the head, so the next append in it needs no read.
_CHAIN_LOCKED_BY = "grin.audit_chain_locked_by"
_CHAIN_HEAD = "grin.audit_chain_head"
MAX_STRING_LENGTH = 512  # data holds hashes, ids, counts and short codes; longer strings are refused

# The events the pipeline and API append (free-form names are allowed; these are the documented ones).
JOB_SUBMITTED = "job.submitted"
JOB_STAGE_DONE = "job.stage_done"
JOB_FINISHED = "job.finished"
VERSION_PROMOTED = "model.version_promoted"
DATA_PURGED = "job.data_purged"
REPORT_ISSUED = "report.issued"


class AuditDataError(ValueError):
    """`data` holds something an audit entry must not (long text, non-JSON values)."""


@dataclass(frozen=True)
class BrokenLink:
    id: int
    reason: str


def _timestamp(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _check_data(value: Any, path: str = "data") -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise AuditDataError(f"{path}: keys must be strings")
            _check_data(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_data(item, f"{path}[{index}]")
    elif isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            raise AuditDataError(f"{path}: {len(value)} characters; audit data holds hashes and ids, never text")
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise AuditDataError(f"{path}: not a finite number")
    elif value is not None and not isinstance(value, bool | int):
        raise AuditDataError(f"{path}: {type(value).__name__} is not JSON")


def compute_hash(*, prev_hash: str, event: str, data: dict[str, Any], created_at: datetime,
                 tenant_id: uuid.UUID | None, job_id: uuid.UUID | None) -> str:
    material = {
        "prev_hash": prev_hash,
        "event": event,
        "data": data,
        "created_at": _timestamp(created_at),
        "tenant_id": str(tenant_id) if tenant_id is not None else None,
        "job_id": str(job_id) if job_id is not None else None,
    }
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def entry_hash_of(entry: AuditLogEntry) -> str:
    return compute_hash(prev_hash=entry.prev_hash, event=entry.event, data=entry.data, created_at=entry.created_at,
                        tenant_id=entry.tenant_id, job_id=entry.job_id)


def lock_chain(session: Session) -> None:
    """Take the chain's lock until the caller's transaction ends (once per transaction: `append` takes it too).

    Every appender holds it to its commit, so a statement run after it sees every earlier appender's commit: a
    check that must count what concurrent appenders wrote (the per-tenant in-flight limit) takes it first."""
    transaction = session.get_transaction()
    if transaction is not None and session.info.get(_CHAIN_LOCKED_BY) is transaction:
        return
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
    elif dialect == "sqlite":
        # Take SQLite's write lock *before* reading the last entry (a no-op write), so a concurrent appender
        # waits on busy_timeout instead of both reading the same head.
        session.execute(text("UPDATE audit_log SET id = id WHERE 0"))
    # The transaction object itself marks the lock as held: the next transaction is a new object.
    session.info[_CHAIN_LOCKED_BY] = session.get_transaction()


def head(session: Session) -> AuditLogEntry | None:
    return session.scalars(select(AuditLogEntry).order_by(AuditLogEntry.id.desc()).limit(1)).first()


def append(session: Session, event: str, *, tenant_id: uuid.UUID | None = None, job_id: uuid.UUID | None = None,
           data: dict[str, Any] | None = None, now: datetime | None = None) -> AuditLogEntry:
    """Append one entry in the caller's transaction (flushed, not committed). Commit soon: on Postgres the
    advisory lock is held until the transaction ends, which is what keeps the chain from forking."""
    data = dict(data or {})
    _check_data(data)
    # JSON round trip now, so the hash is computed over exactly what the database will give back.
    data = json.loads(json.dumps(data, allow_nan=False))
    created_at = (now or datetime.now(UTC)).astimezone(UTC)
    lock_chain(session)
    transaction = session.get_transaction()
    written = session.info.get(_CHAIN_HEAD)
    if written is not None and written[0] is transaction:
        prev_hash = written[1]
    else:
        # The hash alone: this runs under the lock, where every round trip and every loaded row is paid serially.
        last_hash = session.scalar(select(AuditLogEntry.entry_hash).order_by(AuditLogEntry.id.desc()).limit(1))
        prev_hash = last_hash if last_hash is not None else GENESIS_HASH
    entry = AuditLogEntry(tenant_id=tenant_id, job_id=job_id, event=event, data=data, created_at=created_at,
                          prev_hash=prev_hash)
    entry.entry_hash = entry_hash_of(entry)
    session.add(entry)
    session.flush()
    session.info[_CHAIN_HEAD] = (transaction, entry.entry_hash)
    return entry


@overload
def verify_chain(session: Session, *, with_count: Literal[False] = ...) -> BrokenLink | None: ...


@overload
def verify_chain(session: Session, *, with_count: Literal[True]) -> tuple[BrokenLink | None, int]: ...


def verify_chain(session: Session, *, with_count: bool = False) -> Any:
    """The first broken link (its id and why) or None; with `with_count`, also how many entries were read."""
    previous_hash = GENESIS_HASH
    previous_id: int | None = None
    count = 0
    broken: BrokenLink | None = None
    rows = session.execute(select(AuditLogEntry).order_by(AuditLogEntry.id).execution_options(yield_per=1000))
    for entry in rows.scalars():
        count += 1
        if entry_hash_of(entry) != entry.entry_hash:
            broken = BrokenLink(entry.id, "its contents do not match its entry_hash (entry altered)")
            break
        if entry.prev_hash != previous_hash:
            where = f"entry {previous_id}" if previous_id is not None else "the genesis hash"
            broken = BrokenLink(entry.id, f"its prev_hash does not match {where} (an entry before it was "
                                          "removed, inserted or altered)")
            break
        previous_hash, previous_id = entry.entry_hash, entry.id
    rows.close()
    return (broken, count) if with_count else broken
