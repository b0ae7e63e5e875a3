from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ModelRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    path: str = Field(min_length=1, max_length=4096,
                      description="A Hugging Face causal LM directory under one of the configured model roots")


class ModelOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    source_path: str
    current_version_id: uuid.UUID | None
    created_at: datetime


class ModelVersionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    model_id: uuid.UUID
    number: int
    parent_id: uuid.UUID | None
    job_id: uuid.UUID | None
    location: str
    files: dict[str, str] = Field(description="{relative path: sha256}")
    total_bytes: int
    weights_deleted_at: datetime | None
    created_at: datetime
