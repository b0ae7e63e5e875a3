from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

# The record kinds a job can unlearn; `grin_engine.records` defines each one's fields.
RecordKind = Literal["qa", "text", "harmful"]


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    kind: RecordKind
    record_count: int
    sha256: str
    size_bytes: int
    created_at: datetime
