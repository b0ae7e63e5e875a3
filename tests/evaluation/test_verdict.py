from __future__ import annotations

from grin_engine.evaluation.config import EvalConfig
from grin_engine.evaluation.report import EvaluationReport, MetricResult
from grin_engine.evaluation.verdict import (
    Criterion,
    VerdictPolicy,
    compare_reports,
    default_criteria,
    default_policy,
)


def report(**values: float | None) -> EvaluationReport:
    results = {k.replace("__", "/"): MetricResult(metric=k, value=v) for k, v in values.items()}
    return EvaluationReport(model="m", suite="tofu", splits={}, results=results, config=EvalConfig())


def test_default_policy_pass_and_fail_with_reasons() -> None:
    before = report(model_utility=0.6)
    good = report(forget_quality=0.3, model_utility=0.58, forget__privleak_min_k=-4.0,
                  quantization_int4__keyword_accuracy=0.02)
    v = compare_reports(before, good, VerdictPolicy())
    assert v.passed and all(c.passed for c in v.criteria)
    assert v.reason.startswith("pass")

    bad = report(forget_quality=0.3, model_utility=0.4, forget__privleak_min_k=-40.0,
                 quantization_int4__keyword_accuracy=0.02)
    v = compare_reports(before, bad, VerdictPolicy())
    assert not v.passed
    failed = {c.name: c for c in v.criteria if c.passed is False}
    assert set(failed) == {"model utility kept", "privacy leakage"}
    assert "0.9 x before 0.6" in failed["model utility kept"].reason
    assert failed["model utility kept"].bound == 0.9 * 0.6
    assert "|forget/privleak_min_k| = 40" in failed["privacy leakage"].reason


def test_holdout_forget_quality_fallback_and_missing() -> None:
    before = report(model_utility=0.5)
    after = report(forget_quality_holdout=0.01, model_utility=0.5)
    v = compare_reports(before, after, VerdictPolicy())
    fq = v.criteria[0]
    assert fq.key == "forget_quality_holdout" and fq.passed is False
    skipped = [c for c in v.criteria if c.passed is None]
    assert {c.name for c in skipped} == {"privacy leakage", "quantization recovery"}
    assert "not evaluated" in v.reason
    strict = compare_reports(before, after, VerdictPolicy(missing_fails=True))
    assert sum(c.passed is False for c in strict.criteria) == 3


def test_custom_criteria_and_nothing_evaluated() -> None:
    policy = VerdictPolicy(criteria=[
        *default_criteria(max_forget_rouge=0.4, max_abs_privleak=None, max_quantization_recovery=None),
        Criterion(name="forget keyword accuracy drop", keys=["forget/keyword_accuracy"], op="<=",
                  threshold=-0.5, basis="before_delta"),
    ])
    before = report(model_utility=0.5, forget__keyword_accuracy=0.9)
    after = report(forget_quality=0.5, model_utility=0.5, forget__rouge_l=0.3, forget__keyword_accuracy=0.1)
    v = compare_reports(before, after, policy)
    assert v.passed, v.reason
    assert "before 0.9 -0.5" in v.criteria[-1].reason
    empty = compare_reports(report(), report(), VerdictPolicy())
    assert not empty.passed and "no criterion" in empty.reason
    assert VerdictPolicy.model_validate_json(policy.model_dump_json()) == policy


def test_default_policy_per_job_kind() -> None:
    assert default_policy("qa") == VerdictPolicy()
    text = default_policy("text")
    assert text.missing_fails
    keys = {k for c in text.criteria for k in c.keys}
    assert keys == {"mcq/accuracy", "mcq_retain/accuracy", "quantization_int4/mcq/accuracy",
                    "quantization_int4/mcq_retain/accuracy"}
    before = report(mcq__accuracy=0.8, mcq_retain__accuracy=0.6, quantization_int4__mcq_retain__accuracy=0.6)
    after = report(mcq__accuracy=0.26, mcq_retain__accuracy=0.59, quantization_int4__mcq__accuracy=0.5,
                   quantization_int4__mcq_retain__accuracy=0.6)
    v = compare_reports(before, after, text)
    assert not v.passed and [c.name for c in v.criteria if c.passed is False] == [
        "forget MCQ at most chance + 0.05 (int4)",
    ]
    harm = default_policy("harmful")
    v = compare_reports(report(harmful__harmful_rate=0.5, retain__rouge_l=0.8),
                        report(harmful__harmful_rate=0.05, retain__rouge_l=0.78), harm)
    assert not v.passed and "not evaluated" in v.criteria[2].reason  # int4 numbers missing: fail
