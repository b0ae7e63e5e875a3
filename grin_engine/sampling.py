"""Deterministic, resumable mini-batch index streams.

The batch of step s depends only on (n, batch_size, seed, s): an endless concatenation of seeded
per-epoch permutations. A resumed run therefore sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import torch


def epoch_permutation(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))


def step_indices(n: int, batch_size: int, seed: int, step: int) -> torch.Tensor:
    """Item indices of mini-batch `step` (wrapping into the next epoch; repeats only when n < batch_size)."""
    positions = range(step * batch_size, (step + 1) * batch_size)
    out, cache = [], {}
    for pos in positions:
        epoch, offset = divmod(pos, n)
        if epoch not in cache:
            cache[epoch] = epoch_permutation(n, seed, epoch)
        out.append(int(cache[epoch][offset]))
    return torch.tensor(out, dtype=torch.long)
