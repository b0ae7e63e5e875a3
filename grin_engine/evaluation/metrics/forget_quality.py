"""TOFU forget quality: KS-test p-value between this model's per-item forget truth ratios and those
of a reference model that never saw the forget data (from a reference model run or a stored file).
Without reference values the number is omitted, never guessed."""

from __future__ import annotations

from grin_engine.evaluation import stats
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.metrics.truth_ratio import truth_ratios
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, missing, result


@register("forget_quality")
def forget_quality(ctx: EvalContext) -> dict[str, MetricResult]:
    if ctx.qa("forget") is None:
        return {"forget_quality": missing("forget_quality", "forget", "no forget split")}
    if ctx.reference is None or not ctx.reference.truth_ratios:
        why = "no reference model or reference file; see forget_quality_holdout"
        return {"forget_quality": missing("forget_quality", "forget", why)}
    ours = truth_ratios(ctx, "forget")
    ref = ctx.reference.truth_ratios
    value = stats.ks_pvalue(ours, ref) if ours else None
    return {
        "forget_quality": result(
            "forget_quality", "forget", value, note=f"reference: {ctx.reference.source or 'stored values'}",
            extra={"n": len(ours), "n_reference": len(ref)},
        )
    }
