"""Masked fine-tuning: an AdamW that reads gradients and writes weights at the masked entries only.

Why not torch.optim.AdamW plus gradient masking: decoupled weight decay would shrink unmasked weights,
and a full-size optimizer state costs 2x the model. Here each tensor's selected entries are gathered
by flat index, updated, and scattered back; unmasked entries are never written, so they stay
bit-identical, and optimizer state exists only for masked entries. A fully masked tensor (baselines)
skips the gather/scatter.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from grin_engine.masks import Mask


class MaskedParams:
    """The trainable view of a model under a mask, with the pre-unlearning values of masked entries."""

    def __init__(self, model: torch.nn.Module, mask: Mask) -> None:
        params = dict(model.named_parameters())
        self.params: dict[str, torch.nn.Parameter] = {}
        self.index: dict[str, torch.Tensor | None] = {}  # None = every entry of the tensor
        for name, m in mask.tensors.items():
            if not bool(m.any()):
                continue
            p = params[name]
            self.params[name] = p
            self.index[name] = None if bool(m.all()) else torch.nonzero(m.reshape(-1)).reshape(-1).to(p.device)
        self.original = {n: self.gather(n).detach().clone() for n in self.params}
        for p in model.parameters():  # no gradients for tensors that cannot change: less compute
            p.requires_grad_(False)
        for p in self.params.values():
            p.requires_grad_(True)

    def gather(self, name: str, source: torch.Tensor | None = None) -> torch.Tensor:
        t = self.params[name] if source is None else source
        idx = self.index[name]
        return t.reshape(-1) if idx is None else t.reshape(-1)[idx]

    @torch.no_grad()
    def scatter(self, name: str, values: torch.Tensor) -> None:
        idx = self.index[name]
        # .data: the swap in reference() must not bump the autograd version counter of a parameter that
        # an earlier forward of the same step still needs; the values are restored exactly before backward.
        flat = self.params[name].data.view(-1)
        if idx is None:
            flat.copy_(values)
        else:
            flat[idx] = values

    def numel(self) -> int:
        return sum(v.numel() for v in self.original.values())

    @contextmanager
    def reference(self) -> Iterator[None]:
        """Temporarily restore the pre-unlearning values (exact copies, so restoring is exact too)."""
        current = {n: self.gather(n).detach().clone() for n in self.params}
        for n, v in self.original.items():
            self.scatter(n, v)
        try:
            yield
        finally:
            for n, v in current.items():
                self.scatter(n, v)


class MaskedAdamW:
    """AdamW over masked entries; decoupled weight decay touches masked entries only."""

    def __init__(
        self,
        masked: MaskedParams,
        lr: float,
        weight_decay: float = 0.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.masked, self.lr, self.wd, self.betas, self.eps = masked, lr, weight_decay, betas, eps
        self.step_count = 0
        self.exp_avg = {n: torch.zeros_like(v, dtype=torch.float32) for n, v in masked.original.items()}
        self.exp_avg_sq = {n: torch.zeros_like(v, dtype=torch.float32) for n, v in masked.original.items()}

    @torch.no_grad()
    def step(self) -> None:
        self.step_count += 1
        b1, b2 = self.betas
        bc1, bc2 = 1 - b1**self.step_count, 1 - b2**self.step_count
        for name, p in self.masked.params.items():
            if p.grad is None:
                continue
            g = self.masked.gather(name, p.grad).float()
            m, v = self.exp_avg[name], self.exp_avg_sq[name]
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            w = self.masked.gather(name).float()
            if self.wd:
                w = w * (1 - self.lr * self.wd)
            w = w - self.lr * (m / bc1) / ((v / bc2).sqrt() + self.eps)
            self.masked.scatter(name, w.to(p.dtype))

    def zero_grad(self) -> None:
        for p in self.masked.params.values():
            p.grad = None

    def state_dict(self) -> dict[str, torch.Tensor]:
        out = {"step": torch.tensor(self.step_count)}
        out.update({f"m::{n}": t for n, t in self.exp_avg.items()})
        out.update({f"v::{n}": t for n, t in self.exp_avg_sq.items()})
        return out

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.step_count = int(state["step"])
        for n in self.exp_avg:
            self.exp_avg[n].copy_(state[f"m::{n}"])
            self.exp_avg_sq[n].copy_(state[f"v::{n}"])
