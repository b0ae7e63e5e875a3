"""`evaluate`: run the configured metrics on a model and collect one EvaluationReport."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from grin_engine.evaluation.config import EvalConfig, EvalSplits, ReferenceValues
from grin_engine.evaluation.context import EvalContext
from grin_engine.evaluation.registry import get_metric
from grin_engine.evaluation.report import EvaluationReport, MetricResult, Sample

ModelInput = str | Path | tuple[Any, Any]


def _load(model: ModelInput, config: EvalConfig) -> tuple[Any, Any, str]:
    if isinstance(model, str | Path):
        from grin_engine.modeling import load_model

        m, tok = load_model(model, config.dtype, config.device)
        return m, tok, str(model)
    m, tok = model
    return m, tok, str(getattr(m, "name_or_path", "") or type(m).__name__)


def _samples(ctx: EvalContext, n: int) -> list[Sample]:
    out = []
    for label, gens in ctx.cached_generations().items():
        out += [Sample(split=label, index=i, generation=g) for i, g in enumerate(gens[:n])]
    return out


def evaluate(
    model_dir_or_model: ModelInput,
    splits: EvalSplits,
    config: EvalConfig,
    *,
    reference: ReferenceValues | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> EvaluationReport:
    """Evaluate a model directory (loaded offline) or a (model, tokenizer) pair on `splits`.

    Each split is cut to config.max_items first. Metrics named in the config run in order; metrics
    they depend on also run and appear in the report. on_progress receives one label per stage
    ("metric:truth_ratio", "generate:forget:question", ...). A passed model is left in the
    train/eval mode it came in.
    """
    t0 = time.perf_counter()
    for name in config.metric_names():  # fail on a typo before any model work
        get_metric(name)
    model, tokenizer, label = _load(model_dir_or_model, config)
    was_training = bool(getattr(model, "training", False))
    threads = torch.get_num_threads()
    ctx = EvalContext(model, tokenizer, splits.truncated(config.max_items), config, reference, on_progress)
    try:
        model.eval()
        torch.manual_seed(config.seed)
        if config.num_threads is not None:
            torch.set_num_threads(config.num_threads)
        results: dict[str, MetricResult] = {}
        for name in config.metric_names():
            ctx.run(name)
        for per_metric in ctx.all_results().values():
            results.update(per_metric)
    finally:
        model.train(was_training)
        torch.set_num_threads(threads)
    return EvaluationReport(
        model=label,
        suite=config.suite,
        splits=ctx.splits.present(),
        results=results,
        samples=_samples(ctx, config.sample_generations) if config.sample_generations else [],
        timings_s={k: round(v, 4) for k, v in ctx.timings.items()},
        wall_time_s=round(time.perf_counter() - t0, 4),
        config=config,
    )


def reference_values(
    model_dir_or_model: ModelInput, splits: EvalSplits, config: EvalConfig, source: str = ""
) -> ReferenceValues:
    """Evaluate a reference model (one that never saw the forget data) just enough to produce the
    stored reference: forget truth ratios and, with a holdout split, the MIA AUCs."""
    names = ["truth_ratio"]
    if splits.holdout:
        names += ["mia_loss", "mia_zlib", "mia_min_k", "mia_min_k_plus_plus"]
    cfg = config.model_copy(update={"metrics": names})
    ref = evaluate(model_dir_or_model, splits.model_copy(update={"retain": None, "real_authors": None,
                                                                "world_facts": None}), cfg)
    values = ref.reference_values()
    return values.model_copy(update={"source": source or ref.model})
