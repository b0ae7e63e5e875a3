"""The content-addressed artifact store, on a local folder and on fsspec's in-memory filesystem."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest

from app.core.artifacts import ArtifactError, ArtifactStore, FsspecArtifactStore, LocalArtifactStore, open_store


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    if request.param == "local":
        return open_store(str(tmp_path / "artifacts"))
    return open_store(f"memory://grin-test-{uuid.uuid4().hex}", cache_dir=tmp_path / "cache")


def test_open_store_picks_backend(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path / "a")), LocalArtifactStore)
    assert isinstance(open_store(f"file://{tmp_path / 'b'}"), LocalArtifactStore)
    assert isinstance(open_store("memory://x"), FsspecArtifactStore)


def test_put_bytes_is_content_addressed_and_idempotent(store: ArtifactStore) -> None:
    data = b"hello artifacts"
    first = store.put_bytes(data)
    again = store.put_bytes(data)
    assert first.key == again.key == hashlib.sha256(data).hexdigest()
    assert first.size_bytes == len(data)
    assert store.exists(first.key)
    assert store.read_bytes(first.key) == data
    assert store.get_path(first.key).read_bytes() == data
    assert store.delete(first.key) is True
    assert not store.exists(first.key)
    assert store.delete(first.key) is False
    with pytest.raises(ArtifactError):
        store.open(first.key)


def test_put_dir_and_materialize_round_trip(store: ArtifactStore, tmp_path: Path) -> None:
    src = tmp_path / "ckpt"
    (src / "sub").mkdir(parents=True)
    (src / "model.safetensors").write_bytes(b"\x00weights" * 100)
    (src / "config.json").write_text('{"a": 1}')
    (src / "sub" / "tokenizer.json").write_text("{}")
    stored = store.put_dir(src)
    assert set(stored.files) == {"model.safetensors", "config.json", "sub/tokenizer.json"}
    assert stored.files["config.json"] == hashlib.sha256(b'{"a": 1}').hexdigest()
    assert stored.total_bytes == 800 + 8 + 2
    assert store.read_manifest(stored.key) == stored.files
    out = store.materialize_dir(stored.files, tmp_path / "restored")
    for rel in stored.files:
        assert (out / rel).read_bytes() == (src / rel).read_bytes()
    # Replacing an existing directory works and leaves no staging folder behind.
    store.materialize_dir(stored.files, tmp_path / "restored")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".restored")) == []


def test_materialize_refuses_unsafe_paths_and_corruption(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "a")
    key = store.put_bytes(b"x").key
    with pytest.raises(ArtifactError):
        store.materialize_dir({"../escape": key}, tmp_path / "out")
    path = store.get_path(key)
    path.chmod(0o644)
    path.write_bytes(b"y")  # corrupt the stored copy
    with pytest.raises(ArtifactError, match="corrupt"):
        store.materialize_dir({"f": key}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bad_keys_are_refused(store: ArtifactStore) -> None:
    with pytest.raises(ArtifactError):
        store.location("../../etc/passwd")
