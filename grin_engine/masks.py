"""Weight masks: which entries of which tensors the unlearning may change, and their file format.

On disk (safetensors) each tensor's mask is stored either as packed bits (1 bit per eligible entry)
or as the sorted flat indices of the selected entries (int32, or int64 beyond 2^31 entries),
whichever is smaller, so sparse masks cost ~4 bytes per selected entry and dense ones 1/8 byte per
entry. Metadata (base model hash, k, eps, aggregation, seed, per-module density) travels in the
safetensors header as JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict

from grin_engine.errors import EngineError, MaskMismatch

_BITS, _IDX = "bits", "idx"


class MaskMeta(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_model_hash: str | None = None
    method: str
    k: float
    eps_rel: float | None = None
    aggregation: str | None = None
    scope: str = "global"
    seed: int = 0
    forget_sample: int | None = None  # forget items scored when localization used a sample; None = all
    shapes: dict[str, list[int]]
    density: dict[str, float] = {}
    selected: int = 0
    eligible: int = 0


@dataclass
class Mask:
    """Boolean masks keyed by parameter name (same shapes as the parameters) plus provenance."""

    tensors: dict[str, torch.Tensor]
    meta: MaskMeta

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], **meta: Any) -> Mask:
        tensors = {n: t.to(torch.bool).cpu() for n, t in sorted(tensors.items())}
        density = {n: float(t.float().mean()) if t.numel() else 0.0 for n, t in tensors.items()}
        return cls(
            tensors,
            MaskMeta(
                shapes={n: list(t.shape) for n, t in tensors.items()},
                density=density,
                selected=sum(int(t.sum()) for t in tensors.values()),
                eligible=sum(t.numel() for t in tensors.values()),
                **meta,
            ),
        )

    def summary(self) -> dict[str, Any]:
        """The JSON-friendly part of the metadata that goes into results and job records."""
        m = self.meta
        return {
            "method": m.method,
            "k": m.k,
            "scope": m.scope,
            "aggregation": m.aggregation,
            "eps_rel": m.eps_rel,
            "seed": m.seed,
            "forget_sample": m.forget_sample,
            "selected": m.selected,
            "eligible": m.eligible,
            "density": m.selected / max(m.eligible, 1),
            "per_module_density": m.density,
            "base_model_hash": m.base_model_hash,
        }


def _index_dtype(numel: int) -> torch.dtype:
    return torch.int32 if numel < 2**31 else torch.int64


def encode_tensor(mask: torch.Tensor) -> tuple[str, torch.Tensor]:
    """The smaller of (packed bits, sorted flat indices) for one boolean mask."""
    flat = mask.reshape(-1)
    n_sel, numel = int(flat.sum()), flat.numel()
    idx_dtype = _index_dtype(numel)
    idx_bytes = n_sel * (4 if idx_dtype == torch.int32 else 8)
    if idx_bytes < (numel + 7) // 8:
        return _IDX, torch.nonzero(flat).reshape(-1).to(idx_dtype)
    return _BITS, torch.from_numpy(np.packbits(flat.numpy()))


def decode_tensor(kind: str, data: torch.Tensor, shape: list[int]) -> torch.Tensor:
    numel = int(np.prod(shape)) if shape else 1
    if kind == _BITS:
        bits = np.unpackbits(data.numpy(), count=numel).astype(bool)
        return torch.from_numpy(bits).reshape(shape)
    out = torch.zeros(numel, dtype=torch.bool)
    out[data.long()] = True
    return out.reshape(shape)


def save_mask(mask: Mask, path: str | Path) -> int:
    """Write the mask; returns its size in bytes."""
    from safetensors.torch import save_file

    payload = {}
    for name, t in mask.tensors.items():
        kind, data = encode_tensor(t)
        payload[f"{name}::{kind}"] = data.contiguous()
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    save_file(payload, str(tmp), metadata={"grin_mask": mask.meta.model_dump_json()})
    tmp.replace(p)
    return p.stat().st_size


def load_mask(path: str | Path) -> Mask:
    from safetensors import safe_open

    p = Path(path)
    if not p.is_file():
        raise EngineError(f"{p}: no such mask file")
    try:
        with safe_open(str(p), framework="pt") as fh:
            header = fh.metadata() or {}
            if "grin_mask" not in header:
                raise EngineError(f"{p}: not a GRIN mask (no metadata)")
            meta = MaskMeta.model_validate(json.loads(header["grin_mask"]))
            tensors = {}
            for key in fh.keys():  # noqa: SIM118 - safe_open is not a mapping
                name, kind = key.rsplit("::", 1)
                tensors[name] = decode_tensor(kind, fh.get_tensor(key), meta.shapes[name])
    except (OSError, ValueError, KeyError) as exc:
        raise EngineError(f"{p}: unreadable mask ({exc})") from None
    return Mask(dict(sorted(tensors.items())), meta)


def check_fits(mask: Mask, model: torch.nn.Module, base_model_hash: str | None = None) -> None:
    """Raise MaskMismatch unless every masked tensor exists in `model` with the same shape and, when
    both hashes are known, the mask was computed on the same base weights."""
    params = dict(model.named_parameters())
    for name, t in mask.tensors.items():
        if name not in params:
            raise MaskMismatch(f"mask does not fit this model: no parameter {name!r}")
        if tuple(params[name].shape) != tuple(t.shape):
            raise MaskMismatch(
                f"mask does not fit this model: {name} has shape {tuple(params[name].shape)}, mask has {tuple(t.shape)}"
            )
    if base_model_hash and mask.meta.base_model_hash and base_model_hash != mask.meta.base_model_hash:
        raise MaskMismatch(
            f"mask was computed on base model {mask.meta.base_model_hash[:12]}, "
            f"not on this one ({base_model_hash[:12]})"
        )
