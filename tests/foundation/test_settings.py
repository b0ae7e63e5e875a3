from pathlib import Path

import pytest

from app.core.config import EMBEDDED_BROKER, Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("GRIN_"):
            monkeypatch.delenv(name)


def test_embedded_default_keeps_everything_under_one_data_dir(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings()
    data_dir = tmp_path / ".grin"
    assert settings.embedded
    assert settings.broker_url == EMBEDDED_BROKER
    assert settings.database_url == f"sqlite:///{data_dir / 'grin.sqlite3'}"
    assert settings.result_backend == f"db+sqlite:///{data_dir / 'celery-results.sqlite3'}"
    assert settings.artifact_root == str(data_dir / "artifacts")
    assert settings.model_roots == [data_dir / "models"]
    assert settings.worker_queues == ["gpu", "cpu"]


def test_production_urls_and_lists_come_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GRIN_DATABASE_URL", "postgresql+psycopg://u@db:5432/grin")
    monkeypatch.setenv("GRIN_BROKER_URL", "redis://redis:6379/0")
    monkeypatch.setenv("GRIN_MODEL_ROOTS", f"{tmp_path}/a:{tmp_path}/b")
    monkeypatch.setenv("GRIN_WORKER_QUEUES", "gpu")
    monkeypatch.setenv("GRIN_MAX_UPLOAD_BYTES", "1024")
    settings = Settings()
    assert not settings.embedded
    assert settings.database_url == "postgresql+psycopg://u@db:5432/grin"
    assert settings.result_backend == "redis://redis:6379/0"  # follows the broker unless set
    assert settings.model_roots == [tmp_path / "a", tmp_path / "b"]
    assert settings.worker_queues == ["gpu"]
    assert settings.max_upload_bytes == 1024


def test_model_roots_accept_json_and_commas(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("GRIN_MODEL_ROOTS", f'["{tmp_path}/x"]')
    assert Settings().model_roots == [tmp_path / "x"]
    monkeypatch.setenv("GRIN_MODEL_ROOTS", f"{tmp_path}/x,{tmp_path}/y")
    assert Settings().model_roots == [tmp_path / "x", tmp_path / "y"]


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("GRIN_MAX_RECORDS_PER_JOB=7\n")
    assert Settings().max_records_per_job == 7
