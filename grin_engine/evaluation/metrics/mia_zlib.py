"""zlib attack: answer NLL divided by the zlib-compressed length of the answer text, which discounts
answers that are easy for any model because they are repetitive."""

from __future__ import annotations

from grin_engine.evaluation import stats
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.metrics._mia import mia_results
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult


def _scores(ctx: EvalContext, split: str) -> list[float]:
    records = ctx.qa(split) or []
    return [stats.zlib_score(nll, r.answer) for nll, r in zip(ctx.nll(split), records, strict=True)]


@register("mia_zlib")
def mia_zlib(ctx: EvalContext) -> dict[str, MetricResult]:
    return mia_results(ctx, "mia_zlib", _scores)
