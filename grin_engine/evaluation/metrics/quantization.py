"""Quantization probe: re-measure the forget metrics after int8 and 4-bit quantization of the weights.
value = recovery (quantized minus unquantized value; > 0 means knowledge came back)."""

from __future__ import annotations

from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.metrics._probe import delta, forget_values, on_forget
from grin_engine.evaluation.quantize import quantized_copy
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, missing, result


@register("quantization")
def quantization(ctx: EvalContext) -> dict[str, MetricResult]:
    c = ctx.config
    forget = ctx.qa("forget")
    if forget is None:
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
