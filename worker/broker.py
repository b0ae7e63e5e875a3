"""Broker plumbing shared by the API (enqueue, readiness) and the worker; no Celery app needed."""

from __future__ import annotations

from pathlib import Path

from kombu import Connection

from app.core.config import Settings


def filesystem_transport_options(settings: Settings) -> dict[str, object]:
    """kombu's filesystem transport: one file per message in a folder; producers and consumers on one host."""
    folder = settings.broker_folder
    for sub in ("queue", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }


def ping_broker(settings: Settings) -> None:
    """Raise unless the broker accepts a connection (used by /readyz)."""
    if settings.embedded:
        options = filesystem_transport_options(settings)
        for option in ("data_folder_in", "control_folder"):
            probe = Path(str(options[option])) / ".readyz-probe"
            probe.write_bytes(b"")  # the folder must be writable, not merely present
            probe.unlink()
        return
    with Connection(settings.broker_url, connect_timeout=3) as connection:
        connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=3)
