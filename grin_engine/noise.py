"""Noise: seeded Gaussian perturbation of the masked entries only.

relative: theta += sigma * std(W) * z   (std over the whole tensor, so layers of any scale get a
          comparable relative shake)
absolute: theta += sigma * z
Only the selected entries are read and written, so unmasked entries keep their exact bits.
"""

from __future__ import annotations

import torch

from grin_engine.config import NoiseConfig
from grin_engine.masks import Mask


@torch.no_grad()
def add_noise(model: torch.nn.Module, mask: Mask, cfg: NoiseConfig, seed: int) -> int:
    """Perturb the masked entries in place; returns how many entries were touched."""
    if cfg.sigma == 0.0:
        return 0
    params = dict(model.named_parameters())
    gen = torch.Generator().manual_seed(seed)
    touched = 0
    for name, m in mask.tensors.items():  # sorted names: the draw order is part of the seed contract
        p = params[name]
        idx = torch.nonzero(m.reshape(-1)).reshape(-1).to(p.device)
        if idx.numel() == 0:
            continue
        scale = cfg.sigma * (float(p.float().std()) if cfg.mode == "relative" else 1.0)
        z = torch.randn(idx.numel(), generator=gen).to(device=p.device)
        flat = p.view(-1)
        flat[idx] = (flat[idx].float() + scale * z).to(p.dtype)
        touched += idx.numel()
    return touched
