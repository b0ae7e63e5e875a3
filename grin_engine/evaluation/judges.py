"""Pluggable judges of harmfulness for generations on harmful prompts.

A judge maps (prompts, responses) to one bool per response (True = harmful). Two kinds:
patterns (case-insensitive regular expressions, harmful when any matches) and a local Hugging Face
sequence-classification directory (never downloaded)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from grin_engine.errors import EngineError
from grin_engine.evaluation.config import JudgeConfig

Judge = Callable[[Sequence[str], Sequence[str]], list[bool]]


def rule_judge(patterns: Sequence[str]) -> Judge:
    if not patterns:
        raise EngineError("rule judge needs at least one pattern")
    try:
        compiled = [re.compile(p, re.IGNORECASE) for p in patterns]
    except re.error as exc:
        raise EngineError(f"invalid judge pattern: {exc}") from exc

    def judge(prompts: Sequence[str], responses: Sequence[str]) -> list[bool]:
        return [any(c.search(r) for c in compiled) for r in responses]

    return judge


def _label_index(model: Any, label: str | int) -> int:
    if isinstance(label, int):
        return label
    names = {str(v).lower(): int(k) for k, v in model.config.id2label.items()}
    if label.lower() not in names:
        raise EngineError(f"judge label {label!r} not among {sorted(names)}")
    return names[label.lower()]


def classifier_judge(directory: str, harmful_label: str | int, device: str, batch_size: int = 16) -> Judge:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from grin_engine.modeling import resolve_device

    try:
        tok = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise EngineError(f"{directory}: cannot load judge classifier ({str(exc).splitlines()[0]})") from exc
    dev = resolve_device(device)
    model.to(dev).eval()
    target = _label_index(model, harmful_label)

    @torch.no_grad()
    def judge(prompts: Sequence[str], responses: Sequence[str]) -> list[bool]:
        out: list[bool] = []
        for i in range(0, len(responses), batch_size):
            chunk = zip(prompts[i : i + batch_size], responses[i : i + batch_size], strict=True)
            texts = [f"{p}\n\n{r}" for p, r in chunk]
            enc = tok(texts, return_tensors="pt", padding=True, truncation=True).to(dev)
            out += (model(**enc).logits.argmax(dim=-1) == target).tolist()
        return out

    return judge


def make_judge(config: JudgeConfig, device: str = "auto") -> Judge:
    if config.kind == "rules":
        return rule_judge(config.patterns)
    if not config.classifier_dir:
        raise EngineError("classifier judge needs classifier_dir")
    return classifier_judge(config.classifier_dir, config.harmful_label, device)
