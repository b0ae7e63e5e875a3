"""Model registration is confined to the model roots; every file is hashed; versions form a lineage."""

from __future__ import annotations

import hashlib
import os

from app.models import ModelVersion
from tests.service.conftest import Api, assert_problem, sha256_of


def test_registration_hashes_every_file_and_creates_version_1(api: Api) -> None:
    headers = api.tenant()
    directory = api.model_dir("tiny")
    response = api.client.post("/v1/models", json={"name": "tiny", "path": str(directory)}, headers=headers)
    assert response.status_code == 201, response.text
    model = response.json()
    assert response.headers["location"] == f"/v1/models/{model['id']}"
    assert model["source_path"] == str(directory.resolve())

    versions = api.client.get(f"/v1/models/{model['id']}/versions", headers=headers).json()
    assert len(versions) == 1
    (version,) = versions
    assert version["id"] == model["current_version_id"]
    assert version["number"] == 1 and version["parent_id"] is None and version["job_id"] is None
    assert version["files"] == {
        "config.json": sha256_of(directory / "config.json"),
        "model.safetensors": sha256_of(directory / "model.safetensors"),
        "tokenizer/tokenizer.json": sha256_of(directory / "tokenizer" / "tokenizer.json"),
    }
    assert version["total_bytes"] == sum(p.stat().st_size for p in directory.rglob("*") if p.is_file())
    assert api.client.get(f"/v1/models/{model['id']}", headers=headers).json() == model


def test_a_symlinked_file_inside_the_roots_is_followed_and_hashed(api: Api) -> None:
    """Hugging Face cache snapshots are symlinks into a blobs folder; inside the roots they are fine."""
    headers = api.tenant()
    directory = api.model_dir("snapshot")
    blob = api.model_root / "blob"
    blob.write_bytes(b"weights")
    (directory / "model.safetensors").unlink()
    (directory / "model.safetensors").symlink_to(blob)
    response = api.client.post("/v1/models", json={"name": "s", "path": str(directory)}, headers=headers)
    assert response.status_code == 201, response.text
    version = api.client.get(f"/v1/models/{response.json()['id']}/versions", headers=headers).json()[0]
    assert version["files"]["model.safetensors"] == hashlib.sha256(b"weights").hexdigest()


def test_paths_outside_the_roots_are_refused(api: Api, tmp_path) -> None:  # type: ignore[no-untyped-def]
    headers = api.tenant()
    inside = api.model_dir("inside")
    outside = api.model_dir("outside", parent=tmp_path / "elsewhere")
    (api.model_root / "escape").symlink_to(outside)
    (api.model_root / "null-link").symlink_to(os.devnull)
    leaky = api.model_dir("leaky")
    (leaky / "secret.bin").symlink_to(outside / "model.safetensors")
    not_a_model = api.model_root / "plain"
    not_a_model.mkdir()
    (not_a_model / "notes.txt").write_text("hello")
    encoder = api.model_dir("encoder")
    (encoder / "config.json").write_text('{"model_type": "bert", "architectures": ["BertForMaskedLM"]}')

    cases = {
        str(api.model_root / "inside" / ".." / "inside"): "'..'",
        f"{api.model_root}/../elsewhere/outside": "'..'",
        str(outside): "outside the configured model roots",
        str(api.model_root / "escape"): "outside the configured model roots",
        os.devnull: "outside the configured model roots",
        str(api.model_root / "null-link"): "outside the configured model roots",
        str(leaky): "secret.bin links outside",
        str(not_a_model): "no config.json",
        str(encoder): "no causal LM",
        str(inside / "config.json"): "not a directory",
        str(api.model_root / "missing"): "no such directory",
        "relative/path": "must be absolute",
    }
    for path, reason in cases.items():
        response = api.client.post("/v1/models", json={"name": "x", "path": path}, headers=headers)
        body = assert_problem(response, 422, reason)
        assert body["errors"][0]["loc"] == "body.path"
    assert api.client.get("/v1/models", headers=headers).json()["items"] == []


def test_versions_list_the_lineage_oldest_first(api: Api) -> None:
    headers = api.tenant()
    model = api.register(headers)
    with api.session() as session:
        first = session.get(ModelVersion, model["current_version_id"])
        assert first is not None
        session.add(ModelVersion(model_id=first.model_id, number=2, parent_id=first.id, location="manifest-key",
                                 files={"model.safetensors": "0" * 64}, total_bytes=10))
        session.commit()
    versions = api.client.get(f"/v1/models/{model['id']}/versions", headers=headers).json()
    assert [v["number"] for v in versions] == [1, 2]
    assert versions[1]["parent_id"] == versions[0]["id"]


def test_models_list_is_paginated_by_cursor(api: Api) -> None:
    headers = api.tenant()
    for name in ["c", "a", "b"]:
        api.register(headers, name)
    first = api.client.get("/v1/models?limit=2", headers=headers).json()
    assert [m["name"] for m in first["items"]] == ["a", "b"]
    second = api.client.get(f"/v1/models?limit=2&cursor={first['next_cursor']}", headers=headers).json()
    assert [m["name"] for m in second["items"]] == ["c"] and second["next_cursor"] is None
    assert_problem(api.client.get("/v1/models?cursor=garbage", headers=headers), 422)
