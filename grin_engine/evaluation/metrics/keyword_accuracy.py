"""GRIN keyword accuracy: per item, the fraction of the answer's key tokens (names, places, dates,
numbers, titles; selection rule in grin_engine.evaluation.text) present in the greedy generation.
Unlike ROUGE-L it ignores the template words an answer shares with its question."""

from __future__ import annotations

from grin_engine.evaluation import stats
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.metrics.rouge_l import GENERATION_SPLITS
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, result
from grin_engine.evaluation.text import keyword_hit_rate, keywords


@register("keyword_accuracy")
def keyword_accuracy(ctx: EvalContext) -> dict[str, MetricResult]:
    out = {}
    for split, records in ctx.qa_splits(*GENERATION_SPLITS):
        gens = ctx.generations(split)
        rates = [keyword_hit_rate(keywords(r.question, r.answer), g) for r, g in zip(records, gens, strict=True)]
        values = [x for x in rates if x == x]  # NaN: an item with no key token carries no evidence
        out[f"{split}/keyword_accuracy"] = result("keyword_accuracy", split, stats.mean(values))
    return out
