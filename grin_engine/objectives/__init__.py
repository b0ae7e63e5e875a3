"""Unlearning objectives. A new method is one file in this package plus one line in OBJECTIVES.

The registry maps names to "module:Class" strings so that importing it (config validation in the API
process) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

OBJECTIVES: dict[str, str] = {
    "ga": "grin_engine.objectives.ga:GradientAscent",
    "graddiff": "grin_engine.objectives.graddiff:GradDiff",
    "npo": "grin_engine.objectives.npo:NPO",
    "simnpo": "grin_engine.objectives.simnpo:SimNPO",
    "idk": "grin_engine.objectives.idk:IDK",
    "rmu": "grin_engine.objectives.rmu:RMU",
    "yao": "grin_engine.objectives.yao:Yao",
}


def get_objective(name: str, params: dict[str, Any] | None = None, retain_weight: float = 1.0) -> Any:
    """Instantiate objective `name` with its validated params (an EngineError on unknown ones)."""
    from grin_engine.errors import EngineError

    if name not in OBJECTIVES:
        raise EngineError(f"unknown objective {name!r}; available: {sorted(OBJECTIVES)}")
    module, cls = OBJECTIVES[name].split(":")
    return getattr(importlib.import_module(module), cls)(params or {}, retain_weight)
