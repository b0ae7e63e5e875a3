"""API keys: `grin_<prefix>_<secret>`. The prefix finds the row (and names the key in listings and logs);
only sha256(secret) is stored, and it is compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy.orm import Session

from app.auth import repository
from app.models import ApiKey, Tenant
from app.models.base import utcnow

KEY_SCHEME = "grin"
PREFIX_BYTES = 6  # 12 hex characters
# Compared against when the prefix is unknown, so an unknown prefix costs the same time as a wrong secret.
_UNKNOWN_KEY_DIGEST = hashlib.sha256(b"no such key").hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    api_key: ApiKey
    secret: str  # the full key, shown once and never stored


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def create_tenant(session: Session, name: str, *, require_approval: bool = False) -> Tenant:
    tenant = Tenant(name=name, require_approval=require_approval)
    session.add(tenant)
    session.flush()
    return tenant


def issue_key(session: Session, tenant: Tenant, name: str) -> IssuedKey:
    prefix = secrets.token_hex(PREFIX_BYTES)
    secret = secrets.token_urlsafe(32)
    api_key = ApiKey(tenant_id=tenant.id, name=name, prefix=prefix, secret_sha256=_digest(secret))
    session.add(api_key)
    session.flush()
    return IssuedKey(api_key=api_key, secret=f"{KEY_SCHEME}_{prefix}_{secret}")


def revoke_key(session: Session, prefix: str) -> ApiKey | None:
    api_key = repository.key_by_prefix(session, prefix)
    if api_key is not None and api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        session.flush()
    return api_key


def split_key(presented: str) -> tuple[str, str] | None:
    scheme, _, rest = presented.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != KEY_SCHEME or len(prefix) != 2 * PREFIX_BYTES or not secret:
        return None
    return prefix, secret


def authenticate(session: Session, presented: str) -> Tenant | None:
    """The tenant owning an active key, or None (unknown, wrong secret, revoked: indistinguishable)."""
    parts = split_key(presented)
    if parts is None:
        return None
    prefix, secret = parts
    found = repository.key_with_tenant(session, prefix)
    expected = found[0].secret_sha256 if found is not None else _UNKNOWN_KEY_DIGEST
    matches = hmac.compare_digest(_digest(secret), expected)
    if found is None or not matches or found[0].revoked_at is not None:
        return None
    return found[1]
