from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from app.auth.dependencies import CurrentTenant
from app.core.deps import SessionDep, SettingsDep
from app.core.openapi import problem_responses
from app.core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, after_name, page_by_name
from app.registry import repository, service
from app.registry.schemas import ModelOut, ModelRegistration, ModelVersionOut

router = APIRouter(prefix="/v1/models", tags=["models"], responses=problem_responses(401, 413))


@router.post("", status_code=status.HTTP_201_CREATED, summary="Register a model directory (version 1)",
             responses=problem_responses(422))
def register_model(body: ModelRegistration, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep,
                   response: Response) -> ModelOut:
    model = service.register_model(session, settings, tenant, body.name, body.path)
    session.commit()
    response.headers["Location"] = f"/v1/models/{model.id}"
    return ModelOut.model_validate(model)


@router.get("", summary="List models (by name)", responses=problem_responses(422))
def list_models(
    tenant: CurrentTenant, session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> Page[ModelOut]:
    models = repository.models_of_tenant(session, tenant.id, limit=limit + 1, after=after_name(cursor))
    return page_by_name(models, limit, ModelOut.model_validate)


@router.get("/{model_id}", summary="A model", responses=problem_responses(404, 422))
def read_model(model_id: uuid.UUID, tenant: CurrentTenant, session: SessionDep) -> ModelOut:
    return ModelOut.model_validate(service.get_model(session, tenant, model_id))


@router.get("/{model_id}/versions", summary="A model's versions, oldest first (lineage via parent_id)",
            responses=problem_responses(404, 422))
def list_versions(model_id: uuid.UUID, tenant: CurrentTenant, session: SessionDep) -> list[ModelVersionOut]:
    model = service.get_model(session, tenant, model_id)
    return [ModelVersionOut.model_validate(v) for v in repository.versions_of(session, model.id)]
