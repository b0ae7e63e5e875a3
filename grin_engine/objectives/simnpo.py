"""SimNPO (Fan et al. 2024): reference-free, length-normalized NPO.

L = -(2/beta) * mean log sigmoid(-beta * log p(y|x)/|y| - gamma) + retain term.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from grin_engine.data import Batch
from grin_engine.objectives.base import Objective, Params
from grin_engine.scoring import sequence_logprob


class SimNPOParams(Params):
    beta: float = 2.5
    gamma: float = 0.0


def simnpo_loss(logp_sum: torch.Tensor, n_tokens: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    avg = logp_sum / n_tokens.clamp(min=1)
    return -(2.0 / beta) * F.logsigmoid(-beta * avg - gamma).mean()


class SimNPO(Objective):
    name = "simnpo"
    params_model = SimNPOParams

    def loss(self, model: Any, forget_idx: torch.Tensor, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(self.params, SimNPOParams)
        logp, n = sequence_logprob(model, self.forget_batch(forget_idx, model.device))
        value = simnpo_loss(logp, n, self.params.beta, self.params.gamma)
        keep, logs = self.retain_term(model, retain)
        return value + keep.to(value.device), {"simnpo": float(value.detach()), **logs}
