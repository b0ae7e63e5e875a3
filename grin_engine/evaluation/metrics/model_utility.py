"""TOFU model utility: harmonic mean of {probability, ROUGE-L, truth ratio} on the retain,
real-authors and world-facts sets (nine numbers). Omitted, with the missing parts named, when any of
the nine is unavailable: a harmonic mean over fewer numbers is not the published metric."""

from __future__ import annotations

from grin_engine.evaluation import stats
from grin_engine.evaluation.config import UTILITY_SPLITS
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, missing, result

COMPONENTS = ("probability", "rouge_l", "truth_ratio")


@register("model_utility")
def model_utility(ctx: EvalContext) -> dict[str, MetricResult]:
    parts = {f"{s}/{m}": ctx.value(m, f"{s}/{m}") for s in UTILITY_SPLITS for m in COMPONENTS}
    absent = [k for k, v in parts.items() if v is None]
    if absent:
        return {"model_utility": missing("model_utility", None, "missing " + ", ".join(absent))}
    values = [v for v in parts.values() if v is not None]
    return {"model_utility": result("model_utility", None, stats.harmonic_mean(values), extra=parts)}
