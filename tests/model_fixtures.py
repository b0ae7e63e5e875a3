"""Reusable tiny-model fixtures (loaded as a pytest plugin): a model taught a handful of TOFU QA pairs.

Built once per session under a tmp dir with the engine's own build/teach functions; well under 1M
parameters, so every test that needs a "model that knows things" costs seconds, not minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
TOFU = REPO_ROOT / "data" / "tofu"


@dataclass(frozen=True)
class TinyQA:
    base_dir: Path  # random init, same tokenizer
    model_dir: Path  # taught forget + retain
    forget: list
    retain: list
    holdout: list  # same kind, never trained on
    max_length: int = 200


def _tofu_sets() -> tuple[list, list, list]:
    from grin_engine.data import load_records

    forget = load_records(TOFU / "forget01_perturbed.json", "qa")[:6]
    retain = load_records(TOFU / "retain90.json", "qa")[:10]
    holdout = load_records(TOFU / "forget10_perturbed.json", "qa")[:6]
    return forget, retain, holdout


@pytest.fixture(scope="session")
def tiny_qa(tmp_path_factory: pytest.TempPathFactory) -> TinyQA:
    """A GPT-2-style model (~150k parameters) that has memorised 6 forget + 10 retain TOFU pairs."""
    import torch

    from grin_engine.build import build_tiny_model
    from grin_engine.teach import teach

    torch.set_num_threads(1)  # tiny matmuls: threads only add contention on shared CI cores
    root = tmp_path_factory.mktemp("tiny_qa")
    forget, retain, holdout = _tofu_sets()
    texts = [t for r in forget + retain + holdout for t in (r.question, r.answer)]
    build_tiny_model(root / "base", texts, arch="gpt2", hidden=64, layers=2, heads=4, seed=0)
    teach(root / "base", forget + retain, root / "taught", epochs=120, lr=3e-3, batch_size=8, max_length=200, seed=0)
    return TinyQA(root / "base", root / "taught", forget, retain, holdout)
