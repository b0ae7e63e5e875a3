"""A tiny model taught both stand-ins (bench/hazard_data.py) and a real embedded service stack serving it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.core.config import Settings
from bench.hazard_data import Behaviour, Knowledge, behaviour, build_standin_model, knowledge
from tests.worker.conftest import Stack, _make_stack


@dataclass(frozen=True)
class Standin:
    model_dir: Path
    k: Knowledge
    b: Behaviour


@pytest.fixture(scope="session")
def standin(tmp_path_factory: pytest.TempPathFactory) -> Standin:
    """~100k-parameter GPT-2-style model that knows 12 hazard + 12 control facts (MCQ accuracy 1.0 on both) and
    answers the forget harmful prompts, and held-out ones, with invented dangerous steps (about 40 s on 1 core)."""
    import torch

    torch.set_num_threads(1)
    k, b = knowledge(n_subjects=6, seed=0), behaviour(n_forget=12, n_heldout=6, n_normal=12, seed=0)
    model = build_standin_model(tmp_path_factory.mktemp("standin"), k, b, hidden=64, layers=2, epochs=40)
    return Standin(model, k, b)


@dataclass
class HazardStack:
    stack: Stack
    retain: dict[str, str]  # kind -> retain data set id
    models: dict[str, str]  # kind -> registered model id (one copy of the stand-in model per kind)


@pytest.fixture(scope="module")
def hazard_stack(tmp_path_factory: pytest.TempPathFactory, standin: Standin) -> Iterator[HazardStack]:
    """API + worker processes on the embedded default, the stand-in model registered, two retain data sets."""
    tmp = tmp_path_factory.mktemp("hazard-stack")
    for stack in _make_stack(Settings(data_dir=tmp / "data"), tmp, standin.model_dir, {}):
        retain: dict[str, str] = {}
        models = {"text": stack.model_id}
        copy = stack.settings.model_roots[0] / "standin-harmful"
        shutil.copytree(standin.model_dir, copy)
        with stack.client() as c:
            r = c.post("/v1/models", json={"name": "standin-harmful", "path": str(copy)})
            assert r.status_code == 201, r.text
            models["harmful"] = r.json()["id"]
            for kind, rows in (("text", [{"text": t} for t in standin.k.retain_corpus]),
                               ("harmful", standin.b.normal_retain)):
                body = "".join(json.dumps(r) + "\n" for r in rows).encode()
                r = c.post("/v1/datasets", params={"name": f"retain-{kind}", "kind": kind}, content=body,
                           headers={"Content-Type": "application/jsonl"})
                assert r.status_code == 201, r.text
                retain[kind] = r.json()["id"]
        yield HazardStack(stack, retain, models)
