"""Gradient difference: ascent on the forget NLL plus descent on a retain term (NLL or KL)."""

from __future__ import annotations

from typing import Any

import torch

from grin_engine.data import Batch
from grin_engine.objectives.base import Objective
from grin_engine.scoring import mean_nll


class GradDiff(Objective):
    name = "graddiff"

    def loss(self, model: Any, forget_idx: torch.Tensor, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        nll = mean_nll(model, self.forget_batch(forget_idx, model.device))
        keep, logs = self.retain_term(model, retain)
        return -nll + keep.to(nll.device), {"forget_nll": float(nll.detach()), **logs}
