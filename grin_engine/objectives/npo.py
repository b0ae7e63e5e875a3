"""Negative Preference Optimization (Zhang et al. 2024).

L = -(2/beta) * mean log sigmoid(-beta * (log p(y|x) - log p_ref(y|x))) + retain term.
Reference log-probabilities are computed once in prepare(), so no reference model stays in memory.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from grin_engine.data import Batch
from grin_engine.objectives.base import Objective, ObjectiveContext, Params
from grin_engine.scoring import sequence_logprob, sequence_logprob_batched


class NPOParams(Params):
    beta: float = 0.1


def npo_loss(logp: torch.Tensor, ref_logp: torch.Tensor, beta: float) -> torch.Tensor:
    return -(2.0 / beta) * F.logsigmoid(-beta * (logp - ref_logp)).mean()


class NPO(Objective):
    name = "npo"
    params_model = NPOParams

    def prepare(self, model: Any, ctx: ObjectiveContext) -> None:
        super().prepare(model, ctx)
        self.ref_logp, _ = sequence_logprob_batched(model, ctx.forget, ctx.batch_size)

    def loss(self, model: Any, forget_idx: torch.Tensor, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(self.params, NPOParams)
        logp, _ = sequence_logprob(model, self.forget_batch(forget_idx, model.device))
        value = npo_loss(logp, self.ref_logp[forget_idx].to(logp.device), self.params.beta)
        keep, logs = self.retain_term(model, retain)
        return value + keep.to(value.device), {"npo": float(value.detach()), **logs}
