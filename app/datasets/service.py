"""Retain data sets: a JSON Lines upload validated line by line while it streams to a temporary file,
then moved into the content-addressed artifact store."""

from __future__ import annotations

import hashlib
import json
import tempfile
import uuid
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.core import jsonparse
from app.core.artifacts import store_from_settings
from app.core.config import Settings
from app.core.problems import ProblemError
from app.datasets import repository
from app.models import Dataset, Tenant
from grin_engine.records import parse_row

JSONL_MEDIA_TYPE = "application/jsonl"


def line_problem(line: int, field: str | None, message: str) -> ProblemError:
    where = f"line {line}: {field}: " if field else f"line {line}: "
    return ProblemError(422, "Unprocessable Content", where + message, line=line, field=field,
                        errors=[{"loc": f"body.line.{line}" + (f".{field}" if field else ""), "msg": message,
                                 "type": "value_error"}])


class JsonlUpload:
    """Fed the body chunk by chunk: validates complete lines as they arrive and spools the bytes to disk,
    so memory holds at most one record (bounded by max_record_bytes) whatever the upload's size."""

    def __init__(self, kind: str, settings: Settings) -> None:
        self.kind = kind
        self.max_record_bytes = settings.max_record_bytes
        staging = settings.data_dir / "uploads"
        staging.mkdir(parents=True, exist_ok=True)
        # Closed by finish() or discard(): the file outlives this call by design.
        self.file = tempfile.NamedTemporaryFile(  # noqa: SIM115
            dir=staging, prefix="dataset-", suffix=".jsonl", delete=False)
        self.path = Path(self.file.name)
        self.digest = hashlib.sha256()
        self.size_bytes = 0
        self.record_count = 0
        self.line_number = 0
        self.pending = b""

    def feed(self, chunk: bytes) -> None:
        self.file.write(chunk)
        self.digest.update(chunk)
        self.size_bytes += len(chunk)
        *lines, self.pending = (self.pending + chunk).split(b"\n")
        for line in lines:
            self._validate(line)
        if len(self.pending) > self.max_record_bytes:
            self._validate(self.pending)  # fails on length: a line this long is refused before it is complete

    def finish(self) -> None:
        if self.pending:
            self._validate(self.pending)
            self.pending = b""
        self.file.close()
        if self.record_count == 0:
            raise ProblemError(422, "Unprocessable Content", "the upload holds no records")

    def discard(self) -> None:
        self.file.close()
        self.path.unlink(missing_ok=True)

    def _validate(self, raw: bytes) -> None:
        self.line_number += 1
        line = self.line_number
        if len(raw) > self.max_record_bytes:
            raise line_problem(line, None, f"the record exceeds {self.max_record_bytes} bytes "
                                           "(GRIN_MAX_RECORD_BYTES)")
        if not raw.strip():
            return
        try:
            row = jsonparse.loads(raw.decode("utf-8"))
        except jsonparse.JsonTooDeep as exc:
            raise line_problem(line, None, str(exc)) from None
        except UnicodeDecodeError:
            raise line_problem(line, None, "not UTF-8") from None
        except json.JSONDecodeError as exc:
            raise line_problem(line, None, f"invalid JSON ({exc.msg})") from None
        try:
            parse_row(row, self.kind)  # type: ignore[arg-type]
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(part) for part in error["loc"]) or None
            raise line_problem(line, field, f"{error['msg']} (a {self.kind} record)") from None
        except (KeyError, TypeError, ValueError) as exc:
            raise line_problem(line, None, f"{exc} (a {self.kind} record)") from None
        self.record_count += 1


def store_dataset(session: Session, settings: Settings, tenant: Tenant, name: str, kind: str,
                  upload: JsonlUpload) -> Dataset:
    """Move a finished upload into the artifact store and record it (caller commits)."""
    store = store_from_settings(settings)
    artifact = store.put_file(upload.path, JSONL_MEDIA_TYPE)
    store.record(session, artifact)
    dataset = Dataset(tenant_id=tenant.id, name=name, kind=kind, record_count=upload.record_count,
                      sha256=upload.digest.hexdigest(), artifact_key=artifact.key, size_bytes=upload.size_bytes)
    session.add(dataset)
    session.flush()
    return dataset


def get_dataset(session: Session, tenant: Tenant, dataset_id: uuid.UUID) -> Dataset:
    dataset = repository.dataset_of_tenant(session, tenant.id, dataset_id)
    if dataset is None:
        raise ProblemError(404, "Not Found", f"no dataset {dataset_id}")
    return dataset
