"""Service settings, read from `GRIN_*` environment variables and an optional `.env` file.

With nothing set the service runs *embedded*: a SQLite ledger, kombu's filesystem broker and a
SQLite Celery result store, all under one data directory, so `make run` needs no server.
Production sets `GRIN_DATABASE_URL=postgresql+psycopg://...` and `GRIN_BROKER_URL=redis://...`.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

EMBEDDED_BROKER = "filesystem://"


def _split_list(value: object) -> object:
    """Accept `a,b` or `a:b` (like PATH) as well as a JSON list in the environment."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            import json

            return json.loads(stripped)
        separator = "," if "," in stripped else ":"
        return [part.strip() for part in stripped.split(separator) if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIN_", env_file=".env", extra="ignore")

    data_dir: Path = Path(".grin")
    database_url: str = ""
    broker_url: str = ""
    result_backend: str = ""
    artifact_root: str = ""
    model_roots: Annotated[list[Path], NoDecode] = Field(default_factory=list)

    # Upload and request limits (bytes / counts); each is refused with a clear 413/422/429.
    max_request_bytes: int = 16 * 1024 * 1024
    max_upload_bytes: int = 256 * 1024 * 1024
    max_record_bytes: int = 64 * 1024
    max_records_per_job: int = 10_000
    max_jobs_in_flight_per_tenant: int = 8

    # API concurrency (app/core/admission.py). Requests beyond api_max_concurrent_requests wait on the event
    # loop, and get a 503 after api_queue_timeout_s. The API's database pool keeps this many connections (plus
    # 10 overflow), so an admitted request never waits for a connection held by one waiting for a thread; mind
    # Postgres's max_connections (this many per API process).
    api_max_concurrent_requests: int = Field(default=20, ge=1, le=200)
    api_queue_timeout_s: float = Field(default=30.0, gt=0)
    # How long an API process remembers a key that authenticated (app/auth/cache.py): a revoked key keeps
    # working for at most this long. 0 checks the ledger on every request.
    api_key_cache_s: float = Field(default=5.0, ge=0, le=300)

    # Celery: the pipeline runs on `gpu`, light work (webhooks, purges) on `cpu`.
    worker_queues: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["gpu", "cpu"])
    gpu_queue: str = "gpu"
    cpu_queue: str = "cpu"
    task_soft_time_limit_s: int = 3 * 3600
    task_time_limit_s: int = 3 * 3600 + 300
    lease_seconds: int = 120
    max_attempts: int = 3
    # The worker's recovery sweep (re-enqueues jobs nobody holds) runs at start and every sweep_interval_s;
    # a queued job is only re-enqueued once it is sweep_grace_s old (its own message is usually on its way).
    sweep_interval_s: float = 60.0
    sweep_grace_s: float = 10.0
    event_every_steps: int = 10  # a job_events row every N fine-tune steps
    cancel_check_interval_s: float = 1.0  # how often the running job re-reads cancel_requested
    # Import torch and the engine in the worker's parent before it forks job children (never touching CUDA):
    # saves every job the imports' seconds. False: each child imports them itself.
    worker_preload_engine: bool = True

    @field_validator("model_roots", "worker_queues", mode="before")
    @classmethod
    def _parse_list(cls, value: object) -> object:
        return _split_list(value)

    @model_validator(mode="after")
    def _fill_embedded_defaults(self) -> Settings:
        data_dir = self.data_dir.expanduser().resolve()
        self.data_dir = data_dir
        if not self.database_url:
            self.database_url = f"sqlite:///{data_dir / 'grin.sqlite3'}"
        if not self.broker_url:
            self.broker_url = EMBEDDED_BROKER
        if not self.result_backend:
            self.result_backend = (
                f"db+sqlite:///{data_dir / 'celery-results.sqlite3'}"
                if self.broker_url == EMBEDDED_BROKER
                else self.broker_url
            )
        if not self.artifact_root:
            self.artifact_root = str(data_dir / "artifacts")
        if not self.model_roots:
            self.model_roots = [data_dir / "models"]
        self.model_roots = [root.expanduser().resolve() for root in self.model_roots]
        return self

    @property
    def embedded(self) -> bool:
        return self.broker_url == EMBEDDED_BROKER

    @property
    def broker_folder(self) -> Path:
        """Where kombu's filesystem transport keeps its message files (embedded mode only)."""
        return self.data_dir / "broker"


@lru_cache
def get_settings() -> Settings:
    return Settings()
