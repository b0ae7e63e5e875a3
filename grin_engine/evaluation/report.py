"""The evaluation report: one flat, JSON round-trippable map of metric results.

Keys are "<split>/<metric>" for per-split numbers ("forget/truth_ratio") and bare names for
model-level ones ("model_utility", "forget_quality"). A value is None, never NaN, when a metric could
not be computed, and `note` says why: JSON has no NaN and an invented number would be worse.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pydantic import BaseModel, Field

from grin_engine.evaluation.config import EvalConfig, ReferenceValues


class MetricResult(BaseModel):
    metric: str  # registry name of the function that produced it
    split: str | None = None
    value: float | None
    note: str = ""
    per_item: list[float] | None = None  # kept for truth ratios (histograms), not for every metric
    extra: dict[str, float | None] = Field(default_factory=dict)


class Sample(BaseModel):
    """An optional generation kept for inspection (off by default: forget data is sensitive)."""

    split: str
    index: int
    generation: str


class EvaluationReport(BaseModel):
    schema_version: int = 1
    model: str
    suite: str
    splits: dict[str, int]  # items evaluated per split
    results: dict[str, MetricResult]
    samples: list[Sample] = Field(default_factory=list)
    timings_s: dict[str, float] = Field(default_factory=dict)  # per metric, including shared work
    wall_time_s: float = 0.0
    config: EvalConfig

    def value(self, key: str) -> float | None:
        result = self.results.get(key)
        return result.value if result is not None else None

    def reference_values(self, split: str = "forget") -> ReferenceValues:
        """Turn a report of a reference model (one that never saw the forget data) into the stored
        reference that forget quality and privleak of unlearned models are compared against."""
        tr = self.results.get(f"{split}/truth_ratio")
        if tr is None or not tr.per_item:
            raise ValueError(f"report has no per-item truth ratios on {split!r}")
        aucs = {
            r.metric: r.value
            for k, r in self.results.items()
            if k.startswith(f"{split}/mia_") and r.value is not None
        }
        return ReferenceValues(source=self.model, truth_ratios=list(tr.per_item), mia_auc=aucs)


def clean(value: float | None) -> float | None:
    """NaN/inf -> None (JSON-safe)."""
    return None if value is None or not math.isfinite(value) else float(value)


def result(
    metric: str,
    split: str | None,
    value: float | None,
    *,
    note: str = "",
    per_item: Sequence[float] | None = None,
    extra: dict[str, float | None] | None = None,
) -> MetricResult:
    """Build a MetricResult, replacing non-finite numbers by None so the report stays valid JSON."""
    v = clean(value)
    if v is None and not note:
        note = "not computable on this data (no scored items)"
    items = None if per_item is None else [x for x in (clean(p) for p in per_item) if x is not None]
    return MetricResult(
        metric=metric,
        split=split,
        value=v,
        note=note,
        per_item=items,
        extra={k: clean(x) for k, x in (extra or {}).items()},
    )


def missing(metric: str, split: str | None, why: str) -> MetricResult:
    return MetricResult(metric=metric, split=split, value=None, note=why)
