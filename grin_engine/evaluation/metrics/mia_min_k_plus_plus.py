"""Min-K%++ attack: Min-K% over token log-probs standardized by the mean and variance of the model's
own next-token log-probabilities at each position."""

from __future__ import annotations

from grin_engine.evaluation import stats
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.metrics._mia import mia_results
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult


def _scores(ctx: EvalContext, split: str) -> list[float]:
    s = ctx.scores(split)
    assert s.mu is not None and s.var is not None  # answer scores always carry the distribution
    k = ctx.config.min_k
    return [stats.min_k_plus_plus_score(lp, m, v, k) for lp, m, v in zip(s.logprobs, s.mu, s.var, strict=True)]


@register("mia_min_k_plus_plus")
def mia_min_k_plus_plus(ctx: EvalContext) -> dict[str, MetricResult]:
    return mia_results(ctx, "mia_min_k_plus_plus", _scores)
