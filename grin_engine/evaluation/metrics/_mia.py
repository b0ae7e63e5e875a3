"""Shared body of the membership-inference metrics (not a metric itself).

Forget items are members (label 0), holdout items non-members (label 1); each attack scores items so
that higher means "more likely unseen". Reported: the AUC, and privleak against the reference
model's AUC when the reference file has one, else against 0.5 (a perfect retrain)."""

from __future__ import annotations

from collections.abc import Callable

from grin_engine.evaluation import stats
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.report import MetricResult, missing, result

ScoreFn = Callable[[EvalContext, str], list[float]]


def mia_results(ctx: EvalContext, name: str, score: ScoreFn) -> dict[str, MetricResult]:
    leak_key = f"forget/privleak_{name.removeprefix('mia_')}"
    if ctx.qa("forget") is None or ctx.qa("holdout") is None:
        why = "needs a forget and a holdout split of the same kind"
        return {f"forget/{name}": missing(name, "forget", why), leak_key: missing(name, "forget", why)}
    auc = stats.auc(score(ctx, "forget"), score(ctx, "holdout"))
    ref = ctx.reference.mia_auc.get(name) if ctx.reference else None
    ref_note = "AUC_ref from the reference model" if ref is not None else "AUC_ref = 0.5 (no reference AUC)"
    auc_ref = 0.5 if ref is None else ref
    return {
        f"forget/{name}": result(name, "forget", auc),
        leak_key: result(name, "forget", stats.privleak(auc, auc_ref), note=ref_note, extra={"auc_ref": auc_ref}),
    }
