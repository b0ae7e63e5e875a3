from __future__ import annotations

from fastapi import APIRouter

from app.auth.dependencies import CurrentTenant
from app.auth.schemas import TenantOut
from app.core.openapi import problem_responses

router = APIRouter(prefix="/v1", tags=["auth"], responses=problem_responses(401))


@router.get("/tenant", summary="The tenant the API key belongs to")
def read_own_tenant(tenant: CurrentTenant) -> TenantOut:
    return TenantOut.model_validate(tenant)
