"""Shared helper of the robustness probes (not a metric): re-measure forget metrics on a variant."""

from __future__ import annotations

from typing import Any

from grin_engine.evaluation.config import EvalSplits
from grin_engine.evaluation.context import EvalContext
from grin_engine.records import QARecord


def forget_values(ctx: EvalContext, metrics: list[str]) -> dict[str, float | None]:
    """{metric: value on the forget split of ctx} for the probe metrics."""
    return {m: ctx.value(m, f"forget/{m}") for m in metrics}


def on_forget(ctx: EvalContext, forget: list[QARecord], model: Any = None) -> EvalContext:
    """A fresh context measuring only `forget` (optionally with another model)."""
    return ctx.fork(model=model, splits=EvalSplits(forget=forget))


def delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before
