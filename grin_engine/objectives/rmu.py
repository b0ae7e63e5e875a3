"""RMU (Li et al. 2024, WMDP): steer layer-l activations on forget text toward c*u, where u is a fixed
seeded random unit vector, while keeping retain activations at their reference values.

L = mean ||h_l(forget) - c*u||^2 / H + retain_weight * mean ||h_l(retain) - h_l^ref(retain)||^2 / H
Only blocks up to layer l receive gradient, so only the masked entries of those few layers move.
"""

from __future__ import annotations

from typing import Any

import torch

from grin_engine.data import Batch
from grin_engine.objectives.base import Objective, ObjectiveContext, Params


class RMUParams(Params):
    layer: int | None = None  # hidden_states index; None = the middle of the network
    steering_coeff: float = 6.5


def hidden_at(model: Any, batch: Batch, layer: int) -> torch.Tensor:
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    return out.hidden_states[layer]


def masked_mse(h: torch.Tensor, target: torch.Tensor, attention: torch.Tensor) -> torch.Tensor:
    """Mean over attended tokens of ||h - target||^2 / H."""
    per_token = ((h.float() - target.float()) ** 2).mean(-1)
    m = attention.to(per_token.dtype)
    return (per_token * m).sum() / m.sum().clamp(min=1)


class RMU(Objective):
    name = "rmu"
    params_model = RMUParams

    def prepare(self, model: Any, ctx: ObjectiveContext) -> None:
        super().prepare(model, ctx)
        assert isinstance(self.params, RMUParams)
        n_layers = int(model.config.num_hidden_layers)
        self.layer = self.params.layer if self.params.layer is not None else max(1, n_layers // 2)
        gen = torch.Generator().manual_seed(ctx.seed)
        u = torch.rand(int(model.config.hidden_size), generator=gen)
        self.control = self.params.steering_coeff * u / u.norm()

    def loss(self, model: Any, forget_idx: torch.Tensor, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        fb = self.forget_batch(forget_idx, model.device)
        h_f = hidden_at(model, fb, self.layer)
        value = masked_mse(h_f, self.control.to(h_f.device).expand_as(h_f), fb.attention_mask)
        logs = {"rmu_forget": float(value.detach())}
        if retain is not None and self.retain_weight > 0:
            with torch.no_grad(), self.context.reference():
                ref = hidden_at(model, retain, self.layer)
            keep = masked_mse(hidden_at(model, retain, self.layer), ref, retain.attention_mask)
            value = value + self.retain_weight * keep
            logs["rmu_retain"] = float(keep.detach())
        return value, logs
