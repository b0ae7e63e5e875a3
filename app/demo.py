"""`grin demo`: set up the embedded demo against a running API and print the request to try.

Builds (once, cached) a tiny model taught five TOFU authors, in a subprocess: this process never imports
torch. Then, over the HTTP API: a demo tenant and key (kept in `<data_dir>/demo-key` so reruns reuse it), the
model registered, the other authors' pairs uploaded as the retain data set, and a request body that asks to
forget one author, written to `<data_dir>/demo/request.json`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from app.core.config import Settings

DEMO_TENANT = "demo"
DEMO_MODEL = "demo-tofu"

# Sized so the whole job (localize, noise, 20 fine-tune steps, before/after evaluation) takes well under
# three minutes on a laptop CPU. Chosen by a small sweep on the demo model (engine only, 20 steps):
#   lr 1e-3, retain_weight 1: forget p 0.78 -> 0.05, retain 0.79 -> 0.41 (fails the retain criterion)
#   lr 1e-3, retain_weight 5: forget 0.78 -> 0.63 (too little forgetting)
#   lr 2e-3, retain_weight 5: forget 0.78 -> 0.19, retain 0.79 -> 0.73 (passes both)   <- used
#   lr 3e-3, retain_weight 5: forget 0.78 -> 0.02, retain 0.79 -> 0.68
DEMO_METHOD: dict[str, Any] = {"preset": "grin", "config": {
    "localize": {"k": 0.05},
    "noise": {"sigma": 0.1},
    "finetune": {"objective": "graddiff", "steps": 20, "lr": 2e-3, "retain_weight": 5.0, "batch_size": 8,
                 "max_length": 128},
}}
DEMO_POLICY: dict[str, Any] = {"criteria": [
    {"name": "forgotten: answer probability at most half of before", "keys": ["forget/probability"],
     "op": "<=", "threshold": 0.5, "basis": "before_ratio"},
    {"name": "retained: answer probability at least 80% of before", "keys": ["retain/probability"],
     "op": ">=", "threshold": 0.8, "basis": "before_ratio"},
]}


class DemoError(Exception):
    pass


def _check(response: httpx.Response, what: str) -> dict[str, Any]:
    if response.status_code >= 300:
        raise DemoError(f"{what}: {response.status_code} {response.text[:300]}")
    return dict(response.json())


def ensure_model(settings: Settings, echo: Any) -> Path:
    from worker.demo_model import is_built

    model_dir = settings.data_dir / "models" / DEMO_MODEL
    if not is_built(model_dir):
        echo(f"building the demo model in {model_dir} (first run only, a few minutes)...")
        subprocess.run([sys.executable, "-m", "worker.demo_model", str(model_dir)], check=True,
                       stdout=subprocess.DEVNULL)
    return model_dir


def ensure_key(settings: Settings, client: httpx.Client) -> str:
    """The stored demo key if the API still accepts it, else a new one for the demo tenant."""
    key_file = settings.data_dir / "demo-key"
    if key_file.is_file():
        key = key_file.read_text().strip()
        if client.get("/v1/tenant", headers={"Authorization": f"Bearer {key}"}).status_code == 200:
            return key
    from app.auth import repository, service
    from app.core.db import migrate, open_session

    migrate(settings)
    with open_session(settings) as session:
        tenant = repository.tenant_by_name(session, DEMO_TENANT) or service.create_tenant(session, DEMO_TENANT)
        key = service.issue_key(session, tenant, "demo").secret
        session.commit()
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key


def setup_demo(settings: Settings, url: str, echo: Any = print) -> dict[str, Any]:
    """Everything `grin demo` does; returns {key_file, request_file, model_id, dataset_id, commands}."""
    from worker.demo_model import FORGET_AUTHOR, write_demo_data

    model_dir = ensure_model(settings, echo)
    folder = settings.data_dir / "demo"
    forget_file, retain_file = write_demo_data(folder)
    state_file = folder / "state.json"
    state: dict[str, Any] = json.loads(state_file.read_text()) if state_file.is_file() else {}
    with httpx.Client(base_url=url, timeout=60) as client:
        key = ensure_key(settings, client)
        client.headers["Authorization"] = f"Bearer {key}"
        if state.get("key_prefix") != key.split("_")[1] or \
                client.get(f"/v1/models/{state.get('model_id')}").status_code != 200:
            state = {"key_prefix": key.split("_")[1]}
            model = _check(client.post("/v1/models", json={"name": DEMO_MODEL, "path": str(model_dir)}),
                           "registering the demo model")
            state["model_id"] = model["id"]
        if client.get(f"/v1/datasets/{state.get('dataset_id')}").status_code != 200:
            dataset = _check(client.post("/v1/datasets", params={"name": "demo-retain", "kind": "qa"},
                                         content=retain_file.read_bytes(),
                                         headers={"Content-Type": "application/jsonl"}),
                             "uploading the retain data set")
            state["dataset_id"] = dataset["id"]
    state_file.write_text(json.dumps(state, indent=2) + "\n")
    forget = [json.loads(line) for line in forget_file.read_text().splitlines() if line.strip()]
    request = {
        "model_id": state["model_id"], "kind": "qa", "forget": forget, "retain_dataset_id": state["dataset_id"],
        "method": DEMO_METHOD, "evaluation": DEMO_POLICY,
        "subject_reference": f"erasure request: {FORGET_AUTHOR}", "legal_basis": "GDPR Art. 17",
    }
    request_file = folder / "request.json"
    request_file.write_text(json.dumps(request, indent=2) + "\n")
    key_file = settings.data_dir / "demo-key"
    auth = f'-H "Authorization: Bearer $(cat {key_file})"'
    submit = (f"curl -s {auth} -H 'Content-Type: application/json' --data @{request_file} {url}/v1/unlearn")
    watch = f"curl -sN {auth} -H 'Accept: text/event-stream' {url}/v1/jobs/JOB_ID/events"
    status = f"curl -s {auth} {url}/v1/jobs/JOB_ID"
    return {"key_file": str(key_file), "request_file": str(request_file), "model_id": state["model_id"],
            "dataset_id": state["dataset_id"], "author": FORGET_AUTHOR,
            "commands": {"submit": submit, "watch": watch, "status": status}}
