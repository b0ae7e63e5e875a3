"""`grin.pipeline.run_job`: lease a job, run GRIN on it stage by stage, evaluate, store, promote.

Stages: localize -> noise -> finetune (one resumable `grin_engine.unlearn` call whose out_dir is the job's
work dir under `<data_dir>/work/<job id>/engine`), evaluate (before and after, results kept in the work
dir), report (mask, checkpoint and report into the artifact store), then one transaction promotes the new
model version and ends the job `succeeded`. A retried attempt finds the finished stages' outputs in the
work dir and starts at the first unfinished one.

This module imports neither torch nor the engine at import time: the worker's parent process imports it
(Celery `include`) and must never initialise CUDA; the engine is imported inside the task, in the child.
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import os
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_init
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.core.artifacts import ArtifactStore, store_from_settings
from app.core.config import Settings, get_settings
from app.core.db import open_session
from app.jobs.state import IllegalTransition, append_event, transition
from app.models import (
    Dataset,
    EvaluationResult,
    Job,
    JobInput,
    Mask,
    ModelVersion,
    RegisteredModel,
)
from app.models.base import utcnow
from app.observability.logging import job_context
from worker.celery_app import celery_app
from worker.leases import (
    RUN_JOB_TASK,
    acquire_lease,
    fail_if_exhausted,
    model_busy,
    new_owner,
    next_waiting,
    release_lease,
    renew_lease,
)

logger = logging.getLogger("grin.worker.pipeline")

# Share of the job's progress bar each stage ends at.
PROGRESS = {"localize": 0.05, "noise": 0.1, "finetune": 0.75, "evaluate": 0.95, "report": 0.98}
HOOK_ENV = "GRIN_PIPELINE_HOOK"  # "module:function" called at each stage and step (fault-injection tests)


class JobCancelled(Exception):
    """Raised inside the runner when the ledger says cancel (or the lease was lost)."""


class PermanentJobError(Exception):
    """A failure a retry cannot fix (missing inputs, bad config, changed files): the job fails at once."""


def _load_hook() -> Callable[..., None] | None:
    spec = os.environ.get(HOOK_ENV)
    if not spec:
        return None
    module, _, name = spec.partition(":")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


class Heartbeat(threading.Thread):
    """Renews the lease every lease_seconds/3 in its own session; flags `lost` when the lease is gone."""

    def __init__(self, settings: Settings, job_id: uuid.UUID, owner: str) -> None:
        super().__init__(name=f"lease-{job_id}", daemon=True)
        self.settings, self.job_id, self.owner = settings, job_id, owner
        self.interval = max(settings.lease_seconds / 3, 0.2)
        self.stopping = threading.Event()
        self.lost = threading.Event()

    def run(self) -> None:
        last_ok = time.monotonic()
        while not self.stopping.wait(self.interval):
            try:
                with open_session(self.settings) as session:
                    ok = renew_lease(session, self.job_id, self.owner, self.settings.lease_seconds)
                    session.commit()
                if not ok:
                    logger.warning("job %s: lease lost", self.job_id)
                    self.lost.set()
                    return
                last_ok = time.monotonic()
            except Exception:  # a database blip: try again next beat; the lease outlives a few misses
                logger.exception("job %s: heartbeat failed", self.job_id)
                if time.monotonic() - last_ok > self.settings.lease_seconds:
                    # Our lease has expired unrenewed: another worker may take the job; stop working on it.
                    logger.warning("job %s: lease expired while the ledger was unreachable", self.job_id)
                    self.lost.set()
                    return

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=10)


@dataclass
class Inputs:
    forget: list[Any]
    retain: list[Any]
    holdout: list[Any] | None


class JobRunner:
    """Runs one leased job to its end. Every ledger write is a short transaction of its own."""

    def __init__(self, settings: Settings, job_id: uuid.UUID, owner: str, heartbeat: Heartbeat) -> None:
        self.settings, self.job_id, self.owner, self.heartbeat = settings, job_id, owner, heartbeat
        self.work = settings.data_dir / "work" / str(job_id)
        self.store: ArtifactStore = store_from_settings(settings)
        self.hook: Callable[..., None] | None = None
        self._last_cancel_check = 0.0
        self._cancel_seen = False
        self.stage: str | None = None
        self.kind = "qa"

    # --- ledger helpers -----------------------------------------------------------------------
    def session(self) -> Session:
        return open_session(self.settings)

    def _job(self, session: Session) -> Job:
        return session.get_one(Job, self.job_id)

    def check_cancel(self, force: bool = False) -> bool:
        """Cheap query, at most every cancel_check_interval_s (or when forced, between stages)."""
        if self.heartbeat.lost.is_set():
            return True
        now = time.monotonic()
        if not self._cancel_seen and (force or now - self._last_cancel_check >= self.settings.cancel_check_interval_s):
            self._last_cancel_check = now
            with self.session() as session:
                flag = session.scalar(select(Job.cancel_requested).where(Job.id == self.job_id))
                status = session.scalar(select(Job.status).where(Job.id == self.job_id))
            self._cancel_seen = bool(flag) or status == "cancelling"
        return self._cancel_seen

    def raise_if_cancelled(self) -> None:
        if self.check_cancel(force=True):
            raise JobCancelled(f"cancel requested during {self.stage}")

    def enter_stage(self, stage: str, message: str = "", **data: Any) -> None:
        self.raise_if_cancelled()
        self.stage = stage
        start = {"localize": 0.0, "noise": PROGRESS["localize"], "finetune": PROGRESS["noise"],
                 "evaluate": PROGRESS["finetune"], "report": PROGRESS["evaluate"]}[stage]
        with self.session() as session:
            job = self._job(session)
            transition(session, job, "running", stage=stage, progress=round(max(start, job.progress or 0.0), 4),
                       data={"message": message, **data} if message or data else None)
            session.commit()
        if self.hook:
            self.hook(str(self.job_id), stage, None)
            self.raise_if_cancelled()

    # --- engine callbacks ---------------------------------------------------------------------
    def on_event(self, event: Any) -> None:
        if event.type == "stage" and event.stage in ("localize", "noise", "finetune"):
            if event.stage != self.stage:
                self.enter_stage(event.stage, event.message)
            return
        if event.type == "step" and event.step is not None:
            if self.hook:
                self.hook(str(self.job_id), "finetune", event.step)
            every = max(self.settings.event_every_steps, 1)
            if event.step % every == 0 or event.step == event.total_steps:
                total = max(event.total_steps or 1, 1)
                lo, hi = PROGRESS["noise"], PROGRESS["finetune"]
                progress = round(lo + (hi - lo) * min(event.step / total, 1.0), 4)
                with self.session() as session:
                    job = self._job(session)
                    job.progress = progress
                    append_event(session, job, "progress", {"step": event.step, "total_steps": event.total_steps,
                                                            "losses": event.losses, "progress": progress},
                                 stage="finetune")
                    session.commit()
            return
        if event.type == "info" and event.message:
            with self.session() as session:
                append_event(session, self._job(session), "info", {"message": event.message},
                             stage=self.stage)  # type: ignore[arg-type]
                session.commit()

    def should_stop(self) -> bool:
        return self.check_cancel()

    # --- stages -------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.hook = _load_hook()
        with self.session() as session:
            job = self._job(session)
            attempt = job.attempts
            first = job.status == "queued"
            transition(session, job, "running", data={"attempt": attempt, "worker": self.owner,
                                                      "resumed": not first})
            session.commit()
            self.kind = job.kind
        self.raise_if_cancelled()
        inputs = self.load_inputs()
        base_dir, base_version_id = self.base_model_dir()
        result = self.unlearn_stage(base_dir, inputs)
        eval_started = time.perf_counter()
        before, after, verdict, eval_note = self.evaluate_stage(base_dir, result, inputs)
        eval_seconds = time.perf_counter() - eval_started
        self.enter_stage("report")
        report_started = time.perf_counter()
        stored = self.report_stage(result)
        self.raise_if_cancelled()
        return self.finish(base_version_id, result, stored, before, after, verdict, eval_note, eval_seconds,
                           report_started)

    def load_inputs(self) -> Inputs:
        """The raw records, from job_inputs (forget/holdout) and the retain dataset (artifact store)."""
        from grin_engine.records import parse_row

        with self.session() as session:
            job = self._job(session)
            row = session.get(JobInput, self.job_id)
            if row is None:
                raise PermanentJobError("the job's forget data is gone (job_inputs row missing)")
            forget_raw, holdout_raw = list(row.forget), list(row.holdout) if row.holdout else None
            dataset = session.get(Dataset, job.retain_dataset_id) if job.retain_dataset_id else None

        def parse(rows: list[Any]) -> list[Any]:
            out: list[Any] = []
            for r in rows:
                out.extend(parse_row(r, self.kind))  # type: ignore[arg-type]
            return out

        retain_raw: list[Any] = []
        if dataset is not None:
            data = self.store.read_bytes(dataset.artifact_key)
            retain_raw = [json.loads(line) for line in data.decode("utf-8").splitlines() if line.strip()]
        # The work dir keeps a copy of the raw data for the attempt (deleted at every end of the job).
        inputs_dir = self.work / "inputs"
        inputs_dir.mkdir(parents=True, exist_ok=True)
        (inputs_dir / "forget.jsonl").write_text("".join(json.dumps(r) + "\n" for r in forget_raw))
        if holdout_raw:
            (inputs_dir / "holdout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in holdout_raw))
        try:
            return Inputs(parse(forget_raw), parse(retain_raw), parse(holdout_raw) if holdout_raw else None)
        except Exception as exc:
            raise PermanentJobError(f"invalid records: {exc}") from exc

    def base_model_dir(self) -> tuple[Path, uuid.UUID]:
        """The base version's files: the registered directory (v1, verified against its hashes) or a
        copy materialised from the artifact store into the work dir."""
        from grin_engine.modeling import hash_directory

        with self.session() as session:
            job = self._job(session)
            version = session.get_one(ModelVersion, job.base_version_id)
            files, location, version_id = dict(version.files), version.location, version.id
            if version.weights_deleted_at is not None:
                raise PermanentJobError(f"the weights of base version {version.number} were deleted")
        path = Path(location)
        if path.is_absolute() and path.is_dir():
            actual = hash_directory(path)
            changed = sorted(rel for rel, digest in files.items() if actual.get(rel) != digest)
            if changed:
                raise PermanentJobError(f"registered model files changed since registration: {', '.join(changed)}")
            return path, version_id
        target = self.work / "base"
        if target.is_dir() and hash_directory(target) == files:
            return target, version_id
        return self.store.materialize_dir(files, target), version_id

    def unlearn_stage(self, base_dir: Path, inputs: Inputs) -> Any:
        from grin_engine.config import UnlearnConfig
        from grin_engine.pipeline import unlearn

        with self.session() as session:
            method = dict(self._job(session).method or {})
        try:
            config = UnlearnConfig.model_validate(method)
        except Exception as exc:
            raise PermanentJobError(f"invalid method: {exc}") from exc
        return unlearn(base_dir, inputs.forget, inputs.retain, config, self.work / "engine", holdout=inputs.holdout,
                       on_event=self.on_event, should_stop=self.should_stop)

    def evaluate_stage(self, base_dir: Path, result: Any, inputs: Inputs) -> tuple[Any, Any, Any, str]:
        """Before/after reports with V's `evaluate` on a cheap config for the job kind, cached in the work dir."""
        from grin_engine.evaluation import EvaluationReport, VerdictPolicy, compare_reports, evaluate

        self.enter_stage("evaluate")
        with self.session() as session:
            policy_raw = self._job(session).evaluation
        policy = VerdictPolicy.model_validate(policy_raw) if policy_raw else VerdictPolicy()
        config, splits, note = eval_plan(self.kind, policy, inputs, policy_raw or {})
        if config is None:
            return None, None, None, note
        reports: dict[str, Any] = {}
        folder = self.work / "evaluate"
        folder.mkdir(parents=True, exist_ok=True)
        for phase, model_dir in (("before", base_dir), ("after", Path(result.model_dir))):
            path = folder / f"{phase}.json"
            if path.is_file():
                reports[phase] = EvaluationReport.model_validate_json(path.read_text())
                continue
            self.raise_if_cancelled()
            report = evaluate(model_dir, splits, config)
            report = report.model_copy(update={"model": phase})  # never a local path in the ledger
            _atomic_write(path, report.model_dump_json())
            reports[phase] = report
        verdict = compare_reports(reports["before"], reports["after"], policy)
        return reports["before"], reports["after"], verdict, note

    def report_stage(self, result: Any) -> dict[str, Any]:
        """Mask, checkpoint and the summary report into the artifact store (idempotent: content-addressed)."""
        mask = self.store.put_file(result.mask_path, "application/vnd.grin.mask+safetensors")
        checkpoint = self.store.put_dir(result.model_dir)
        if checkpoint.files != dict(result.model_files):
            raise RuntimeError("checkpoint hashes differ from the engine's: the work dir was modified")
        return {"mask": mask, "checkpoint": checkpoint}

    def finish(self, base_version_id: uuid.UUID, result: Any, stored: dict[str, Any], before: Any, after: Any,
               verdict: Any, eval_note: str, eval_seconds: float, report_started: float) -> dict[str, Any]:
        """One transaction: mask, evaluations, metrics, the signed report, and the job's end:

        - the approval gate (the job's `require_approval`), or a base that is no longer the model's current
          version: `awaiting_approval` (the checkpoint is kept as the job's candidate; approve promotes it);
        - else a failed verdict: `failed` ("verdict failed: ..."), nothing promoted, the candidate deleted;
        - else the new version is promoted to current and the job `succeeded`.
        Whatever the end, the report is issued (the evidence of a failed attempt matters as much).
        """
        from app.compliance.report_schema import RetentionAction
        from app.compliance.settings import get_compliance_settings
        from app.jobs import lifecycle
        from worker.report import build_report

        mask, checkpoint = stored["mask"], stored["checkpoint"]
        delete_superseded = get_compliance_settings().delete_superseded_weights
        delete_after: set[str] = set()
        with self.session() as session:
            job = session.scalars(select(Job).where(Job.id == self.job_id).with_for_update(key_share=True)).one()
            if job.lease_owner != self.owner or job.status != "running" or job.result_version_id is not None:
                raise JobCancelled("lease lost before promotion")
            if job.cancel_requested:
                raise JobCancelled("cancel requested before promotion")
            model = session.scalars(
                select(RegisteredModel).where(RegisteredModel.id == job.model_id).with_for_update(key_share=True)).one()
            self.store.record(session, mask, *checkpoint.artifacts)
            session.add(Mask(job_id=job.id, artifact_key=mask.key, sha256=result.mask_sha256,
                             summary=result.mask_summary))
            verdict_json = verdict.model_dump(mode="json") if verdict is not None else None
            for phase, report in (("before", before), ("after", after)):
                if report is None:
                    continue
                session.add(EvaluationResult(job_id=job.id, phase=phase, report=report.model_dump(mode="json"),
                                             verdict=verdict_json if phase == "after" else None))
            superseded = model.current_version_id not in (None, base_version_id)
            verdict_failed = verdict is not None and not verdict.passed
            if job.require_approval or superseded:
                outcome = "awaiting_approval"
            elif verdict_failed:
                outcome = "failed"
            else:
                outcome = "succeeded"
            now = utcnow()
            retention = [RetentionAction(
                action="forget_records_purged", target="job_inputs and the worker's work dir", at=now,
                detail=f"{job.forget_count} forget and {job.holdout_count} holdout records deleted; only their "
                       "sha256 hashes and Merkle root are kept")]
            version = None
            if outcome == "succeeded":
                promotion = lifecycle.promote(session, self.store, job, model, manifest_key=checkpoint.key,
                                              files=checkpoint.files, total_bytes=checkpoint.total_bytes,
                                              delete_superseded=delete_superseded, by="verdict", now=now)
                version, delete_after = promotion.version, promotion.delete_after_commit
                retention.extend(promotion.retention)
            elif outcome == "failed":
                job.candidate_key = checkpoint.key
                session.flush()
                delete_after = lifecycle.discard_candidate(session, self.store, job)
                retention.append(RetentionAction(
                    action="weights_deleted", target="the job's unpromoted checkpoint", at=now,
                    detail="the verdict failed, so the checkpoint was not promoted and its files were deleted "
                           "(files shared with other versions are kept)"))
            else:
                job.candidate_key = checkpoint.key
            if superseded:
                # The base is no longer the model's current version (a pinned base, or the current pointer moved):
                # promoting would silently discard the unlearning in the current version. A person decides.
                append_event(session, job, "warning", {
                    "message": "the model's current version is not this job's base version: not promoted "
                               "automatically; approving makes this job's version current anyway",
                    "current_version_id": str(model.current_version_id),
                    "base_version_id": str(base_version_id)}, stage="report")
            job.metrics = {
                "forget_prob_before": result.forget_prob_before, "forget_prob_after": result.forget_prob_after,
                "retain_prob_before": result.retain_prob_before, "retain_prob_after": result.retain_prob_after,
                "steps": result.steps, "stop_reason": result.stop_reason, "timings_s": result.timings,
                "resumed_stages": result.resumed_stages, "mask": {k: result.mask_summary.get(k) for k in
                                                                  ("method", "k", "selected", "eligible", "density")},
                "verdict": {"passed": verdict.passed, "reason": verdict.reason} if verdict is not None else None,
                "evaluation_note": eval_note, "attempts": job.attempts,
                "base_superseded": superseded,
            }
            error = None
            if outcome == "failed":
                failing = [c.reason for c in verdict.criteria if c.passed is False] or [verdict.reason]
                error = "verdict failed: " + "; ".join(failing)
            report = build_report(
                session, job, status=outcome, finished_at=now if outcome != "awaiting_approval" else None,
                result=result, before=before, after=after, verdict=verdict, eval_note=eval_note,
                eval_seconds=eval_seconds, report_seconds=time.perf_counter() - report_started,
                after_version=version, checkpoint_files=dict(checkpoint.files),
                checkpoint_bytes=checkpoint.total_bytes, retention=retention, issued_at=now)
            lifecycle.issue_and_store(session, self.store, job, report, dict(checkpoint.files))
            data: dict[str, Any] = {"stage_completed": True}
            if version is not None:
                data.update(version=version.number, result_version_id=str(version.id))
            transition(session, job, outcome, error=error, data=data, now=now)  # type: ignore[arg-type]
            # The scratch copy goes before the commit that ends the job, so that a job seen ended has nothing
            # left on the worker's disk (the report says so); a failed commit costs a recomputation, not data.
            shutil.rmtree(self.work, ignore_errors=True)
            session.commit()
            if delete_after:
                lifecycle.delete_artifacts(session, self.store, delete_after)
        if outcome == "succeeded":
            assert version is not None
            return {"status": outcome, "version": version.number}
        return {"status": outcome, "error": error} if error else {"status": outcome}


def eval_plan(kind: str, policy: Any, inputs: Inputs,
              spec: dict[str, Any] | None = None) -> tuple[Any | None, Any | None, str]:
    """A cheap EvalConfig and the splits for the job kind: the metrics the policy reads, on few items.
    `spec` is the job's stored evaluation (policy plus `probes` and `judge`, see app.jobs.schemas.EvaluationSpec)."""
    from grin_engine.evaluation import EvalConfig, EvalSplits, metric_names

    known = set(metric_names())
    spec = spec or {}
    if kind == "harmful":
        return _harm_plan(inputs, spec)
    if kind == "text":
        return _knowledge_plan(spec)
    wanted = {"probability"}
    for criterion in policy.criteria:
        for key in criterion.keys:
            name = key.rsplit("/", 1)[-1]
            if key.startswith("quantization"):
                name = "quantization"
            elif name.startswith("privleak_"):
                name = "mia_" + name.removeprefix("privleak_")
            if name in known:
                wanted.add(name)
    if "quantization" in wanted:
        wanted.discard("quantization")  # a probe: costly; opt in through a policy with missing_fails
    splits = EvalSplits(forget=list(inputs.forget), retain=list(inputs.retain) or None, holdout=inputs.holdout)
    config = EvalConfig(suite="tofu", metrics=sorted(wanted), max_items=32, max_new_tokens=32, batch_size=16,
                        generation_batch_size=16)
    return config, splits, f"cheap evaluation: {', '.join(sorted(wanted))} on at most 32 items per split"


def _probe_records(spec: dict[str, Any], name: str, kind: str) -> list[Any]:
    from grin_engine.records import parse_row

    rows = (spec.get("probes") or {}).get(name) or []
    return [r for row in rows for r in parse_row(row, kind)]  # type: ignore[arg-type]


def _knowledge_plan(spec: dict[str, Any]) -> tuple[Any | None, Any | None, str]:
    """Hazardous knowledge (text jobs): MCQ accuracy on the forget and control domains, and on the int4 model."""
    from grin_engine.evaluation import EvalConfig, EvalSplits

    mcq, mcq_retain = _probe_records(spec, "mcq", "wmdp"), _probe_records(spec, "mcq_retain", "wmdp")
    if not mcq and not mcq_retain:
        return None, None, ("text job without MCQ probe sets (evaluation.probes.mcq, mcq_retain): not evaluated; "
                            "see the forget/retain probabilities in metrics")
    splits = EvalSplits(mcq=mcq or None, mcq_retain=mcq_retain or None)
    config = EvalConfig(suite="mcq", metrics=["mcq_accuracy", "quantization"], quantization_modes=["int4"],
                        max_items=200, batch_size=16)
    return config, splits, "mcq_accuracy (forget and control domains) and the int4 probe, on at most 200 questions each"


def _harm_plan(inputs: Inputs, spec: dict[str, Any]) -> tuple[Any | None, Any | None, str]:
    """Harmful behaviour: harmful-response rate on held-out prompts (probes.harmful, else the holdout, else the
    forget prompts) under the job's rules judge, utility as ROUGE-L recall on normal prompts (probes.normal, else
    the retain records), and both again on the int4 model."""
    from grin_engine.evaluation import EvalConfig, EvalSplits, JudgeConfig
    from grin_engine.records import HarmfulRecord, QARecord

    notes = []
    harmful = _probe_records(spec, "harmful", "harmful")
    if not harmful:
        harmful, source = list(inputs.holdout or inputs.forget), "holdout" if inputs.holdout else "forget"
        notes.append(f"harmful prompts: the {source} records")
    normal = _probe_records(spec, "normal", "qa") or [
        QARecord(question=r.prompt, answer=r.response) for r in inputs.retain if isinstance(r, HarmfulRecord)]
    judge = JudgeConfig.model_validate(spec["judge"]) if spec.get("judge") else None
    if judge is None:
        notes.append("no judge (evaluation.judge): harmful rate not measured")
    metrics = (["harmful_rate"] if judge else []) + (["rouge_l"] if normal else [])
    if not metrics:
        return None, None, "; ".join(notes)
    if judge:
        metrics.append("quantization")
    splits = EvalSplits(harmful=harmful if judge else None, retain=normal or None)
    config = EvalConfig(suite="harmful", metrics=metrics, judge=judge or JudgeConfig(), quantization_modes=["int4"],
                        max_items=64, max_new_tokens=32, batch_size=16, generation_batch_size=16)
    return config, splits, "; ".join([f"{', '.join(metrics)} on at most 64 items per split", *notes])


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _free_accelerator_memory() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()


def _permanent(exc: BaseException) -> bool:
    from app.compliance.signing import SigningError

    # A missing or unreadable signing key is configuration, not a blip: retrying only burns attempts.
    if isinstance(exc, PermanentJobError | SoftTimeLimitExceeded | SigningError):
        return True
    errors = sys.modules.get("grin_engine.errors")
    return errors is not None and isinstance(exc, errors.EngineError)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SoftTimeLimitExceeded):
        return "time limit exceeded"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _end_cancelled(settings: Settings, job_id: uuid.UUID, owner: str, work: Path, reason: str) -> dict[str, Any]:
    with open_session(settings) as session:
        job = session.get_one(Job, job_id)
        if job.lease_owner != owner:
            return {"status": "lease_lost"}  # someone else runs it now; touch nothing
        if not job.cancel_requested and job.status != "cancelling":
            # Nobody asked to cancel: the heartbeat gave the lease up (the ledger was unreachable for longer than
            # lease_seconds). Hand the lease back and leave the job, work dir included, to the sweep, which
            # resumes it from its finished stages; ending it `cancelled` would drop a deletion request.
            release_lease(session, job_id, owner, error=f"lease lapsed while the ledger was unreachable ({reason})")
            append_event(session, job, "lease_lapsed", {"attempt": job.attempts})
            session.commit()
            return {"status": "lease_lost"}
        try:
            transition(session, job, "cancelled", data={"reason": reason})
        except IllegalTransition:
            session.rollback()
            return {"status": job.status}
        shutil.rmtree(work, ignore_errors=True)  # before the commit that ends the job (see JobRunner.finish)
        session.commit()
    return {"status": "cancelled"}


def _end_failed_or_retry(settings: Settings, job_id: uuid.UUID, owner: str, work: Path,
                         exc: BaseException) -> dict[str, Any]:
    reason = _describe(exc)
    with open_session(settings) as session:
        job = session.get_one(Job, job_id)
        if job.lease_owner != owner:
            return {"status": "lease_lost"}
        if job.status == "cancelling" or job.cancel_requested:
            session.rollback()
            return _end_cancelled(settings, job_id, owner, work, f"cancelled (while failing: {reason})")
        permanent = _permanent(exc)
        if permanent or job.attempts >= job.max_attempts:
            error = reason if permanent else f"attempt {job.attempts} of {job.max_attempts} failed: {reason}"
            try:
                transition(session, job, "failed", error=error, data={"attempts": job.attempts})
            except IllegalTransition:
                session.rollback()
                return {"status": job.status}
            shutil.rmtree(work, ignore_errors=True)  # before the commit that ends the job (see JobRunner.finish)
            session.commit()
            return {"status": "failed", "error": error}
        append_event(session, job, "attempt_failed", {"attempt": job.attempts, "error": reason})
        release_lease(session, job_id, owner, error=f"attempt {job.attempts} failed: {reason}")
        session.commit()
    # Retry right away; if this message is lost the sweep sends another.
    celery_app.send_task(RUN_JOB_TASK, args=[str(job_id)])
    return {"status": "retrying", "error": reason}


def run_job_now(job_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """The task body, callable without Celery (tests, debugging). Logs carry the job id."""
    with job_context(job_id):
        outcome = _run_job(job_id, settings or get_settings())
    return outcome


def _run_job(job_id: str, settings: Settings) -> dict[str, Any]:
    jid = uuid.UUID(job_id)
    owner = new_owner()
    with open_session(settings) as session:
        if not acquire_lease(session, jid, owner, settings.lease_seconds):
            session.rollback()
            job = session.get(Job, jid)
            if job is not None and fail_if_exhausted(session, job):
                shutil.rmtree(settings.data_dir / "work" / job_id, ignore_errors=True)
                session.commit()
                logger.warning("job %s: out of attempts, failed", job_id)
                return {"status": "failed"}
            if job is not None and job.status == "queued" and model_busy(session, job.model_id, jid) is not None:
                session.rollback()
                logger.info("job %s: waits for the other job on its model; that job's end sends it again", job_id)
                return {"status": "waiting"}
            logger.info("job %s: not leasable (status %s, lease %s): duplicate or late delivery, skipped",
                        job_id, job.status if job else "missing", job.lease_owner if job else None)
            return {"status": "skipped"}
        attempt = session.scalar(select(Job.attempts).where(Job.id == jid))
        session.commit()
    # The first line a job's run logs: operators following a job in the worker logs see it start, not only end.
    logger.info("job %s: leased by %s, attempt %s, running", job_id, owner, attempt)
    heartbeat = Heartbeat(settings, jid, owner)
    heartbeat.start()
    runner = JobRunner(settings, jid, owner, heartbeat)
    started = time.perf_counter()
    try:
        try:
            outcome = runner.run()
            shutil.rmtree(runner.work, ignore_errors=True)
        except JobCancelled as exc:
            outcome = _end_cancelled(settings, jid, owner, runner.work, str(exc))
        except BaseException as exc:
            errors = sys.modules.get("grin_engine.errors")
            if errors is not None and isinstance(exc, errors.Cancelled):
                outcome = _end_cancelled(settings, jid, owner, runner.work, str(exc))
            elif isinstance(exc, Exception | SoftTimeLimitExceeded):
                logger.exception("job %s failed in stage %s", job_id, runner.stage)
                outcome = _end_failed_or_retry(settings, jid, owner, runner.work, exc)
            else:
                raise
    finally:
        heartbeat.stop()
        _free_accelerator_memory()
    outcome["seconds"] = round(time.perf_counter() - started, 2)
    logger.info("job %s: %s", job_id, outcome)
    if outcome.get("status") in ("succeeded", "failed", "cancelled"):
        send_next_waiting(settings, jid)
    return outcome


def send_next_waiting(settings: Settings, job_id: uuid.UUID) -> None:
    """The model is free again: send the oldest job waiting for it (the sweep would find it too, later)."""
    try:
        with open_session(settings) as session:
            model_id = session.scalar(select(Job.model_id).where(Job.id == job_id))
            waiting = next_waiting(session, model_id) if model_id is not None else None
        if waiting is not None:
            celery_app.send_task(RUN_JOB_TASK, args=[str(waiting)], queue=settings.gpu_queue)
    except Exception:  # the sweep re-sends it
        logger.exception("job %s: could not send the next job of its model", job_id)


@worker_init.connect
def _preload_engine(**_: Any) -> None:
    """Import torch, transformers and the engine in the parent so each forked job child starts warm.

    Importing does not initialise CUDA (checked): children still create their own CUDA context, and it dies
    with them (one job per child), so GPU memory goes back to the driver after every job.
    """
    if not get_settings().worker_preload_engine:
        return
    for module in ("grin_engine.pipeline", "grin_engine.evaluation.runner"):
        importlib.import_module(module)
    torch = sys.modules["torch"]
    if torch.cuda.is_initialized():  # pragma: no cover - would be a bug in an import
        raise RuntimeError("CUDA was initialised in the worker's parent process")
    logger.info("engine preloaded in the worker parent (CUDA not initialised)")


@celery_app.task(name=RUN_JOB_TASK)
def run_job(job_id: str) -> dict[str, Any]:
    return run_job_now(job_id)
