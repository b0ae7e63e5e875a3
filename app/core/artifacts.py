"""Content-addressed artifact store: every object is named by the sha256 of its bytes.

The default backend is a local directory (`Settings.artifact_root`, `.grin/artifacts` when embedded);
setting `GRIN_ARTIFACT_ROOT` to a URL with a scheme (`s3://bucket/prefix`, `memory://x`, ...) selects an
fsspec filesystem instead. Objects live at `<root>/sha256/<aa>/<bb>/<hex>`; a directory (a safetensors
checkpoint) is stored file by file plus a JSON manifest `{relative path: sha256}`, so two checkpoints that
share a tokenizer store it once.

Writes are atomic (temporary name, then rename) and idempotent: putting bytes already stored costs a hash
and nothing else. Torch-free; the API and the worker both use it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.core.config import Settings

CHUNK = 1024 * 1024
MANIFEST_MEDIA_TYPE = "application/vnd.grin.dir-manifest+json"


class ArtifactError(Exception):
    """A missing object, a bad key or a corrupt copy."""


@dataclass(frozen=True)
class StoredArtifact:
    key: str  # the sha256 hex digest of the bytes
    size_bytes: int
    location: str  # where the bytes live (a path or a URL), for the artifacts table and operators
    media_type: str = "application/octet-stream"

    @property
    def sha256(self) -> str:
        return self.key


@dataclass(frozen=True)
class StoredDir:
    """A directory stored file by file: `files` maps each relative POSIX path to its sha256 key."""

    manifest: StoredArtifact
    files: dict[str, str]
    sizes: dict[str, int]
    artifacts: list[StoredArtifact] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(self.sizes.values())

    @property
    def key(self) -> str:
        return self.manifest.key


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_key(key: str) -> str:
    if len(key) != 64 or any(c not in "0123456789abcdef" for c in key):
        raise ArtifactError(f"not a sha256 key: {key!r}")
    return key


def _media_type(name: str) -> str:
    suffix = PurePosixPath(name).suffix.lower()
    return {
        ".json": "application/json",
        ".jsonl": "application/jsonl",
        ".safetensors": "application/vnd.safetensors",
        ".txt": "text/plain",
    }.get(suffix, "application/octet-stream")


class ArtifactStore:
    """Common logic; `LocalArtifactStore` and `FsspecArtifactStore` supply the byte moving."""

    root: str

    # --- backend primitives -------------------------------------------------------------------
    def _location(self, key: str) -> str:
        raise NotImplementedError

    def _store_file(self, source: Path, key: str) -> None:
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def open(self, key: str) -> IO[bytes]:
        raise NotImplementedError

    def delete(self, key: str) -> bool:
        raise NotImplementedError

    def get_path(self, key: str) -> Path:
        """A local file holding the object (the object itself locally, a verified cached copy for URLs)."""
        raise NotImplementedError

    # --- public API ---------------------------------------------------------------------------
    def location(self, key: str) -> str:
        return self._location(_check_key(key))

    def put_file(self, path: str | Path, media_type: str | None = None) -> StoredArtifact:
        source = Path(path)
        if not source.is_file():
            raise ArtifactError(f"{source}: not a file")
        key = sha256_file(source)
        size = source.stat().st_size
        if not self.exists(key):
            self._store_file(source, key)
        return StoredArtifact(key, size, self._location(key), media_type or _media_type(source.name))

    def put_bytes(self, data: bytes, media_type: str = "application/octet-stream") -> StoredArtifact:
        key = hashlib.sha256(data).hexdigest()
        if not self.exists(key):
            with tempfile.TemporaryDirectory(prefix="grin-put-") as tmp:
                staged = Path(tmp) / "blob"
                staged.write_bytes(data)
                self._store_file(staged, key)
        return StoredArtifact(key, len(data), self._location(key), media_type)

    def put_dir(self, directory: str | Path) -> StoredDir:
        """Store every regular file under `directory`, then a manifest of them (sorted, stable)."""
        base = Path(directory)
        if not base.is_dir():
            raise ArtifactError(f"{base}: not a directory")
        files: dict[str, str] = {}
        sizes: dict[str, int] = {}
        stored: list[StoredArtifact] = []
        for path in sorted(p for p in base.rglob("*") if p.is_file() and not p.is_symlink()):
            rel = path.relative_to(base).as_posix()
            artifact = self.put_file(path)
            files[rel] = artifact.key
            sizes[rel] = artifact.size_bytes
            stored.append(artifact)
        manifest_bytes = json.dumps({"files": files, "sizes": sizes}, sort_keys=True).encode()
        manifest = self.put_bytes(manifest_bytes, MANIFEST_MEDIA_TYPE)
        return StoredDir(manifest=manifest, files=files, sizes=sizes, artifacts=[*stored, manifest])

    def read_bytes(self, key: str) -> bytes:
        with self.open(key) as handle:
            return handle.read()

    def read_manifest(self, key: str) -> dict[str, str]:
        return dict(json.loads(self.read_bytes(key))["files"])

    def materialize_dir(self, files: Mapping[str, str], dest: str | Path, *, verify: bool = True) -> Path:
        """Recreate a stored directory at `dest` from `{relative path: sha256}` (a manifest's files).

        Built in a sibling temporary folder and renamed into place, so a crash never leaves a half
        directory at `dest`; an existing `dest` is replaced.
        """
        target = Path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.parent / f".{target.name}.tmp-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            for rel, key in files.items():
                pure = PurePosixPath(rel)
                if pure.is_absolute() or ".." in pure.parts:
                    raise ArtifactError(f"unsafe path in manifest: {rel!r}")
                out = staging.joinpath(*pure.parts)
                out.parent.mkdir(parents=True, exist_ok=True)
                with self.open(_check_key(key)) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
                if verify and sha256_file(out) != key:
                    raise ArtifactError(f"{rel}: stored object {key} is corrupt")
            if target.exists():
                shutil.rmtree(target)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    # --- ledger -------------------------------------------------------------------------------
    def record(self, session: Session, *artifacts: StoredArtifact) -> None:
        """Add a row to the `artifacts` table for each object not recorded yet (caller commits)."""
        from sqlalchemy import select

        from app.models import Artifact

        keys = {a.key: a for a in artifacts}
        if not keys:
            return
        known = set(session.scalars(select(Artifact.key).where(Artifact.key.in_(list(keys)))))
        for key, artifact in keys.items():
            if key not in known:
                session.add(Artifact(key=key, size_bytes=artifact.size_bytes, location=artifact.location,
                                     media_type=artifact.media_type))
        session.flush()


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: str | Path) -> None:
        self.path = Path(root).expanduser().resolve()
        self.root = str(self.path)
        self.path.mkdir(parents=True, exist_ok=True)

    def _file(self, key: str) -> Path:
        _check_key(key)
        return self.path / "sha256" / key[:2] / key[2:4] / key

    def _location(self, key: str) -> str:
        return str(self._file(key))

    def _store_file(self, source: Path, key: str) -> None:
        final = self._file(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        staged = final.parent / f".{key}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            shutil.copyfile(source, staged)
            os.chmod(staged, 0o444)
            os.replace(staged, final)
        finally:
            staged.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self._file(key).is_file()

    def open(self, key: str) -> IO[bytes]:
        path = self._file(key)
        try:
            return open(path, "rb")
        except FileNotFoundError as exc:
            raise ArtifactError(f"no artifact {key}") from exc

    def delete(self, key: str) -> bool:
        path = self._file(key)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    def get_path(self, key: str) -> Path:
        path = self._file(key)
        if not path.is_file():
            raise ArtifactError(f"no artifact {key}")
        return path


class FsspecArtifactStore(ArtifactStore):
    """Any fsspec filesystem (S3-compatible stores via s3fs, `memory://` in tests)."""

    def __init__(self, url: str, cache_dir: str | Path | None = None, **storage_options: Any) -> None:
        import fsspec

        self.fs, path = fsspec.core.url_to_fs(url, **storage_options)
        self.protocol = url.split("://", 1)[0]
        self.base = path.rstrip("/")
        self.root = url.rstrip("/")
        self.cache_dir = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir()) / "grin-artifact-cache"

    def _path(self, key: str) -> str:
        _check_key(key)
        return f"{self.base}/sha256/{key[:2]}/{key[2:4]}/{key}"

    def _location(self, key: str) -> str:
        return str(self.fs.unstrip_protocol(self._path(key)))

    def _store_file(self, source: Path, key: str) -> None:
        final = self._path(key)
        self.fs.makedirs(final.rsplit("/", 1)[0], exist_ok=True)
        # Object stores make a single PUT atomic; content addressing makes a concurrent duplicate harmless.
        self.fs.put_file(str(source), final)

    def exists(self, key: str) -> bool:
        return bool(self.fs.exists(self._path(key)))

    def open(self, key: str) -> IO[bytes]:
        if not self.exists(key):
            raise ArtifactError(f"no artifact {key}")
        return self.fs.open(self._path(key), "rb")  # type: ignore[no-any-return]

    def delete(self, key: str) -> bool:
        if not self.exists(key):
            return False
        self.fs.rm(self._path(key))
        return True

    def get_path(self, key: str) -> Path:
        cached = self.cache_dir / "sha256" / key[:2] / key[2:4] / key
        if cached.is_file() and sha256_file(cached) == key:
            return cached
        cached.parent.mkdir(parents=True, exist_ok=True)
        staged = cached.parent / f".{key}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            with self.open(key) as src, open(staged, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
            if sha256_file(staged) != key:
                raise ArtifactError(f"stored object {key} is corrupt")
            os.replace(staged, cached)
        finally:
            staged.unlink(missing_ok=True)
        return cached


def open_store(root: str, cache_dir: str | Path | None = None) -> ArtifactStore:
    """A local store for a path, an fsspec store for `scheme://...` (except `file://`)."""
    if "://" in root:
        scheme, rest = root.split("://", 1)
        if scheme == "file":
            return LocalArtifactStore(rest)
        return FsspecArtifactStore(root, cache_dir=cache_dir)
    return LocalArtifactStore(root)


def store_from_settings(settings: Settings) -> ArtifactStore:
    return open_store(settings.artifact_root, cache_dir=settings.data_dir / "artifact-cache")


@contextmanager
def materialized(store: ArtifactStore, files: Mapping[str, str], dest: str | Path) -> Iterator[Path]:
    """`materialize_dir`, removed again on exit."""
    path = store.materialize_dir(files, dest)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
