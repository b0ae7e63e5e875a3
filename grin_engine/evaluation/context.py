"""Evaluation context: the model, the splits and a cache of the expensive shared work.

Many metrics read the same numbers (answer log-probs serve probability, MIA, memorization and
keyword confidence; one set of generations serves ROUGE, keywords and fluency), so each is
computed once per (split, what) and metrics ask the context for it. Probes re-measure metrics on
another model or other records through `fork`, which keeps the cache only where nothing changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Literal

from grin_engine.evaluation.config import EvalConfig, EvalSplits, ReferenceValues
from grin_engine.evaluation.forward import TokenScores, greedy_generate, max_positions, score_pairs
from grin_engine.evaluation.registry import get_metric
from grin_engine.evaluation.report import MetricResult
from grin_engine.records import QARecord

Target = Literal["answer", "paraphrased", "perturbed"]


class EvalContext:
    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        splits: EvalSplits,
        config: EvalConfig,
        reference: ReferenceValues | None = None,
        on_progress: Callable[[str], None] | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.splits = splits
        self.config = config
        self.reference = reference
        self.on_progress = on_progress
        limit = max_positions(model)
        # Encode no longer than the model can embed (prompts keep their end, see data.encode_pair).
        self.max_length = config.max_length if limit is None else min(config.max_length, limit)
        self.timings: dict[str, float] = {}
        self._cache: dict[tuple[Any, ...], Any] = {}
        self._results: dict[str, dict[str, MetricResult]] = {}

    def fork(self, *, model: Any = None, splits: EvalSplits | None = None) -> EvalContext:
        """A context for another model and/or other splits. With the same model, the cached work on
        splits whose records are unchanged carries over (probes re-measure without recomputing)."""
        child = EvalContext(
            self.model if model is None else model,
            self.tokenizer,
            self.splits if splits is None else splits,
            self.config,
            self.reference,
            self.on_progress,
        )
        if model is None:
            same = {n for n, _ in child.splits if getattr(child.splits, n) == getattr(self.splits, n)}
            child._cache = {k: v for k, v in self._cache.items() if k[1] in same}
        return child

    def qa(self, split: str) -> list[QARecord] | None:
        """Records of a QA split, or None when the split was not given (or is empty)."""
        records = getattr(self.splits, split)
        return records or None

    def qa_splits(self, *names: str) -> list[tuple[str, list[QARecord]]]:
        return [(n, r) for n in names if (r := self.qa(n)) is not None]

    def _timed(self, label: str, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        if key not in self._cache:
            if self.on_progress:
                self.on_progress(label)
            t0 = time.perf_counter()
            self._cache[key] = compute()
            self.timings[label] = self.timings.get(label, 0.0) + time.perf_counter() - t0
        return self._cache[key]

    def scores(self, split: str, target: Target = "answer") -> TokenScores:
        """Teacher-forced token statistics of `target` answers for every item of `split`.

        paraphrased: the paraphrased answer, or the answer itself on sets without one (TOFU's rule
        for real-authors/world-facts). perturbed: all perturbed answers of all items flattened into
        one batched pass, in item order (see `perturbed_nll`).
        """
        records = self.qa(split) or []
        if target == "paraphrased" and all(r.paraphrased_answer is None for r in records):
            return self.scores(split, "answer")  # same pairs: reuse instead of a second pass

        def compute() -> TokenScores:
            if target == "answer":
                pairs = [(r.question, r.answer) for r in records]
            elif target == "paraphrased":
                pairs = [(r.question, r.paraphrased_answer or r.answer) for r in records]
            else:
                pairs = [(r.question, p) for r in records for p in (r.perturbed_answer or [])]
            c = self.config
            return score_pairs(
                self.model, self.tokenizer, pairs, batch_size=c.batch_size, max_length=self.max_length,
                template=c.template, distribution=target == "answer",
            )

        return self._timed(f"score:{split}:{target}", ("scores", split, target), compute)

    def nll(self, split: str, target: Target = "answer") -> list[float]:
        return self.scores(split, target).nll()

    def perturbed_nll(self, split: str) -> list[list[float]]:
        """Per item, the NLLs of its perturbed answers (empty list when it has none)."""
        flat = self.nll(split, "perturbed")
        out, pos = [], 0
        for r in self.qa(split) or []:
            k = len(r.perturbed_answer or [])
            out.append(flat[pos : pos + k])
            pos += k
        return out

    def generate(self, split: str, label: str, prompts: list[str]) -> list[str]:
        """Greedy generations for `prompts` drawn from `split`, cached under `label`."""

        def compute() -> list[str]:
            c = self.config
            return greedy_generate(
                self.model, self.tokenizer, prompts, max_new_tokens=c.max_new_tokens,
                batch_size=c.generation_batch_size, max_length=self.max_length, template=c.template,
            )

        return self._timed(f"generate:{split}:{label}", ("gen", split, label), compute)

    def generations(self, split: str) -> list[str]:
        """Greedy generations for the questions of a QA split."""
        return self.generate(split, "question", [r.question for r in self.qa(split) or []])

    def cached_generations(self) -> dict[str, list[str]]:
        """{label: generations} computed so far (for optional samples in the report)."""
        return {f"{k[1]}:{k[2]}": v for k, v in self._cache.items() if k[0] == "gen"}

    def run(self, name: str) -> dict[str, MetricResult]:
        """Results of metric `name`, computed once (metrics may depend on other metrics)."""
        if name not in self._results:
            if self.on_progress:
                self.on_progress(f"metric:{name}")
            t0 = time.perf_counter()
            self._results[name] = get_metric(name)(self)
            self.timings[f"metric:{name}"] = time.perf_counter() - t0
        return self._results[name]

    def all_results(self) -> dict[str, dict[str, MetricResult]]:
        """Every metric run so far (requested ones and their dependencies), in run order."""
        return dict(self._results)

    def value(self, name: str, key: str) -> float | None:
        result = self.run(name).get(key)
        return result.value if result is not None else None
