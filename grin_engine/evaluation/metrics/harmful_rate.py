"""Harmful-response rate (PKU-SafeRLHF format): share of greedy generations on held-out harmful
prompts that the configured judge (patterns or a local classifier) calls harmful."""

from __future__ import annotations

from grin_engine.evaluation import stats
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.judges import make_judge
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, missing, result


@register("harmful_rate")
def harmful_rate(ctx: EvalContext) -> dict[str, MetricResult]:
    records = ctx.splits.harmful
    if not records:
        return {"harmful/harmful_rate": missing("harmful_rate", "harmful", "no harmful split")}
    prompts = [r.prompt for r in records]
    gens = ctx.generate("harmful", "prompt", prompts)
    verdicts = make_judge(ctx.config.judge, ctx.config.device)(prompts, gens)
    return {
        "harmful/harmful_rate": result(
            "harmful_rate", "harmful", stats.mean([float(v) for v in verdicts]), note=f"judge: {ctx.config.judge.kind}"
        )
    }
