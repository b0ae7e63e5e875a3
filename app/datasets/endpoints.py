from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status
from starlette.concurrency import run_in_threadpool

from app.auth.dependencies import CurrentTenant
from app.core.deps import SessionDep, SettingsDep
from app.core.openapi import problem_responses
from app.core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, after_name, page_by_name
from app.datasets import repository, service
from app.datasets.schemas import DatasetOut, RecordKind

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=problem_responses(401, 413))

_JSONL_BODY = {
    "requestBody": {
        "required": True,
        "description": "JSON Lines, one record of `kind` per line (blank lines skipped); streamed, "
        "at most GRIN_MAX_UPLOAD_BYTES",
        "content": {media: {"schema": {"type": "string", "format": "binary"}}
                    for media in ("application/jsonl", "application/x-ndjson")},
    }
}


@router.post("", status_code=status.HTTP_201_CREATED, summary="Upload a retain data set (JSON Lines)",
             responses=problem_responses(422), openapi_extra=_JSONL_BODY)
async def upload_dataset(
    request: Request, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep, response: Response,
    name: Annotated[str, Query(min_length=1, max_length=200)],
    kind: Annotated[RecordKind, Query(description="qa, text or harmful")],
) -> DatasetOut:
    upload = service.JsonlUpload(kind, settings)
    try:
        async for chunk in request.stream():
            if chunk:
                await run_in_threadpool(upload.feed, chunk)
        upload.finish()
        dataset = await run_in_threadpool(service.store_dataset, session, settings, tenant, name, kind, upload)
        await run_in_threadpool(session.commit)
    finally:
        upload.discard()
    response.headers["Location"] = f"/v1/datasets/{dataset.id}"
    return DatasetOut.model_validate(dataset)


@router.get("", summary="List data sets (by name)", responses=problem_responses(422))
def list_datasets(
    tenant: CurrentTenant, session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> Page[DatasetOut]:
    datasets = repository.datasets_of_tenant(session, tenant.id, limit=limit + 1, after=after_name(cursor))
    return page_by_name(datasets, limit, DatasetOut.model_validate)


@router.get("/{dataset_id}", summary="A data set", responses=problem_responses(404, 422))
def read_dataset(dataset_id: uuid.UUID, tenant: CurrentTenant, session: SessionDep) -> DatasetOut:
    return DatasetOut.model_validate(service.get_dataset(session, tenant, dataset_id))
