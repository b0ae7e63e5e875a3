"""`CurrentTenant`: the tenant behind the request's bearer key; every route but health depends on it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from app.auth import service
from app.auth.cache import AuthenticatedKeys, presented_digest, tenant_snapshot
from app.core.deps import SessionDep, SettingsDep
from app.core.problems import ProblemError
from app.models import Tenant

# auto_error=False: a missing header gets our 401 problem document, not FastAPI's plain 403.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key from `grin admin keys create`")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def _authenticated_keys(request: Request) -> AuthenticatedKeys:
    """The app's key cache, made on first use (any app that mounts these routes gets one)."""
    keys: AuthenticatedKeys | None = getattr(request.app.state, "authenticated_keys", None)
    if keys is None:
        keys = request.app.state.authenticated_keys = AuthenticatedKeys()
    return keys


async def current_tenant(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Tenant:
    """Async so that a remembered key (app/auth/cache.py) costs no hop to the thread pool; a lookup goes there."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise ProblemError(401, "Unauthorized", "send `Authorization: Bearer <api key>`", headers=_CHALLENGE)
    keys = _authenticated_keys(request)
    digest = presented_digest(credentials.credentials)
    tenant = keys.get(digest)
    if tenant is None:
        found = await run_in_threadpool(service.authenticate, session, credentials.credentials)
        if found is None:
            # One answer for unknown, wrong and revoked keys: it tells an attacker nothing.
            raise ProblemError(401, "Unauthorized", "the API key is not valid", headers=_CHALLENGE)
        tenant = tenant_snapshot(found)
        keys.remember(digest, tenant, settings.api_key_cache_s)
    return tenant


CurrentTenant = Annotated[Tenant, Depends(current_tenant)]
