"""Build small causal LMs from a config, with a byte-level BPE tokenizer trained locally.

Nothing is downloaded: the tokenizer is trained with `tokenizers` on the given texts and the model is
randomly initialised (seeded). A small vocabulary is deliberate: rare words such as the fictitious
author names of TOFU then split into several pieces, as they do in real LLM tokenizers, which is what
makes forgetting a name a multi-token problem.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from grin_engine.errors import EngineError
from grin_engine.modeling import save_checkpoint

Arch = Literal["gpt2", "llama"]
BOS, EOS, PAD = "<|bos|>", "<|eos|>", "<|pad|>"


def train_tokenizer(
    texts: Iterable[str], vocab_size: int = 512, min_frequency: int = 2, max_token_length: int | None = 4
) -> Any:
    """A byte-level BPE tokenizer (GPT-2 style) wrapped as a transformers fast tokenizer.

    max_token_length caps merges: on a small corpus the names are among the most frequent words and
    would otherwise become single tokens.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[PAD, BOS, EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no unknown tokens
        max_token_length=max_token_length,
        show_progress=False,
    )
    tok.train_from_iterator(list(texts), trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD)


def model_config(
    arch: Arch,
    vocab_size: int,
    hidden: int,
    layers: int,
    heads: int,
    max_positions: int,
    pad_id: int,
    bos_id: int,
    eos_id: int,
) -> Any:
    """A transformers config for a tiny model. Dropout is off: runs must be deterministic."""
    from transformers import GPT2Config, LlamaConfig

    ids: dict[str, Any] = {"pad_token_id": pad_id, "bos_token_id": bos_id, "eos_token_id": eos_id}
    if arch == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size,
            n_positions=max_positions,
            n_embd=hidden,
            n_layer=layers,
            n_head=heads,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **ids,
        )
    if arch == "llama":
        return LlamaConfig(
            vocab_size=vocab_size,
            hidden_size=hidden,
            intermediate_size=4 * hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=max(1, heads // 2),
            max_position_embeddings=max_positions,
            tie_word_embeddings=True,
            **ids,
        )
    raise EngineError(f"unknown architecture {arch!r}; use 'gpt2' or 'llama'")


def read_texts(paths: Sequence[str | Path]) -> list[str]:
    """Lines of plain or JSON Lines files; for JSONL every string value of a row is used."""
    import json

    out: list[str] = []
    for p in map(Path, paths):
        if not p.is_file():
            raise EngineError(f"{p}: no such file")
        for line in p.read_text(encoding="utf-8").splitlines():
            s = line.strip()
            if not s:
                continue
            try:
                row = json.loads(s)
            except json.JSONDecodeError:
                out.append(s)
                continue
            if isinstance(row, dict):
                out.extend(v for v in row.values() if isinstance(v, str))
                out.extend(x for v in row.values() if isinstance(v, list) for x in v if isinstance(x, str))
            elif isinstance(row, str):
                out.append(row)
    return out


def build_tiny_model(
    out_dir: str | Path,
    texts: Iterable[str],
    arch: Arch = "gpt2",
    vocab_size: int = 512,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    max_positions: int = 256,
    seed: int = 0,
    max_token_length: int | None = 4,
) -> dict[str, str]:
    """Train a tokenizer on `texts`, build a random model for it and save both to `out_dir`.

    Returns {file: sha256}. Same texts and seed give byte-identical weights.
    """
    tokenizer = train_tokenizer(texts, vocab_size=vocab_size, max_token_length=max_token_length)
    from transformers import AutoModelForCausalLM

    cfg = model_config(
        arch,
        len(tokenizer),
        hidden,
        layers,
        heads,
        max_positions,
        pad_id=tokenizer.pad_token_id,
        bos_id=tokenizer.bos_token_id,
        eos_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    return save_checkpoint(model, tokenizer, out_dir)
