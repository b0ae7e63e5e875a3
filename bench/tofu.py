"""TOFU benchmark on locally built models: GRIN against the unlearning baselines.

Stages (each cached under --data-dir, so a rerun skips what is finished):

  build   tokenizer + random init -> "pretraining" on real_authors/world_facts answers (base) ->
          target (base taught the chosen TOFU authors, pretraining data replayed) -> reference
          (the same recipe without the forget authors) -> reference truth ratios / MIA AUCs file ->
          evaluation of target and reference (what "before" and "ideal" look like)
  sweep   every method x learning-rate grid (and GRIN's k / sigma / aggregation / scope / stop grid),
          seed 0, cheap evaluation (forget quality, model utility, forget ROUGE-L, keyword accuracy)
  final   best configuration of each method (rule in `select_best`) x 3 seeds, full evaluation
          (privleak, fluency, quantization and relearning probes, samples)
  report  plots under docs/img/tofu_*.png and a markdown table under bench/results/tofu/
  masks   GRIN's masks across seeds under several localization settings (how stable, how close to the
          forget-gradient saliency); not part of `all`
  timing  GRIN's wall time against plain unlearning at equal steps (interleaved rounds, medians); not in `all`

    PYTHONPATH=. .venv/bin/python bench/tofu.py build            # CPU scale (default)
    PYTHONPATH=. .venv/bin/python bench/tofu.py sweep
    PYTHONPATH=. .venv/bin/python bench/tofu.py final
    PYTHONPATH=. .venv/bin/python bench/tofu.py report
    PYTHONPATH=. .venv/bin/python bench/tofu.py all --quick     # microscopic smoke run, seconds

Raw results: bench/results/tofu/<scale>_<split>_{build,sweep,final}.json (small, committed).
Models, masks and per-run reports: <data-dir>/<scale>/ (default bench/.cache/tofu, git-ignored).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOFU = ROOT / "data" / "tofu"
RESULTS = ROOT / "bench" / "results" / "tofu"
IMG = ROOT / "docs" / "img"
DEFAULT_DATA_DIR = ROOT / "bench" / ".cache" / "tofu"
AUTHOR_ITEMS = 20  # TOFU: 20 QA pairs per author; full set = retain90 (authors 0..179) + forget10 (180..199)
FORGET_SPLITS = {"forget01": 2, "forget05": 10, "forget10": 20}  # last N authors of the 200


# --------------------------------------------------------------------------------------------- scales


@dataclass(frozen=True)
class Scale:
    """Model size, data subset, training recipe and unlearning budget of one benchmark scale."""

    name: str
    arch: str
    hidden: int
    layers: int
    heads: int
    vocab: int
    retain_authors: tuple[int, ...]  # author indices 0..179 (retain90) taught to target and reference
    holdout_authors: tuple[int, ...]  # authors never taught (forget10 authors outside the forget split)
    splits: tuple[str, ...]  # forget splits benchmarked (each needs its own reference model)
    items_per_author: int = AUTHOR_ITEMS
    pretrain_epochs: float = 30.0
    pretrain_lr: float = 3e-3
    teach_epochs: float = 20.0
    teach_lr: float = 3e-3
    teach_batch: int = 16
    max_length: int = 256
    steps: int = 40  # unlearning step budget, every method
    batch_size: int = 8  # unlearning batch size (forget and retain), every method
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_retain_items: int = 100  # retain_perturbed items of taught authors used for utility (sweep)
    final_retain_items: int = 200
    max_new_tokens: int = 96
    taught_forget_authors: tuple[int, ...] | None = None  # None: the union of the forget splits
    grid: str = "full"
    relearn_steps: int = 20


def _r(a: int, b: int) -> tuple[int, ...]:
    return tuple(range(a, b))


SCALES: dict[str, Scale] = {
    # This machine: 10 forget05 authors (forget01 = its last 2) + 20 retain authors, ~1.1M-parameter Llama.
    "cpu": Scale(
        name="cpu", arch="llama", hidden=128, layers=4, heads=4, vocab=1024,
        retain_authors=_r(0, 20), holdout_authors=_r(180, 190), splits=("forget05",),
    ),
    # Documented, not run here: all 200 authors (TOFU's recipe), forget01/05/10, a ~50M-parameter Llama.
    # No author is left out, so there is no holdout split (no stop rule, privleak against AUC 0.5).
    "gpu": Scale(
        name="gpu", arch="llama", hidden=512, layers=8, heads=8, vocab=8192,
        retain_authors=_r(0, 180), holdout_authors=(), splits=("forget01", "forget05", "forget10"),
        pretrain_epochs=20, teach_epochs=10, teach_lr=1e-3, teach_batch=32, steps=100, batch_size=32,
        eval_retain_items=400, final_retain_items=400, max_new_tokens=200,
    ),
    # Smoke test: 1 forget author, 1 retain author, 1 holdout author, 6 items each; seconds.
    "micro": Scale(
        name="micro", arch="gpt2", hidden=32, layers=1, heads=2, vocab=300,
        retain_authors=(0,), holdout_authors=(180,), splits=("forget01",), items_per_author=6,
        pretrain_epochs=2, teach_epochs=4, teach_batch=8, steps=2, batch_size=4, seeds=(0, 1),
        eval_retain_items=4, final_retain_items=4, max_new_tokens=8, taught_forget_authors=(199,),
        grid="micro", relearn_steps=1,
    ),
}  # fmt: skip


# ----------------------------------------------------------------------------------------------- data


def _qa(name: str) -> list[Any]:
    from grin_engine.data import load_records

    return load_records(TOFU / name, "qa")


@dataclass
class Data:
    forget_authors: dict[str, tuple[int, ...]]
    taught: list[Any]  # target training records: retain + forget authors
    retain_train: list[Any]  # retain authors' records (the unlearning retain set)
    forget: dict[str, list[Any]]  # per split, with paraphrased/perturbed answers
    holdout: list[Any]
    retain_eval: list[Any]  # retain_perturbed items of taught retain authors
    real_authors: list[Any]
    world_facts: list[Any]
    pretrain: list[Any] = field(default_factory=list)


def load_data(scale: Scale) -> Data:
    retain90, f10 = _qa("retain90.json"), _qa("forget10_perturbed.json")
    full = retain90 + f10  # author a = rows 20a .. 20a+19

    def author(a: int) -> list[Any]:
        return full[AUTHOR_ITEMS * a : AUTHOR_ITEMS * a + scale.items_per_author]

    forget_authors = {s: _r(200 - FORGET_SPLITS[s], 200) for s in scale.splits}
    if scale.taught_forget_authors is not None:
        forget_authors = {s: scale.taught_forget_authors for s in scale.splits}
    all_forget = sorted({a for v in forget_authors.values() for a in v})
    retain_train = [r for a in scale.retain_authors for r in author(a)]
    taught_q = {r.question for r in retain_train}
    rp = [r for r in _qa("retain_perturbed.json") if r.question in taught_q]
    ra, wf = _qa("real_authors_perturbed.json"), _qa("world_facts_perturbed.json")
    if scale.name == "micro":
        ra, wf = ra[:4], wf[:4]
    return Data(
        forget_authors=forget_authors,
        taught=retain_train + [r for a in all_forget for r in author(a)],
        retain_train=retain_train,
        forget={s: [r for a in v for r in author(a)] for s, v in forget_authors.items()},
        holdout=[r for a in scale.holdout_authors for r in author(a)],
        retain_eval=rp,
        real_authors=ra,
        world_facts=wf,
        pretrain=ra + wf,
    )


def tokenizer_texts(data: Data, scale: Scale) -> list[str]:
    """All TOFU text (all 200 authors when not micro), so no forget author owns tokens of its own."""
    if scale.name == "micro":
        recs = data.taught + data.holdout + data.pretrain + [r for v in data.forget.values() for r in v]
    else:
        recs = _qa("retain90.json") + _qa("forget10_perturbed.json") + data.pretrain
    out = []
    for r in recs:
        out += [r.question, r.answer, r.paraphrased_answer or "", *(r.perturbed_answer or [])]
    return [t for t in out if t]


def spread(items: list[Any], n: int) -> list[Any]:
    """n items evenly spread over the list (deterministic), so every author is represented."""
    if n >= len(items):
        return list(items)
    return [items[round(i * (len(items) - 1) / max(n - 1, 1))] for i in range(n)]


# ------------------------------------------------------------------------------------------- helpers


def log(msg: str) -> None:
    from tqdm import tqdm

    tqdm.write(f"[tofu {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr)


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=float) + "\n")
    tmp.replace(path)


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


def teach_cached(src: Path, records: list[Any], out: Path, epochs: float, lr: float, scale: Scale, desc: str) -> dict:
    """grin_engine.teach with a progress bar; skipped when out/ and its summary exist."""
    from tqdm import tqdm

    from grin_engine.teach import teach

    summary = out.with_name(out.name + ".json")
    if (out / "config.json").is_file() and summary.is_file():
        return dict(read_json(summary))
    bar = tqdm(desc=desc, unit="step", file=sys.stderr, mininterval=2.0)

    def on_step(step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)

    t = time.perf_counter()
    res = teach(src, records, out, epochs=epochs, lr=lr, batch_size=scale.teach_batch, max_length=scale.max_length,
                seed=0, device="cpu", on_step=on_step)  # fmt: skip
    bar.close()
    info = {"steps": res.steps, "records": len(records), "epochs": epochs, "lr": lr, "seconds": time.perf_counter() - t,
            "final_loss": sum(res.losses[-10:]) / len(res.losses[-10:]), "truncated": res.truncated,
            "loss_curve": res.losses[:: max(1, len(res.losses) // 200)]}  # fmt: skip
    write_json(summary, info)
    return info


# ---------------------------------------------------------------------------------------- evaluation

CHEAP_METRICS = ["forget_quality", "model_utility", "probability", "truth_ratio", "rouge_l", "keyword_accuracy"]
# Extra seeds of the final stage: everything but the two probes (which cost as much as the rest together).
SEED_METRICS = [*CHEAP_METRICS, "forget_quality_holdout", "fluency", "mia_loss", "mia_min_k", "exact_memorization"]
FULL_METRICS = [
    *CHEAP_METRICS, "forget_quality_holdout", "fluency", "mia_loss", "mia_min_k", "exact_memorization",
    "quantization", "relearning",
]  # fmt: skip


def eval_splits(data: Data, split: str, scale: Scale, level: str) -> Any:
    from grin_engine.evaluation import EvalSplits

    n_retain = scale.eval_retain_items if level == "cheap" else scale.final_retain_items
    return EvalSplits(
        forget=data.forget[split],
        retain=spread(data.retain_eval, n_retain),
        real_authors=data.real_authors,
        world_facts=data.world_facts,
        holdout=(data.holdout or None) if level != "cheap" else None,
    )


def eval_config(scale: Scale, level: str) -> Any:
    from grin_engine.evaluation import EvalConfig

    return EvalConfig(
        metrics={"cheap": CHEAP_METRICS, "seed": SEED_METRICS, "full": FULL_METRICS}[level],
        max_new_tokens=scale.max_new_tokens, max_length=scale.max_length, batch_size=16, generation_batch_size=32,
        device="cpu", sample_generations=3 if level != "cheap" else 0, relearn_steps=scale.relearn_steps,
        quantization_modes=["int8", "int4"], quantization_group_size=32,
    )  # fmt: skip


def evaluate_cached(model_dir: Path, out: Path, data: Data, split: str, scale: Scale, level: str, ref: Any) -> dict:
    """Evaluate and keep the report JSON beside the model; returns the report as a dict."""
    from tqdm import tqdm

    from grin_engine.evaluation import evaluate

    if out.is_file():
        return dict(read_json(out))
    bar = tqdm(desc=f"eval {level}", unit="stage", file=sys.stderr, leave=False, mininterval=2.0)

    def progress(label: str) -> None:
        bar.update(1)
        bar.set_postfix_str(label[:40], refresh=False)

    report = evaluate(model_dir, eval_splits(data, split, scale, level), eval_config(scale, level), reference=ref,
                      on_progress=progress)  # fmt: skip
    bar.close()
    d = json.loads(report.model_dump_json())
    write_json(out, d)
    return d


def summarize(report: dict) -> dict[str, Any]:
    """The numbers the tables and plots use, flat (None when absent)."""
    res = report["results"]

    def v(key: str) -> float | None:
        r = res.get(key)
        return None if r is None else r["value"]

    keys = [
        "forget_quality", "forget_quality_holdout", "model_utility", "forget/rouge_l", "forget/keyword_accuracy",
        "forget/probability", "forget/truth_ratio", "retain/rouge_l", "retain/probability", "retain/keyword_accuracy",
        "real_authors/rouge_l", "world_facts/rouge_l", "forget/repetition_rate", "forget/nonword_share",
        "forget/token_entropy", "forget/privleak_min_k", "forget/privleak_loss", "forget/mia_min_k",
        "forget/exact_memorization", "quantization_int8/keyword_accuracy", "quantization_int4/keyword_accuracy",
        "quantization_int4/probability", "relearning/keyword_accuracy", "relearning/probability",
        "relearning/rouge_l",
    ]  # fmt: skip
    out: dict[str, Any] = {k: v(k) for k in keys if k in res}
    tr = res.get("forget/truth_ratio", {}).get("per_item") or []
    if tr:  # where the forget truth ratios sit (the reference's median is the target to hit)
        out["forget/median_log_truth_ratio"] = statistics.median(math.log(x) for x in tr if x > 0)
    out["eval_wall_s"] = report.get("wall_time_s")
    samples = [s for s in report.get("samples", []) if s["split"] == "forget:question"]
    if samples:
        out["sample_forget_answer"] = samples[0]["generation"]
    return out


# -------------------------------------------------------------------------------------------- build


def paths(data_dir: Path, scale: Scale) -> dict[str, Path]:
    root = data_dir / scale.name
    return {"root": root, "init": root / "init", "base": root / "base", "target": root / "target",
            "runs": root / "runs"}  # fmt: skip


def reference_file(data_dir: Path, scale: Scale, split: str) -> Path:
    return data_dir / scale.name / f"reference_values_{split}.json"


def load_reference(data_dir: Path, scale: Scale, split: str) -> Any:
    from grin_engine.evaluation import ReferenceValues

    return ReferenceValues.load(reference_file(data_dir, scale, split))


def stage_build(scale: Scale, data_dir: Path) -> dict:
    import torch

    from grin_engine.build import build_tiny_model
    from grin_engine.evaluation import EvalSplits, reference_values
    from grin_engine.modeling import count_parameters, load_model

    data = load_data(scale)
    p = paths(data_dir, scale)
    p["root"].mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    if not (p["init"] / "config.json").is_file():
        t = time.perf_counter()
        log(f"build: tokenizer (vocab {scale.vocab}) + random {scale.arch} {scale.hidden}x{scale.layers}")
        build_tiny_model(p["init"], tokenizer_texts(data, scale), arch=scale.arch,  # type: ignore[arg-type]
                         vocab_size=scale.vocab, hidden=scale.hidden, layers=scale.layers, heads=scale.heads,
                         max_positions=512, seed=0)  # fmt: skip
        timings["init"] = time.perf_counter() - t
    model, tok = load_model(p["init"], device="cpu")
    n_params = count_parameters(model)
    first = data.forget[scale.splits[0]][0]
    name_split = {first.answer: tok.tokenize(" " + first.answer.split()[-1].strip("."))}
    del model
    log(f"build: {n_params} parameters; e.g. {name_split}")
    info: dict[str, Any] = {"scale": asdict(scale), "parameters": n_params, "tokenizer_example": name_split}
    info["pretrain"] = teach_cached(p["init"], data.pretrain, p["base"], scale.pretrain_epochs, scale.pretrain_lr,
                                    scale, "pretrain (real authors + world facts)")  # fmt: skip
    replay = data.pretrain
    info["target"] = teach_cached(p["base"], data.taught + replay, p["target"], scale.teach_epochs, scale.teach_lr,
                                  scale, f"target ({len(data.taught)} author QA + {len(replay)} replay)")  # fmt: skip
    info["splits"] = {}
    for split in scale.splits:
        forget_q = {r.question for r in data.forget[split]}
        kept = [r for r in data.taught if r.question not in forget_q]
        ref_dir = p["root"] / f"reference_{split}"
        teach_info = teach_cached(p["base"], kept + replay, ref_dir, scale.teach_epochs, scale.teach_lr, scale,
                                  f"reference {split} ({len(kept)} author QA + replay)")  # fmt: skip
        rfile = reference_file(data_dir, scale, split)
        if not rfile.is_file():
            log(f"build: reference values {split}")
            ev = eval_config(scale, "full")
            splits = EvalSplits(forget=data.forget[split], holdout=data.holdout or None)
            reference_values(ref_dir, splits, ev, source=f"{scale.name}/reference_{split}").save(rfile)
        ref = load_reference(data_dir, scale, split)
        RESULTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(rfile, RESULTS / f"{scale.name}_{split}_reference_values.json")
        reports = {}
        for label, mdir in (("target", p["target"]), ("reference", ref_dir)):
            for level in ("cheap", "full"):
                log(f"build: evaluate {label} ({split}, {level})")
                rep = evaluate_cached(mdir, p["root"] / f"eval_{label}_{split}_{level}.json", data, split, scale,
                                      level, ref)  # fmt: skip
                reports[f"{label}_{level}"] = summarize(rep)
        info["splits"][split] = {"reference_teach": teach_info, "forget_items": len(data.forget[split]),
                                 "forget_authors": list(data.forget_authors[split]), "eval": reports}  # fmt: skip
    info["data"] = {"taught_items": len(data.taught), "retain_train_items": len(data.retain_train),
                    "retain_authors": list(scale.retain_authors), "holdout_authors": list(scale.holdout_authors),
                    "retain_eval_items": len(data.retain_eval), "pretrain_items": len(data.pretrain)}  # fmt: skip
    info["timings"] = timings
    info["torch_threads"] = torch.get_num_threads()
    write_json(RESULTS / f"{scale.name}_build.json", info)
    for split in scale.splits:
        for label in ("target", "reference"):
            s = info["splits"][split]["eval"][f"{label}_full"]
            log(f"{label} {split}: forget ROUGE-L {s.get('forget/rouge_l')} P {s.get('forget/probability')}; "
                f"retain ROUGE-L {s.get('retain/rouge_l')} P {s.get('retain/probability')}; "
                f"MU {s.get('model_utility')} FQ {s.get('forget_quality')}")  # fmt: skip
    return info


# ----------------------------------------------------------------------------------------------- runs

# method label -> (localization, objective, noise on); GRIN variants carry "grin" in the label.
METHODS: dict[str, dict[str, Any]] = {  # sweep order: the most informative comparisons first
    "graddiff": {"loc": "none", "objective": "graddiff"},
    "grin_graddiff": {"loc": "grin", "objective": "graddiff"},
    "npo": {"loc": "none", "objective": "npo"},
    "grin_npo": {"loc": "grin", "objective": "npo"},
    "simnpo": {"loc": "none", "objective": "simnpo"},
    "grin_simnpo": {"loc": "grin", "objective": "simnpo"},
    "random_graddiff": {"loc": "random", "objective": "graddiff"},
    "salun_graddiff": {"loc": "salun", "objective": "graddiff"},
    "ga": {"loc": "none", "objective": "ga"},
    "idk": {"loc": "none", "objective": "idk"},
}
GRIN_DEFAULTS = {"k": 0.05, "sigma": 0.1, "agg": "sum_then_abs", "scope": "global", "stop": "fixed"}
# The engine's eps_rel when the sweep ran; every run without an eps_rel of its own keeps it (the engine default
# is now 1, chosen from this benchmark).
SWEEP_EPS_REL = 0.01


def spec(method: str, lr: float, seed: int = 0, **over: Any) -> dict[str, Any]:
    m = METHODS[method]
    s: dict[str, Any] = {"method": method, "objective": m["objective"], "loc": m["loc"], "lr": lr, "seed": seed,
                         "k": 1.0, "sigma": 0.0, "agg": "sum_then_abs", "scope": "global", "stop": "fixed"}  # fmt: skip
    if m["loc"] == "grin":
        s.update(GRIN_DEFAULTS)
    elif m["loc"] == "random":  # the control: GRIN's k and noise, random entries
        s.update(k=GRIN_DEFAULTS["k"], sigma=GRIN_DEFAULTS["sigma"])
    elif m["loc"] == "salun":  # SalUn: forget-gradient saliency, half the weights (the paper's median threshold)
        s.update(k=0.5)
    s.update(over)
    return s


def run_id(s: dict[str, Any]) -> str:
    label = f"{s['method']}_lr{s['lr']:g}_s{s['seed']}"
    if s["loc"] in ("grin", "random", "salun"):
        label += f"_k{s['k']:g}_sg{s['sigma']:g}"
    if s["loc"] == "grin":
        label += f"_{s['agg']}_{s['scope']}_{s['stop']}"
    # Keys absent from earlier runs, whose ids stay as they were:
    if s.get("loc_sample"):
        label += f"_fs{s['loc_sample']}"
    if s.get("eps_rel", SWEEP_EPS_REL) != SWEEP_EPS_REL:
        label += f"_eps{s['eps_rel']:g}"
    return label


def unlearn_config(s: dict[str, Any], scale: Scale) -> Any:
    from grin_engine.config import UnlearnConfig

    ft = {"objective": s["objective"], "steps": scale.steps, "lr": s["lr"], "batch_size": scale.batch_size,
          "max_length": scale.max_length, "stop": s["stop"], "check_every": max(1, scale.steps // 8)}  # fmt: skip
    if s["stop"] == "indistinguishable":
        ft["stop_statistic"] = "truth_ratio"
    loc = {"method": s["loc"], "k": s["k"], "aggregation": s["agg"], "scope": s["scope"],
           "forget_sample": s.get("loc_sample"), "eps_rel": s.get("eps_rel", SWEEP_EPS_REL)}  # fmt: skip
    return UnlearnConfig.model_validate(
        {"localize": loc, "noise": {"sigma": s["sigma"]}, "finetune": ft, "seed": s["seed"], "device": "cpu"}
    )


def run_one(s: dict[str, Any], scale: Scale, data_dir: Path, data: Data, split: str, level: str) -> dict[str, Any]:
    """Unlearn the target with spec `s` (resumable, cached) and evaluate at `level`."""
    from tqdm import tqdm

    from grin_engine.pipeline import unlearn

    p = paths(data_dir, scale)
    cfg = unlearn_config(s, scale)
    out = p["runs"] / split / run_id(s)
    bar = tqdm(total=cfg.finetune.steps, desc=f"{run_id(s)[:48]}", unit="step", file=sys.stderr, leave=False,
               mininterval=2.0)  # fmt: skip

    def on_event(ev: Any) -> None:
        if ev.type == "step" and ev.step is not None:
            bar.update(ev.step - bar.n)

    holdout = data.holdout if s["stop"] == "indistinguishable" else None
    res = unlearn(p["target"], data.forget[split], data.retain_train, cfg, out, holdout=holdout, on_event=on_event)
    bar.close()
    ref = load_reference(data_dir, scale, split)
    report = evaluate_cached(Path(res.model_dir), out / f"eval_{level}.json", data, split, scale, level, ref)
    t = res.timings
    mask = res.mask_summary
    return {
        "id": run_id(s), "spec": s, "level": level, "split": split, "config": json.loads(cfg.model_dump_json()),
        "metrics": summarize(report),
        "timings_s": {**t, "unlearn_total": t.get("localize", 0) + t.get("noise", 0) + t.get("finetune", 0),
                      "eval": report.get("wall_time_s")},
        "steps": res.steps, "stop_reason": res.stop_reason,
        "forget_prob_before_after": [res.forget_prob_before, res.forget_prob_after],
        "retain_prob_before_after": [res.retain_prob_before, res.retain_prob_after],
        "mask": {"density": mask.get("density"), "selected": mask.get("selected"), "eligible": mask.get("eligible"),
                 "per_module_density": mask.get("per_module_density")},
        "curves": {k: [round(x, 5) for x in v] for k, v in res.curves.items()},
        "ks_checks": res.ks_checks,
    }  # fmt: skip


# --------------------------------------------------------------------------------------------- sweep

# Learning-rate grid per method (Adam: the step per entry is ~lr whatever the mask, so masked methods
# need larger rates). Chosen after graddiff showed the window on this model: 1e-4 barely moves the forget
# set, 1e-3 collapses utility; GRIN-masked graddiff at 1e-3 barely moves it.
LRS: dict[str, tuple[float, ...]] = {
    "graddiff": (1e-4, 3e-4, 1e-3),
    "grin_graddiff": (1e-3, 3e-3, 1e-2),
    "npo": (1e-4, 3e-4, 1e-3),
    "grin_npo": (3e-3, 1e-2),
    "simnpo": (3e-4, 1e-3),
    "grin_simnpo": (3e-3, 1e-2),
    "random_graddiff": (3e-3, 1e-2),
    "salun_graddiff": (1e-4, 3e-4),
    "ga": (1e-4,),
    "idk": (3e-4, 1e-3),
}


def sweep_grid(scale: Scale) -> list[dict[str, Any]]:
    """Learning-rate grid per method; for GRIN also one-factor-at-a-time variations around the default
    (k, sigma, aggregation, per-module scope, the holdout stop rule) at each GRIN objective's best lr,
    which `stage_sweep` fills in once the lr runs are done (second phase)."""
    if scale.grid == "micro":
        return [spec("graddiff", 1e-3), spec("grin_graddiff", 1e-2)]
    return [spec(method, lr) for method in METHODS for lr in LRS[method]]


def grin_variations(best: dict[str, Any], scale: Scale) -> list[dict[str, Any]]:
    s = best["spec"]
    base = {k: s[k] for k in ("k", "sigma", "agg", "scope", "stop")}
    out = []
    variants = [{"agg": "fisher"}, {"k": 0.2}, {"sigma": 1.0}, {"scope": "per_module"}, {"k": 0.01}]
    if scale.holdout_authors:
        variants.insert(0, {"stop": "indistinguishable"})
    for v in variants:
        out.append(spec(s["method"], s["lr"], **{**base, **v}))
    return out


def utility_ratio(r: dict[str, Any], target_mu: float) -> float:
    mu = r["metrics"].get("model_utility")
    return (mu or 0.0) / target_mu if target_mu else 0.0


def select_best(runs: list[dict[str, Any]], target_mu: float, min_ratio: float = 0.9) -> dict[str, Any]:
    """Highest forget quality among runs keeping model utility >= min_ratio x the target's; when no run
    keeps it, the run with the highest utility (ties: forget quality)."""
    ok = [r for r in runs if utility_ratio(r, target_mu) >= min_ratio]
    if ok:
        return max(ok, key=lambda r: (r["metrics"].get("forget_quality") or 0.0, utility_ratio(r, target_mu)))
    return max(runs, key=lambda r: (utility_ratio(r, target_mu), r["metrics"].get("forget_quality") or 0.0))


def target_utility(data_dir: Path, scale: Scale, split: str, level: str) -> float:
    rep = read_json(paths(data_dir, scale)["root"] / f"eval_target_{split}_{level}.json")
    return float(rep["results"]["model_utility"]["value"])


def stage_sweep(scale: Scale, data_dir: Path, methods: list[str] | None) -> None:
    data = load_data(scale)
    for split in scale.splits:
        out_file = RESULTS / f"{scale.name}_{split}_sweep.json"
        done: dict[str, dict] = {r["id"]: r for r in (read_json(out_file)["runs"] if out_file.is_file() else [])}
        mu0 = target_utility(data_dir, scale, split, "cheap")

        ctx = {"scale": scale, "data_dir": data_dir, "data": data, "split": split, "mu0": mu0, "out": out_file,
               "done": done, "methods": methods}  # fmt: skip
        _run_sweep(sweep_grid(scale), f"sweep {split} (lr grid)", ctx)
        if scale.grid != "micro":
            # GRIN grid around the best default-GRIN run (over the three objectives and their lr grids).
            cand = [r for r in done.values() if r["spec"]["loc"] == "grin" and _is_default_grin(r["spec"])]
            if cand:
                _run_sweep(grin_variations(select_best(cand, mu0), scale), f"sweep {split} (GRIN grid)", ctx)
        write_json(out_file, {"scale": scale.name, "split": split, "target_model_utility": mu0,
                              "runs": list(done.values())})  # fmt: skip


def _run_sweep(specs: list[dict[str, Any]], desc: str, ctx: dict[str, Any]) -> None:
    from tqdm import tqdm

    scale, split, done, mu0 = ctx["scale"], ctx["split"], ctx["done"], ctx["mu0"]
    todo = [s for s in specs if ctx["methods"] is None or s["method"] in ctx["methods"]]
    for s in tqdm(todo, desc=desc, unit="run", file=sys.stderr):
        if run_id(s) in done:
            continue
        r = run_one(s, scale, ctx["data_dir"], ctx["data"], split, "cheap")
        done[r["id"]] = r
        m = r["metrics"]
        log(f"{r['id']}: FQ {_fmt(m.get('forget_quality'))} MU {_fmt(m.get('model_utility'))} "
            f"(x{utility_ratio(r, mu0):.2f}) fROUGE {_fmt(m.get('forget/rouge_l'))} "
            f"fKW {_fmt(m.get('forget/keyword_accuracy'))} {r['timings_s']['unlearn_total']:.0f}s")  # fmt: skip
        write_json(ctx["out"], {"scale": scale.name, "split": split, "target_model_utility": mu0,
                                "runs": list(done.values())})  # fmt: skip


def _is_default_grin(s: dict[str, Any]) -> bool:
    return all(s[k] == v for k, v in GRIN_DEFAULTS.items())


# --------------------------------------------------------------------------------------------- final


def stage_final(scale: Scale, data_dir: Path, methods: list[str] | None, extra: list[str]) -> None:
    from tqdm import tqdm

    data = load_data(scale)
    for split in scale.splits:
        sweep = read_json(RESULTS / f"{scale.name}_{split}_sweep.json")
        mu0 = sweep["target_model_utility"]
        mu_full = target_utility(data_dir, scale, split, "full")
        out_file = RESULTS / f"{scale.name}_{split}_final.json"
        prev = read_json(out_file) if out_file.is_file() else {"runs": []}
        done = {r["id"]: r for r in prev["runs"]}
        chosen: dict[str, dict[str, Any]] = dict(prev.get("chosen", {}))  # earlier --methods runs stay listed
        for method in METHODS:
            runs = [r for r in sweep["runs"] if r["spec"]["method"] == method]
            if runs and (methods is None or method in methods):
                chosen[method] = select_best(runs, mu0)["spec"]
        for i, e in enumerate(extra):  # extra configurations given as JSON specs (e.g. a proposed default)
            s = json.loads(e)
            chosen[s.pop("label", f"extra{i}")] = spec(s.pop("method"), s.pop("lr"), **s)
        todo = [(label, {**s, "seed": seed}) for label, s in chosen.items() for seed in scale.seeds]
        for label, s in tqdm(todo, desc=f"final {split}", unit="run", file=sys.stderr):
            rid = f"{label}:{run_id(s)}"
            if rid in done:
                continue
            level = "full" if s["seed"] == scale.seeds[0] else "seed"  # probes on the first seed only
            r = run_one(s, scale, data_dir, data, split, level)
            r["label"], r["id"] = label, rid
            done[rid] = r
            m = r["metrics"]
            log(f"{rid}: FQ {_fmt(m.get('forget_quality'))} MU {_fmt(m.get('model_utility'))}")
            write_json(out_file, {"scale": scale.name, "split": split, "chosen": chosen, "runs": list(done.values()),
                                  "target_model_utility_full": mu_full})  # fmt: skip
        write_json(out_file, {"scale": scale.name, "split": split, "chosen": chosen, "runs": list(done.values()),
                              "target_model_utility_full": mu_full})  # fmt: skip


# ---------------------------------------------------------------------------------- masks and timing

# Localization settings whose masks `masks` compares across seeds. The seed picks the retain sample (and the
# forget sample, when there is one): a mask that changes with it is selecting noise, not the forget set's weights.
MASK_BASE: dict[str, Any] = {"eps_rel": SWEEP_EPS_REL, "scope": "global", "forget_sample": None}  # as measured
MASK_GRID: dict[str, dict[str, Any]] = {
    "default (eps_rel 0.01)": {},
    "eps_rel 0.1": {"eps_rel": 0.1},
    "eps_rel 1": {"eps_rel": 1.0},
    "eps_rel 10": {"eps_rel": 10.0},
    "abs_sum": {"aggregation": "abs_sum"},
    "every retain item": {"retain_tokens": 10**9},
    "forget_sample 100": {"forget_sample": 100},
    "forget_sample 50": {"forget_sample": 50},
    "forget_sample 25": {"forget_sample": 25},
    "forget_sample 50, eps_rel 1": {"forget_sample": 50, "eps_rel": 1.0},
    "salun (|G_f| alone)": {"method": "salun"},
    "random": {"method": "random"},
}


def mask_agreement(full: Any, other: Any) -> float:
    """Share of `full`'s selected entries that `other` selects too (both select the same number)."""
    both = sum(int((full.tensors[n] & other.tensors[n]).sum()) for n in full.tensors)
    return both / max(full.meta.selected, 1)


def stage_masks(scale: Scale, data_dir: Path) -> None:
    """GRIN's masks on the target (k 0.05, global, eps_rel 0.01: MASK_BASE) under each MASK_GRID setting and
    seed: their agreement across seeds (stability; a random mask scores k), with the forget-gradient saliency
    mask (how much the retain denominator changes the choice) and with the MASK_BASE mask of the same seed;
    localization time."""
    from itertools import combinations

    from grin_engine.config import LocalizeConfig
    from grin_engine.data import encode
    from grin_engine.localize import localize
    from grin_engine.modeling import load_model

    data, p, split = load_data(scale), paths(data_dir, scale), scale.splits[0]
    model, tok = load_model(p["target"], device="cpu")
    f, r = encode(tok, data.forget[split], scale.max_length), encode(tok, data.retain_train, scale.max_length)
    masks: dict[str, list[Any]] = {}
    seconds: dict[str, list[float]] = {}
    for label, over in MASK_GRID.items():
        for seed in scale.seeds:
            t = time.perf_counter()
            cfg = LocalizeConfig(**{**MASK_BASE, **over})
            masks.setdefault(label, []).append(localize(model, f, r, cfg, seed=seed))
            seconds.setdefault(label, []).append(time.perf_counter() - t)
    salun, default = masks["salun (|G_f| alone)"][0], masks["default (eps_rel 0.01)"]
    rows = []
    for label, ms in masks.items():
        row = {"setting": label, **MASK_GRID[label],
               "stability": round(statistics.mean(mask_agreement(a, b) for a, b in combinations(ms, 2)), 4),
               "overlap_with_salun": round(statistics.mean(mask_agreement(salun, m) for m in ms), 4),
               "overlap_with_default": round(
                   statistics.mean(mask_agreement(d, m) for d, m in zip(default, ms, strict=True)), 4),
               "localize_s": round(statistics.median(seconds[label]), 2)}  # fmt: skip
        rows.append(row)
        log(f"masks {json.dumps(row)}")
    write_json(RESULTS / f"{scale.name}_{split}_masks.json", {
        "scale": scale.name, "split": split, "forget_items": len(data.forget[split]), "k": LocalizeConfig().k,
        "seeds": list(scale.seeds), "rows": rows,
    })  # fmt: skip


def timing_specs(loc_sample: int) -> dict[str, dict[str, Any]]:
    """GRIN-graddiff and the recommended GRIN-SimNPO, with full and sampled localization, beside their
    unmasked baselines (learning rates as in the headline table: they do not change the cost of a step)."""
    grin_simnpo = {"lr": 1e-2, "scope": "per_module"}
    return {
        "graddiff": spec("graddiff", 1e-4),
        "grin_graddiff": spec("grin_graddiff", 1e-3),
        f"grin_graddiff_fs{loc_sample}": spec("grin_graddiff", 1e-3, loc_sample=loc_sample),
        "simnpo": spec("simnpo", 1e-3),
        "grin_simnpo": spec("grin_simnpo", **grin_simnpo),
        f"grin_simnpo_fs{loc_sample}": spec("grin_simnpo", **grin_simnpo, loc_sample=loc_sample),
    }


def stage_timing(scale: Scale, data_dir: Path, repeats: int, loc_sample: int) -> None:
    """Wall time of GRIN against plain unlearning at equal steps (localize + noise + fine-tune), rounds
    interleaved so the shared machine's slow minutes hit every method alike."""
    import tempfile

    from grin_engine.pipeline import unlearn

    data, p, split = load_data(scale), paths(data_dir, scale), scale.splits[0]
    forget = data.forget[split]
    specs = timing_specs(loc_sample)
    rounds: list[dict[str, dict[str, float]]] = []
    for i in range(repeats):
        labels = list(specs)
        labels = labels[i % len(labels) :] + labels[: i % len(labels)]  # each round starts elsewhere
        row: dict[str, dict[str, float]] = {}
        for label in labels:
            with tempfile.TemporaryDirectory(prefix="tofu_timing_") as out:
                res = unlearn(p["target"], forget, data.retain_train, unlearn_config(specs[label], scale), Path(out))
            t = res.timings
            row[label] = {k: round(t.get(k, 0.0), 2) for k in ("localize", "noise", "finetune")}
            row[label]["total"] = round(sum(row[label].values()), 2)
            log(f"round {i} {label}: {json.dumps(row[label])}")
        rounds.append(row)
    medians = {label: {k: statistics.median(r[label][k] for r in rounds) for k in rounds[0][label]}
               for label in specs}  # fmt: skip
    ratios = {label: round(medians[label]["total"] / medians[base]["total"], 3)
              for label in specs for base in (("simnpo",) if "simnpo" in label else ("graddiff",))
              if label != base}  # fmt: skip
    write_json(RESULTS / f"{scale.name}_{split}_timing.json", {
        "scale": scale.name, "split": split, "forget_items": len(forget), "steps": scale.steps,
        "batch_size": scale.batch_size, "rounds": repeats, "loc_sample": loc_sample, "specs": specs,
        "runs": rounds, "median_s": medians, "ratio_to_unmasked_baseline": ratios,
    })  # fmt: skip
    for label, ratio in ratios.items():
        log(f"{label}: median {medians[label]['total']:.1f}s = {ratio:.2f} x its baseline")


# -------------------------------------------------------------------------------------------- report


def _fmt(x: float | None, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if abs(x) < 1e-3 and x != 0:
        return f"{x:.1e}"
    return f"{x:.{nd}g}" if abs(x) < 1 else f"{x:.{nd}f}".rstrip("0").rstrip(".")


def _mean_sd(values: list[float | None]) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "-"
    if len(vals) == 1:
        return _fmt(vals[0])
    return f"{_fmt(statistics.mean(vals))} ± {_fmt(statistics.stdev(vals), 2)}"


def _median_range(values: list[float | None]) -> str:
    vals = sorted(v for v in values if v is not None)
    if not vals:
        return "-"
    return f"{_fmt(statistics.median(vals))} [{_fmt(vals[0], 2)}, {_fmt(vals[-1], 2)}]"


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated in (x, y), both higher-better, sorted by x."""
    front = [p for p in points if not any(q[0] >= p[0] and q[1] >= p[1] and q != p for q in points)]
    return sorted(set(front))


def goal_checks(sweep: dict[str, Any]) -> list[str]:
    """The issue's three goals, checked on the sweep (seed 0, cheap evaluation), plus the best run of every
    method under `select_best` (the complete, single-seed comparison)."""
    runs = sweep["runs"]
    if not runs:
        return []
    mu0 = sweep["target_model_utility"]

    def fq(r: dict) -> float:
        return r["metrics"].get("forget_quality") or 0.0

    def mu(r: dict) -> float:
        return r["metrics"].get("model_utility") or 0.0

    grin = [r for r in runs if r["spec"]["loc"] == "grin"]
    base = [r for r in runs if r["spec"]["loc"] != "grin"]
    dominated = [b for b in base if any(fq(g) >= fq(b) and mu(g) >= mu(b) for g in grin)]
    good = [g for g in grin if fq(g) >= 0.1 and mu(g) >= 0.9 * mu0]
    good_any = [r for r in runs if fq(r) >= 0.1 and mu(r) >= 0.9 * mu0]

    def med_time(rs: list[dict]) -> float | None:
        t = [r["timings_s"]["unlearn_total"] for r in rs if r["steps"] == sweep_steps(rs)]
        return statistics.median(t) if t else None

    t_grin = med_time([r for r in grin if r["spec"]["objective"] == "graddiff" and r["spec"]["stop"] == "fixed"])
    t_gd = med_time([r for r in runs if r["spec"]["method"] == "graddiff"])
    lines = ["", "Goals (sweep, seed 0):", ""]
    lines.append(f"- GRIN front dominates every baseline run: {len(dominated)} of {len(base)} baseline runs are "
                 f"dominated (FQ and MU both >=) by some GRIN run")  # fmt: skip
    lines.append(f"- GRIN run with FQ >= 0.1 and MU >= 0.9 x target ({0.9 * mu0:.3f}): {len(good)} "
                 f"({', '.join(r['id'] for r in good) or 'none'}); any method: "
                 f"{', '.join(r['id'] for r in good_any) or 'none'}")  # fmt: skip
    if t_grin and t_gd:
        lines.append(f"- wall time (localize + noise + fine-tune), median at the full step budget: GRIN-graddiff "
                     f"{t_grin:.1f}s vs graddiff {t_gd:.1f}s = {t_grin / t_gd:.2f}x (goal <= 1.25x)")  # fmt: skip
    lines += ["", "Best run per method (sweep, seed 0; rule: highest FQ with MU >= 0.9 x target, else highest MU):",
              "", "| method | run | FQ | MU | MU/target | forget ROUGE-L | forget kw acc | unlearn s |",
              "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for method in METHODS:
        rs = [r for r in runs if r["spec"]["method"] == method]
        if not rs:
            continue
        b = select_best(rs, mu0)
        m = b["metrics"]
        lines.append(f"| {method} | {b['id']} | {_fmt(m.get('forget_quality'))} | {_fmt(m.get('model_utility'))} | "
                     f"{_fmt(mu(b) / mu0 if mu0 else None)} | {_fmt(m.get('forget/rouge_l'))} | "
                     f"{_fmt(m.get('forget/keyword_accuracy'))} | {b['timings_s']['unlearn_total']:.1f} |")  # fmt: skip
    return lines


def sweep_steps(runs: list[dict[str, Any]]) -> int:
    return max((r["steps"] for r in runs), default=0)


def stage_report(scale: Scale, data_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    IMG.mkdir(parents=True, exist_ok=True)
    build = read_json(RESULTS / f"{scale.name}_build.json")
    prefix = "" if scale.name == "cpu" else f"{scale.name}_"
    for split in scale.splits:
        tag = f"{prefix}{split}"
        sweep_f, final_f = RESULTS / f"{scale.name}_{split}_sweep.json", RESULTS / f"{scale.name}_{split}_final.json"
        sweep = read_json(sweep_f) if sweep_f.is_file() else {"runs": []}
        final = read_json(final_f) if final_f.is_file() else {"runs": []}
        ev = build["splits"][split]["eval"]
        lines = [f"### {scale.name} / {split}", ""]

        # 1. FQ vs MU, every run (sweep: seed 0, cheap eval; final: 3 seeds, full eval), Pareto front per method.
        fig, ax = plt.subplots(figsize=(8, 5.5))
        colors = plt.get_cmap("tab10")
        for i, method in enumerate(METHODS):
            pts = [(r["metrics"].get("model_utility") or 0.0, max(r["metrics"].get("forget_quality") or 1e-30, 1e-30))
                   for r in sweep["runs"] + final["runs"] if r["spec"]["method"] == method]  # fmt: skip
            if not pts:
                continue
            marker = "o" if method.startswith("grin") else "x"
            ax.scatter(*zip(*pts, strict=True), color=colors(i), marker=marker, s=22, alpha=0.6, label=method)
            front = pareto(pts)
            ax.plot(*zip(*front, strict=True), color=colors(i), lw=1.2, alpha=0.9)
        for label, key, mk in (("target", "target_cheap", "*"), ("reference (retain-only)", "reference_cheap", "P")):
            s = ev[key]
            ax.scatter([s["model_utility"]], [max(s.get("forget_quality") or 1e-30, 1e-30)], marker=mk, s=160,
                       color="black", label=label, zorder=5)  # fmt: skip
        mu_t = ev["target_cheap"]["model_utility"]
        ax.axvline(0.9 * mu_t, color="grey", ls=":", lw=1)
        ax.axhline(0.1, color="grey", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_xlabel("model utility")
        ax.set_ylabel("forget quality (KS p-value vs reference, log)")
        ax.set_title(f"TOFU {split} ({scale.name} scale): every run, Pareto front per method")
        ax.legend(fontsize=7, ncol=2, loc="lower left")
        fig.tight_layout()
        fig.savefig(IMG / f"tofu_{tag}_pareto.png", dpi=90)
        plt.close(fig)

        # 2. Mask density per module for the best GRIN run of each objective.
        grin_runs = [r for r in final["runs"] if r["spec"]["loc"] == "grin" and r["spec"]["seed"] == 0]
        if grin_runs:
            fig, ax = plt.subplots(figsize=(9, 4.5))
            width = 0.8 / len(grin_runs)
            names: list[str] = []
            for j, r in enumerate(grin_runs):
                dens = r["mask"]["per_module_density"] or {}
                names = list(dens)
                ax.bar([x + j * width for x in range(len(names))], list(dens.values()), width=width,
                       label=r.get("label", r["id"]))  # fmt: skip
            ax.set_xticks([x + 0.4 - width / 2 for x in range(len(names))])
            ax.set_xticklabels([n.replace("model.layers.", "L").replace(".weight", "") for n in names], rotation=70,
                               fontsize=7)  # fmt: skip
            ax.set_ylabel("fraction of entries selected")
            ax.set_title(f"GRIN mask density per module (TOFU {split}, seed 0)")
            ax.legend(fontsize=8)
            fig.tight_layout()
            fig.savefig(IMG / f"tofu_{tag}_mask_density.png", dpi=90)
            plt.close(fig)

        # 3. Loss curves of the best run (seed 0) of each method.
        best_runs = [r for r in final["runs"] if r["spec"]["seed"] == 0]
        if best_runs:
            fig, axes = plt.subplots(1, 2, figsize=(11, 4))
            for i, r in enumerate(best_runs):
                c = r["curves"]
                fkey = next((k for k in ("forget_nll", "npo", "simnpo", "idk") if k in c), "loss")
                axes[0].plot(c.get(fkey, []), label=f"{r.get('label')} ({fkey})", color=colors(i % 10))
                axes[1].plot(c.get("retain", []), label=r.get("label"), color=colors(i % 10))
            axes[0].set_title("forget term per step")
            axes[1].set_title("retain NLL per step")
            axes[0].set_xlabel("step")
            axes[1].set_xlabel("step")
            axes[0].set_yscale("symlog")
            axes[0].legend(fontsize=6)
            fig.tight_layout()
            fig.savefig(IMG / f"tofu_{tag}_loss_curves.png", dpi=90)
            plt.close(fig)

        # 4. Tables.
        mu_full = final.get("target_model_utility_full") or ev["target_full"]["model_utility"] or 1.0
        lines += [
            "Reference points (full evaluation):", "",
            "| model | forget quality | model utility | forget ROUGE-L | forget keyword acc | forget P "
            "| retain ROUGE-L | retain P |",
            "|---|---|---|---|---|---|---|---|",
        ]  # fmt: skip
        for label in ("target", "reference"):
            s = ev[f"{label}_full"]
            lines.append(f"| {label} | {_fmt(s.get('forget_quality'))} | {_fmt(s.get('model_utility'))} | "
                         f"{_fmt(s.get('forget/rouge_l'))} | {_fmt(s.get('forget/keyword_accuracy'))} | "
                         f"{_fmt(s.get('forget/probability'))} | {_fmt(s.get('retain/rouge_l'))} | "
                         f"{_fmt(s.get('retain/probability'))} |")  # fmt: skip
        lines += ["", "Best configuration per method, 3 seeds (median [min, max]; utility mean ± sd):", ""]
        cols = [("forget_quality", "FQ", _median_range), ("model_utility", "MU", _mean_sd),
                ("forget/rouge_l", "forget ROUGE-L", _mean_sd), ("forget/keyword_accuracy", "forget kw acc", _mean_sd),
                ("forget/median_log_truth_ratio", "median log TR", _mean_sd),
                ("forget/repetition_rate", "repetition", _mean_sd), ("forget/nonword_share", "non-words", _mean_sd),
                ("forget/privleak_min_k", "privleak (min-k)", _mean_sd),
                ("quantization_int4/keyword_accuracy", "int4 kw recovery", _mean_sd),
                ("relearning/keyword_accuracy", "relearn kw recovery", _mean_sd)]  # fmt: skip
        lines.append("| method | config | " + " | ".join(c[1] for c in cols) + " | MU/target | unlearn s | eval s |")
        lines.append("|---|---|" + "---|" * (len(cols) + 3))
        by_label: dict[str, list[dict]] = {}
        for r in final["runs"]:
            by_label.setdefault(r.get("label", r["spec"]["method"]), []).append(r)
        for label, runs in by_label.items():
            s = runs[0]["spec"]
            conf = f"lr {s['lr']:g}"
            if s["loc"] != "none":
                conf += f", k {s['k']:g}, sigma {s['sigma']:g}"
            if s["loc"] == "grin":
                conf += f", {s['agg']}, {s['scope']}" + (", stop: holdout" if s["stop"] != "fixed" else "")
            cells = [fn([r["metrics"].get(key) for r in runs]) for key, _, fn in cols]
            ratio = _mean_sd([(r["metrics"].get("model_utility") or 0) / mu_full for r in runs])
            t_un = _mean_sd([r["timings_s"]["unlearn_total"] for r in runs])
            t_ev = _mean_sd([r["timings_s"]["eval"] for r in runs])
            lines.append(f"| {label} | {conf} | " + " | ".join(cells) + f" | {ratio} | {t_un} | {t_ev} |")
        samples = [(r.get("label"), r["metrics"].get("sample_forget_answer")) for r in final["runs"]
                   if r["spec"]["seed"] == 0 and r["metrics"].get("sample_forget_answer") is not None]  # fmt: skip
        if samples:
            q = load_data(scale).forget[split][0]
            lines += ["", f"Sample answer, first forget question ({q.question!r}; truth: {q.answer!r}):", ""]
            lines += [f"- {label}: {ans[:160]!r}" for label, ans in samples]
        lines += goal_checks(sweep)
        lines += ["", f"Sweep ({len(sweep['runs'])} runs, seed 0, cheap evaluation):", "",
                  "| run | FQ | MU | MU/target | forget ROUGE-L | forget kw acc | steps | unlearn s |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        mu_c = sweep.get("target_model_utility") or 1.0
        for r in sorted(sweep["runs"], key=lambda r: r["id"]):
            m = r["metrics"]
            lines.append(f"| {r['id']} | {_fmt(m.get('forget_quality'))} | {_fmt(m.get('model_utility'))} | "
                         f"{_fmt((m.get('model_utility') or 0) / mu_c)} | {_fmt(m.get('forget/rouge_l'))} | "
                         f"{_fmt(m.get('forget/keyword_accuracy'))} | {r['steps']} | "
                         f"{r['timings_s']['unlearn_total']:.1f} |")  # fmt: skip
        table = RESULTS / f"{scale.name}_{split}_table.md"
        table.write_text("\n".join(lines) + "\n")
        log(f"report: {table} and {IMG}/tofu_{tag}_*.png")


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stage", choices=["build", "sweep", "final", "report", "masks", "timing", "all"])
    ap.add_argument("--scale", choices=sorted(SCALES), default="cpu")
    ap.add_argument("--quick", action="store_true", help="smoke run: the microscopic scale (same as --scale micro)")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="cache of models and runs")
    ap.add_argument("--results-dir", type=Path, default=None, help="where JSON results go (default bench/results/tofu)")
    ap.add_argument("--img-dir", type=Path, default=None, help="where plots go (default docs/img)")
    ap.add_argument("--methods", nargs="*", default=None, help="restrict sweep/final to these methods")
    ap.add_argument(
        "--extra",
        action="append",
        default=[],
        help='final: an extra configuration as JSON, e.g. {"label": "x", "method": "grin_npo", "lr": 0.003}',
    )
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: tiny models on shared cores)")
    ap.add_argument("--repeats", type=int, default=3, help="timing: interleaved rounds")
    ap.add_argument("--loc-sample", type=int, default=50, help="timing: forget items of the sampled localization")
    args = ap.parse_args(argv)
    global RESULTS, IMG
    if args.results_dir is not None:
        RESULTS = args.results_dir
    if args.img_dir is not None:
        IMG = args.img_dir
    import torch
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    scale = SCALES["micro" if args.quick else args.scale]
    stages = ["build", "sweep", "final", "report"] if args.stage == "all" else [args.stage]
    for stage in stages:
        t = time.perf_counter()
        if stage == "build":
            stage_build(scale, args.data_dir)
        elif stage == "sweep":
            stage_sweep(scale, args.data_dir, args.methods)
        elif stage == "final":
            stage_final(scale, args.data_dir, args.methods, args.extra)
        elif stage == "masks":
            stage_masks(scale, args.data_dir)
        elif stage == "timing":
            stage_timing(scale, args.data_dir, args.repeats, args.loc_sample)
        else:
            stage_report(scale, args.data_dir)
        log(f"{stage} done in {time.perf_counter() - t:.0f}s")


def config_digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


if __name__ == "__main__":
    main()
