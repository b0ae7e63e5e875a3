"""Tiny TOFU-shaped models for the evaluation tests, built once per session.

Splits: 20 forget items (one author), 20 holdout items (another author, never taught), 10 items each
of retain, real-authors and world-facts. Models: `random` (untrained), `memorized` (taught forget +
utility sets until it recites them) and `reference` (taught the utility sets only: the model that
never saw the forget data)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from grin_engine.build import build_tiny_model
from grin_engine.evaluation.config import EvalSplits
from grin_engine.evaluation.report import EvaluationReport
from grin_engine.evaluation.suites import load_tofu_splits
from grin_engine.teach import teach

REPO = Path(__file__).resolve().parents[2]
TOFU = REPO / "data" / "tofu"


@dataclass(frozen=True)
class TinyTofu:
    splits: EvalSplits
    random: Path
    memorized: Path
    reference: Path


def tiny_splits() -> EvalSplits:
    full = load_tofu_splits(TOFU, "forget01")
    assert full.forget and full.retain and full.real_authors and full.world_facts
    return EvalSplits(
        forget=full.forget[:20], holdout=full.forget[20:40], retain=full.retain[:10],
        real_authors=full.real_authors[:10], world_facts=full.world_facts[:10],
    )


def _texts(splits: EvalSplits) -> list[str]:
    out: list[str] = []
    for name in ("forget", "holdout", "retain", "real_authors", "world_facts"):
        for r in getattr(splits, name) or []:
            out += [r.question, r.answer, r.paraphrased_answer or "", r.paraphrased_question or ""]
            out += list(r.perturbed_answer or [])
    return [t for t in out if t]


def num(x: float | None) -> float:
    """A number that must be present (a test failing on None beats `x or 0` hiding a real 0)."""
    assert x is not None
    return x


def val(report: EvaluationReport, key: str) -> float:
    value = report.value(key)
    assert value is not None, f"{key}: {report.results[key].note if key in report.results else 'absent'}"
    return value


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from intra-op threads, and on a shared 2-core machine thread spinning
    made these tests ~10x slower. Restored afterwards so other test directories are unaffected."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _single_thread_tests() -> Iterator[None]:
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def tiny_tofu(tmp_path_factory: pytest.TempPathFactory) -> TinyTofu:
    with one_torch_thread():
        return _build(tmp_path_factory.mktemp("tiny-tofu"))


def _build(root: Path) -> TinyTofu:
    splits = tiny_splits()
    build_tiny_model(root / "random", _texts(splits), arch="gpt2", hidden=64, layers=2, max_positions=256)
    utility = [*(splits.retain or []), *(splits.real_authors or []), *(splits.world_facts or [])]
    forget = list(splits.forget or [])
    # A high learning rate memorizes the 50 items in ~120 steps (about 10 s on one CPU core).
    teach(root / "random", forget + utility, root / "memorized", epochs=60, lr=1e-2, batch_size=25, device="cpu")
    teach(root / "random", utility, root / "reference", epochs=60, lr=1e-2, batch_size=25, device="cpu")
    return TinyTofu(splits, root / "random", root / "memorized", root / "reference")
