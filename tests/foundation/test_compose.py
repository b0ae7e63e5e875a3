"""docker compose cannot run here, so check the production file's structure instead."""

from __future__ import annotations

import re

import yaml

from app.compliance.settings import ComplianceSettings
from app.core.config import Settings
from tests.conftest import REPO_ROOT

SERVICES = {"postgres", "redis", "migrate", "api", "worker"}


def _compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_every_service_is_defined_with_a_healthcheck() -> None:
    services = _compose()["services"]
    assert set(services) == SERVICES
    for name, service in services.items():
        assert "healthcheck" in service, f"{name} has no healthcheck"


def test_api_and_worker_wait_for_healthy_postgres_redis_and_the_migration() -> None:
    services = _compose()["services"]
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"


def test_migrate_step_creates_the_signing_key_once() -> None:
    """Jobs never generate a key in production, so the one-shot step must (api and worker share the volume)."""
    compose = _compose()
    assert "signing-key --init" in " ".join(compose["services"]["migrate"]["command"])
    key_path = compose["x-grin-env"]["GRIN_SIGNING_KEY_PATH"]
    for name in ("api", "worker", "migrate"):
        mounts = [volume.split(":")[1] for volume in compose["services"][name]["volumes"]]
        assert any(key_path.startswith(mount) for mount in mounts), f"{name} cannot see the signing key"


def test_worker_reserves_a_gpu_and_volumes_are_named() -> None:
    compose = _compose()
    devices = compose["services"]["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in device["capabilities"] for device in devices)
    assert {"pgdata", "artifacts"} <= set(compose["volumes"])


def test_every_grin_variable_is_read_by_settings() -> None:
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"\b(GRIN_[A-Z_]+)\s*:", text))
    assert used, "compose sets no GRIN_ variable"
    known = {f"GRIN_{name.upper()}" for cls in (Settings, ComplianceSettings) for name in cls.model_fields}
    assert used <= known, f"unknown settings: {used - known}"
