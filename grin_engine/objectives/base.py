"""The objective interface and the retain-side terms they share."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from grin_engine.data import IGNORE_INDEX, Batch, Encoded, Record
from grin_engine.errors import EngineError
from grin_engine.scoring import mean_nll


class Params(BaseModel):
    """Base of each objective's parameter model; unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid")
    retain_loss: Literal["nll", "kl"] = "nll"


@dataclass
class ObjectiveContext:
    tokenizer: Any
    forget_records: Sequence[Record]
    forget: Encoded
    retain: Encoded
    max_length: int
    template: str
    seed: int
    batch_size: int
    # Swaps the model to its pre-unlearning weights for the duration of a `with` block: reference
    # outputs without a second model in memory (only the masked entries' originals are kept).
    reference: Callable[[], AbstractContextManager[None]]


class Objective:
    name: ClassVar[str]
    params_model: ClassVar[type[Params]] = Params

    def __init__(self, params: dict[str, Any], retain_weight: float = 1.0) -> None:
        try:
            self.params = self.params_model.model_validate(params)
        except ValidationError as exc:
            raise EngineError(f"objective {self.name}: invalid params: {exc.errors()[0]['msg']}") from None
        self.retain_weight = retain_weight
        self.ctx: ObjectiveContext | None = None

    @property
    def context(self) -> ObjectiveContext:
        if self.ctx is None:
            raise RuntimeError("prepare() must be called before loss()")
        return self.ctx

    def prepare(self, model: Any, ctx: ObjectiveContext) -> None:
        """Called once on the unmodified model, before noise (reference statistics belong here)."""
        self.ctx = ctx

    def forget_batch(self, idx: torch.Tensor, device: torch.device) -> Batch:
        return self.context.forget.select(idx).to(device)

    def loss(self, model: Any, forget_idx: torch.Tensor, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def retain_term(self, model: Any, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        """retain_weight * (NLL, or KL(reference || model) over answer tokens) on a retain batch."""
        if retain is None or self.retain_weight == 0.0:
            return torch.zeros(()), {}
        if self.params.retain_loss == "nll":
            value = mean_nll(model, retain)
        else:
            with torch.no_grad(), self.context.reference():
                ref = model(input_ids=retain.input_ids, attention_mask=retain.attention_mask).logits
            cur = model(input_ids=retain.input_ids, attention_mask=retain.attention_mask).logits
            value = kl_on_answers(cur, ref, retain.labels)
        return self.retain_weight * value, {"retain": float(value.detach())}


def kl_on_answers(logits: torch.Tensor, ref_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over answer positions of KL(p_ref || p_model) of the next-token distributions."""
    mask = labels[:, 1:] != IGNORE_INDEX  # the positions whose next token is an answer token
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    ref_logp = torch.log_softmax(ref_logits[:, :-1].float(), dim=-1)
    kl = (ref_logp.exp() * (ref_logp - logp)).sum(-1)
    return (kl * mask).sum() / mask.sum().clamp(min=1)
