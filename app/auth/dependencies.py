"""`CurrentTenant`: the tenant behind the request's bearer key; every route but health depends on it."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from app.auth import service
from app.core.deps import SessionDep
from app.core.problems import ProblemError
from app.models import Tenant

# auto_error=False: a missing header gets our 401 problem document, not FastAPI's plain 403.
bearer_scheme = HTTPBearer(auto_error=False, description="An API key from `grin admin keys create`")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def current_tenant(
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Tenant:
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise ProblemError(401, "Unauthorized", "send `Authorization: Bearer <api key>`", headers=_CHALLENGE)
    tenant = service.authenticate(session, credentials.credentials)
    if tenant is None:
        # One answer for unknown, wrong and revoked keys: it tells an attacker nothing.
        raise ProblemError(401, "Unauthorized", "the API key is not valid", headers=_CHALLENGE)
    return tenant


CurrentTenant = Annotated[Tenant, Depends(current_tenant)]
