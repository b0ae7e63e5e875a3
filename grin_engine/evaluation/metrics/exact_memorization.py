"""Exact memorization: share of answer tokens whose teacher-forced argmax is the label, averaged over
items. Reported on the forget set and, for contrast, on the holdout set."""

from __future__ import annotations

from grin_engine.evaluation import stats
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, result

SPLITS = ("forget", "holdout")


@register("exact_memorization")
def exact_memorization(ctx: EvalContext) -> dict[str, MetricResult]:
    out = {}
    for split, _ in ctx.qa_splits(*SPLITS):
        s = ctx.scores(split)
        pairs = zip(s.predictions, s.labels, strict=True)
        values = [stats.exact_memorization(p.tolist(), y.tolist()) for p, y in pairs]
        out[f"{split}/exact_memorization"] = result("exact_memorization", split, stats.mean(values))
    return out
