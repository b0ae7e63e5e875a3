"""Answer-token log-probabilities and per-item losses (the primitives of objectives and evaluation).

Shift convention: the logit at position t predicts token t+1, so labels are shifted left by one and
positions whose label is IGNORE_INDEX (prompt, padding) carry no loss.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from grin_engine.data import IGNORE_INDEX, Batch, batches


def forward_logits(model: Any, batch: Batch) -> torch.Tensor:
    return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits


def token_logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(label_t+1 | <= t), mask) both (B, L-1); log-softmax in fp32 so bf16 models score stably."""
    shift_logits = logits[:, :-1, :].float()
    shift_labels = labels[:, 1:]
    mask = shift_labels != IGNORE_INDEX
    safe = shift_labels.masked_fill(~mask, 0)
    logp = torch.gather(F.log_softmax(shift_logits, dim=-1), 2, safe.unsqueeze(-1)).squeeze(-1)
    return logp * mask, mask


def token_logprobs(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the label tokens under `model` and the mask of scored positions."""
    return token_logprobs_from_logits(forward_logits(model, batch), batch.labels)


def sequence_logprob(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of answer-token log-probs, number of answer tokens) per item, each shape (B,)."""
    logp, mask = token_logprobs(model, batch)
    return logp.sum(dim=1), mask.sum(dim=1)


def per_item_nll(model: Any, batch: Batch) -> torch.Tensor:
    """Mean answer-token negative log-likelihood per item, shape (B,). Differentiable."""
    total, count = sequence_logprob(model, batch)
    return -total / count.clamp(min=1)


def mean_nll(model: Any, batch: Batch) -> torch.Tensor:
    """Token-averaged NLL over the whole batch (the standard SFT loss)."""
    logp, mask = token_logprobs(model, batch)
    return -logp.sum() / mask.sum().clamp(min=1)


def device_of(model: Any) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def per_item_nll_batched(model: Any, data: Batch, batch_size: int = 16) -> torch.Tensor:
    """per_item_nll over a whole encoded set in mini-batches, on the model's device; returns CPU fp32."""
    dev = device_of(model)
    outs = [per_item_nll(model, b.to(dev)).float().cpu() for b in batches(data, batch_size)]
    return torch.cat(outs) if outs else torch.zeros(0)


@torch.no_grad()
def sequence_logprob_batched(model: Any, data: Batch, batch_size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """sequence_logprob over a whole encoded set; returns CPU (sum log-prob, token count)."""
    dev = device_of(model)
    sums, counts = [], []
    for b in batches(data, batch_size):
        s, c = sequence_logprob(model, b.to(dev))
        sums.append(s.float().cpu())
        counts.append(c.cpu())
    if not sums:
        return torch.zeros(0), torch.zeros(0, dtype=torch.long)
    return torch.cat(sums), torch.cat(counts)


def answer_probability(model: Any, data: Batch, batch_size: int = 16) -> torch.Tensor:
    """Length-normalized answer probability exp(-mean NLL) per item, in [0, 1]."""
    return torch.exp(-per_item_nll_batched(model, data, batch_size))
