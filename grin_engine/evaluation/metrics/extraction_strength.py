"""Extraction strength: 1 - k/|y| for the shortest answer prefix k after which greedy decoding
reproduces the rest, averaged over items (forget set, and holdout for contrast)."""

from __future__ import annotations

from grin_engine.evaluation import stats
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.metrics.exact_memorization import SPLITS
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, result


@register("extraction_strength")
def extraction_strength(ctx: EvalContext) -> dict[str, MetricResult]:
    out = {}
    for split, _ in ctx.qa_splits(*SPLITS):
        s = ctx.scores(split)
        pairs = zip(s.predictions, s.labels, strict=True)
        values = [stats.extraction_strength(p.tolist(), y.tolist()) for p, y in pairs]
        out[f"{split}/extraction_strength"] = result("extraction_strength", split, stats.mean(values))
    return out
