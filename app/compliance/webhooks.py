"""Webhooks: per-tenant endpoints, deliveries stored in the ledger, Standard Webhooks signatures.

    ids = notify_job(session, job)          # or enqueue_event(session, tenant_id, type, data)
    session.commit()
    dispatch(ids)                           # one `grin.webhooks.deliver` task per delivery, on the cpu queue

Each request carries `webhook-id` (the same on every retry: receivers deduplicate on it), `webhook-timestamp`
(unix seconds of this attempt) and `webhook-signature` = "v1," + base64(HMAC-SHA256(key, f"{id}.{ts}.{body}"))
where key is the base64-decoded part of the `whsec_...` secret (https://www.standardwebhooks.com/).
A failed attempt (non-2xx, timeout, refused) is retried after backoff_base * 2**(attempt-1) seconds until
`webhook_max_attempts` attempts were made.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from app.compliance.settings import ComplianceSettings, get_compliance_settings
from app.models.webhook import WebhookDelivery, WebhookEndpoint

EVENT_SUCCEEDED = "unlearning_job.succeeded"
EVENT_FAILED = "unlearning_job.failed"
EVENT_CANCELLED = "unlearning_job.cancelled"
EVENT_AWAITING_APPROVAL = "unlearning_job.awaiting_approval"
EVENTS = (EVENT_SUCCEEDED, EVENT_FAILED, EVENT_CANCELLED, EVENT_AWAITING_APPROVAL)
EventType = Literal["unlearning_job.succeeded", "unlearning_job.failed", "unlearning_job.cancelled",
                    "unlearning_job.awaiting_approval"]
JOB_STATUS_EVENTS = {"succeeded": EVENT_SUCCEEDED, "failed": EVENT_FAILED, "cancelled": EVENT_CANCELLED,
                     "awaiting_approval": EVENT_AWAITING_APPROVAL}
SECRET_PREFIX = "whsec_"
DELIVER_TASK = "grin.webhooks.deliver"
MAX_ENDPOINTS_PER_TENANT = 20
USER_AGENT = "grin-webhooks/1"
logger = logging.getLogger("grin.webhooks")


class WebhookUrlError(ValueError):
    """A target URL the service refuses to call (one-line reason)."""


# --- signing -------------------------------------------------------------------------------------------------


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _secret_key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    message = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_key(secret), message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify_signature(secret: str, headers: dict[str, str], body: bytes, *, tolerance_s: int = 300,
                     now: float | None = None) -> bool:
    """Receiver side (for tests and the docs): any of the space-separated v1 signatures matches and the
    timestamp is within `tolerance_s` of now."""
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        webhook_id = lowered["webhook-id"]
        timestamp = int(lowered["webhook-timestamp"])
        signatures = lowered["webhook-signature"].split()
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance_s:
        return False
    expected = sign(secret, webhook_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signatures)


def body_of(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# --- target URLs ---------------------------------------------------------------------------------------------


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def check_url(url: str, *, allow_private: bool, resolve: bool = True) -> None:
    """http(s) only, no credentials in the URL, and unless `allow_private` every address the host resolves
    to must be public (no loopback, private, link-local such as cloud metadata, or reserved ranges)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise WebhookUrlError(f"not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise WebhookUrlError("only http and https URLs are allowed")
    if not parts.hostname:
        raise WebhookUrlError("the URL has no host")
    if parts.username or parts.password:
        raise WebhookUrlError("credentials in the URL are not allowed; authenticate with the signature")
    if allow_private or not resolve:
        return
    try:
        infos = socket.getaddrinfo(parts.hostname, port or (443 if parts.scheme == "https" else 80),
                                   proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as exc:
        raise WebhookUrlError(f"the host {parts.hostname} does not resolve") from exc
    for info in infos:
        if not _is_public(str(info[4][0])):
            raise WebhookUrlError(f"the host {parts.hostname} resolves to a non-public address ({info[4][0]})")


# --- endpoints and events ------------------------------------------------------------------------------------


def create_endpoint(session: Session, tenant_id: uuid.UUID, url: str, events: Sequence[str] | None = None, *,
                    description: str = "", settings: ComplianceSettings | None = None) -> WebhookEndpoint:
    settings = settings or get_compliance_settings()
    check_url(url, allow_private=settings.webhook_allow_private_targets)
    chosen = list(dict.fromkeys(events or EVENTS))
    unknown = [event for event in chosen if event not in EVENTS]
    if unknown:
        raise ValueError(f"unknown event types: {', '.join(unknown)} (known: {', '.join(EVENTS)})")
    endpoint = WebhookEndpoint(tenant_id=tenant_id, url=url, secret=new_secret(), events=chosen,
                               description=description, active=True)
    session.add(endpoint)
    session.flush()
    return endpoint


def endpoints_of(session: Session, tenant_id: uuid.UUID) -> list[WebhookEndpoint]:
    query = (select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
             .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id))
    return list(session.scalars(query))


def endpoint_of(session: Session, tenant_id: uuid.UUID, endpoint_id: uuid.UUID) -> WebhookEndpoint | None:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    return endpoint if endpoint is not None and endpoint.tenant_id == tenant_id else None


def deliveries_of(session: Session, endpoint_id: uuid.UUID, limit: int = 50) -> list[WebhookDelivery]:
    query = (select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
             .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id).limit(limit))
    return list(session.scalars(query))


def enqueue_event(session: Session, tenant_id: uuid.UUID, event_type: str, data: dict[str, Any], *,
                  now: datetime | None = None) -> list[uuid.UUID]:
    """A pending delivery for every active endpoint of the tenant subscribed to `event_type` (flushed, not
    committed). Commit, then `dispatch(ids)`: a task sent before the commit could run before the row exists."""
    if event_type not in EVENTS:
        raise ValueError(f"unknown event type {event_type!r}")
    now = now or datetime.now(UTC)
    payload = {"type": event_type, "timestamp": now.astimezone(UTC).isoformat(timespec="milliseconds")
               .replace("+00:00", "Z"), "data": data}
    payload = json.loads(body_of(payload))
    ids: list[uuid.UUID] = []
    for endpoint in endpoints_of(session, tenant_id):
        if not endpoint.active or event_type not in endpoint.events:
            continue
        delivery = WebhookDelivery(endpoint_id=endpoint.id, event_type=event_type, payload=payload,
                                   webhook_id=f"msg_{uuid.uuid4().hex}", attempts=0, status="pending",
                                   next_attempt_at=now)
        session.add(delivery)
        session.flush()
        ids.append(delivery.id)
    return ids


def job_payload(job: Any) -> dict[str, Any]:
    """What a job event tells the receiver: ids and outcome, never data."""
    def _iso(value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value is not None else None

    def _str(value: Any) -> str | None:
        return str(value) if value is not None else None

    return {
        "job_id": str(job.id),
        "tenant_id": str(job.tenant_id),
        "model_id": _str(getattr(job, "model_id", None)),
        "status": job.status,
        "result_version_id": _str(getattr(job, "result_version_id", None)),
        "error": getattr(job, "error", None),
        "finished_at": _iso(getattr(job, "finished_at", None)),
        "links": {"job": f"/v1/jobs/{job.id}", "report": f"/v1/jobs/{job.id}/report.html"},
    }


def notify_job(session: Session, job: Any) -> list[uuid.UUID]:
    """Deliveries for the job's current status when it is one webhooks announce (else none)."""
    event_type = JOB_STATUS_EVENTS.get(job.status)
    if event_type is None:
        return []
    return enqueue_event(session, job.tenant_id, event_type, job_payload(job))


def dispatch(delivery_ids: Iterable[uuid.UUID], celery: Any | None = None, queue: str | None = None) -> None:
    """Send one delivery task per id (after the commit that created them)."""
    if celery is None:
        from worker.celery_app import celery_app as celery
    if queue is None:
        from app.core.config import get_settings

        queue = get_settings().cpu_queue
    for delivery_id in delivery_ids:
        celery.send_task(DELIVER_TASK, args=[str(delivery_id)], queue=queue)


def dispatch_after_commit(session: Session, delivery_ids: Sequence[uuid.UUID], celery: Any | None = None,
                          queue: str | None = None) -> None:
    """Send the tasks once the session's transaction commits (nothing is sent if it rolls back). A broker
    error then is logged, not raised: the rows stay pending and `due_deliveries` finds them."""
    if not delivery_ids:
        return
    ids = list(delivery_ids)

    def _send(_session: Session) -> None:
        try:
            dispatch(ids, celery, queue)
        except Exception:
            logger.exception("could not enqueue %d webhook deliveries; they stay pending", len(ids))

    event.listen(session, "after_commit", _send, once=True)
    event.listen(session, "after_rollback", lambda _s: event.remove(session, "after_commit", _send)
                 if event.contains(session, "after_commit", _send) else None, once=True)


# --- delivery ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    status: str  # pending (retry scheduled) / succeeded / failed / cancelled / skipped / missing
    attempts: int = 0
    response_code: int | None = None
    error: str | None = None
    retry_in_s: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "attempts": self.attempts, "response_code": self.response_code,
                "error": self.error, "retry_in_s": self.retry_in_s}


def backoff_s(attempts_made: int, settings: ComplianceSettings) -> float:
    return float(settings.webhook_backoff_base_s * 2 ** max(attempts_made - 1, 0))


def attempt_delivery(session: Session, delivery_id: uuid.UUID, settings: ComplianceSettings | None = None, *,
                     client: httpx.Client | None = None) -> Attempt:
    """Make one attempt and record it (commits). The row stays locked during the request, so a redelivered
    task cannot post the same delivery twice at once."""
    settings = settings or get_compliance_settings()
    query = (select(WebhookDelivery).where(WebhookDelivery.id == delivery_id)
             .with_for_update(skip_locked=True, key_share=True))
    delivery = session.scalars(query).first()
    if delivery is None:
        session.rollback()
        return Attempt("missing")
    if delivery.status != "pending":
        session.rollback()
        return Attempt("skipped", delivery.attempts)
    now = datetime.now(UTC)
    if delivery.next_attempt_at is not None and delivery.next_attempt_at > now + timedelta(seconds=1):
        session.rollback()  # a duplicate task ahead of the scheduled retry: the scheduled one will run it
        return Attempt("skipped", delivery.attempts)
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None or not endpoint.active:
        delivery.status, delivery.last_error, delivery.next_attempt_at = "cancelled", "endpoint disabled", None
        session.commit()
        return Attempt("cancelled", delivery.attempts)

    body = body_of(delivery.payload)
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(endpoint.secret, delivery.webhook_id, timestamp, body),
    }
    code: int | None = None
    error: str | None = None
    try:
        check_url(endpoint.url, allow_private=settings.webhook_allow_private_targets)
        if client is not None:
            response = client.post(endpoint.url, content=body, headers=headers)
        else:
            with httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False) as own:
                response = own.post(endpoint.url, content=body, headers=headers)
        code = response.status_code
        if not 200 <= code < 300:
            error = f"HTTP {code}"
    except WebhookUrlError as exc:
        error = f"refused target: {exc}"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]

    delivery.attempts += 1
    delivery.last_response_code = code
    delivery.last_error = error
    retry_in: float | None = None
    if error is None:
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = "succeeded", now, None
    elif delivery.attempts >= settings.webhook_max_attempts:
        delivery.status, delivery.next_attempt_at = "failed", None
    else:
        retry_in = backoff_s(delivery.attempts, settings)
        delivery.next_attempt_at = now + timedelta(seconds=retry_in)
    outcome = Attempt(delivery.status, delivery.attempts, code, error, retry_in)
    session.commit()
    return outcome


def redispatch_overdue(factory: Callable[[], Session], send: Callable[[list[uuid.UUID]], None],
                       now: datetime | None = None) -> list[uuid.UUID]:
    """One round of the webhook sweep (the worker's sweep timer runs it): send the overdue deliveries again.
    A delivery's task is lost when the broker was down at its commit or a worker died holding its retry."""
    with factory() as session:
        due = due_deliveries(session, now)
    if due:
        logger.warning("re-sending %d overdue webhook deliveries", len(due))
        send(due)
    return due


def due_deliveries(session: Session, now: datetime | None = None, limit: int = 100) -> list[uuid.UUID]:
    """Pending deliveries whose next attempt is overdue by a minute (a lost task); a periodic sweep may
    `dispatch` them again (the row lock and status check make a duplicate harmless)."""
    cutoff = (now or datetime.now(UTC)) - timedelta(seconds=60)
    query = (select(WebhookDelivery.id).where(WebhookDelivery.status == "pending",
                                              WebhookDelivery.next_attempt_at < cutoff)
             .order_by(WebhookDelivery.next_attempt_at).limit(limit))
    return list(session.scalars(query))
