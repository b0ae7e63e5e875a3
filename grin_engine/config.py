"""Typed run configuration. Imports neither torch nor transformers: the API validates jobs with it."""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from grin_engine.objectives import OBJECTIVES


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LocalizeConfig(_Strict):
    """Which weight entries the unlearning may touch.

    score = |G_f| / (|G_r| + eps), eps = eps_rel * mean(|G_r|) over the same tensor (eps_scope="tensor")
    or over all eligible weights (eps_scope="model"): relative, so the score does not depend on the
    loss scale or on a layer's gradient magnitude, and entries the retain set never touches do not
    get infinite scores.

    Defaults chosen on the TOFU benchmark (docs/BENCHMARKS.md, "Service default"): eps_rel 1, because with
    0.01 the mask was decided by which retain items were sampled (two seeds agreed on 9.8% of the selected
    entries, random masks on 5%; 42% with eps_rel 1), and it kept the most utility; per-module selection.
    forget_sample 50 brought GRIN from 1.6x to 1.15x the wall time of unmasked unlearning there, at the same
    forgetting but 0.016 less utility: an option for large forget sets, not the default.
    """

    method: Literal["grin", "salun", "random", "none"] = "grin"
    k: float = Field(default=0.05, gt=0.0, le=1.0, description="fraction of eligible entries to select")
    aggregation: Literal["sum_then_abs", "abs_sum", "fisher"] = "sum_then_abs"
    eps_rel: float = Field(default=1.0, gt=0.0)
    eps_scope: Literal["tensor", "model"] = "tensor"
    scope: Literal["global", "per_module"] = "per_module"
    include_embeddings: bool = False
    include_norms: bool = False
    include_biases: bool = False
    retain_tokens: int | None = Field(default=None, ge=1, description="retain answer tokens; None = as many as forget")
    # Localization is one forward/backward pass over the forget items and as many retain tokens: for a large
    # forget set and a short fine-tune it costs as much as the fine-tune itself. A seeded sample bounds that.
    forget_sample: int | None = Field(
        default=None, ge=1, description="score on a seeded sample of at most this many forget items; None = all"
    )
    batch_size: int = Field(default=8, ge=1)


class NoiseConfig(_Strict):
    """theta += sigma * std(W) * z (relative) or sigma * z (absolute), on masked entries only."""

    sigma: float = Field(default=0.1, ge=0.0)
    mode: Literal["relative", "absolute"] = "relative"


# Adam moves every entry it updates by about lr per step whatever the mask, so a run restricted to 5% of the
# entries needs about 10x the learning rate of one over all weights (TOFU benchmark: masked SimNPO at 1e-3 left
# the forget set untouched; SimNPO on all weights at 1e-2 would wreck the model). Both were tuned on a
# 1.1M-parameter model: a larger model needs its own, smaller, rates.
MASKED_LR = 1e-2
FULL_PARAMETER_LR = 1e-3


class FinetuneConfig(_Strict):
    # SimNPO: on the TOFU benchmark the objective that removed the answers (forget keyword accuracy 0.95 ->
    # 0.06) at 0.92 of the model's utility; GradDiff at a learning rate that kept utility barely forgot.
    objective: str = "simnpo"
    objective_params: dict[str, Any] = {}
    steps: int = Field(default=50, ge=0, description="step budget (the maximum when stop='indistinguishable')")
    lr: float = Field(default=MASKED_LR, gt=0.0)
    weight_decay: float = Field(default=0.0, ge=0.0, description="decoupled, applied to masked entries only")
    batch_size: int = Field(default=8, ge=1)
    retain_weight: float = Field(default=1.0, ge=0.0)
    max_length: int = Field(default=256, ge=2)
    stop: Literal["fixed", "indistinguishable"] = "fixed"
    stop_statistic: Literal["nll", "truth_ratio"] = "nll"
    check_every: int = Field(default=10, ge=1)
    p_threshold: float = Field(default=0.05, gt=0.0, lt=1.0)
    checkpoint_every: int | None = Field(default=None, ge=1, description="save resumable fine-tune state every N steps")

    @field_validator("objective")
    @classmethod
    def _known_objective(cls, v: str) -> str:
        if v not in OBJECTIVES:
            raise ValueError(f"unknown objective {v!r}; available: {sorted(OBJECTIVES)}")
        return v


class UnlearnConfig(_Strict):
    localize: LocalizeConfig = Field(default_factory=LocalizeConfig)
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    finetune: FinetuneConfig = Field(default_factory=FinetuneConfig)
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    dtype: Literal["float32", "bfloat16"] = "float32"
    prompt_template: str = Field(default="auto", description="'auto' = chat template if any, else Question/Answer")

    @classmethod
    def grin(cls, **overrides: Any) -> UnlearnConfig:
        """The GRIN default: ratio localization, relative noise, masked SimNPO."""
        return cls.model_validate(overrides)

    @classmethod
    def baseline(cls, objective: str = "simnpo", **overrides: Any) -> UnlearnConfig:
        """The same objective on all eligible weights, without noise (the comparison point), at the
        full-parameter learning rate unless one is given."""
        cfg = cls.model_validate(overrides)
        finetune: dict[str, Any] = {"objective": objective}
        if "lr" not in cfg.finetune.model_fields_set:
            finetune["lr"] = FULL_PARAMETER_LR
        return cfg.model_copy(
            update={
                "localize": cfg.localize.model_copy(update={"method": "none"}),
                "noise": cfg.noise.model_copy(update={"sigma": 0.0}),
                "finetune": cfg.finetune.model_copy(update=finetune),
            }
        )

    def config_hash(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()


def preset(name: Literal["grin", "baseline"], **overrides: Any) -> UnlearnConfig:
    if name == "grin":
        return UnlearnConfig.grin(**overrides)
    if name == "baseline":
        return UnlearnConfig.baseline(**overrides)
    raise ValueError(f"unknown preset {name!r}")
