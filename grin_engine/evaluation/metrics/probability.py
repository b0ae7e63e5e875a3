"""TOFU probability: mean P(a|q) on forget/retain-like sets; on real-authors and world-facts, where
the answer competes with perturbed options, mean P(a) / (P(a) + sum_j P(pert_j))."""

from __future__ import annotations

from grin_engine.evaluation import stats
from grin_engine.evaluation.config import QA_SPLITS
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, result

NORMALIZED_SPLITS = ("real_authors", "world_facts")


@register("probability")
def probability(ctx: EvalContext) -> dict[str, MetricResult]:
    out = {}
    for split, _ in ctx.qa_splits(*QA_SPLITS):
        nll = ctx.nll(split)
        if split in NORMALIZED_SPLITS:
            pert = ctx.perturbed_nll(split)
            values = [stats.normalized_probability(a, p) for a, p in zip(nll, pert, strict=True) if p]
        else:
            values = [stats.probability(x) for x in nll]
        out[f"{split}/probability"] = result("probability", split, stats.mean(values))
    return out
