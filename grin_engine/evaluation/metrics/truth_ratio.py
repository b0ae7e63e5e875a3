"""TOFU truth ratio R = exp(l_paraphrased - mean_j l_perturbed_j), per item.

Forget-like sets (forget, holdout) report mean(min(R, 1/R)): 1 when the model cannot tell the true
answer from false ones. Utility sets report mean(max(0, 1 - R)). Per-item R is kept in the report
(histograms, forget quality)."""

from __future__ import annotations

from grin_engine.evaluation import stats
from grin_engine.evaluation.config import QA_SPLITS
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, result

FORGET_LIKE = ("forget", "holdout")


def truth_ratios(ctx: EvalContext, split: str) -> list[float]:
    """Per-item R on `split`; items without perturbed answers have no truth ratio and are skipped."""
    para = ctx.nll(split, "paraphrased")
    pert = ctx.perturbed_nll(split)
    return [stats.truth_ratio(a, p) for a, p in zip(para, pert, strict=True) if p]


@register("truth_ratio")
def truth_ratio(ctx: EvalContext) -> dict[str, MetricResult]:
    out = {}
    for split, _ in ctx.qa_splits(*QA_SPLITS):
        ratios = truth_ratios(ctx, split)
        score = stats.truth_ratio_forget_score if split in FORGET_LIKE else stats.truth_ratio_utility_score
        out[f"{split}/truth_ratio"] = result("truth_ratio", split, score(ratios), per_item=ratios)
    return out
