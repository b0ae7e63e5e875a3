#!/usr/bin/env bash
# `make run`: the API and one Celery worker on the embedded default (SQLite + filesystem broker),
# or on whatever GRIN_* variables point at. Ctrl-C stops both.
set -euo pipefail
BIN=.venv/bin
HOST="${GRIN_HOST:-127.0.0.1}"
PORT="${GRIN_PORT:-8000}"

$BIN/python -m app.cli migrate
pids=()
cleanup() {
    trap - INT TERM EXIT
    echo; echo "stopping..."
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

$BIN/celery -A worker.celery_app worker --loglevel=INFO -Q "${GRIN_WORKER_QUEUES:-gpu,cpu}" \
    --concurrency=1 --hostname "grin-local@%h" &
pids+=($!)
$BIN/uvicorn app.main:app --host "$HOST" --port "$PORT" --no-access-log &  # grin.access logs each request (JSON)
pids+=($!)

for _ in $(seq 1 60); do
    curl -fsS "http://$HOST:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 1
done
$BIN/python -m app.cli demo --url "http://$HOST:$PORT" || echo "demo setup failed (the service still runs)"
echo
echo "GRIN is running: OpenAPI docs at http://$HOST:$PORT/docs  (Ctrl-C to stop)"
wait -n "${pids[@]}"
