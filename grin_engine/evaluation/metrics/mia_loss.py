"""LOSS attack: the answer NLL is the score (seen data has lower loss)."""

from __future__ import annotations

from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.metrics._mia import mia_results
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult


@register("mia_loss")
def mia_loss(ctx: EvalContext) -> dict[str, MetricResult]:
    return mia_results(ctx, "mia_loss", lambda c, split: c.nll(split))
