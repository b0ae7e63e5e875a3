"""Assemble a job's `AuditReport` (app/compliance/report_schema.py) from the ledger and the engine's results.

Only hashes, ids, numbers and settings go in (the schema refuses unknown fields); the evaluation reports are
the engine's dumps, which keep no generations (`sample_generations` is 0 in every config the pipeline uses).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.compliance.report_schema import (
    AuditReport,
    CodeInfo,
    CriterionOutcome,
    DatasetRef,
    Evaluation,
    ForgetData,
    HardwareInfo,
    JobInfo,
    MaskInfo,
    MethodInfo,
    ModelInfo,
    ModelVersionInfo,
    Probe,
    RetentionAction,
    Training,
    Verdict,
    metric_rows,
    truth_ratios,
)
from app.jobs import repository
from app.models import Dataset, IdempotencyKey, Job, ModelVersion, RegisteredModel, Tenant

REPO_ROOT = Path(__file__).resolve().parents[1]


@lru_cache(maxsize=1)
def code_info() -> CodeInfo:
    """The installed package version, and the git commit when the code runs from a git checkout."""
    try:
        version = metadata.version("grin-unlearning")
    except metadata.PackageNotFoundError:
        version = "unknown"
    commit: str | None = None
    if (REPO_ROOT / ".git").exists():
        try:
            out = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"], capture_output=True,
                                 text=True, timeout=5, check=False)
            commit = out.stdout.strip() or None if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            commit = None
    return CodeInfo(package_version=version, git_commit=commit, engine_version=version)


def hardware_info(device: str) -> HardwareInfo:
    torch = sys.modules.get("torch")
    if device in ("", "auto") and torch is not None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    info: dict[str, Any] = {"device": device, "host": socket.gethostname(), "cpu_count": os.cpu_count(),
                            "platform": platform.platform(terse=True)}
    if torch is not None:
        info["torch_version"] = str(torch.__version__)
        info["cuda_version"] = torch.version.cuda
        if device.startswith("cuda") and torch.cuda.is_available():
            info["accelerator"] = torch.cuda.get_device_name(torch.device(device))
        else:
            info["accelerator"] = None
        info["device"] = device
    return HardwareInfo(**info)


def _verdict(verdict: Any, eval_note: str) -> Verdict:
    if verdict is None:
        return Verdict(passed=True, criteria=[],
                       reason=f"not evaluated ({eval_note}): no criterion was checked; the job was judged on the "
                              "engine's forget/retain probabilities alone")
    return Verdict(passed=bool(verdict.passed), reason=verdict.reason,
                   criteria=[CriterionOutcome(**c.model_dump()) for c in verdict.criteria])


def _robustness(before: dict[str, Any], after: dict[str, Any], verdict: Verdict) -> list[Probe]:
    """The quantization probe rows of the evaluation (`quantization_<mode>/<metric>`), with their criterion."""
    outcomes = {c.key: c for c in verdict.criteria if c.key}
    probes = []
    for key in sorted(after.get("results", {})):
        if not key.startswith("quantization"):
            continue
        mode, _, metric = key.partition("/")
        entry_before = before.get("results", {}).get(key) or {}
        entry_after = after["results"][key] or {}
        outcome = outcomes.get(key)
        probes.append(Probe(name=f"{mode.removeprefix('quantization_')} quantization: {metric}",
                            description=f"{metric} after quantizing the model ({mode})",
                            before=entry_before.get("value"), after=entry_after.get("value"),
                            threshold=outcome.bound if outcome else None,
                            passed=outcome.passed if outcome else None))
    return probes


def _version_info(version: ModelVersion | None, files: dict[str, str] | None = None,
                  total_bytes: int | None = None) -> ModelVersionInfo:
    if version is None:
        return ModelVersionInfo(files=files or {}, total_bytes=total_bytes)
    return ModelVersionInfo(version_id=str(version.id), number=version.number, files=dict(version.files),
                            total_bytes=version.total_bytes)


def build_report(session: Session, job: Job, *, status: str, finished_at: datetime | None, result: Any,
                 before: Any, after: Any, verdict: Any, eval_note: str, eval_seconds: float, report_seconds: float,
                 after_version: ModelVersion | None, checkpoint_files: dict[str, str], checkpoint_bytes: int,
                 retention: list[RetentionAction], issued_at: datetime) -> AuditReport:
    tenant = session.get_one(Tenant, job.tenant_id)
    model = session.get_one(RegisteredModel, job.model_id)
    base = session.get_one(ModelVersion, job.base_version_id)
    request_id = session.scalar(select(IdempotencyKey.key).where(IdempotencyKey.job_id == job.id))
    dataset = session.get(Dataset, job.retain_dataset_id) if job.retain_dataset_id else None
    hashes = repository.record_hashes_of(session, job.id)
    method = dict(job.method or {})
    before_dump = before.model_dump(mode="json") if before is not None else {}
    after_dump = after.model_dump(mode="json") if after is not None else {}
    report_verdict = _verdict(verdict, eval_note)
    policy = {k: v for k, v in (job.evaluation or {}).items() if k != "probes"}  # probe rows are data, not policy
    verdict_dump = report_verdict.model_dump(mode="json")
    summary = result.mask_summary or {}
    density = {str(k): float(v) for k, v in (summary.get("per_module_density") or {}).items()
               if isinstance(v, int | float)}
    timings = {k: round(float(v), 3) for k, v in (result.timings or {}).items()}
    timings.update(evaluate=round(eval_seconds, 3), report=round(report_seconds, 3))
    selected = summary.get("selected")
    fraction = summary.get("density")
    return AuditReport(
        issued_at=issued_at,
        job=JobInfo(job_id=str(job.id), request_id=request_id, request_sha256=job.request_sha256,
                    tenant_id=str(job.tenant_id), tenant_name=tenant.name, status=status,
                    received_at=job.created_at, started_at=job.started_at, finished_at=finished_at,
                    subject_reference=job.subject_reference, legal_basis=job.legal_basis),
        forget_data=ForgetData(kind=job.kind, record_count=len(hashes), record_sha256=hashes,
                               merkle_root=job.forget_merkle_root, holdout_count=job.holdout_count),
        retain_data=DatasetRef(dataset_id=str(dataset.id), name=dataset.name, record_count=dataset.record_count,
                               sha256=dataset.sha256) if dataset is not None else None,
        model=ModelInfo(model_id=str(model.id), name=model.name, before=_version_info(base),
                        after=_version_info(after_version, checkpoint_files, checkpoint_bytes)),
        mask=MaskInfo(sha256=result.mask_sha256, k=selected if isinstance(selected, int) else None,
                      fraction=float(fraction) if isinstance(fraction, int | float) else None, density=density),
        method=MethodInfo(name=f"grin/{(method.get('finetune') or {}).get('objective', 'unknown')}",
                          hyperparameters=method, seed=method.get("seed"),
                          config_hash=getattr(result, "config_hash", None) or hashlib.sha256(
                              json.dumps(method, sort_keys=True).encode()).hexdigest()),
        code=code_info(),
        hardware=hardware_info(str(method.get("device") or "cpu")),
        timings_s=timings,
        training=Training(steps=result.steps, stop_reason=result.stop_reason,
                          loss_curves={k: [float(x) for x in v] for k, v in (result.curves or {}).items()}),
        evaluation=Evaluation(policy=policy, before=before_dump, after=after_dump,
                              metrics=metric_rows(before_dump, after_dump, policy, verdict_dump)
                              if after is not None else [],
                              truth_ratios=truth_ratios(before_dump, after_dump)),
        verdict=report_verdict,
        robustness=_robustness(before_dump, after_dump, report_verdict),
        retention=retention,
    )
