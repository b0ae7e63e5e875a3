"""Bearer API keys: every route but health needs one; keys are hashed, revocable, and never logged."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from app.auth import service as auth
from app.cli import cli
from app.core.config import get_settings
from app.models import ApiKey
from tests.service.conftest import Api, assert_problem

PROTECTED = ["/v1/tenant", "/v1/models", "/v1/datasets", "/v1/jobs"]


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwdw==", "Bearer nonsense",
                                           "Bearer grin_short_x", "Bearer grin_000000000000_wrongsecret"])
def test_missing_or_malformed_or_unknown_key_is_401(api: Api, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in PROTECTED:
        response = api.client.get(path, headers=headers)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


def test_valid_key_names_its_tenant_and_health_needs_none(api: Api) -> None:
    headers = api.tenant("acme")
    assert api.client.get("/v1/tenant", headers=headers).json()["name"] == "acme"
    assert api.client.get("/healthz").status_code == 200


def test_wrong_secret_with_a_real_prefix_is_401(api: Api) -> None:
    headers = api.tenant()
    prefix = headers["Authorization"].split("_")[1]
    assert_problem(api.client.get("/v1/tenant", headers={"Authorization": f"Bearer grin_{prefix}_guess"}), 401)


def test_revoked_key_is_401_and_only_the_hash_is_stored(api: Api) -> None:
    headers = api.tenant()
    secret = headers["Authorization"].removeprefix("Bearer ")
    prefix = secret.split("_")[1]
    assert api.client.get("/v1/tenant", headers=headers).status_code == 200
    with api.session() as session:
        stored = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).one()
        assert secret.split("_", 2)[2] not in (stored.secret_sha256, stored.prefix, stored.name)
        assert auth.revoke_key(session, prefix) is not None
        session.commit()
    assert_problem(answer_once_revoked(api, headers), 401, "not valid")


def answer_once_revoked(api: Api, headers: dict[str, str]) -> httpx.Response:
    """The first answer after the key's remembered authentication expires (app/auth/cache.py): a revoked key may
    work for api_key_cache_s seconds, never longer."""
    deadline = time.monotonic() + api.settings.api_key_cache_s + 0.5
    while True:
        response = api.client.get("/v1/tenant", headers=headers)
        if response.status_code == 401 or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_a_remembered_key_costs_no_query_and_a_wrong_secret_behind_its_prefix_still_fails(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = api.tenant()
    lookups: list[str] = []
    real = auth.authenticate
    monkeypatch.setattr(auth, "authenticate", lambda session, presented: lookups.append(presented) or
                        real(session, presented))
    assert api.client.get("/v1/tenant", headers=headers).status_code == 200
    assert api.client.get("/v1/tenant", headers=headers).status_code == 200
    assert len(lookups) == 1, "the second request must be answered from the key cache"
    wrong = {"Authorization": headers["Authorization"][:-4] + "AAAA"}
    assert_problem(api.client.get("/v1/tenant", headers=wrong), 401, "not valid")
    assert_problem(api.client.get("/v1/tenant", headers=wrong), 401, "not valid")
    assert len(lookups) == 3, "a failed key is never remembered"
    time.sleep(api.settings.api_key_cache_s + 0.1)
    assert api.client.get("/v1/tenant", headers=headers).status_code == 200
    assert len(lookups) == 4, "an expired entry goes back to the ledger"


def test_key_cache_off_checks_the_ledger_every_time(make_api: Callable[..., Api]) -> None:
    api = make_api(api_key_cache_s=0)
    headers = api.tenant()
    assert api.client.get("/v1/tenant", headers=headers).status_code == 200
    with api.session() as session:
        auth.revoke_key(session, headers["Authorization"].split("_")[1])
        session.commit()
    assert_problem(api.client.get("/v1/tenant", headers=headers), 401, "not valid")


def test_keys_never_reach_the_logs(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    headers = api.tenant()
    secret = headers["Authorization"].removeprefix("Bearer ")
    with caplog.at_level(logging.DEBUG):
        api.client.get("/v1/tenant", headers=headers)
        api.client.get("/v1/tenant", headers={"Authorization": secret + "x"})
    assert secret not in caplog.text


@pytest.fixture
def cli_env(api: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("GRIN_DATA_DIR", str(api.settings.data_dir))
    monkeypatch.setenv("GRIN_DATABASE_URL", api.settings.database_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_admin_cli_creates_tenants_and_keys_prints_a_key_once_and_revokes(api: Api, cli_env: None) -> None:
    runner = CliRunner()
    created = runner.invoke(cli, ["admin", "tenants", "create", "globex"])
    assert created.exit_code == 0, created.output
    assert runner.invoke(cli, ["admin", "tenants", "create", "globex"]).exit_code == 2
    assert "globex" in runner.invoke(cli, ["admin", "tenants", "list"]).output

    issued = runner.invoke(cli, ["admin", "keys", "create", "--tenant", "globex", "--name", "ci"])
    assert issued.exit_code == 0, issued.output
    secret = issued.stdout.strip()
    assert secret.startswith("grin_")
    headers = {"Authorization": f"Bearer {secret}"}
    assert api.client.get("/v1/tenant", headers=headers).json()["name"] == "globex"

    listing = runner.invoke(cli, ["admin", "keys", "list", "--tenant", "globex"]).output
    prefix = secret.split("_")[1]
    assert prefix in listing and secret.split("_", 2)[2] not in listing and "active" in listing

    assert runner.invoke(cli, ["admin", "keys", "revoke", prefix]).exit_code == 0
    assert "active" not in runner.invoke(cli, ["admin", "keys", "list"]).output
    assert runner.invoke(cli, ["admin", "keys", "revoke", "nope"]).exit_code == 2
    assert runner.invoke(cli, ["admin", "keys", "create", "--tenant", "nobody"]).exit_code == 2
    assert_problem(answer_once_revoked(api, headers), 401)
