"""Model registration: confine the directory to the model roots, check it is a causal LM, hash every file."""

from __future__ import annotations

import json
import os
import stat
import uuid
from pathlib import Path, PurePath

from sqlalchemy.orm import Session

from app.core.artifacts import sha256_file
from app.core.config import Settings
from app.core.problems import ProblemError
from app.models import ModelVersion, RegisteredModel, Tenant
from app.registry import repository

WEIGHT_SUFFIXES = (".safetensors", ".bin")
# Hugging Face names causal LM heads `...ForCausalLM`; GPT-2 style models use `...LMHeadModel`.
CAUSAL_LM_SUFFIXES = ("ForCausalLM", "LMHeadModel")


def _refuse(detail: str) -> ProblemError:
    return ProblemError(422, "Unprocessable Content", f"path: {detail}",
                        errors=[{"loc": "body.path", "msg": detail, "type": "value_error"}])


def _confined(path: Path, roots: list[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)


def confine_model_dir(raw: str, roots: list[Path]) -> Path:
    """The resolved directory, or a 422 when it is not a directory lying under a model root.

    `..` is refused outright (even when it would stay inside a root), and the check runs on the path with
    every symlink resolved, so neither a link nor a relative step can lead out of the roots.
    """
    if "\x00" in raw:
        raise _refuse("contains a NUL byte")
    pure = PurePath(raw)
    if not pure.is_absolute():
        raise _refuse("must be absolute")
    if ".." in pure.parts:
        raise _refuse("must not contain '..'")
    try:
        resolved = Path(raw).resolve(strict=True)
    except (OSError, RuntimeError):
        raise _refuse("no such directory") from None
    if not _confined(resolved, roots):
        raise _refuse("lies outside the configured model roots")
    if not stat.S_ISDIR(os.stat(resolved).st_mode):
        raise _refuse("is not a directory")
    return resolved


def _model_files(directory: Path, roots: list[Path]) -> list[tuple[str, Path]]:
    """(relative POSIX path, resolved file) for every file, refusing links out of the roots and special files."""
    found: list[tuple[str, Path]] = []
    for current, dirnames, filenames in os.walk(directory, followlinks=False):
        for name in dirnames:
            if (Path(current) / name).is_symlink():
                raise _refuse(f"{Path(current, name).relative_to(directory)}: symlinked directories are refused")
        for name in filenames:
            entry = Path(current) / name
            relative = entry.relative_to(directory).as_posix()
            target = entry.resolve()
            if not _confined(target, roots):
                raise _refuse(f"{relative} links outside the configured model roots")
            try:
                mode = os.stat(target).st_mode
            except OSError:
                raise _refuse(f"{relative}: dangling link") from None
            if not stat.S_ISREG(mode):
                raise _refuse(f"{relative} is not a regular file")
            found.append((relative, target))
    return sorted(found)


def _check_causal_lm(directory: Path, relative_paths: set[str]) -> None:
    """Looks like a Hugging Face causal LM, judged from config.json alone (transformers is not imported here)."""
    if "config.json" not in relative_paths:
        raise _refuse("has no config.json: not a Hugging Face model directory")
    try:
        config = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise _refuse("config.json is not valid JSON") from None
    if not isinstance(config, dict) or "model_type" not in config:
        raise _refuse("config.json has no model_type: not a Hugging Face model config")
    architectures = config.get("architectures") or []
    if architectures and not any(str(a).endswith(CAUSAL_LM_SUFFIXES) for a in architectures):
        raise _refuse(f"config.json architectures {architectures} name no causal LM")
    if not any(p.endswith(WEIGHT_SUFFIXES) for p in relative_paths):
        raise _refuse("has no weights (*.safetensors or *.bin)")


def register_model(session: Session, settings: Settings, tenant: Tenant, name: str, raw_path: str) -> RegisteredModel:
    directory = confine_model_dir(raw_path, settings.model_roots)
    files = _model_files(directory, settings.model_roots)
    _check_causal_lm(directory, {relative for relative, _ in files})
    hashes = {relative: sha256_file(target) for relative, target in files}
    total_bytes = sum(target.stat().st_size for _, target in files)

    model = RegisteredModel(tenant_id=tenant.id, name=name, source_path=str(directory))
    session.add(model)
    session.flush()
    version = ModelVersion(model_id=model.id, number=1, parent_id=None, job_id=None, location=str(directory),
                           files=hashes, total_bytes=total_bytes)
    session.add(version)
    session.flush()
    # Set after both rows exist: models and model_versions reference each other.
    model.current_version_id = version.id
    session.flush()
    return model


def get_model(session: Session, tenant: Tenant, model_id: uuid.UUID) -> RegisteredModel:
    model = repository.model_of_tenant(session, tenant.id, model_id)
    if model is None:
        raise ProblemError(404, "Not Found", f"no model {model_id}")
    return model
