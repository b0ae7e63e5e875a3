"""Paraphrase probe: the forget metrics asked with `paraphrased_question` instead of `question`.
Forgetting that only holds for the exact training wording shows up as a high paraphrased value.
value = the metric under paraphrase; extra: the original value and the difference."""

from __future__ import annotations

from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.metrics._probe import delta, forget_values, on_forget
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, missing, result


@register("paraphrase")
def paraphrase(ctx: EvalContext) -> dict[str, MetricResult]:
    metrics = ctx.config.probe_metrics
    records = [
        r.model_copy(update={"question": r.paraphrased_question})
        for r in ctx.qa("forget") or []
        if r.paraphrased_question
    ]
    if not records:
        return {f"paraphrase/{m}": missing("paraphrase", "forget", "no paraphrased questions") for m in metrics}
    original = forget_values(on_forget(ctx, [r for r in ctx.qa("forget") or [] if r.paraphrased_question]), metrics)
    para = forget_values(on_forget(ctx, records), metrics)
    return {
        f"paraphrase/{m}": result(
            "paraphrase", "forget", para[m], extra={"original": original[m], "delta": delta(para[m], original[m])}
        )
        for m in metrics
    }
