"""Localize: find the weight entries that matter for the forget set but not for the retain set.

score = |G_f| / (|G_r| + eps) per eligible entry (see LocalizeConfig for eps), then the top fraction k.
Memory: with aggregation "sum_then_abs" the forget gradient is taken over from .grad (no copy) and the
retain gradient is the next .grad, so localization holds two gradient-sized buffers at its peak.
"abs_sum" and "fisher" need a third (the running per-batch / per-example accumulator).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from grin_engine.config import LocalizeConfig
from grin_engine.data import IGNORE_INDEX, Batch, Encoded, batches
from grin_engine.masks import Mask
from grin_engine.scoring import token_logprobs

Grads = dict[str, torch.Tensor]
_NORM_HINTS = ("norm", "ln_")


def _is_block_path(name: str) -> bool:
    """Inside a transformer block: the module path has a numeric layer index (h.3, layers.3)."""
    return any(part.isdigit() for part in name.split("."))


def eligible_parameters(
    model: torch.nn.Module,
    include_embeddings: bool = False,
    include_norms: bool = False,
    include_biases: bool = False,
) -> dict[str, torch.nn.Parameter]:
    """Parameters localization may select from, keyed by name, in model order, tied weights once.

    Default: the weight matrices of Linear layers inside transformer blocks (attention and MLP).
    GPT-2's Conv1D is a Linear with transposed storage and is treated as one.
    """
    from transformers.pytorch_utils import Conv1D

    out: dict[str, torch.nn.Parameter] = {}
    seen: set[int] = set()
    for mod_name, module in model.named_modules():
        is_linear = isinstance(module, torch.nn.Linear | Conv1D) and _is_block_path(mod_name)
        is_embedding = isinstance(module, torch.nn.Embedding)
        is_norm = isinstance(module, torch.nn.LayerNorm) or any(
            h in type(module).__name__.lower() or mod_name.rsplit(".", 1)[-1].startswith(h) for h in _NORM_HINTS
        )
        for p_name, p in module.named_parameters(recurse=False):
            wanted = (
                (is_linear and p_name == "weight")
                or (is_linear and p_name == "bias" and include_biases)
                or (is_embedding and include_embeddings)
                or (is_norm and include_norms)
            )
            if wanted and id(p) not in seen:
                seen.add(id(p))
                out[f"{mod_name}.{p_name}" if mod_name else p_name] = p
    return out


def answer_tokens(data: Batch) -> int:
    return int((data.labels[:, 1:] != IGNORE_INDEX).sum())


def item_sample(data: Encoded, n_items: int, seed: int) -> Encoded:
    """A seeded random n_items of data, in their original order (all of it when it holds no more)."""
    if n_items >= len(data):
        return data
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    sub = data.select(order[:n_items].sort().values)
    return Encoded(sub.input_ids, sub.attention_mask, sub.labels)


def retain_sample(retain: Encoded, n_tokens: int, seed: int) -> Encoded:
    """Seeded random retain items until they hold at least n_tokens answer tokens."""
    order = torch.randperm(len(retain), generator=torch.Generator().manual_seed(seed))
    counts = (retain.labels[:, 1:] != IGNORE_INDEX).sum(dim=1)[order]
    n_items = int(torch.searchsorted(counts.cumsum(0), torch.tensor(n_tokens)).item()) + 1
    chosen = order[: min(n_items, len(retain))].sort().values
    sub = retain.select(chosen)
    return Encoded(sub.input_ids, sub.attention_mask, sub.labels)


def _token_nll_sum(model: torch.nn.Module, batch: Batch) -> torch.Tensor:
    logp, _ = token_logprobs(model, batch)
    return -logp.sum()


def accumulate_gradients(
    model: torch.nn.Module,
    data: Batch,
    params: dict[str, torch.nn.Parameter],
    aggregation: str,
    batch_size: int,
) -> Grads:
    """Gradient statistic of the token-mean answer NLL over `data` for each param in `params`.

    Each batch's loss is its token-sum NLL divided by the whole set's token count, so the sum over
    batches is the gradient of the set's mean NLL, comparable between forget and retain sets.
    """
    device = next(model.parameters()).device
    total = max(answer_tokens(data), 1)
    for p in params.values():
        p.grad = None
    acc: Grads = {}

    def fold(transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        for name, p in params.items():
            if p.grad is not None:
                g = transform(p.grad.float())
                acc[name] = acc[name].add_(g) if name in acc else g.clone()
                p.grad = None

    step = 1 if aggregation == "fisher" else batch_size  # fisher needs per-example gradients
    for b in batches(data, step):
        (_token_nll_sum(model, b.to(device)) / total).backward()
        if aggregation == "abs_sum":
            fold(torch.abs)
        elif aggregation == "fisher":
            fold(torch.square)
    if aggregation == "sum_then_abs":
        for name, p in params.items():
            acc[name] = (p.grad if p.grad is not None else torch.zeros_like(p)).float().abs_()
            p.grad = None
    return {n: acc.get(n, torch.zeros(p.shape, device=p.device)) for n, p in params.items()}


def ratio_scores(g_forget: Grads, g_retain: Grads, eps_rel: float, eps_scope: str) -> Grads:
    """|G_f| / (|G_r| + eps) in place in g_forget; eps = eps_rel * mean |G_r| (tensor or model)."""
    model_mean = sum(float(g.sum()) for g in g_retain.values()) / max(sum(g.numel() for g in g_retain.values()), 1)
    for name, gf in g_forget.items():
        gr = g_retain.pop(name)  # free each retain buffer as soon as it is used
        mean = float(gr.mean()) if eps_scope == "tensor" and gr.numel() else model_mean
        eps = eps_rel * (mean if mean > 0 else model_mean) or 1e-30  # all-zero retain grads: still finite
        gf.div_(gr.add_(eps))
    return g_forget


def select_top(flat: torch.Tensor, n: int) -> torch.Tensor:
    """Boolean mask of exactly n entries with the highest values; ties at the threshold go to the lowest
    flat indices, so the result is deterministic. NaN scores rank lowest."""
    out = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    if n <= 0:
        return out
    if n >= flat.numel():
        return out.fill_(True)
    flat = flat.float()
    if not bool(torch.isfinite(flat).all()):  # copy only in the rare case that needs cleaning
        flat = torch.nan_to_num(flat, nan=-1.0, posinf=torch.finfo(torch.float32).max)
    # The n-th largest is the (N - n + 1)-th smallest: no negated copy of a model-sized vector.
    threshold = torch.kthvalue(flat, flat.numel() - n + 1).values
    above = flat > threshold
    out |= above
    ties = torch.nonzero(flat == threshold).reshape(-1)[: n - int(above.sum())]
    out[ties] = True
    return out


def top_k_masks(scores: Grads, k: float, scope: str) -> Grads:
    """Top fraction k of scores, over all tensors together ("global") or within each ("per_module")."""
    if scope == "per_module":
        return {n: select_top(s.reshape(-1), round(k * s.numel())).reshape(s.shape) for n, s in scores.items()}
    flat = torch.cat([s.reshape(-1) for s in scores.values()])
    chosen = select_top(flat, round(k * flat.numel()))
    del flat
    out, start = {}, 0
    for name, s in scores.items():
        out[name] = chosen[start : start + s.numel()].reshape(s.shape)
        start += s.numel()
    return out


def compute_scores(
    model: torch.nn.Module,
    forget: Encoded,
    retain: Encoded,
    cfg: LocalizeConfig,
    params: dict[str, torch.nn.Parameter],
    seed: int,
) -> Grads:
    if cfg.method == "random":
        gen = torch.Generator().manual_seed(seed)
        return {n: torch.rand(p.shape, generator=gen) for n, p in params.items()}
    if cfg.forget_sample is not None:
        forget = item_sample(forget, cfg.forget_sample, seed)
    g_forget = accumulate_gradients(model, forget, params, cfg.aggregation, cfg.batch_size)
    if cfg.method == "salun":
        return g_forget
    retain_part = retain_sample(retain, cfg.retain_tokens or answer_tokens(forget), seed)
    g_retain = accumulate_gradients(model, retain_part, params, cfg.aggregation, cfg.batch_size)
    return ratio_scores(g_forget, g_retain, cfg.eps_rel, cfg.eps_scope)


def localize(
    model: torch.nn.Module,
    forget: Encoded,
    retain: Encoded,
    cfg: LocalizeConfig,
    seed: int = 0,
    base_model_hash: str | None = None,
) -> Mask:
    """Select the entries to unlearn. The model's weights are not changed; gradients are cleared."""
    params = eligible_parameters(model, cfg.include_embeddings, cfg.include_norms, cfg.include_biases)
    meta = {
        "base_model_hash": base_model_hash,
        "method": cfg.method,
        "seed": seed,
        "scope": cfg.scope,
        "k": 1.0 if cfg.method == "none" else cfg.k,
        "eps_rel": cfg.eps_rel if cfg.method == "grin" else None,
        "aggregation": cfg.aggregation if cfg.method in ("grin", "salun") else None,
        "forget_sample": cfg.forget_sample
        if cfg.forget_sample is not None and cfg.forget_sample < len(forget) and cfg.method in ("grin", "salun")
        else None,
    }
    if cfg.method == "none":
        return Mask.from_tensors({n: torch.ones(p.shape, dtype=torch.bool) for n, p in params.items()}, **meta)
    # Only eligible weights need gradients: skipping the rest (embeddings!) saves memory and time.
    saved = {n: p.requires_grad for n, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params.values():
        p.requires_grad_(True)
    try:
        scores = compute_scores(model, forget, retain, cfg, params, seed)
        masks = top_k_masks(scores, cfg.k, cfg.scope)
    finally:
        for n, p in model.named_parameters():
            p.requires_grad_(saved[n])
            p.grad = None
    return Mask.from_tensors(masks, **meta)
