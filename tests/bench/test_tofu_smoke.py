"""Smoke test of the TOFU benchmark script: every stage end to end on the microscopic scale (1 forget,
1 retain and 1 holdout author, 6 items each, a 40k-parameter model, 2 unlearning steps), so that
bench/tofu.py cannot rot. Seconds, not minutes; results go to a temporary directory."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_tofu", REPO_ROOT / "bench" / "tofu.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_tofu_pipeline_end_to_end(tmp_path: Path) -> None:
    tofu = _load_script()
    results, img = tmp_path / "results", tmp_path / "img"
    args = ["--quick", "--data-dir", str(tmp_path / "cache"), "--results-dir", str(results), "--img-dir", str(img)]
    tofu.main(["all", *args])

    build = json.loads((results / "micro_build.json").read_text())
    assert build["splits"]["forget01"]["eval"]["target_full"]["forget/probability"] is not None
    ref = json.loads((results / "micro_forget01_reference_values.json").read_text())
    assert len(ref["truth_ratios"]) == 6 and "mia_min_k" in ref["mia_auc"]

    sweep = json.loads((results / "micro_forget01_sweep.json").read_text())
    assert {r["spec"]["method"] for r in sweep["runs"]} == {"graddiff", "grin_graddiff"}
    final = json.loads((results / "micro_forget01_final.json").read_text())
    assert len(final["runs"]) == 4  # 2 methods x 2 seeds
    for run in final["runs"]:
        m = run["metrics"]
        assert m["forget_quality"] is not None and m["model_utility"] is not None
        probes = "quantization_int4/keyword_accuracy" in m and "relearning/keyword_accuracy" in m
        assert probes == (run["spec"]["seed"] == 0)  # the probes run on the first seed only
        assert "forget/privleak_min_k" in m and "forget/repetition_rate" in m
        assert run["steps"] == 2 and run["timings_s"]["finetune"] > 0
    grin = next(r for r in final["runs"] if r["spec"]["method"] == "grin_graddiff")
    assert 0 < grin["mask"]["density"] < 0.1

    # One row in the headline table (seeds' spread) and one in the best-run-per-method table of the sweep.
    assert (results / "micro_forget01_table.md").read_text().count("| grin_graddiff |") == 2
    for name in ("pareto", "mask_density", "loss_curves"):
        assert (img / f"tofu_micro_forget01_{name}.png").stat().st_size > 1000

    # A rerun finds everything cached and changes nothing.
    before = (results / "micro_forget01_final.json").read_text()
    tofu.main(["final", *args])
    assert (results / "micro_forget01_final.json").read_text() == before

    # The masks stage: each localization setting across seeds.
    tofu.main(["masks", *args])
    rows = {r["setting"]: r for r in json.loads((results / "micro_forget01_masks.json").read_text())["rows"]}
    assert set(rows) == set(tofu.MASK_GRID)
    # A sample at least as large as the 6-item forget set is the set: the default mask of the same seed.
    assert rows["forget_sample 100"]["overlap_with_default"] == 1.0
    assert rows["salun (|G_f| alone)"]["stability"] == 1.0  # no retain sample, nothing for the seed to change
    assert rows["random"]["stability"] < 0.5  # k = 0.05 drawn afresh per seed

    # The timing stage: interleaved wall times, GRIN against its unmasked baseline.
    tofu.main(["timing", *args, "--repeats", "1", "--loc-sample", "3"])
    timing = json.loads((results / "micro_forget01_timing.json").read_text())
    assert set(timing["ratio_to_unmasked_baseline"]) == {"grin_graddiff", "grin_graddiff_fs3", "grin_simnpo",
                                                         "grin_simnpo_fs3"}
    assert timing["specs"]["grin_simnpo_fs3"]["loc_sample"] == 3
    assert all(run["total"] > 0 for run in timing["runs"][0].values())
