"""A complete audit report as the pipeline would assemble it, built from engine-shaped evaluation dumps."""

from __future__ import annotations

import hashlib
import math
from typing import Any

from app.compliance.report_schema import metric_rows, truth_ratios


def _result(metric: str, split: str | None, value: float | None, per_item: list[float] | None = None) -> dict:
    return {"metric": metric, "split": split, "value": value, "note": "" if value is not None else "no items",
            "per_item": per_item, "extra": {}}


def _evaluation(utility: float, fq: float, rouge: float, tr: list[float], quant: float) -> dict[str, Any]:
    return {"schema_version": 1, "model": "m", "suite": "tofu", "splits": {"forget": 8, "retain": 8},
            "results": {"model_utility": _result("model_utility", None, utility),
                        "forget_quality": _result("forget_quality", None, fq),
                        "forget/rouge_l": _result("rouge_l", "forget", rouge),
                        "forget/truth_ratio": _result("truth_ratio", "forget", sum(tr) / len(tr), tr),
                        "quantization_int4/keyword_accuracy": _result("keyword_accuracy", "forget", quant),
                        "forget/privleak_min_k": _result("privleak", "forget", None)},
            "samples": [], "timings_s": {}, "wall_time_s": 1.0, "config": {}}


def sample_report() -> dict[str, Any]:
    hashes = [hashlib.sha256(f"record {i}".encode()).hexdigest() for i in range(8)]
    before = _evaluation(0.62, 1e-4, 0.91, [0.3 + 0.02 * i for i in range(8)], 0.8)
    after = _evaluation(0.60, 0.41, 0.35, [0.6 + 0.03 * i for i in range(8)], 0.05)
    policy = {"criteria": [
        {"name": "forget quality", "keys": ["forget_quality"], "op": ">=", "threshold": 0.05, "basis": "absolute"},
        {"name": "model utility kept", "keys": ["model_utility"], "op": ">=", "threshold": 0.9,
         "basis": "before_ratio"},
        {"name": "privacy leakage", "keys": ["forget/privleak_min_k"], "op": "<=", "threshold": 10.0},
        {"name": "quantization recovery", "keys": ["quantization_int4/keyword_accuracy"], "op": "<=",
         "threshold": 0.1}], "missing_fails": False}
    verdict = {"passed": True, "reason": "3 of 3 evaluated criteria pass", "criteria": [
        {"name": "forget quality", "key": "forget_quality", "value": 0.41, "bound": 0.05, "passed": True,
         "reason": "forget quality: 0.41 >= 0.05"},
        {"name": "model utility kept", "key": "model_utility", "value": 0.60, "bound": 0.558, "passed": True,
         "reason": "model utility kept: 0.6 >= 0.558 (0.9 x before 0.62)"},
        {"name": "privacy leakage", "key": None, "value": None, "bound": None, "passed": None,
         "reason": "privacy leakage: not evaluated, the after report has none of forget/privleak_min_k"},
        {"name": "quantization recovery", "key": "quantization_int4/keyword_accuracy", "value": 0.05,
         "bound": 0.1, "passed": True, "reason": "quantization recovery: 0.05 <= 0.1"}]}
    files_before = {"config.json": "a" * 64, "model.safetensors": "b" * 64}
    files_after = {"config.json": "a" * 64, "model.safetensors": "c" * 64}
    return {
        "schema_version": "1.0",
        "issued_at": "2026-12-04T21:30:00Z",
        "job": {"job_id": "5f0c1f2e-0000-4000-8000-000000000001", "request_id": "idem-42",
                "request_sha256": "d" * 64, "tenant_id": "5f0c1f2e-0000-4000-8000-0000000000aa",
                "tenant_name": "acme", "status": "succeeded", "received_at": "2026-12-04T21:00:00Z",
                "started_at": "2026-12-04T21:00:02Z", "finished_at": "2026-12-04T21:29:50Z",
                "subject_reference": "DSR-2026-0042 <script>alert(1)</script>", "legal_basis": "GDPR Art. 17(1)(a)"},
        "forget_data": {"kind": "qa", "record_count": 8, "record_sha256": hashes, "merkle_root": "e" * 64},
        "retain_data": {"dataset_id": "ds-1", "name": "retain-v1", "record_count": 400, "sha256": "f" * 64},
        "model": {"model_id": "mdl-1", "name": "tiny-llama",
                  "before": {"version_id": "v1", "number": 1, "files": files_before, "total_bytes": 1000},
                  "after": {"version_id": "v2", "number": 2, "files": files_after, "total_bytes": 1000}},
        "mask": {"sha256": "9" * 64, "k": 1200, "fraction": 0.01,
                 "density": {f"model.layers.{i}.mlp.down_proj": 0.002 * (i + 1) for i in range(6)}},
        "method": {"name": "grin", "hyperparameters": {"objective": "npo", "lr": 1e-5, "steps": 40,
                                                       "mask_fraction": 0.01, "noise_std": 0.001},
                   "seed": 1234, "config_hash": "1" * 64},
        "code": {"package_version": "0.1.0", "git_commit": "e70b230", "engine_version": "0.1.0"},
        "hardware": {"device": "cpu", "torch_version": "2.13.0", "host": "worker-1"},
        "timings_s": {"localize": 3.2, "noise": 0.1, "finetune": 60.5, "evaluate": 20.0, "report": 0.5},
        "training": {"steps": 40, "stop_reason": "budget",
                     "loss_curves": {"forget": [2.0 + 0.1 * s for s in range(40)],
                                     "retain": [1.0 + 0.05 * math.sin(s) for s in range(40)]}},
        "evaluation": {"policy": policy, "before": before, "after": after,
                       "metrics": [row.model_dump() for row in metric_rows(before, after, policy, verdict)],
                       "truth_ratios": truth_ratios(before, after, [0.62 + 0.03 * i for i in range(8)]).model_dump()},
        "verdict": verdict,
        "robustness": [
            {"name": "4-bit quantization", "description": "keyword accuracy after int4 quantization",
             "before": 0.8, "after": 0.05, "threshold": 0.1, "passed": True},
            {"name": "relearning (10 steps)", "description": "keyword accuracy after brief fine-tuning on retain",
             "before": 0.8, "after": 0.2, "threshold": None, "passed": None}],
        "retention": [{"action": "forget_records_purged", "target": "job_inputs", "at": "2026-12-04T21:29:51Z",
                       "detail": "8 records deleted"}],
    }
