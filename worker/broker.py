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


def tolerate_closed_redis_transport() -> None:
    """Keep the worker alive when Redis goes away (kombu 5.7 with redis-py; seen in tests/reliability).

    On a lost connection the consumer closes its connection and kombu's Redis channel, while closing, tries to
    restore its unacknowledged messages through a client built from its transport's `client`, which kombu has
    already cleared: the AttributeError it raises is not a connection error, so it escapes
    `Connection.maybe_close_channel` and Celery stops the worker ("Unrecoverable error"). Raising a Redis
    ConnectionError instead lets kombu treat it as what it is and reconnect; the messages it could not restore
    are the ones the broker lost anyway, and the ledger's recovery sweep re-enqueues their jobs.
    """
    import redis
    from kombu.transport import redis as kombu_redis

    original = kombu_redis.Channel._connparams
    if getattr(original, "_grin_tolerant", False):
        return

    def _connparams(self, asynchronous=False):  # type: ignore[no-untyped-def]
        if self.connection is None or getattr(self.connection, "client", None) is None:
            raise redis.exceptions.ConnectionError("the broker connection is already closed")
        return original(self, asynchronous=asynchronous)

    _connparams._grin_tolerant = True  # type: ignore[attr-defined]
    kombu_redis.Channel._connparams = _connparams
