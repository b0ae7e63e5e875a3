"""Loading and saving Hugging Face causal LMs, offline, with content hashes."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Any, Literal

import torch

from grin_engine.errors import EngineError

DType = Literal["float32", "bfloat16"]
DeviceName = Literal["auto", "cpu", "cuda"]
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise EngineError("device 'cuda' requested but CUDA is not available")
    return torch.device(device)


def resolve_dtype(dtype: str = "float32") -> torch.dtype:
    table = {"float32": torch.float32, "bfloat16": torch.bfloat16}
    if dtype not in table:
        raise EngineError(f"unsupported dtype {dtype!r}; use one of {sorted(table)}")
    return table[dtype]


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def hash_directory(directory: str | Path) -> dict[str, str]:
    """sha256 of every regular file under `directory`, keyed by POSIX relative path, sorted."""
    root = Path(directory)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): sha256_file(p) for p in files}


def weights_hash(model_dir: str | Path) -> str:
    """One hash over the weight files of a checkpoint: identifies the base model of a mask
    independently of the dtype it was loaded in."""
    digests = {k: v for k, v in hash_directory(model_dir).items() if k.endswith(WEIGHT_SUFFIXES)}
    if not digests:
        raise EngineError(f"{model_dir}: no weight files (*.safetensors / *.bin)")
    return hashlib.sha256("".join(f"{k}:{v}\n" for k, v in digests.items()).encode()).hexdigest()


def check_model_dir(model_dir: str | Path) -> Path:
    p = Path(model_dir)
    if not p.is_dir():
        raise EngineError(f"{p}: model directory does not exist")
    if not (p / "config.json").is_file():
        raise EngineError(f"{p}: not a model directory (no config.json)")
    return p


def load_tokenizer(model_dir: str | Path) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(check_model_dir(model_dir)), local_files_only=True)
    if tok.pad_token is None:  # padding is masked out everywhere, so EOS is a safe stand-in
        tok.pad_token = tok.eos_token
    return tok


def load_model(model_dir: str | Path, dtype: str = "float32", device: str = "auto") -> tuple[torch.nn.Module, Any]:
    """(model, tokenizer) from a local directory, never touching the network. The model is in eval
    mode (no dropout): unlearning and scoring must be deterministic for a fixed seed."""
    from transformers import AutoModelForCausalLM

    path = check_model_dir(model_dir)
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path), local_files_only=True, dtype=resolve_dtype(dtype))
    except (OSError, ValueError) as exc:
        raise EngineError(f"{path}: cannot load model ({str(exc).splitlines()[0]})") from exc
    model = model.to(resolve_device(device))  # type: ignore[arg-type]
    model.eval()
    return model, load_tokenizer(path)


def save_checkpoint(model: Any, tokenizer: Any, out_dir: str | Path) -> dict[str, str]:
    """Write safetensors + config + tokenizer and return {file: sha256}.

    Written to a sibling temp directory and renamed, so a crash never leaves a half-written checkpoint
    that a resumed run would mistake for a finished stage.
    """
    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    return hash_directory(out)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def fp32_bytes(model: torch.nn.Module) -> int:
    return 4 * count_parameters(model)
