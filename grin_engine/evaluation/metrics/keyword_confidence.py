"""GRIN keyword confidence: mean teacher-forced probability of the answer tokens that overlap a key
word (see keyword_accuracy), averaged per item then over items. It moves before generations change,
so it shows partial forgetting that keyword accuracy cannot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from grin_engine.evaluation import stats
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.metrics.rouge_l import GENERATION_SPLITS
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, result
from grin_engine.evaluation.text import keyword_spans, keywords


def token_char_ends(tokenizer: Any, ids: Sequence[int]) -> tuple[str, list[int]]:
    """Decoded text of `ids` and the end offset of each token in it. Decoding prefixes (rather than
    tokens one by one) keeps byte-level pieces of one character together and works for any
    tokenizer; answers are short, so the quadratic cost is negligible."""
    ends = [len(tokenizer.decode(list(ids[: i + 1]), skip_special_tokens=True)) for i in range(len(ids))]
    return tokenizer.decode(list(ids), skip_special_tokens=True), ends


def key_token_mask(tokenizer: Any, ids: Sequence[int], keys: Sequence[str]) -> np.ndarray:
    """Boolean mask of the tokens whose characters overlap a key-word occurrence."""
    text, ends = token_char_ends(tokenizer, ids)
    spans = keyword_spans(text, keys)
    starts = [0, *ends[:-1]]
    return np.array([any(s < b and a < e for a, b in spans) for s, e in zip(starts, ends, strict=True)], dtype=bool)


@register("keyword_confidence")
def keyword_confidence(ctx: EvalContext) -> dict[str, MetricResult]:
    out = {}
    for split, records in ctx.qa_splits(*GENERATION_SPLITS):
        scores = ctx.scores(split)
        values = []
        for r, lp, ids in zip(records, scores.logprobs, scores.labels, strict=True):
            mask = key_token_mask(ctx.tokenizer, ids.tolist(), keywords(r.question, r.answer))
            if mask.any():
                values.append(float(np.exp(lp[mask]).mean()))
        out[f"{split}/keyword_confidence"] = result("keyword_confidence", split, stats.mean(values))
    return out
