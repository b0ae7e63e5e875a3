from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grin_engine.evaluation.cli import evaluate_command, verdict_command
from grin_engine.evaluation.report import EvaluationReport
from tests.evaluation.conftest import TOFU, TinyTofu


def test_evaluate_and_verdict_commands(tiny_tofu: TinyTofu, tmp_path: Path) -> None:
    common: dict[str, Any] = {
        "data_dir": TOFU, "forget": "forget01", "holdout": "forget05", "max_items": 4, "max_new_tokens": 16,
        "metric": ["model_utility", "forget_quality", "mia_min_k"], "device": "cpu",
    }
    ref_file = tmp_path / "ref.json"
    evaluate_command(model=tiny_tofu.reference, out=tmp_path / "ref_report.json", save_reference=ref_file, **common)
    before = evaluate_command(model=tiny_tofu.memorized, out=tmp_path / "before.json", reference=ref_file, **common)
    assert before.value("forget_quality") is not None
    assert json.loads(ref_file.read_text())["truth_ratios"]
    loaded = EvaluationReport.model_validate_json((tmp_path / "before.json").read_text())
    assert loaded == before
    verdict = verdict_command(before=tmp_path / "before.json", after=tmp_path / "before.json", out=tmp_path / "v.json")
    assert json.loads((tmp_path / "v.json").read_text())["passed"] == verdict.passed
    assert any(c.name == "model utility kept" and c.passed for c in verdict.criteria)
