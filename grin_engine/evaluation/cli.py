"""Bodies of the `grin-engine evaluate` and `grin-engine verdict` commands.

Plain typed functions (typer metadata rides in Annotated, so they stay callable from Python);
grin_engine/cli.py registers them with `app.command("evaluate")(evaluate_command)`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from grin_engine.evaluation.config import EvalConfig, EvalSplits, JudgeConfig, ReferenceValues
from grin_engine.evaluation.report import EvaluationReport
from grin_engine.evaluation.verdict import Verdict, VerdictPolicy, compare_reports


def _splits(
    suite: str, data_dir: Path, forget: str, holdout: str | None, utility: bool, mcq: Path | None,
    harmful: Path | None,
) -> EvalSplits:
    from grin_engine.errors import EngineError
    from grin_engine.evaluation.suites import load_split_file, load_tofu_splits

    if suite == "tofu":
        return load_tofu_splits(data_dir, forget, holdout=holdout, utility=utility)
    path = mcq if suite == "mcq" else harmful
    if path is None:
        raise EngineError(f"suite {suite!r} needs --{suite} FILE")
    return load_split_file(path, "mcq" if suite == "mcq" else "harmful")


def evaluate_command(
    model: Annotated[Path, typer.Option(help="model directory (loaded offline)")],
    out: Annotated[Path, typer.Option(help="where to write the report JSON")],
    suite: Annotated[str, typer.Option(help="tofu, mcq or harmful")] = "tofu",
    data_dir: Annotated[Path, typer.Option(help="TOFU data directory")] = Path("data/tofu"),
    forget: Annotated[str, typer.Option(help="forget split name (forget01/05/10) or file")] = "forget05",
    holdout: Annotated[str | None, typer.Option(help="never-seen split of the forget kind (MIA, holdout FQ)")] = None,
    utility: Annotated[bool, typer.Option(help="also evaluate retain/real-authors/world-facts")] = True,
    reference: Annotated[Path | None, typer.Option(help="stored reference values JSON")] = None,
    reference_model: Annotated[Path | None, typer.Option(help="reference model directory")] = None,
    mcq: Annotated[Path | None, typer.Option(help="MCQ JSONL file (suite mcq)")] = None,
    harmful: Annotated[Path | None, typer.Option(help="harmful-prompt JSONL file (suite harmful)")] = None,
    judge_pattern: Annotated[list[str] | None, typer.Option(help="regex marking a harmful response")] = None,
    judge_classifier: Annotated[Path | None, typer.Option(help="local sequence-classification dir")] = None,
    metric: Annotated[list[str] | None, typer.Option(help="metric to run (repeatable; default: suite's)")] = None,
    max_items: Annotated[int | None, typer.Option(help="items per split")] = None,
    max_new_tokens: int = 200,
    batch_size: int = 16,
    device: str = "auto",
    dtype: str = "float32",
    samples: Annotated[int, typer.Option(help="generations kept per split (0: none, forget data is sensitive)")] = 0,
    save_reference: Annotated[Path | None, typer.Option(help="write this model's reference values here")] = None,
) -> EvaluationReport:
    """Evaluate a model and write an EvaluationReport (JSON) to --out."""
    from grin_engine.evaluation.runner import evaluate, reference_values

    judge = (
        JudgeConfig(kind="classifier", classifier_dir=str(judge_classifier))
        if judge_classifier
        else JudgeConfig(patterns=list(judge_pattern or []))
    )
    config = EvalConfig.model_validate({
        "suite": suite, "metrics": metric or None, "max_items": max_items, "max_new_tokens": max_new_tokens,
        "batch_size": batch_size, "device": device, "dtype": dtype, "sample_generations": samples, "judge": judge,
    })
    splits = _splits(suite, data_dir, forget, holdout, utility, mcq, harmful)
    ref = ReferenceValues.load(reference) if reference else None
    if ref is None and reference_model is not None:
        ref = reference_values(reference_model, splits.truncated(max_items), config, source=str(reference_model))
    report = evaluate(model, splits, config, reference=ref)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(report.model_dump_json(indent=2), encoding="utf-8")
    if save_reference is not None:
        report.reference_values().save(save_reference)
    summary = {k: r.value for k, r in report.results.items()}
    typer.echo(json.dumps({"report": str(out), "wall_time_s": report.wall_time_s, "results": summary}, indent=2))
    return report


def verdict_command(
    before: Annotated[Path, typer.Option(help="report of the model before unlearning")],
    after: Annotated[Path, typer.Option(help="report of the unlearned model")],
    policy: Annotated[Path | None, typer.Option(help="VerdictPolicy JSON (default: the built-in policy)")] = None,
    out: Annotated[Path | None, typer.Option(help="where to write the verdict JSON")] = None,
) -> Verdict:
    """Compare two reports under a policy; prints the verdict, exit code stays 0 either way."""
    rules = VerdictPolicy.model_validate_json(policy.read_text()) if policy else VerdictPolicy()
    verdict = compare_reports(
        EvaluationReport.model_validate_json(before.read_text()),
        EvaluationReport.model_validate_json(after.read_text()),
        rules,
    )
    text = verdict.model_dump_json(indent=2)
    if out is not None:
        out.write_text(text, encoding="utf-8")
    typer.echo(text)
    return verdict
