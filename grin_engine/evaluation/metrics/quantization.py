"""Quantization probe: re-measure metrics after int8 and 4-bit quantization of the weights.

QA forget set (TOFU): value = recovery of the forget metrics (quantized minus unquantized value; > 0
means knowledge came back), keys "quantization_<mode>/<probe metric>".
Knowledge and harm suites (no QA forget split; mcq / mcq_retain / harmful splits): the suite's metrics
are re-run on the quantized model, keys "quantization_<mode>/<report key>" (e.g.
"quantization_int4/mcq/accuracy"); value = the metric on the quantized model, so the same goals apply to
it directly (forget MCQ at chance, harmful rate down, utility kept); extra: unquantized value, recovery.
"""

from __future__ import annotations

from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.metrics._probe import delta, forget_values, on_forget
from grin_engine.evaluation.quantize import quantized_copy
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, missing, result


def suite_metrics(ctx: EvalContext) -> list[str]:
    """The knowledge/harm metrics that apply to the given splits (utility: ROUGE-L on QA splits)."""
    s = ctx.splits
    names = []
    if s.mcq or s.mcq_retain:
        names.append("mcq_accuracy")
    if s.harmful:
        names.append("harmful_rate")
        if ctx.qa_splits("retain", "real_authors", "world_facts"):
            names.append("rouge_l")
    return names


def _suite_probe(ctx: EvalContext, names: list[str]) -> dict[str, MetricResult]:
    c = ctx.config
    base = {k: r for n in names for k, r in ctx.run(n).items()}
    out = {}
    for mode in c.quantization_modes:
        qctx = ctx.fork(model=quantized_copy(ctx.model, mode, c.quantization_group_size))
        for n in names:
            for key, r in qctx.run(n).items():
                before = base[key].value if key in base else None
                out[f"quantization_{mode}/{key}"] = result(
                    "quantization", r.split, r.value, note=f"{n} on the {mode} model",
                    extra={"unquantized": before, "recovery": delta(r.value, before)},
                )
    return out


@register("quantization")
def quantization(ctx: EvalContext) -> dict[str, MetricResult]:
    c = ctx.config
    forget = ctx.qa("forget")
    if forget is None:
        names = suite_metrics(ctx)
        if names:
            return _suite_probe(ctx, names)
        return {f"quantization_{q}/{m}": missing("quantization", "forget", "no forget split")
                for q in c.quantization_modes for m in c.probe_metrics}
    before = forget_values(on_forget(ctx, forget), c.probe_metrics)
    out = {}
    for mode in c.quantization_modes:
        qmodel = quantized_copy(ctx.model, mode, c.quantization_group_size)
        after = forget_values(on_forget(ctx, forget, model=qmodel), c.probe_metrics)
        for m in c.probe_metrics:
            out[f"quantization_{mode}/{m}"] = result(
                "quantization", "forget", delta(after[m], before[m]), extra={"before": before[m], "after": after[m]}
            )
    return out
