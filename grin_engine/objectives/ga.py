"""Gradient ascent: maximise the NLL of the forget answers (no retain term)."""

from __future__ import annotations

from typing import Any

import torch

from grin_engine.data import Batch
from grin_engine.objectives.base import Objective
from grin_engine.scoring import mean_nll


class GradientAscent(Objective):
    name = "ga"

    def loss(self, model: Any, forget_idx: torch.Tensor, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        nll = mean_nll(model, self.forget_batch(forget_idx, model.device))
        return -nll, {"forget_nll": float(nll.detach())}
