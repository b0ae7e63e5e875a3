"""Metric registry: each metric is one function in one file under metrics/, registered by name.

Adding a metric = a new file with `@register("name")` plus one import line in metrics/__init__.py.
A metric function takes the EvalContext and returns {report key: MetricResult}; it reads shared,
cached work (scores, generations, other metrics) from the context instead of recomputing it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TYPE_CHECKING

from grin_engine.errors import EngineError

if TYPE_CHECKING:
    from grin_engine.evaluation.context import EvalContext
    from grin_engine.evaluation.report import MetricResult

MetricFn = Callable[["EvalContext"], dict[str, "MetricResult"]]

_REGISTRY: dict[str, MetricFn] = {}


def register(name: str) -> Callable[[MetricFn], MetricFn]:
    def decorator(fn: MetricFn) -> MetricFn:
        if name in _REGISTRY:
            raise ValueError(f"metric {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return decorator


def _load_builtin() -> None:
    importlib.import_module("grin_engine.evaluation.metrics")


def get_metric(name: str) -> MetricFn:
    _load_builtin()
    if name not in _REGISTRY:
        raise EngineError(f"unknown metric {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def metric_names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)
