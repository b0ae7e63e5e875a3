"""Signed audit reports: an in-toto Statement v1 in a DSSE envelope, signed with Ed25519.

The statement's subjects are the report JSON and every file of the new checkpoint, each by sha256, so a
verifier holding the public key can check that the report was issued by this service *and* that the
weights it has in hand are the ones the report describes.

    statement = build_statement(report_bytes, checkpoint_files, predicate={...})
    envelope = sign_statement(statement, load_signing_key(settings))
    verify_envelope(envelope_bytes, public_key_pem, artifacts_dir=...)   # raises VerificationError

Layout of an artifacts directory, as `verify_envelope(..., artifacts_dir=)` reads it: the report at
`report.json` and the checkpoint under `model/` (subject names are paths relative to that directory).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from app.compliance.settings import ComplianceSettings, get_compliance_settings
from app.core.config import Settings, get_settings

logger = logging.getLogger("grin.compliance")

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
PREDICATE_TYPE = "https://grin.dev/unlearning-report/v1"
REPORT_NAME = "report.json"
CHECKPOINT_PREFIX = "model/"
ENVELOPE_FIELDS = {"payload", "payloadType", "signatures"}


class SigningError(Exception):
    """The signing key cannot be loaded or created (a configuration problem)."""


class VerificationError(Exception):
    """The envelope, its signature or an artifact does not check out; `str()` is a one-line reason."""


class BadInputError(Exception):
    """An input of the verifier (a file, a public key) cannot be read at all."""


# --- encoding ------------------------------------------------------------------------------------------------


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON: sorted keys, no whitespace, UTF-8."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: "DSSEv1" SP len(type) SP type SP len(body) SP body."""
    type_bytes = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(type_bytes), type_bytes, len(payload), payload)


def _b64decode_strict(text: object, what: str) -> bytes:
    """Standard base64, canonical only: a value that decodes but re-encodes differently (altered padding
    bits, missing padding, stray characters) is refused, so no two strings verify as the same bytes."""
    if not isinstance(text, str):
        raise VerificationError(f"{what} is not a base64 string")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise VerificationError(f"{what} is not valid base64") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise VerificationError(f"{what} is not canonical base64")
    return raw


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def hash_tree(directory: Path) -> dict[str, str]:
    """sha256 of every regular file under `directory`, by POSIX path relative to it (symlinks refused)."""
    files: dict[str, str] = {}
    for path in sorted(directory.rglob("*")):
        if path.is_symlink():
            raise SigningError(f"refusing to hash a symlink in a checkpoint: {path}")
        if path.is_file():
            files[path.relative_to(directory).as_posix()] = sha256_file(path)
    return files


# --- keys ----------------------------------------------------------------------------------------------------


def key_id(public_key: Ed25519PublicKey) -> str:
    """sha256 (hex) of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return sha256_bytes(raw)


def default_key_path(settings: Settings, compliance: ComplianceSettings) -> Path:
    if compliance.signing_key_path is not None:
        return compliance.signing_key_path.expanduser()
    return settings.data_dir / "signing" / "ed25519.pem"


def _write_new_key(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, pem)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # atomic and never overwrites: the API and a worker starting together agree on one key
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    logger.warning("generated a new Ed25519 signing key at %s", path)


def load_signing_key(settings: Settings | None = None, compliance: ComplianceSettings | None = None, *,
                     generate: bool | None = None) -> Ed25519PrivateKey:
    """The service's signing key. Generated on first use in embedded mode (mode 0600 under the data dir);
    anywhere else a missing key is a configuration error (`GRIN_SIGNING_KEY_PATH`)."""
    settings = settings or get_settings()
    compliance = compliance or get_compliance_settings()
    path = default_key_path(settings, compliance)
    if generate is None:
        generate = settings.embedded
    if not path.exists():
        if not generate:
            raise SigningError(f"no signing key at {path}; set GRIN_SIGNING_KEY_PATH to an Ed25519 PKCS#8 PEM file")
        _write_new_key(path)
    mode = path.stat().st_mode & 0o077
    if mode:
        logger.warning("signing key %s is readable by group/others (mode %o); chmod 600 it", path, mode | 0o600)
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError, OSError) as exc:
        raise SigningError(f"cannot load the signing key at {path}: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"the signing key at {path} is not an Ed25519 key")
    return key


def public_key_pem(settings: Settings | None = None, compliance: ComplianceSettings | None = None, *,
                   generate: bool | None = None) -> str:
    key = load_signing_key(settings, compliance, generate=generate)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise BadInputError("the public key is not a valid PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise BadInputError("the public key is not an Ed25519 key")
    return key


# --- statement and envelope ----------------------------------------------------------------------------------


def build_statement(report_json: bytes, checkpoint_files: Mapping[str, str], predicate: Mapping[str, Any], *,
                    report_name: str = REPORT_NAME, checkpoint_prefix: str = CHECKPOINT_PREFIX) -> dict[str, Any]:
    """An in-toto Statement v1 whose subjects are the report (hashed here, byte for byte as stored) and the
    checkpoint files (`{relative path: sha256}`, e.g. the engine's `UnlearnResult.model_files`)."""
    subjects = [{"name": report_name, "digest": {"sha256": sha256_bytes(report_json)}}]
    for relative, digest in sorted(checkpoint_files.items()):
        _safe_relative(relative)
        subjects.append({"name": f"{checkpoint_prefix}{relative}", "digest": {"sha256": digest.lower()}})
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": PREDICATE_TYPE,
            "predicate": dict(predicate)}


def sign_statement(statement: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    payload = canonical_json(statement)
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [{"keyid": key_id(key.public_key()), "sig": base64.b64encode(signature).decode("ascii")}],
    }


def envelope_bytes(envelope: Mapping[str, Any]) -> bytes:
    """How an envelope is stored and served: canonical JSON plus a newline."""
    return canonical_json(envelope) + b"\n"


@dataclass
class VerifiedReport:
    statement: dict[str, Any]
    keyid: str
    subjects_checked: list[str] = field(default_factory=list)

    @property
    def predicate(self) -> dict[str, Any]:
        return dict(self.statement.get("predicate") or {})


def _safe_relative(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or any(part in ("..", "") for part in name.split("/")) or "\\" in name:
        raise VerificationError(f"subject name {name!r} is not a safe relative path")
    return path


def verify_envelope(envelope: bytes, public_key: Ed25519PublicKey | bytes, *,
                    artifacts_dir: Path | None = None, checkpoint_prefix: str = CHECKPOINT_PREFIX) -> VerifiedReport:
    """Check the signature, decode the statement and (with `artifacts_dir`) recompute every subject's sha256.

    Raises VerificationError with a one-line reason on the first problem; also fails when the checkpoint
    folder under `artifacts_dir` holds a file the statement does not list (an added shard would load too)."""
    if isinstance(public_key, bytes):
        public_key = load_public_key(public_key)
    expected_keyid = key_id(public_key)

    try:
        parsed = json.loads(envelope.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise VerificationError(f"the envelope is not valid JSON ({type(exc).__name__})") from exc
    if not isinstance(parsed, dict) or set(parsed) != ENVELOPE_FIELDS:
        raise VerificationError("the envelope is not a DSSE envelope (expected exactly payload, payloadType, "
                                "signatures)")
    payload_type = parsed["payloadType"]
    if payload_type != PAYLOAD_TYPE:
        raise VerificationError(f"unexpected payloadType {payload_type!r} (expected {PAYLOAD_TYPE})")
    payload = _b64decode_strict(parsed["payload"], "payload")
    signatures = parsed["signatures"]
    if not isinstance(signatures, list) or not signatures:
        raise VerificationError("the envelope has no signatures")

    message = pae(PAYLOAD_TYPE, payload)
    reasons: list[str] = []
    for index, entry in enumerate(signatures):
        if not isinstance(entry, dict) or set(entry) - {"keyid", "sig"} or "sig" not in entry:
            reasons.append(f"signature {index} is malformed")
            continue
        keyid = entry.get("keyid", "")
        if keyid not in ("", expected_keyid):
            reasons.append(f"signature {index} is by key {str(keyid)[:16]}..., not by the given key "
                           f"{expected_keyid[:16]}...")
            continue
        try:
            sig = _b64decode_strict(entry["sig"], f"signature {index}")
            public_key.verify(sig, message)
        except VerificationError as exc:
            reasons.append(str(exc))
            continue
        except InvalidSignature:
            reasons.append(f"signature {index} does not match the payload (payload or signature altered)")
            continue
        break
    else:
        raise VerificationError("; ".join(reasons))

    try:
        statement = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise VerificationError("the signed payload is not JSON") from exc
    if not isinstance(statement, dict) or statement.get("_type") != STATEMENT_TYPE:
        raise VerificationError(f"the payload is not an in-toto Statement v1 (_type {statement.get('_type')!r})"
                                if isinstance(statement, dict) else "the payload is not an in-toto Statement")
    if statement.get("predicateType") != PREDICATE_TYPE:
        raise VerificationError(f"unexpected predicateType {statement.get('predicateType')!r}")
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects:
        raise VerificationError("the statement has no subjects")
    result = VerifiedReport(statement=statement, keyid=expected_keyid)
    if artifacts_dir is None:
        return result

    root = artifacts_dir.resolve()
    listed: set[str] = set()
    for subject in subjects:
        name = subject.get("name") if isinstance(subject, dict) else None
        digest = (subject.get("digest") or {}).get("sha256") if isinstance(subject, dict) else None
        if not isinstance(name, str) or not isinstance(digest, str):
            raise VerificationError("a subject lacks a name or a sha256 digest")
        _safe_relative(name)
        path = root / name
        if not path.resolve().is_relative_to(root):
            raise VerificationError(f"subject {name} points outside the artifacts folder")
        if not path.is_file():
            raise VerificationError(f"subject {name}: file missing under {artifacts_dir}")
        actual = sha256_file(path)
        if actual != digest.lower():
            raise VerificationError(f"subject {name}: sha256 {actual[:16]}... differs from the signed "
                                    f"{digest[:16]}... (file altered)")
        listed.add(name)
        result.subjects_checked.append(name)
    checkpoint = root / checkpoint_prefix.rstrip("/")
    if checkpoint_prefix and checkpoint.is_dir():
        for path in sorted(checkpoint.rglob("*")):
            if path.is_file() or path.is_symlink():
                name = path.relative_to(root).as_posix()
                if name not in listed:
                    raise VerificationError(f"{name} is in the checkpoint but not in the signed statement")
    return result
