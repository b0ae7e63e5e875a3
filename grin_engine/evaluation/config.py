"""Typed inputs of `evaluate`: the record splits, what to compute, and stored reference values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from grin_engine.records import HarmfulRecord, MCQRecord, QARecord

Suite = Literal["tofu", "mcq", "harmful"]
QuantMode = Literal["int8", "int4"]
QUANT_MODES: tuple[QuantMode, ...] = ("int8", "int4")

# The QA splits a TOFU evaluation knows, in report order. "holdout" is data of the same kind as the
# forget set that the model never saw (membership attacks and the holdout forget quality need it).
QA_SPLITS = ("forget", "retain", "real_authors", "world_facts", "holdout")
UTILITY_SPLITS = ("retain", "real_authors", "world_facts")

# Cheap, always-meaningful metrics per suite; probes (relearning, quantization) are opt-in.
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    "tofu": (
        "probability", "rouge_l", "truth_ratio", "forget_quality", "forget_quality_holdout",
        "model_utility", "keyword_accuracy", "keyword_confidence", "mia_loss", "mia_zlib", "mia_min_k",
        "mia_min_k_plus_plus", "exact_memorization", "extraction_strength", "fluency", "paraphrase",
    ),
    "mcq": ("mcq_accuracy",),
    "harmful": ("harmful_rate",),
}


class EvalSplits(BaseModel):
    """Record sets to evaluate on; absent splits simply skip the metrics that need them."""

    model_config = ConfigDict(frozen=True)

    forget: list[QARecord] | None = None
    retain: list[QARecord] | None = None
    real_authors: list[QARecord] | None = None
    world_facts: list[QARecord] | None = None
    holdout: list[QARecord] | None = None
    mcq: list[MCQRecord] | None = None  # knowledge to remove (WMDP: the hazardous domain)
    mcq_retain: list[MCQRecord] | None = None  # knowledge to keep (a control domain, MMLU-like)
    harmful: list[HarmfulRecord] | None = None

    def present(self) -> dict[str, int]:
        """{split name: item count} for the splits that were given."""
        return {k: len(v) for k, v in self if v is not None}

    def truncated(self, max_items: int | None) -> EvalSplits:
        """The first `max_items` of every split (deterministic, so before/after reports align)."""
        if max_items is None:
            return self
        return self.model_copy(update={k: v[:max_items] for k, v in self if v is not None})


class JudgeConfig(BaseModel):
    """How generations on harmful prompts are judged.

    rules: harmful when any of `patterns` (case-insensitive regular expressions) matches.
    classifier: a local Hugging Face sequence-classification directory scoring "prompt\\n\\nresponse";
    harmful when the predicted label is `harmful_label` (a label name from id2label or an index).
    """

    kind: Literal["rules", "classifier"] = "rules"
    patterns: list[str] = Field(default_factory=list)
    classifier_dir: str | None = None
    harmful_label: str | int = 1


class EvalConfig(BaseModel):
    """What to compute and how much it may cost; defaults reproduce the TOFU evaluation."""

    suite: Suite = "tofu"
    metrics: list[str] | None = None  # None: DEFAULT_METRICS[suite]
    max_items: int | None = Field(default=None, ge=1)  # per split
    max_new_tokens: int = Field(default=200, ge=1)
    max_length: int = Field(default=512, ge=8)
    batch_size: int = Field(default=16, ge=1)
    generation_batch_size: int = Field(default=32, ge=1)
    template: str | None = "auto"  # prompt template, as in grin_engine.data.format_prompt
    device: str = "auto"
    # CPU intra-op threads while evaluating (None: leave torch's setting). On a shared CPU, 1 thread ran
    # tiny models ~10x faster than the default because of thread contention.
    num_threads: int | None = Field(default=None, ge=1)
    dtype: Literal["float32", "bfloat16"] = "float32"
    sample_generations: int = Field(default=0, ge=0)  # >0 keeps that many generations per split
    min_k: float = Field(default=0.4, gt=0, le=1)
    fluency_ngram: int = Field(default=2, ge=1)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    probe_metrics: list[str] = Field(default_factory=lambda: ["probability", "rouge_l", "keyword_accuracy"])
    relearn_steps: int = Field(default=20, ge=1)
    relearn_fraction: float = Field(default=0.1, gt=0, lt=1)
    relearn_lr: float = Field(default=1e-3, gt=0)
    quantization_modes: list[QuantMode] = Field(default_factory=lambda: list(QUANT_MODES))
    quantization_group_size: int = Field(default=128, ge=1)
    seed: int = 0

    def metric_names(self) -> list[str]:
        return list(self.metrics) if self.metrics is not None else list(DEFAULT_METRICS[self.suite])


class ReferenceValues(BaseModel):
    """What forget quality and privleak need from a model that never saw the forget data.

    Production jobs keep this file instead of a second model. `truth_ratios` are the per-item truth
    ratios of the reference model on the forget set; `mia_auc` maps an attack name (mia_loss, ...)
    to that model's forget-vs-holdout AUC.
    """

    source: str = ""
    truth_ratios: list[float]
    mia_auc: dict[str, float] = Field(default_factory=dict)

    @classmethod
    def load(cls, path: str | Path) -> ReferenceValues:
        return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.model_dump_json(indent=2), encoding="utf-8")
