"""Evaluation of (un)learned models: TOFU metrics, privacy attacks, knowledge and harm probes,
robustness probes and a before/after verdict.

Names resolve lazily, like grin_engine itself: the config, report and verdict types are torch-free,
so the API process can validate configs and read reports without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "evaluate": "grin_engine.evaluation.runner",
    "reference_values": "grin_engine.evaluation.runner",
    "EvalConfig": "grin_engine.evaluation.config",
    "EvalSplits": "grin_engine.evaluation.config",
    "JudgeConfig": "grin_engine.evaluation.config",
    "ReferenceValues": "grin_engine.evaluation.config",
    "EvaluationReport": "grin_engine.evaluation.report",
    "MetricResult": "grin_engine.evaluation.report",
    "compare_reports": "grin_engine.evaluation.verdict",
    "VerdictPolicy": "grin_engine.evaluation.verdict",
    "Verdict": "grin_engine.evaluation.verdict",
    "Criterion": "grin_engine.evaluation.verdict",
    "default_criteria": "grin_engine.evaluation.verdict",
    "load_tofu_splits": "grin_engine.evaluation.suites",
    "load_split_file": "grin_engine.evaluation.suites",
    "register": "grin_engine.evaluation.registry",
    "metric_names": "grin_engine.evaluation.registry",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'grin_engine.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
