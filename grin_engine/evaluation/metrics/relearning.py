"""Relearning probe: fine-tune the (unlearned) model for a few steps on a small part of the forget set
and measure the forget metrics on the rest. Knowledge that was hidden rather than removed comes back
after a few steps on related data. value = recovery (after minus before) on the untouched rest.

Uses grin_engine.teach (the supervised QA fine-tune the engine trains with) on a temporary copy of
the model, so the evaluated model is never modified."""

from __future__ import annotations

import tempfile
from pathlib import Path

from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.metrics._probe import delta, forget_values, on_forget
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, missing, result
from grin_engine.modeling import load_model, save_checkpoint
from grin_engine.records import QARecord
from grin_engine.teach import teach


def relearned_model(ctx: EvalContext, records: list[QARecord]) -> object:
    c = ctx.config
    batch_size = min(c.batch_size, len(records))
    with tempfile.TemporaryDirectory(prefix="grin-relearn-") as tmp:
        src, dst = Path(tmp, "model"), Path(tmp, "relearned")
        save_checkpoint(ctx.model, ctx.tokenizer, src)
        teach(
            src, records, dst, epochs=c.relearn_steps * batch_size / len(records), lr=c.relearn_lr,
            batch_size=batch_size, max_length=ctx.max_length, seed=c.seed, template=c.template or "auto",
            device=str(next(ctx.model.parameters()).device), dtype=c.dtype,
        )
        model, _ = load_model(dst, dtype=c.dtype, device=str(next(ctx.model.parameters()).device))
    return model


@register("relearning")
def relearning(ctx: EvalContext) -> dict[str, MetricResult]:
    c = ctx.config
    forget = ctx.qa("forget") or []
    n_learn = max(1, round(c.relearn_fraction * len(forget)))
    if len(forget) <= n_learn:
        why = "needs a forget split with more items than the relearning part"
        return {f"relearning/{m}": missing("relearning", "forget", why) for m in c.probe_metrics}
    learn, rest = forget[:n_learn], forget[n_learn:]
    before = forget_values(on_forget(ctx, rest), c.probe_metrics)
    after = forget_values(on_forget(ctx, rest, model=relearned_model(ctx, learn)), c.probe_metrics)
    extra = {"steps": float(c.relearn_steps), "n_relearn": float(n_learn), "n_measured": float(len(rest))}
    return {
        f"relearning/{m}": result(
            "relearning", "forget", delta(after[m], before[m]), extra={"before": before[m], "after": after[m], **extra}
        )
        for m in c.probe_metrics
    }
