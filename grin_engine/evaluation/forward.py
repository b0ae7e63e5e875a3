"""Teacher-forced answer-token statistics and batched greedy generation.

One forward pass per batch yields everything the likelihood-based metrics need (token log-probs for
probability/truth ratio/MIA, argmax for memorization, next-token distribution moments for Min-K%++).
Log-probabilities come from grin_engine.scoring, so "NLL" means the same thing as in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from grin_engine.data import IGNORE_INDEX, batches, encode, encode_pair
from grin_engine.scoring import forward_logits, token_logprobs_from_logits

Pair = tuple[str | None, str]


@dataclass(frozen=True)
class TokenScores:
    """Per item, arrays over its answer tokens (prompt and padding excluded)."""

    logprobs: list[np.ndarray]
    predictions: list[np.ndarray]
    labels: list[np.ndarray]
    mu: list[np.ndarray] | None = None  # E_z[log p(z)] of the next-token distribution
    var: list[np.ndarray] | None = None  # Var_z[log p(z)]

    def nll(self) -> list[float]:
        """Mean answer-token NLL per item (equal to grin_engine.scoring.per_item_nll)."""
        return [float(-lp.mean()) if lp.size else float("nan") for lp in self.logprobs]


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def max_positions(model: Any) -> int | None:
    """The longest sequence the model can embed (GPT-2: n_positions), None when unbounded/unknown."""
    cfg = getattr(model, "config", None)
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(cfg, name, None)
        if isinstance(value, int):
            return value
    return None


def _moments(logits: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance of log p(z) under p, per position (Min-K%++). One row at a time, so a large
    vocabulary costs (tokens x vocab) memory, not (batch x tokens x vocab)."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    p = log_p.exp()
    mu = (p * log_p).sum(-1)
    var = (p * log_p.square()).sum(-1) - mu.square()
    return mu.double().cpu().numpy(), var.double().cpu().numpy()


@torch.no_grad()
def score_pairs(
    model: Any,
    tokenizer: Any,
    pairs: Sequence[Pair],
    *,
    batch_size: int,
    max_length: int,
    template: str | None,
    distribution: bool = False,
) -> TokenScores:
    """Token statistics of each (prompt, answer) under `model`, batched by similar length."""
    enc = encode(tokenizer, list(pairs), max_length, template)
    n = len(enc)
    # Longest first, so each batch holds similar lengths (little padding) and OOM shows up at once.
    order = torch.argsort(enc.attention_mask.sum(dim=1), descending=True, stable=True)
    out: dict[str, list[np.ndarray]] = {k: [np.zeros(0)] * n for k in ("lp", "pred", "lab", "mu", "var")}
    dev = _device(model)
    start = 0
    for batch in batches(enc, batch_size, order):
        b = batch.to(dev)
        logits = forward_logits(model, b)
        logp, mask = token_logprobs_from_logits(logits, b.labels)
        preds = logits[:, :-1].argmax(dim=-1)
        for row in range(len(b)):
            i = int(order[start + row])
            m = mask[row]
            out["lp"][i] = logp[row][m].double().cpu().numpy()
            out["pred"][i] = preds[row][m].cpu().numpy()
            out["lab"][i] = b.labels[row, 1:][m].cpu().numpy()
            if distribution:
                mu, var = _moments(logits[row, :-1][m])
                out["mu"][i], out["var"][i] = mu, var
        start += len(b)
    return TokenScores(
        logprobs=out["lp"],
        predictions=out["pred"],
        labels=out["lab"],
        mu=out["mu"] if distribution else None,
        var=out["var"] if distribution else None,
    )


def prompt_ids(tokenizer: Any, prompt: str, max_length: int, template: str | None) -> list[int]:
    """The exact prompt tokens `encode` puts before an answer (BOS, template, question)."""
    ids, labels, _ = encode_pair(tokenizer, prompt, "x", max_length, template)
    return [t for t, y in zip(ids, labels, strict=True) if y == IGNORE_INDEX]


@torch.no_grad()
def greedy_generate(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int,
    batch_size: int,
    max_length: int,
    template: str | None,
) -> list[str]:
    """Greedy continuations of `prompts`: left-padded batches, KV cache on, stop at EOS."""
    encoded = [prompt_ids(tokenizer, p, max_length, template) for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    dev = _device(model)
    texts = [""] * len(encoded)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(encoded[i]) for i in idx)
        limit = max_positions(model)
        # Absolute-position models fail past their table: stop early rather than crash.
        new_tokens = max_new_tokens if limit is None else max(1, min(max_new_tokens, limit - width))
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        att = torch.zeros((len(idx), width), dtype=torch.long)
        for row, i in enumerate(idx):  # left padding: every prompt ends where generation starts
            ids[row, width - len(encoded[i]) :] = torch.tensor(encoded[i])
            att[row, width - len(encoded[i]) :] = 1
        gen = model.generate(
            input_ids=ids.to(dev),
            attention_mask=att.to(dev),
            max_new_tokens=new_tokens,
            do_sample=False,
            num_beams=1,
            use_cache=True,
            pad_token_id=pad,
            eos_token_id=tokenizer.eos_token_id,
        )
        decoded = tokenizer.batch_decode(gen[:, width:], skip_special_tokens=True)
        for row, i in enumerate(idx):
            texts[i] = decoded[row].strip()
    return texts
