"""GRIN unlearning engine: localize -> noise -> masked fine-tune on any Hugging Face causal LM.

Public names are resolved lazily so that `import grin_engine.config` (used by the API process to validate
job configs) never pulls in torch or transformers.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS: dict[str, str] = {
    "unlearn": "grin_engine.pipeline",
    "UnlearnResult": "grin_engine.pipeline",
    "UnlearnConfig": "grin_engine.config",
    "LocalizeConfig": "grin_engine.config",
    "NoiseConfig": "grin_engine.config",
    "FinetuneConfig": "grin_engine.config",
    "EngineEvent": "grin_engine.events",
    "EngineError": "grin_engine.errors",
    "DataError": "grin_engine.errors",
    "MaskMismatch": "grin_engine.errors",
    "Cancelled": "grin_engine.errors",
    "QARecord": "grin_engine.records",
    "TextRecord": "grin_engine.records",
    "HarmfulRecord": "grin_engine.records",
    "MCQRecord": "grin_engine.records",
    "load_records": "grin_engine.records",
    "encode": "grin_engine.data",
    "load_model": "grin_engine.modeling",
    "save_checkpoint": "grin_engine.modeling",
    "hash_directory": "grin_engine.modeling",
    "per_item_nll": "grin_engine.scoring",
    "build_tiny_model": "grin_engine.build",
    "teach": "grin_engine.teach",
    "localize": "grin_engine.localize",
    "Mask": "grin_engine.masks",
    "evaluate": "grin_engine.evaluation",
    "EvalConfig": "grin_engine.evaluation",
    "EvalSplits": "grin_engine.evaluation",
    "EvaluationReport": "grin_engine.evaluation",
    "compare_reports": "grin_engine.evaluation",
    "VerdictPolicy": "grin_engine.evaluation",
    "Verdict": "grin_engine.evaluation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'grin_engine' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
