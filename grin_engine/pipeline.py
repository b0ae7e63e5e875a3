"""`unlearn`: localize -> noise -> masked fine-tune, resumable stage by stage under out_dir.

out_dir layout: mask.safetensors (after localize), finetune_state.safetensors + .json (optional
periodic fine-tune checkpoints: masked values + optimizer state), model/ (the final checkpoint),
state.json (run hash, completed stages, and the result once done). Noise is not saved: it is a pure
function of (mask, seed) and is replayed on resume.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel

from grin_engine.config import UnlearnConfig
from grin_engine.data import Encoded, Record, encode, record_kind
from grin_engine.errors import Cancelled, EngineError
from grin_engine.events import EngineEvent, EventSink, emit
from grin_engine.finetune import MaskedAdamW, MaskedParams
from grin_engine.localize import answer_tokens, localize, retain_sample
from grin_engine.masks import Mask, check_fits, load_mask, save_mask
from grin_engine.modeling import load_model, save_checkpoint, sha256_file, weights_hash
from grin_engine.noise import add_noise
from grin_engine.objectives import get_objective
from grin_engine.objectives.base import ObjectiveContext
from grin_engine.sampling import step_indices
from grin_engine.scoring import answer_probability
from grin_engine.stopping import IndistinguishableStop

MASK_FILE, MODEL_DIR, STATE_FILE = "mask.safetensors", "model", "state.json"
FT_STATE, FT_META = "finetune_state.safetensors", "finetune_state.json"


class UnlearnResult(BaseModel):
    model_dir: str
    model_files: dict[str, str]
    mask_path: str
    mask_sha256: str
    mask_bytes: int
    mask_summary: dict[str, Any]
    timings: dict[str, float]
    curves: dict[str, list[float]]
    steps: int
    stop_reason: Literal["budget", "indistinguishable"]
    ks_checks: list[dict[str, Any]]
    forget_prob_before: float
    forget_prob_after: float
    retain_prob_before: float
    retain_prob_after: float
    truncated: dict[str, int]
    config_hash: str
    run_hash: str
    resumed_stages: list[str]


def _records_hash(records: Sequence[Record] | None) -> str:
    rows = [r.model_dump_json() for r in records or []]
    return hashlib.sha256("\n".join(rows).encode()).hexdigest()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True))
    tmp.replace(path)


class _State:
    """state.json: which stages of which run are complete; rejects an out_dir of a different run."""

    def __init__(self, out: Path, run_hash: str, config_hash: str) -> None:
        self.path = out / STATE_FILE
        data = json.loads(self.path.read_text()) if self.path.is_file() else {}
        if data and data.get("run_hash") != run_hash:
            raise EngineError(f"{out}: holds a run with another config, model or data; use a new out_dir")
        self.data = {"run_hash": run_hash, "config_hash": config_hash, "completed": [], **data}

    def done(self, stage: str) -> bool:
        return stage in self.data["completed"]

    def complete(self, stage: str, **extra: Any) -> None:
        if stage not in self.data["completed"]:
            self.data["completed"].append(stage)
        self.data.update(extra)
        _write_json(self.path, self.data)


def _eval_subset(retain: Encoded, forget: Encoded, seed: int) -> Encoded:
    """Retain items for the before/after probabilities: as many answer tokens as the forget set."""
    return retain_sample(retain, answer_tokens(forget), seed)


def unlearn(
    model_dir: str | Path,
    forget: Sequence[Record],
    retain: Sequence[Record],
    config: UnlearnConfig | None = None,
    out_dir: str | Path = "unlearned",
    *,
    holdout: Sequence[Record] | None = None,
    on_event: EventSink | None = None,
    should_stop: Callable[[], bool] | None = None,
    mask: str | Path | None = None,
) -> UnlearnResult:
    """Make the model at `model_dir` forget `forget` while keeping `retain`; see the module docstring.

    mask: a precomputed mask file to use instead of localizing (MaskMismatch if it does not fit).
    """
    cfg = config or UnlearnConfig()
    ft = cfg.finetune
    if not forget:
        raise EngineError("the forget set is empty")
    kinds = {record_kind(forget), record_kind(retain) if retain else record_kind(forget)}
    if len(kinds) > 1:
        raise EngineError(f"forget and retain records must be of one kind, got {sorted(kinds)}")
    if not retain and cfg.localize.method == "grin":
        raise EngineError("GRIN localization needs retain records (the denominator of the score)")
    if ft.stop == "indistinguishable" and not holdout:
        raise EngineError("stop 'indistinguishable' needs holdout records the model never saw")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    base_hash = weights_hash(model_dir)
    given_mask = sha256_file(mask) if mask is not None and Path(mask).is_file() else str(mask)
    run_hash = hashlib.sha256(
        "|".join([cfg.config_hash(), base_hash, given_mask, *map(_records_hash, (forget, retain, holdout))]).encode()
    ).hexdigest()
    state = _State(out, run_hash, cfg.config_hash())
    if state.done("finetune") and "result" in state.data:
        result = UnlearnResult.model_validate(state.data["result"])
        emit(on_event, EngineEvent(type="stage", stage="done", message="already complete"))
        return result.model_copy(update={"resumed_stages": ["localize", "noise", "finetune"]})
    resumed = [s for s in ("localize",) if state.done(s) and (out / MASK_FILE).is_file()]

    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    emit(on_event, EngineEvent(type="stage", stage="load", message=str(model_dir)))
    torch.manual_seed(cfg.seed)
    model, tokenizer = load_model(model_dir, dtype=cfg.dtype, device=cfg.device)
    forget_enc = encode(tokenizer, forget, ft.max_length, cfg.prompt_template)
    retain_enc = encode(tokenizer, retain, ft.max_length, cfg.prompt_template)
    truncated = {"forget": forget_enc.n_truncated, "retain": retain_enc.n_truncated}
    if any(truncated.values()):
        emit(
            on_event,
            EngineEvent(type="info", stage="load", message=f"truncated to {ft.max_length} tokens: {truncated}"),
        )
    retain_eval = _eval_subset(retain_enc, forget_enc, cfg.seed) if retain else None
    forget_before = float(answer_probability(model, forget_enc, ft.batch_size).mean())
    retain_before = (
        float(answer_probability(model, retain_eval, ft.batch_size).mean()) if retain_eval is not None else 0.0
    )
    timings["load"] = time.perf_counter() - t0

    if mask is not None:
        given = load_mask(mask)
        check_fits(given, model, base_hash)
        save_mask(given, out / MASK_FILE)
        state.complete("localize")
    mask_obj = _localize_stage(model, forget_enc, retain_enc, cfg, out, base_hash, state, timings, on_event)

    masked = MaskedParams(model, mask_obj)
    objective = get_objective(ft.objective, ft.objective_params, ft.retain_weight)
    objective.prepare(
        model,
        ObjectiveContext(
            tokenizer=tokenizer, forget_records=forget, forget=forget_enc, retain=retain_enc,
            max_length=ft.max_length, template=cfg.prompt_template, seed=cfg.seed, batch_size=ft.batch_size,
            reference=masked.reference,
        ),
    )  # fmt: skip

    t = time.perf_counter()
    emit(on_event, EngineEvent(type="stage", stage="noise", message=f"sigma={cfg.noise.sigma} ({cfg.noise.mode})"))
    add_noise(model, mask_obj, cfg.noise, cfg.seed + 1)
    state.complete("noise")
    timings["noise"] = time.perf_counter() - t

    stopper = (
        IndistinguishableStop(
            tokenizer, forget, holdout or [], ft.stop_statistic, ft.p_threshold, ft.max_length,
            cfg.prompt_template, ft.batch_size,
        )
        if ft.stop == "indistinguishable"
        else None
    )  # fmt: skip
    t = time.perf_counter()
    loop = _finetune_stage(
        model, masked, objective, len(forget_enc), retain_enc, cfg, out, stopper, on_event, should_stop
    )
    timings["finetune"] = time.perf_counter() - t
    if loop["resumed_from"]:
        resumed.append("finetune")

    t = time.perf_counter()
    emit(on_event, EngineEvent(type="stage", stage="save", message=str(out / MODEL_DIR)))
    model.eval()
    files = save_checkpoint(model, tokenizer, out / MODEL_DIR)
    timings["save"] = time.perf_counter() - t
    result = UnlearnResult(
        model_dir=str(out / MODEL_DIR),
        model_files=files,
        mask_path=str(out / MASK_FILE),
        mask_sha256=sha256_file(out / MASK_FILE),
        mask_bytes=(out / MASK_FILE).stat().st_size,
        mask_summary=mask_obj.summary(),
        timings=timings,
        curves=loop["curves"],
        steps=loop["steps"],
        stop_reason=loop["stop_reason"],
        ks_checks=loop["ks_checks"],
        forget_prob_before=forget_before,
        forget_prob_after=float(answer_probability(model, forget_enc, ft.batch_size).mean()),
        retain_prob_before=retain_before,
        retain_prob_after=float(answer_probability(model, retain_eval, ft.batch_size).mean())
        if retain_eval is not None
        else 0.0,
        truncated=truncated,
        config_hash=cfg.config_hash(),
        run_hash=run_hash,
        resumed_stages=resumed,
    )
    state.complete("finetune", result=result.model_dump(mode="json"))
    for name in (FT_STATE, FT_META):
        (out / name).unlink(missing_ok=True)
    emit(on_event, EngineEvent(type="stage", stage="done", message=f"{result.steps} steps, {result.stop_reason}"))
    return result


def _localize_stage(
    model: Any,
    forget: Encoded,
    retain: Encoded,
    cfg: UnlearnConfig,
    out: Path,
    base_hash: str,
    state: _State,
    timings: dict[str, float],
    on_event: EventSink | None,
) -> Mask:
    t = time.perf_counter()
    path = out / MASK_FILE
    if state.done("localize") and path.is_file():
        mask = load_mask(path)
        check_fits(mask, model, base_hash)
        emit(on_event, EngineEvent(type="stage", stage="localize", message="reusing saved mask"))
    else:
        emit(on_event, EngineEvent(type="stage", stage="localize", message=f"{cfg.localize.method} k={cfg.localize.k}"))
        mask = localize(model, forget, retain, cfg.localize, cfg.seed, base_hash)
        save_mask(mask, path)
        state.complete("localize")
    timings["localize"] = time.perf_counter() - t
    return mask  # fmt: skip


def _save_ft_state(out: Path, masked: MaskedParams, opt: MaskedAdamW, meta: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    tensors = {f"w::{n}": masked.gather(n).detach().cpu().contiguous() for n in masked.params}
    tensors.update({k: v.cpu().contiguous() for k, v in opt.state_dict().items()})
    tmp = out / (FT_STATE + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(out / FT_STATE)
    _write_json(out / FT_META, meta)  # written last: its presence means the tensors are complete


def _load_ft_state(out: Path, masked: MaskedParams, opt: MaskedAdamW) -> dict[str, Any] | None:
    from safetensors.torch import load_file

    if not (out / FT_META).is_file() or not (out / FT_STATE).is_file():
        return None
    tensors = load_file(str(out / FT_STATE))
    for n in masked.params:
        masked.scatter(n, tensors[f"w::{n}"].to(masked.params[n].device))
    opt.load_state_dict({k: v for k, v in tensors.items() if not k.startswith("w::")})
    return dict(json.loads((out / FT_META).read_text()))


def _finetune_stage(
    model: Any,
    masked: MaskedParams,
    objective: Any,
    n_forget: int,
    retain: Encoded,
    cfg: UnlearnConfig,
    out: Path,
    stopper: IndistinguishableStop | None,
    on_event: EventSink | None,
    should_stop: Callable[[], bool] | None,
) -> dict[str, Any]:
    ft = cfg.finetune
    opt = MaskedAdamW(masked, lr=ft.lr, weight_decay=ft.weight_decay)
    saved = _load_ft_state(out, masked, opt)
    meta: dict[str, Any] = saved or {"step": 0, "curves": {}, "ks_checks": [], "stop_reason": "budget"}
    emit(
        on_event,
        EngineEvent(
            type="stage",
            stage="finetune",
            step=meta["step"],
            total_steps=ft.steps,
            message=f"{ft.objective} on {masked.numel()} entries",
        ),
    )
    use_retain = len(retain) > 0 and ft.retain_weight > 0 and objective.name != "ga"
    step = meta["step"]
    while step < ft.steps and meta["stop_reason"] == "budget":
        if should_stop is not None and should_stop():
            raise Cancelled(f"cancelled at fine-tune step {step}")
        f_idx = step_indices(n_forget, ft.batch_size, cfg.seed + 2, step)
        r_batch = (
            retain.select(step_indices(len(retain), ft.batch_size, cfg.seed + 3, step)).to(model.device)
            if use_retain
            else None
        )
        loss, logs = objective.loss(model, f_idx, r_batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        step += 1
        for key, value in {"loss": float(loss.detach()), **logs}.items():
            meta["curves"].setdefault(key, []).append(value)
        emit(
            on_event,
            EngineEvent(
                type="step",
                stage="finetune",
                step=step,
                total_steps=ft.steps,
                losses={"loss": float(loss.detach()), **logs},
            ),
        )
        if stopper is not None and step % ft.check_every == 0:
            check = stopper.check(model, step)
            meta["ks_checks"].append(check.__dict__)
            emit(
                on_event,
                EngineEvent(
                    type="info",
                    stage="finetune",
                    step=step,
                    message=f"KS D={check.statistic:.3f} p={check.p_value:.3g}",
                ),
            )
            if check.indistinguishable:
                meta["stop_reason"] = "indistinguishable"
        meta["step"] = step
        if ft.checkpoint_every and step % ft.checkpoint_every == 0 and step < ft.steps:
            _save_ft_state(out, masked, opt, meta)
    return {**meta, "steps": step, "resumed_from": saved["step"] if saved else 0}  # fmt: skip
