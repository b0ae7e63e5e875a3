"""Weight quantization for the robustness probe: quantize, then dequantize back into the float
weights ("fake quantization"), which is exactly what a quantized deployment computes with.

Unlearning by tiny weight changes can be undone by rounding (Zhang et al. 2024, "Catastrophic
Failure of LLM Unlearning via Quantization"), so forget metrics are re-measured after
  int8: symmetric per-output-channel absmax, levels -127..127;
  int4: round-to-nearest, asymmetric min-max per group of `group_size` input weights, levels 0..15.
Linear layers (and GPT-2's Conv1D) are quantized; the output head is left in float as usual.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import torch

QuantMode = Literal["int8", "int4"]


def int8_per_channel(weight: torch.Tensor) -> torch.Tensor:
    """Rows are output channels: each row gets its own scale max|w|/127."""
    w = weight.float()
    scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
    return (torch.round(w / scale).clamp(-127, 127) * scale).to(weight.dtype)


def int4_rtn_grouped(weight: torch.Tensor, group_size: int = 128) -> torch.Tensor:
    """Each row is cut into groups of `group_size` inputs (the last one padded by repeating its edge),
    each with scale (max-min)/15 and zero-point round(-min/scale)."""
    w = weight.float()
    rows, cols = w.shape
    pad = (-cols) % group_size
    if pad:
        w = torch.cat([w, w[:, -1:].expand(rows, pad)], dim=1)
    g = w.reshape(rows, -1, group_size)
    lo, hi = g.amin(dim=-1, keepdim=True), g.amax(dim=-1, keepdim=True)
    scale = ((hi - lo) / 15.0).clamp(min=1e-12)
    zero = torch.round(-lo / scale)
    q = (torch.round(g / scale) + zero).clamp(0, 15)
    return ((q - zero) * scale).reshape(rows, -1)[:, :cols].to(weight.dtype)


def quantize_weight(weight: torch.Tensor, mode: QuantMode, group_size: int = 128) -> torch.Tensor:
    return int8_per_channel(weight) if mode == "int8" else int4_rtn_grouped(weight, group_size)


def _is_linear(module: torch.nn.Module) -> bool:
    # GPT-2's Conv1D is a linear layer whose weight is stored (in, out): detected by name to avoid
    # importing a transformers internal.
    return isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D"


@torch.no_grad()
def quantized_copy(model: Any, mode: QuantMode, group_size: int = 128) -> Any:
    """A deep copy of `model` with every linear weight except the output head fake-quantized."""
    q = copy.deepcopy(model)
    head = q.get_output_embeddings() if hasattr(q, "get_output_embeddings") else None
    for module in q.modules():
        if module is head or not _is_linear(module):
            continue
        w = module.weight
        transposed = type(module).__name__ == "Conv1D"
        src = w.t() if transposed else w
        new = quantize_weight(src, mode, group_size)
        w.copy_(new.t() if transposed else new)
    return q
