"""The ledger's SQLAlchemy models. Import this package to register every table on `Base.metadata`."""

from app.models.artifact import Artifact
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

__all__ = [
    "ApiKey",
    "Artifact",
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
]
