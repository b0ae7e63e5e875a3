"""Holdout forget quality, for the usual production case without a reference model: KS-test p-value
between this model's truth ratios on the forget set and on a holdout set of the same kind that it
never saw. A high p-value means the forget set now looks like unseen data. It is labelled as a
holdout comparison because it is not TOFU's reference-model forget quality."""

from __future__ import annotations

from grin_engine.evaluation import stats
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.metrics.truth_ratio import truth_ratios
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, missing, result

KEY = "forget_quality_holdout"


@register("forget_quality_holdout")
def forget_quality_holdout(ctx: EvalContext) -> dict[str, MetricResult]:
    if ctx.qa("forget") is None or ctx.qa("holdout") is None:
        return {KEY: missing(KEY, "forget", "needs a forget and a holdout split of the same kind")}
    forget, holdout = truth_ratios(ctx, "forget"), truth_ratios(ctx, "holdout")
    value = stats.ks_pvalue(forget, holdout) if forget and holdout else None
    return {
        KEY: result(
            KEY, "forget", value, note="holdout comparison (same model, never-seen holdout set)",
            extra={"n": len(forget), "n_holdout": len(holdout)},
        )
    }
