"""Min-K% attack (k from the config, 0.4 by default): minus the mean of the lowest k-fraction of answer
token log-probabilities; unseen text has a few very unlikely tokens."""

from __future__ import annotations

from grin_engine.evaluation import stats
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.metrics._mia import mia_results
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult


def _scores(ctx: EvalContext, split: str) -> list[float]:
    return [stats.min_k_score(lp, ctx.config.min_k) for lp in ctx.scores(split).logprobs]


@register("mia_min_k")
def mia_min_k(ctx: EvalContext) -> dict[str, MetricResult]:
    return mia_results(ctx, "mia_min_k", _scores)
