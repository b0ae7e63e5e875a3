"""Authenticated keys remembered for a few seconds, so a client polling its job costs one query, not two.

Only successful authentications are remembered, for `Settings.api_key_cache_s` seconds (0 turns this off): a
new key works at once; an unknown, wrong or revoked key goes to the ledger on every request (in constant time,
see service.authenticate); a key revoked while remembered stops working at most that many seconds later in
each API process. Entries are keyed by sha256 of the whole presented key, so a wrong secret behind a known
prefix never hits. The tenant handed out is a detached snapshot (id, name, require_approval): the routes read
those fields only, and a snapshot cannot be attached to, or lazily load through, another request's session.
Used from the event loop only (current_tenant is async), so no lock.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import make_transient_to_detached

from app.models import Tenant

MAX_ENTRIES = 10_000  # far more keys than a deployment has; bounds memory if someone sprays valid keys


@dataclass(frozen=True)
class _Entry:
    tenant: Tenant
    expires_at: float


def presented_digest(presented: str) -> str:
    return hashlib.sha256(presented.encode("utf-8")).hexdigest()


def tenant_snapshot(tenant: Tenant) -> Tenant:
    """A detached copy that no session owns: safe to share between requests and threads."""
    snapshot = Tenant(id=tenant.id, name=tenant.name, require_approval=tenant.require_approval,
                      created_at=tenant.created_at)
    make_transient_to_detached(snapshot)
    return snapshot


class AuthenticatedKeys:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._entries: dict[str, _Entry] = {}
        self._clock = clock

    def get(self, digest: str) -> Tenant | None:
        entry = self._entries.get(digest)
        if entry is None:
            return None
        if entry.expires_at <= self._clock():
            del self._entries[digest]
            return None
        return entry.tenant

    def remember(self, digest: str, tenant: Tenant, ttl_s: float) -> None:
        if ttl_s <= 0:
            return
        now = self._clock()
        if len(self._entries) >= MAX_ENTRIES:
            self._entries = {d: e for d, e in self._entries.items() if e.expires_at > now}
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
        self._entries[digest] = _Entry(tenant, now + ttl_s)
