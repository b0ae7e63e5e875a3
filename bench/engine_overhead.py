"""Measure GRIN's overhead against plain graddiff on a ~1M-parameter model taught ~1000 TOFU QA pairs.

Reports (medians over --repeats, baseline measured in the same run):
- seconds per stage (localize / noise / finetune) for GRIN and for the baseline (no mask, no noise);
- GRIN total / baseline total at the same number of fine-tune steps (goal <= 1.25);
- extra peak memory of localization / model fp32 size (goal <= 2), measured in a fresh subprocess by
  polling RSS; on a ~1M-parameter model that peak is dominated by activations and logits, which any
  fine-tune step needs as well, so the peak of one plain training step on the same batch is measured too
  and the difference reported, beside the analytic figure (the two gradient-sized buffers);
- mask bytes per eligible parameter.
Writes bench/results/engine_overhead.json. The taught model is cached under bench/.cache (gitignored).

    PYTHONPATH=. .venv/bin/python bench/engine_overhead.py [--repeats 3] [--steps 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "bench" / ".cache"
RESULTS = ROOT / "bench" / "results" / "engine_overhead.json"
TOFU = ROOT / "data" / "tofu"
MAX_LENGTH = 192


def datasets() -> tuple[list, list]:
    from grin_engine.data import load_records

    forget = load_records(TOFU / "forget01.json", "qa")  # 40 items, 2 authors
    retain = load_records(TOFU / "retain90.json", "qa")[:960]
    return forget, retain


def taught_model(threads: int) -> Path:
    """Build (hidden 128, 4 layers, vocab 1024: ~0.93M params) and teach forget+retain; cached."""
    from grin_engine.build import build_tiny_model
    from grin_engine.teach import teach

    out = CACHE / "taught_1m"
    if (out / "model.safetensors").is_file():
        return out
    forget, retain = datasets()
    texts = [t for r in forget + retain for t in (r.question, r.answer)]
    build_tiny_model(CACHE / "base_1m", texts, vocab_size=1024, hidden=128, layers=4, heads=4, max_positions=256)
    t = time.perf_counter()
    res = teach(CACHE / "base_1m", forget + retain, out, epochs=3, lr=2e-3, batch_size=16, max_length=MAX_LENGTH)
    print(f"taught in {time.perf_counter() - t:.0f}s, final loss {res.losses[-1]:.3f}", file=sys.stderr)
    return out


def wide_model() -> Path:
    """An untrained ~25M-parameter model (hidden 512, 8 layers) for the memory figures only: at this size the
    parameters, not the activations of one batch, dominate, so "peak / model size" measures localization."""
    from grin_engine.build import build_tiny_model

    out = CACHE / "wide_25m"
    if not (out / "model.safetensors").is_file():
        forget, retain = datasets()
        texts = [t for r in forget + retain for t in (r.question, r.answer)]
        build_tiny_model(out, texts, vocab_size=1024, hidden=512, layers=8, heads=8, max_positions=256)
    return out


def run_once(model_dir: Path, preset: str, steps: int, seed: int) -> dict:
    from grin_engine.config import UnlearnConfig
    from grin_engine.pipeline import unlearn

    forget, retain = datasets()
    ft = {"objective": "graddiff", "steps": steps, "batch_size": 8, "max_length": MAX_LENGTH, "lr": 1e-3}
    cfg = UnlearnConfig.grin(device="cpu", seed=seed, finetune=ft)
    if preset == "baseline":
        cfg = UnlearnConfig.baseline("graddiff", device="cpu", seed=seed, finetune=ft)
    out = Path(tempfile.mkdtemp(prefix=f"bench_{preset}_"))
    try:
        res = unlearn(model_dir, forget, retain, cfg, out)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    t = res.timings
    return {
        **{k: t.get(k, 0.0) for k in ("load", "localize", "noise", "finetune", "save")},
        "engine_total": t.get("localize", 0.0) + t.get("noise", 0.0) + t["finetune"],
        "mask_bytes": res.mask_bytes,
        "eligible": res.mask_summary["eligible"],
        "forget_prob": [res.forget_prob_before, res.forget_prob_after],
        "retain_prob": [res.retain_prob_before, res.retain_prob_after],
    }


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_memory(model_dir: Path, mode: str) -> dict:
    """Run in a fresh process: extra peak RSS of `mode` over the RSS just before it.

    mode "localize": GRIN's localization over the forget and retain sets.
    mode "train_step": plain training passes (forward+backward, gradients dropped after each batch) over the
    same forget and retain batches, with gradients on the same weights: what any fine-tune needs anyway
    (activations, logits, one gradient buffer, allocator growth over many batches). The difference between
    the two peaks is what localization itself adds: its gradient accumulators and the top-k selection.
    """
    import torch

    from grin_engine.config import LocalizeConfig
    from grin_engine.data import batches, encode
    from grin_engine.localize import answer_tokens, eligible_parameters, localize, retain_sample
    from grin_engine.modeling import fp32_bytes, load_model
    from grin_engine.scoring import per_item_nll

    forget, retain = datasets()
    model, tok = load_model(model_dir, device="cpu")
    f, r = encode(tok, forget, MAX_LENGTH), encode(tok, retain, MAX_LENGTH)
    cfg = LocalizeConfig()
    with torch.no_grad():  # warm up kernels and allocator arenas so they are not billed to the measured work
        model(input_ids=f.input_ids[:8], attention_mask=f.attention_mask[:8])
    base, peak, done = _rss(), [0], threading.Event()

    def poll() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.0005)

    th = threading.Thread(target=poll)
    th.start()
    if mode == "localize":
        localize(model, f, r, cfg)
    else:
        params = eligible_parameters(model)
        chosen = {id(p) for p in params.values()}
        for p in model.parameters():
            p.requires_grad_(id(p) in chosen)
        for data in (f, retain_sample(r, answer_tokens(f), 0)):
            for b in batches(data, cfg.batch_size):
                per_item_nll(model, b).mean().backward()
                for p in params.values():
                    p.grad = None
    done.set()
    th.join()
    size = fp32_bytes(model)
    eligible = sum(p.numel() for p in eligible_parameters(model).values())
    return {
        "model_fp32_bytes": size,
        "extra_peak_bytes": max(peak[0] - base, 0),
        "analytic_gradient_buffers_over_model_fp32": 2 * 4 * eligible / size,
    }


def measure_memory(threads: int, model: str) -> dict:
    def run(mode: str) -> dict:
        out = subprocess.run(
            [sys.executable, __file__, "--memory-only", mode, "--memory-model", model, "--threads", str(threads)],
            check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        ).stdout  # fmt: skip
        return json.loads(out.strip().splitlines()[-1])

    loc, step = run("localize"), run("train_step")
    size = loc["model_fp32_bytes"]
    return {
        "model_fp32_bytes": size,
        "localize_extra_peak_bytes": loc["extra_peak_bytes"],
        "train_step_extra_peak_bytes": step["extra_peak_bytes"],
        "localize_peak_over_model_fp32": loc["extra_peak_bytes"] / size,
        # What localization costs beyond a plain training step on the same batch, in model sizes:
        "localize_peak_minus_train_step_over_model_fp32": (loc["extra_peak_bytes"] - step["extra_peak_bytes"])
        / size,
        "analytic_gradient_buffers_over_model_fp32": loc["analytic_gradient_buffers_over_model_fp32"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--memory-only", choices=["localize", "train_step"], help=argparse.SUPPRESS)
    ap.add_argument("--memory-model", choices=["taught", "wide"], default="taught", help=argparse.SUPPRESS)
    args = ap.parse_args()
    import torch
    from transformers.utils import logging

    logging.disable_progress_bar()
    torch.set_num_threads(args.threads)
    if args.memory_only:
        target = taught_model(args.threads) if args.memory_model == "taught" else wide_model()
        print(json.dumps(peak_memory(target, args.memory_only)))
        return
    model_dir = taught_model(args.threads)
    runs: dict[str, list[dict]] = {"grin": [], "baseline": []}
    for i in range(args.repeats):
        for preset in ("baseline", "grin"):  # interleaved: machine load hits both alike
            runs[preset].append(run_once(model_dir, preset, args.steps, seed=0))
            print(f"repeat {i} {preset}: {runs[preset][-1]['engine_total']:.2f}s", file=sys.stderr)
    med = {p: {k: statistics.median(r[k] for r in rs) for k in ("localize", "noise", "finetune", "engine_total")}
           for p, rs in runs.items()}  # fmt: skip
    wide_model()
    mem = {"model_1m": measure_memory(args.threads, "taught"), "model_25m": measure_memory(args.threads, "wide")}
    from grin_engine.modeling import count_parameters, load_model

    model, _ = load_model(model_dir, device="cpu")
    g = runs["grin"][0]
    result = {
        "model_parameters": count_parameters(model),
        "qa_pairs_taught": sum(len(x) for x in datasets()),
        "finetune_steps": args.steps,
        "repeats": args.repeats,
        "threads": args.threads,
        "median_seconds": med,
        "grin_over_graddiff_time": med["grin"]["engine_total"] / med["baseline"]["engine_total"],
        **mem,
        "mask_bytes": g["mask_bytes"],
        "eligible_parameters": g["eligible"],
        "mask_bytes_per_eligible_parameter": g["mask_bytes"] / g["eligible"],
        "grin_forget_prob_before_after": g["forget_prob"],
        "grin_retain_prob_before_after": g["retain_prob"],
        "baseline_forget_prob_before_after": runs["baseline"][0]["forget_prob"],
        "baseline_retain_prob_before_after": runs["baseline"][0]["retain_prob"],
        "runs": runs,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))


if __name__ == "__main__":
    main()
