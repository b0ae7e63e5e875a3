"""The ledger's SQLAlchemy models. Import this package to register every table on `Base.metadata`."""

from app.models.artifact import Artifact
from app.models.audit import AuditLogEntry
from app.models.base import Base
from app.models.dataset import Dataset
from app.models.job import (
    EvaluationResult,
    ForgetRecordHash,
    IdempotencyKey,
    Job,
    JobEvent,
    JobInput,
    Mask,
)
from app.models.registry import ModelVersion, RegisteredModel
from app.models.tenant import ApiKey, Tenant
from app.models.webhook import WebhookDelivery, WebhookEndpoint

__all__ = [
    "ApiKey",
    "Artifact",
    "AuditLogEntry",
    "Base",
    "Dataset",
    "EvaluationResult",
    "ForgetRecordHash",
    "IdempotencyKey",
    "Job",
    "JobEvent",
    "JobInput",
    "Mask",
    "ModelVersion",
    "RegisteredModel",
    "Tenant",
    "WebhookDelivery",
    "WebhookEndpoint",
]
