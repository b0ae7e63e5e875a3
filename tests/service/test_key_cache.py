"""app/auth/cache.py on a fake clock: expiry, the off switch, and the memory bound."""

from __future__ import annotations

import uuid

import pytest

from app.auth import cache
from app.auth.cache import AuthenticatedKeys, presented_digest, tenant_snapshot
from app.models import Tenant


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_an_entry_lives_exactly_its_ttl_and_ttl_zero_remembers_nothing() -> None:
    clock = Clock()
    keys = AuthenticatedKeys(clock)
    tenant = Tenant(id=uuid.uuid4(), name="acme", require_approval=False)
    digest = presented_digest("grin_0123456789ab_secret")
    keys.remember(digest, tenant, ttl_s=5.0)
    clock.now = 104.9
    assert keys.get(digest) is tenant
    clock.now = 105.0
    assert keys.get(digest) is None
    keys.remember(digest, tenant, ttl_s=0)
    assert keys.get(digest) is None


def test_the_cache_never_holds_more_than_max_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cache, "MAX_ENTRIES", 3)
    clock = Clock()
    keys = AuthenticatedKeys(clock)
    tenant = Tenant(id=uuid.uuid4(), name="acme", require_approval=False)
    for n in range(3):
        keys.remember(f"d{n}", tenant, ttl_s=1.0 if n == 0 else 10.0)
    clock.now = 101.5  # d0 expired: making room drops it and keeps the live ones
    keys.remember("d3", tenant, ttl_s=10.0)
    assert [keys.get(d) is tenant for d in ("d0", "d1", "d2", "d3")] == [False, True, True, True]
    keys.remember("d4", tenant, ttl_s=10.0)  # all live and full: start over rather than grow
    assert [keys.get(d) is tenant for d in ("d1", "d2", "d3", "d4")] == [False, False, False, True]


def test_a_snapshot_copies_the_fields_the_routes_read_and_belongs_to_no_session() -> None:
    from sqlalchemy import inspect

    tenant = Tenant(id=uuid.uuid4(), name="acme", require_approval=True)
    snapshot = tenant_snapshot(tenant)
    assert (snapshot.id, snapshot.name, snapshot.require_approval) == (tenant.id, "acme", True)
    state = inspect(snapshot)
    assert state.detached and state.session is None
