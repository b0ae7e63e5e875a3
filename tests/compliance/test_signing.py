"""Signed reports: DSSE PAE, Ed25519 over it, in-toto subjects, and every flipped byte failing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from app.compliance import signing
from app.compliance.cli import compliance_cli
from app.compliance.endpoints import signing_router
from app.compliance.settings import ComplianceSettings, get_compliance_settings
from app.core.config import Settings, get_settings


def test_pae_matches_the_dsse_spec_example() -> None:
    # The example from the DSSE v1 protocol document.
    assert signing.pae("http://example.com/HelloWorld", b"hello world") == \
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    # Lengths are byte lengths, of UTF-8 text too.
    assert signing.pae("t\u00e9", b"\x00\xff") == b"DSSEv1 3 t\xc3\xa9 2 \x00\xff"


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def _public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    root = tmp_path / "artifacts"
    (root / "model").mkdir(parents=True)
    (root / "report.json").write_bytes(b'{"schema_version":"1.0","verdict":{"passed":true}}')
    (root / "model" / "config.json").write_text('{"hidden_size": 8}')
    (root / "model" / "model.safetensors").write_bytes(os.urandom(4096))
    return root


def _sign(artifacts: Path, key: Ed25519PrivateKey) -> bytes:
    statement = signing.build_statement((artifacts / "report.json").read_bytes(),
                                        signing.hash_tree(artifacts / "model"),
                                        {"job_id": "job-1", "verdict": "passed"})
    return signing.envelope_bytes(signing.sign_statement(statement, key))


def test_envelope_is_an_in_toto_statement_checkable_by_hand(artifacts: Path, key: Ed25519PrivateKey) -> None:
    envelope = json.loads(_sign(artifacts, key))
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    payload = base64.b64decode(envelope["payload"])
    statement = json.loads(payload)
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == "https://grin.dev/unlearning-report/v1"
    assert statement["subject"] == [
        {"name": "report.json",
         "digest": {"sha256": hashlib.sha256((artifacts / "report.json").read_bytes()).hexdigest()}},
        {"name": "model/config.json",
         "digest": {"sha256": hashlib.sha256((artifacts / "model/config.json").read_bytes()).hexdigest()}},
        {"name": "model/model.safetensors",
         "digest": {"sha256": hashlib.sha256((artifacts / "model/model.safetensors").read_bytes()).hexdigest()}},
    ]
    # The signature checks with nothing but `cryptography` over the PAE written out by hand.
    message = b"DSSEv1 28 application/vnd.in-toto+json " + str(len(payload)).encode() + b" " + payload
    key.public_key().verify(base64.b64decode(envelope["signatures"][0]["sig"]), message)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert envelope["signatures"][0]["keyid"] == hashlib.sha256(raw).hexdigest()

    result = signing.verify_envelope(_sign(artifacts, key), _public_pem(key), artifacts_dir=artifacts)
    assert result.subjects_checked == ["report.json", "model/config.json", "model/model.safetensors"]
    assert result.predicate["job_id"] == "job-1"


def test_every_flipped_byte_of_the_envelope_fails(artifacts: Path, key: Ed25519PrivateKey) -> None:
    envelope = _sign(artifacts, key)
    public = key.public_key()
    for mask in (0x01, 0x20, 0x80):
        for index in range(len(envelope)):
            tampered = bytearray(envelope)
            tampered[index] ^= mask
            with pytest.raises(signing.VerificationError) as caught:
                signing.verify_envelope(bytes(tampered), public)
            assert "\n" not in str(caught.value)


def test_flipped_artifact_byte_missing_or_extra_file_fail(artifacts: Path, key: Ed25519PrivateKey) -> None:
    envelope = _sign(artifacts, key)
    weights = artifacts / "model" / "model.safetensors"
    original = weights.read_bytes()
    for index in (0, len(original) // 2, len(original) - 1):
        flipped = bytearray(original)
        flipped[index] ^= 0x01
        weights.write_bytes(bytes(flipped))
        with pytest.raises(signing.VerificationError, match=r"subject model/model.safetensors: sha256 .* altered"):
            signing.verify_envelope(envelope, key.public_key(), artifacts_dir=artifacts)
    weights.write_bytes(original)
    signing.verify_envelope(envelope, key.public_key(), artifacts_dir=artifacts)

    report = artifacts / "report.json"
    report.write_bytes(report.read_bytes().replace(b"true", b"fals"))
    with pytest.raises(signing.VerificationError, match=r"subject report\.json"):
        signing.verify_envelope(envelope, key.public_key(), artifacts_dir=artifacts)
    report.unlink()
    with pytest.raises(signing.VerificationError, match=r"report\.json: file missing"):
        signing.verify_envelope(envelope, key.public_key(), artifacts_dir=artifacts)


def test_unlisted_checkpoint_file_and_wrong_key_fail(artifacts: Path, key: Ed25519PrivateKey) -> None:
    envelope = _sign(artifacts, key)
    (artifacts / "model" / "extra.safetensors").write_bytes(b"x")
    with pytest.raises(signing.VerificationError, match=r"model/extra\.safetensors is in the checkpoint but not"):
        signing.verify_envelope(envelope, key.public_key(), artifacts_dir=artifacts)
    with pytest.raises(signing.VerificationError, match="not by the given key"):
        signing.verify_envelope(envelope, Ed25519PrivateKey.generate().public_key())


def test_subject_names_cannot_escape_the_artifacts_folder(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    statement = {"_type": signing.STATEMENT_TYPE, "predicateType": signing.PREDICATE_TYPE, "predicate": {},
                 "subject": [{"name": "../secret", "digest": {"sha256": "0" * 64}}]}
    envelope = signing.envelope_bytes(signing.sign_statement(statement, key))
    (tmp_path / "a").mkdir()
    with pytest.raises(signing.VerificationError, match="not a safe relative path"):
        signing.verify_envelope(envelope, key.public_key(), artifacts_dir=tmp_path / "a")


def test_embedded_key_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    compliance = ComplianceSettings(signing_key_path=None)
    first = signing.public_key_pem(settings, compliance)
    path = tmp_path / "signing" / "ed25519.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert signing.public_key_pem(settings, compliance) == first  # stored, not regenerated

    production = Settings(data_dir=tmp_path / "prod", broker_url="redis://127.0.0.1:6379/15")
    with pytest.raises(signing.SigningError, match="GRIN_SIGNING_KEY_PATH"):
        signing.load_signing_key(production, compliance)
    # An operator-provided key is used as is.
    provided = ComplianceSettings(signing_key_path=path)
    assert signing.public_key_pem(production, provided) == first


def test_signing_key_endpoint_serves_the_public_pem(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    compliance = ComplianceSettings()
    app = FastAPI()
    app.include_router(signing_router)
    app.dependency_overrides[get_settings] = lambda: settings
    app.dependency_overrides[get_compliance_settings] = lambda: compliance
    response = TestClient(app).get("/v1/signing-key")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-pem-file")
    assert response.text == signing.public_key_pem(settings, compliance)
    assert "PRIVATE" not in response.text
    public = signing.load_public_key(response.content)
    assert response.headers["grin-key-id"] == signing.key_id(public)


def test_verify_report_cli_exit_codes(artifacts: Path, key: Ed25519PrivateKey, tmp_path: Path) -> None:
    runner = CliRunner()
    envelope_path = tmp_path / "report.dsse.json"
    envelope_path.write_bytes(_sign(artifacts, key))
    pem = tmp_path / "key.pem"
    pem.write_bytes(_public_pem(key))

    ok = runner.invoke(compliance_cli, ["verify-report", str(envelope_path), "--artifacts", str(artifacts),
                                        "--public-key", str(pem)])
    assert ok.exit_code == 0, ok.output
    assert "OK: job job-1" in ok.output and "3 subjects match" in ok.output

    weights = artifacts / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[100] ^= 0x04
    weights.write_bytes(bytes(data))
    failed = runner.invoke(compliance_cli, ["verify-report", str(envelope_path), "--artifacts", str(artifacts),
                                            "--public-key", str(pem)])
    assert failed.exit_code == 1
    assert failed.output.strip().startswith("FAILED: subject model/model.safetensors")
    assert len(failed.output.strip().splitlines()) == 1

    tampered = bytearray(envelope_path.read_bytes())
    tampered[len(tampered) // 2] ^= 0x01
    envelope_path.write_bytes(bytes(tampered))
    assert runner.invoke(compliance_cli, ["verify-report", str(envelope_path), "--public-key", str(pem)]).exit_code == 1

    for args in (["verify-report", str(tmp_path / "missing.json"), "--public-key", str(pem)],
                 ["verify-report", str(envelope_path), "--public-key", str(tmp_path / "nope.pem")],
                 ["verify-report", str(envelope_path), "--public-key", str(envelope_path)],
                 ["verify-report", str(envelope_path), "--artifacts", str(tmp_path / "none"),
                  "--public-key", str(pem)]):
        bad = runner.invoke(compliance_cli, args)
        assert bad.exit_code == 2, (args, bad.output)
        assert "Traceback" not in bad.output and bad.output.startswith("error: ")
        assert isinstance(bad.exception, SystemExit)
