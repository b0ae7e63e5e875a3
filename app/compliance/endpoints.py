"""`GET /v1/signing-key` (public, no auth) and `/v1/webhooks` (tenant-scoped).

The signing key's public half is served without authentication on purpose: the people who verify an
audit report (an auditor, a regulator, the data subject's counsel) usually hold no API key, a public key
reveals nothing, and one key signs every tenant's reports.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status
from pydantic import BaseModel, Field

from app.auth.dependencies import CurrentTenant
from app.compliance import signing, webhooks
from app.compliance.settings import ComplianceSettings, get_compliance_settings
from app.core.deps import SessionDep, SettingsDep
from app.core.openapi import problem_responses
from app.core.problems import ProblemError

ComplianceSettingsDep = Annotated[ComplianceSettings, Depends(get_compliance_settings)]

signing_router = APIRouter(prefix="/v1", tags=["compliance"])
webhooks_router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"], responses=problem_responses(401))


@signing_router.get(
    "/signing-key", summary="The Ed25519 public key that signs audit reports (PEM; no authentication)",
    response_class=Response,
    responses={200: {"content": {"application/x-pem-file": {}}, "description": "SubjectPublicKeyInfo PEM; the "
                     "`Grin-Key-Id` header is the DSSE keyid (sha256 of the raw key)"}, 503: {}},
)
def read_signing_key(settings: SettingsDep, compliance: ComplianceSettingsDep) -> Response:
    try:
        pem = signing.public_key_pem(settings, compliance)
    except signing.SigningError as exc:
        raise ProblemError(503, "Service Unavailable", "no signing key is configured") from exc
    keyid = signing.key_id(signing.load_public_key(pem.encode("ascii")))
    return Response(pem, media_type="application/x-pem-file",
                    headers={"Grin-Key-Id": keyid, "Cache-Control": "public, max-age=300"})


class WebhookCreate(BaseModel):
    url: str = Field(max_length=2000, description="http(s) URL that receives POSTed events")
    events: list[webhooks.EventType] | None = Field(
        default=None, description="Event types to receive; default all of them")
    description: str = Field(default="", max_length=200)


class WebhookOut(BaseModel):
    id: uuid.UUID
    url: str
    events: list[str]
    description: str
    active: bool
    created_at: datetime

    model_config = {"from_attributes": True}


class WebhookCreated(WebhookOut):
    secret: str = Field(description="`whsec_...`: verify `webhook-signature` with it. Shown only this once.")


class WebhookDeliveryOut(BaseModel):
    id: uuid.UUID
    event_type: str
    webhook_id: str
    status: str
    attempts: int
    last_response_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime

    model_config = {"from_attributes": True}


def _own_endpoint(session: SessionDep, tenant: CurrentTenant, webhook_id: uuid.UUID):  # type: ignore[no-untyped-def]
    endpoint = webhooks.endpoint_of(session, tenant.id, webhook_id)
    if endpoint is None:
        raise ProblemError(404, "Not Found", f"no webhook {webhook_id}")
    return endpoint


@webhooks_router.post("", status_code=status.HTTP_201_CREATED, summary="Add a webhook endpoint (secret shown once)",
                      responses=problem_responses(409, 422))
def create_webhook(body: WebhookCreate, tenant: CurrentTenant, session: SessionDep,
                   compliance: ComplianceSettingsDep, response: Response) -> WebhookCreated:
    if len(webhooks.endpoints_of(session, tenant.id)) >= webhooks.MAX_ENDPOINTS_PER_TENANT:
        raise ProblemError(409, "Conflict", f"at most {webhooks.MAX_ENDPOINTS_PER_TENANT} webhook endpoints "
                           "per tenant; delete one first")
    try:
        endpoint = webhooks.create_endpoint(session, tenant.id, body.url, body.events,
                                            description=body.description, settings=compliance)
    except webhooks.WebhookUrlError as exc:
        raise ProblemError(422, "Unprocessable Content", f"url: {exc}",
                           errors=[{"loc": "body.url", "msg": str(exc), "type": "value_error"}]) from exc
    session.commit()
    response.headers["Location"] = f"/v1/webhooks/{endpoint.id}"
    return WebhookCreated.model_validate(endpoint)


@webhooks_router.get("", summary="List webhook endpoints (secrets are never listed)")
def list_webhooks(tenant: CurrentTenant, session: SessionDep) -> list[WebhookOut]:
    return [WebhookOut.model_validate(e) for e in webhooks.endpoints_of(session, tenant.id)]


@webhooks_router.get("/{webhook_id}", summary="A webhook endpoint", responses=problem_responses(404, 422))
def read_webhook(webhook_id: uuid.UUID, tenant: CurrentTenant, session: SessionDep) -> WebhookOut:
    return WebhookOut.model_validate(_own_endpoint(session, tenant, webhook_id))


@webhooks_router.get("/{webhook_id}/deliveries", summary="Recent deliveries to an endpoint, newest first",
                     responses=problem_responses(404, 422))
def list_deliveries(webhook_id: uuid.UUID, tenant: CurrentTenant, session: SessionDep,
                    limit: Annotated[int, Query(ge=1, le=200)] = 50) -> list[WebhookDeliveryOut]:
    endpoint = _own_endpoint(session, tenant, webhook_id)
    return [WebhookDeliveryOut.model_validate(d) for d in webhooks.deliveries_of(session, endpoint.id, limit)]


@webhooks_router.delete("/{webhook_id}", status_code=status.HTTP_204_NO_CONTENT,
                        summary="Remove a webhook endpoint (pending deliveries are dropped)",
                        responses=problem_responses(404, 422))
def delete_webhook(webhook_id: uuid.UUID, tenant: CurrentTenant, session: SessionDep) -> Response:
    session.delete(_own_endpoint(session, tenant, webhook_id))
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
