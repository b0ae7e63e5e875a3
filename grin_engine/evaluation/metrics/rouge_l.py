"""ROUGE-L recall of the ground-truth answer in the greedy generation (rouge-score, stemming on).

Templated answers repeat the question's words, so a model that never saw an author still scores about
0.5 on the forget set; keyword_accuracy is the sharper forget signal."""

from __future__ import annotations

from rouge_score import rouge_scorer

from grin_engine.evaluation import stats
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, result

GENERATION_SPLITS = ("forget", "retain", "real_authors", "world_facts")


def rouge_l_recall(references: list[str], generations: list[str]) -> list[float]:
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [scorer.score(ref, gen)["rougeL"].recall for ref, gen in zip(references, generations, strict=True)]


@register("rouge_l")
def rouge_l(ctx: EvalContext) -> dict[str, MetricResult]:
    out = {}
    for split, records in ctx.qa_splits(*GENERATION_SPLITS):
        values = rouge_l_recall([r.answer for r in records], ctx.generations(split))
        out[f"{split}/rouge_l"] = result("rouge_l", split, stats.mean(values))
    return out
