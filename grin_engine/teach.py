"""Supervised QA fine-tuning ("teach a model a QA set"): makes the target model (trained on forget +
retain) and the retain-only reference model. Full-parameter AdamW on answer-token NLL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from pydantic import BaseModel

from grin_engine.data import Record, encode
from grin_engine.errors import EngineError
from grin_engine.modeling import load_model, save_checkpoint
from grin_engine.sampling import step_indices
from grin_engine.scoring import device_of, mean_nll


class TeachResult(BaseModel):
    model_dir: str
    files: dict[str, str]
    losses: list[float]
    steps: int
    truncated: int


def teach(
    model_dir: str | Path,
    records: Sequence[Record],
    out_dir: str | Path,
    epochs: float = 10.0,
    lr: float = 3e-3,
    batch_size: int = 8,
    max_length: int = 256,
    seed: int = 0,
    template: str = "auto",
    device: str = "auto",
    dtype: str = "float32",
    on_step: Callable[[int, int, float], None] | None = None,
) -> TeachResult:
    """Fine-tune `model_dir` on `records` for `epochs` passes and save to `out_dir`."""
    if not records:
        raise EngineError("teach: no training records")
    torch.manual_seed(seed)
    model, tokenizer = load_model(model_dir, dtype=dtype, device=device)
    data = encode(tokenizer, records, max_length, template)
    steps = max(1, round(epochs * len(data) / batch_size))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    # Linear warm-up then linear decay: tiny models memorise quickly and stably with it.
    warmup = max(1, steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(steps - warmup, 1)))
    )
    losses = []
    for step in range(steps):
        batch = data.select(step_indices(len(data), batch_size, seed, step)).to(device_of(model))
        loss = mean_nll(model, batch)
        loss.backward()
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step + 1, steps, losses[-1])
    files = save_checkpoint(model, tokenizer, out_dir)
    return TeachResult(model_dir=str(out_dir), files=files, losses=losses, steps=steps, truncated=data.n_truncated)
