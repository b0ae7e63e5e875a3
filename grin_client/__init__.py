"""Python client for the GRIN unlearning service (sync and async), typed with the API's own pydantic schemas.

    from grin_client import GrinClient

    with GrinClient("http://127.0.0.1:8000", api_key="grin_...") as grin:
        model = grin.register_model("llama-7b", "/srv/models/llama-7b")
        job = grin.submit(model.id, "qa", forget=[{"question": "...", "answer": "..."}], idempotency_key="req-42")
        job = grin.wait(job.id, on_progress=lambda j: print(j.status, j.stage, j.progress))
        grin.download_mask(job.id, "mask.safetensors")

Never imports torch (nor anything that does): the schemas it reuses are torch-free by contract.
"""

from grin_client.client import AsyncGrinClient, GrinClient
from grin_client.config import ClientConfig, load_config
from grin_client.errors import (
    ApiError,
    BadRequest,
    Conflict,
    GrinError,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    ServiceUnreachable,
    Unauthorized,
    ValidationFailed,
    WaitTimeout,
)

__all__ = [
    "ApiError",
    "AsyncGrinClient",
    "BadRequest",
    "ClientConfig",
    "Conflict",
    "GrinClient",
    "GrinError",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "ServerError",
    "ServiceUnreachable",
    "Unauthorized",
    "ValidationFailed",
    "WaitTimeout",
    "load_config",
]
