"""Compliance settings, read from the same `GRIN_*` environment as `app.core.config.Settings`.

Kept apart from the core settings so the compliance package is self-contained; the fields can be folded
into `Settings` later without changing their environment names.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class ComplianceSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRIN_", env_file=".env", extra="ignore")

    # Ed25519 private key (PKCS#8 PEM). Empty: `<data_dir>/signing/ed25519.pem`, generated on first use in
    # embedded mode only; a production deployment provides the key (a mounted secret) and never generates one.
    signing_key_path: Path | None = None

    # Webhooks: attempts in all (first try included), backoff base (delay = base * 2**(attempt-1)), timeout.
    webhook_max_attempts: int = 8
    webhook_backoff_base_s: float = 10.0
    webhook_timeout_s: float = 10.0
    # Deliveries to loopback/private/link-local addresses are refused (SSRF) unless this is set.
    webhook_allow_private_targets: bool = False

    # Retention: when a job promotes a new version, delete the weights of the version it supersedes (from the
    # artifact store; a registered directory is never touched) and record it in the report.
    delete_superseded_weights: bool = False


@lru_cache
def get_compliance_settings() -> ComplianceSettings:
    return ComplianceSettings()
