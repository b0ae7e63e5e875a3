"""Model path confinement and API keys under abuse (extends tests/service/test_models.py and test_auth.py).

Paths: `..`, absolute paths outside the roots, symlinks that escape (the directory itself, a file in it, a
symlinked sub-directory), device files and FIFOs (as the path, and inside a model directory), NUL bytes and
relative paths: all refused with 422 naming `path`, and nothing is registered.
Keys: missing, malformed and revoked keys answer 401; an unknown prefix costs the same digest comparison as a
wrong secret (timing-safe); the secret never reaches the API's or the worker's logs.
"""

from __future__ import annotations

import hmac
import os
import stat
import time
from pathlib import Path

import httpx
import pytest

from app.auth import service as auth
from app.core.config import Settings
from tests.reliability.conftest import Stack
from tests.reliability.figures import record
from tests.service.conftest import Api, assert_problem


def test_model_paths_that_escape_or_are_not_plain_files_are_refused(api: Api, tmp_path: Path) -> None:
    headers = api.tenant()
    root = api.model_root
    outside = api.model_dir("outside", parent=tmp_path)
    good = api.model_dir("good")

    (root / "link-out").symlink_to(outside)  # the directory itself leads out
    leaky = api.model_dir("leaky")
    (leaky / "extra.bin").symlink_to(outside / "model.safetensors")  # one file leads out
    subdir = api.model_dir("subdir-link")
    (subdir / "shards").symlink_to(outside)  # a symlinked sub-directory
    fifo = api.model_dir("fifo")
    os.mkfifo(fifo / "weights.bin")  # reading it would block the worker forever
    device = api.model_dir("device")
    os.mknod(device / "zero.bin", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero: endless bytes
    (root / "dev-link").symlink_to("/dev")
    (root / "loop").symlink_to(root / "loop")

    cases = {
        f"{root}/good/../good": "'..'",
        f"{root}/../{outside.parent.name}/outside": "'..'",
        str(outside): "outside the configured model roots",
        "/etc": "outside the configured model roots",
        "/": "outside the configured model roots",
        "/dev/zero": "outside the configured model roots",
        "/proc/self/root": "outside the configured model roots",
        str(root / "link-out"): "outside the configured model roots",
        str(root / "dev-link"): "outside the configured model roots",
        str(root / "loop"): "no such directory",
        str(leaky): "links outside the configured model roots",
        str(subdir): "symlinked directories are refused",
        str(fifo): "is not a regular file",
        str(device): "is not a regular file",
        str(good / "model.safetensors"): "is not a directory",
        "good": "must be absolute",
        f"{good}\x00": "NUL",
        "": "",
    }
    for path, fragment in cases.items():
        response = api.client.post("/v1/models", json={"name": "x", "path": path}, headers=headers)
        assert response.status_code == 422, (path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert fragment in response.json()["detail"], (path, response.json())
        assert "path" in response.text
    assert api.client.get("/v1/models", headers=headers).json()["items"] == []
    assert api.client.post("/v1/models", json={"name": "ok", "path": str(good)}, headers=headers).status_code == 201
    record("path_confinement", refused=len(cases), accepted_escapes=0)


def test_unknown_prefix_wrong_secret_and_revoked_key_cost_one_digest_comparison(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    headers = api.tenant()
    secret = headers["Authorization"].removeprefix("Bearer ")
    prefix = secret.split("_")[1]
    calls: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def counting(a: str, b: str) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    presented = {"valid": secret, "unknown prefix": "grin_0123456789ab_" + secret.split("_", 2)[2],
                 "wrong secret": f"grin_{prefix}_guess"}
    with api.session() as session:
        for name, key in presented.items():
            calls.clear()
            tenant = auth.authenticate(session, key)
            assert (tenant is not None) == (name == "valid"), name
            assert len(calls) == 1, name  # same work whether or not the prefix exists
            assert all(len(a) == len(b) == 64 for a, b in calls)
        auth.revoke_key(session, prefix)
        session.commit()
        calls.clear()
        assert auth.authenticate(session, secret) is None
        assert len(calls) == 1
    for authorization in (None, "", "Bearer", "Token x", f"Bearer {secret}", f"bearer {secret}x"):
        response = api.client.get("/v1/models", headers={} if authorization is None else
                                  {"Authorization": authorization})
        assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.slow
def test_keys_never_reach_the_service_logs(shared_stack: Stack) -> None:
    stack = shared_stack
    with stack.ledger() as session:
        tenant = auth.create_tenant(session, "log-probe")
        issued = auth.issue_key(session, tenant, "probe")
        session.commit()
    key = issued.secret
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        for value in (key, key + "x", key.upper(), f"grin_{issued.api_key.prefix}_wrong"):
            c.get("/v1/models", headers={"Authorization": f"Bearer {value}"})
            c.get("/v1/jobs/not-a-uuid", headers={"Authorization": f"Bearer {value}"})
        with stack.ledger() as session:
            auth.revoke_key(session, issued.api_key.prefix)
            session.commit()
        # The API remembers an authenticated key for api_key_cache_s (5 s by default), never longer.
        deadline = time.monotonic() + Settings.model_fields["api_key_cache_s"].default + 1
        while c.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code != 401:
            assert time.monotonic() < deadline, "a revoked key still works after the key cache's lifetime"
            time.sleep(0.1)
    secret_part = key.split("_", 2)[2]
    logs = [stack.tmp / "api.log", *stack.worker_logs]
    for path in logs:
        text = path.read_text(errors="replace") if path.exists() else ""
        assert secret_part not in text and secret_part.upper() not in text, path
        assert stack.key.split("_", 2)[2] not in text, path
