"""End to end on the tiny taught model: forgetting happens, bits outside the mask do not move,
runs are deterministic and resumable, and cancellation is clean."""

import pytest
import torch
from safetensors.torch import load_file

from grin_engine.config import UnlearnConfig
from grin_engine.errors import Cancelled
from grin_engine.pipeline import unlearn


def cfg(**finetune):
    return UnlearnConfig.grin(
        device="cpu", localize={"k": 0.1},
        finetune={"steps": 24, "lr": 2e-3, "retain_weight": 5.0, "batch_size": 6, "max_length": 200, **finetune},
    )  # fmt: skip


def weights(path):
    return load_file(str(path / "model.safetensors"))


def test_grin_forgets_far_more_than_it_loses_and_keeps_unmasked_bits(tiny_qa, tmp_path):
    res = unlearn(tiny_qa.model_dir, tiny_qa.forget, tiny_qa.retain, cfg(), tmp_path / "run")
    forget_drop = res.forget_prob_before - res.forget_prob_after
    retain_drop = res.retain_prob_before - res.retain_prob_after
    assert res.forget_prob_before > 0.9 and res.forget_prob_after < 0.25
    assert forget_drop > 4 * max(retain_drop, 0.0) and res.retain_prob_after > 0.7
    from grin_engine.masks import load_mask

    mask = load_mask(res.mask_path)
    before, after = weights(tiny_qa.model_dir), weights(tmp_path / "run" / "model")
    for name, b in before.items():
        m = mask.tensors.get(name, torch.zeros_like(b, dtype=torch.bool))
        assert torch.equal(after[name][~m], b[~m]), name
    assert set(res.timings) >= {"localize", "noise", "finetune"} and len(res.curves["loss"]) == 24
    assert res.model_files["model.safetensors"] and res.mask_summary["selected"] == mask.meta.selected


def test_same_seed_same_mask_and_weights_and_resume_skips(tiny_qa, tmp_path):
    a = unlearn(tiny_qa.model_dir, tiny_qa.forget, tiny_qa.retain, cfg(steps=4), tmp_path / "a")
    b = unlearn(tiny_qa.model_dir, tiny_qa.forget, tiny_qa.retain, cfg(steps=4), tmp_path / "b")
    assert a.mask_sha256 == b.mask_sha256
    assert a.model_files["model.safetensors"] == b.model_files["model.safetensors"]
    again = unlearn(tiny_qa.model_dir, tiny_qa.forget, tiny_qa.retain, cfg(steps=4), tmp_path / "a")
    assert again.resumed_stages == ["localize", "noise", "finetune"] and again.model_files == a.model_files


def test_cancel_then_resume_from_checkpoint_matches_uninterrupted(tiny_qa, tmp_path):
    config = cfg(steps=6, checkpoint_every=2, objective="npo")
    full = unlearn(tiny_qa.model_dir, tiny_qa.forget, tiny_qa.retain, config, tmp_path / "full")
    events, calls = [], iter(range(100))
    with pytest.raises(Cancelled):
        unlearn(tiny_qa.model_dir, tiny_qa.forget, tiny_qa.retain, config, tmp_path / "cut",
                on_event=events.append, should_stop=lambda: next(calls) >= 3)  # fmt: skip
    assert [e.step for e in events if e.type == "step"] == [1, 2, 3]
    resumed = unlearn(tiny_qa.model_dir, tiny_qa.forget, tiny_qa.retain, config, tmp_path / "cut")
    assert "localize" in resumed.resumed_stages and "finetune" in resumed.resumed_stages
    assert resumed.model_files["model.safetensors"] == full.model_files["model.safetensors"]


def test_stop_when_indistinguishable_from_holdout(tiny_qa, tmp_path):
    config = cfg(steps=40, objective="ga", stop="indistinguishable", check_every=2, p_threshold=0.1, lr=5e-3)
    res = unlearn(tiny_qa.model_dir, tiny_qa.forget, tiny_qa.retain, config, tmp_path / "ks", holdout=tiny_qa.holdout)
    assert res.stop_reason == "indistinguishable" and res.steps < 40
    assert res.ks_checks[0]["p_value"] < 0.1 <= res.ks_checks[-1]["p_value"]
