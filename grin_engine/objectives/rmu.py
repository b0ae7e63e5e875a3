"""RMU (Li et al. 2024, WMDP): steer layer-l activations on forget text toward c*u, where u is a fixed
seeded random unit vector, while keeping retain activations at their reference values.

L = mean ||h_l(forget) - c*u||^2 / H + retain_weight * mean ||h_l(retain) - h_l^ref(retain)||^2 / H
Only blocks up to layer l receive gradient, so only the masked entries of those few layers move.
"""

from __future__ import annotations

from typing import Any

import torch
from pydantic import Field

from grin_engine.data import Batch, batches
from grin_engine.objectives.base import Objective, ObjectiveContext, Params


class RMUParams(Params):
    layer: int | None = None  # hidden_states index; None = the middle of the network
    steering_coeff: float = 6.5
    # c as a multiple of the mean activation norm at `layer` over the forget set, measured in prepare() on the
    # unmodified model; when set it replaces steering_coeff. Activation norms differ by orders of magnitude
    # between models, so an absolute c does not carry over and a relative one does (the hazard benchmark's
    # recipe is layer 1 of 4 with 20x, bench/hazard.py knowledge-large-rmu).
    steering_coeff_rel: float | None = Field(default=None, gt=0)


def hidden_at(model: Any, batch: Batch, layer: int) -> torch.Tensor:
    out = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, output_hidden_states=True)
    return out.hidden_states[layer]


@torch.no_grad()
def mean_activation_norm(model: Any, records: Batch, layer: int, batch_size: int) -> float:
    """Mean over attended tokens of ||h_layer||, over every record (token-weighted, in batches)."""
    total, count = 0.0, 0
    for b in batches(records, batch_size):
        batch = b.to(model.device)
        norms = hidden_at(model, batch, layer).float().norm(dim=-1)
        attended = batch.attention_mask.bool()
        total += float(norms[attended].sum())
        count += int(attended.sum())
    return total / max(count, 1)


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
        coeff = self.params.steering_coeff
        if self.params.steering_coeff_rel is not None:
            coeff = self.params.steering_coeff_rel * mean_activation_norm(model, ctx.forget, self.layer,
                                                                          ctx.batch_size)
        self.steering_coeff = coeff
        self.control = coeff * u / u.norm()

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
