"""Fluency of the generations on forget prompts, so that "forgetting" by emitting gibberish shows:
repeated n-gram share, word entropy and share of non-words. The lexicon for non-words is every word
of the evaluation texts (questions, answers, paraphrases, perturbed answers of all given splits): a
fluent answer about these topics uses those words, gibberish does not."""

from __future__ import annotations

from grin_engine.evaluation import stats
from grin_engine.evaluation.config import QA_SPLITS
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.registry import register
from grin_engine.evaluation.report import MetricResult, missing, result
from grin_engine.evaluation.text import fluency_tokens, nonword_share, repetition_rate, token_entropy, words


def lexicon(ctx: EvalContext) -> set[str]:
    out: set[str] = set()
    for _, records in ctx.qa_splits(*QA_SPLITS):
        for r in records:
            texts = [r.question, r.answer, r.paraphrased_answer or "", r.paraphrased_question or ""]
            for t in texts + list(r.perturbed_answer or []):
                out.update(w.lower() for w in words(t))
    return out


@register("fluency")
def fluency(ctx: EvalContext) -> dict[str, MetricResult]:
    keys = ("repetition_rate", "token_entropy", "nonword_share")
    if ctx.qa("forget") is None:
        return {f"forget/{k}": missing("fluency", "forget", "no forget split") for k in keys}
    gens = [fluency_tokens(g) for g in ctx.generations("forget")]
    lex = lexicon(ctx)
    n = ctx.config.fluency_ngram
    values = {
        "repetition_rate": [repetition_rate(g, n) for g in gens],
        "token_entropy": [token_entropy(g) for g in gens],
        "nonword_share": [nonword_share(g, lex) for g in gens],
    }
    return {f"forget/{k}": result("fluency", "forget", stats.mean(v)) for k, v in values.items()}
