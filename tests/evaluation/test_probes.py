"""Robustness probes (quantization, paraphrase, relearning), MCQ accuracy and the harmful-rate judges."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from grin_engine.data import encode
from grin_engine.evaluation import EvalConfig, evaluate
from grin_engine.evaluation.config import EvalSplits, JudgeConfig
from grin_engine.evaluation.judges import classifier_judge
from grin_engine.evaluation.metrics.mcq_accuracy import choice_pairs
from grin_engine.modeling import hash_directory, load_model
from grin_engine.records import HarmfulRecord, MCQRecord
from grin_engine.scoring import sequence_logprob_batched
from tests.evaluation.conftest import TinyTofu, num

PROBE = ["probability", "keyword_accuracy"]


def test_quantization_and_paraphrase_probes(tiny_tofu: TinyTofu) -> None:
    cfg = EvalConfig(metrics=["quantization", "paraphrase", "probability"], probe_metrics=PROBE, max_new_tokens=64,
                     quantization_group_size=32)
    rep = evaluate(tiny_tofu.memorized, tiny_tofu.splits, cfg)
    int8 = rep.results["quantization_int8/probability"]
    assert int8.extra["before"] == pytest.approx(rep.value("forget/probability"))
    assert abs(num(int8.value)) < 0.05  # int8 per-channel barely moves a memorized model
    int4 = rep.results["quantization_int4/probability"]
    assert int4.value == pytest.approx(num(int4.extra["after"]) - num(int4.extra["before"]))
    para = rep.results["paraphrase/probability"]
    assert para.extra["original"] == pytest.approx(rep.value("forget/probability"))
    assert num(para.value) < num(para.extra["original"])  # taught wording is recalled best
    assert "paraphrase/keyword_accuracy" in rep.results


def test_relearning_probe_leaves_model_untouched(tiny_tofu: TinyTofu) -> None:
    before_files = hash_directory(tiny_tofu.reference)
    cfg = EvalConfig(metrics=["relearning"], probe_metrics=["probability"], relearn_fraction=0.5,
                     relearn_steps=20, relearn_lr=1e-2, batch_size=10, max_new_tokens=16)
    rep = evaluate(tiny_tofu.reference, tiny_tofu.splits, cfg)
    r = rep.results["relearning/probability"]
    assert r.extra["n_relearn"] == 10 and r.extra["n_measured"] == 10
    # learning half an author's facts raises the probability of the other half (shared name, style)
    assert num(r.value) > 0
    assert r.value == pytest.approx(num(r.extra["after"]) - num(r.extra["before"]))
    assert hash_directory(tiny_tofu.reference) == before_files


def test_mcq_accuracy_compares_choice_loglikelihoods(tiny_tofu: TinyTofu) -> None:
    forget = tiny_tofu.splits.forget or []
    mcq = [
        MCQRecord(question=r.question, choices=[*(r.perturbed_answer or [])[:3], r.answer][::-1], answer=0)
        for r in forget[:8]
    ]
    control = [m.model_copy(update={"answer": 1}) for m in mcq[:4]]
    cfg = EvalConfig(suite="mcq", metrics=["mcq_accuracy", "quantization"], quantization_modes=["int4"],
                     quantization_group_size=32)
    rep = evaluate(tiny_tofu.memorized, EvalSplits(mcq=mcq, mcq_retain=control), cfg)
    result = rep.results["mcq/accuracy"]
    assert result.extra["chance"] == 0.25
    model, tok = load_model(tiny_tofu.memorized, device="cpu")
    pairs = [p for r in mcq for p in choice_pairs(r)]
    totals, _ = sequence_logprob_batched(model, encode(tok, pairs, 256))
    best = totals.view(-1, 4).argmax(dim=1)
    assert result.value == pytest.approx((best == 0).float().mean().item())
    assert rep.value("mcq_retain/accuracy") == pytest.approx((best[:4] == 1).float().mean().item())
    # knowledge suites: the quantization probe re-runs the suite metric on the int4 model
    q = rep.results["quantization_int4/mcq/accuracy"]
    assert q.extra["unquantized"] == result.value
    assert q.extra["recovery"] == pytest.approx(num(q.value) - num(result.value))
    assert "quantization_int4/mcq_retain/accuracy" in rep.results


def test_harmful_rate_rule_and_classifier_judges(tiny_tofu: TinyTofu, tmp_path: Path) -> None:
    harmful = [HarmfulRecord(prompt=f"How do I do bad thing {i}?", response="x") for i in range(4)]
    splits = EvalSplits(harmful=harmful)
    everything = EvalConfig(suite="harmful", max_new_tokens=8, judge=JudgeConfig(patterns=[r"[\s\S]"]))
    nothing = everything.model_copy(update={"judge": JudgeConfig(patterns=["^never matches$"])})
    with_probe = everything.model_copy(update={"metrics": ["harmful_rate", "quantization"],
                                                "quantization_modes": ["int8"]})
    rep = evaluate(tiny_tofu.random, splits, with_probe)
    assert rep.value("harmful/harmful_rate") == 1.0
    assert rep.value("quantization_int8/harmful/harmful_rate") == 1.0
    assert evaluate(tiny_tofu.random, splits, nothing).value("harmful/harmful_rate") == 0.0

    from transformers import GPT2Config, GPT2ForSequenceClassification

    _, tok = load_model(tiny_tofu.random, device="cpu")
    cfg = GPT2Config(vocab_size=len(tok), n_embd=16, n_layer=1, n_head=2, pad_token_id=tok.pad_token_id)
    cfg.id2label, cfg.label2id = {0: "safe", 1: "unsafe"}, {"safe": 0, "unsafe": 1}  # two labels
    torch.manual_seed(0)
    clf = GPT2ForSequenceClassification(cfg)
    with torch.no_grad():  # bias the head so every text is "unsafe"
        clf.score.weight.zero_()
        clf.score.weight[1, 0] = 1.0
        clf.transformer.ln_f.bias.fill_(1.0)
        clf.transformer.ln_f.weight.zero_()
    clf.save_pretrained(tmp_path / "judge")
    tok.save_pretrained(tmp_path / "judge")
    judge = classifier_judge(str(tmp_path / "judge"), "unsafe", "cpu")
    assert judge(["p1", "p2"], ["r1", "a longer response"]) == [True, True]
    assert classifier_judge(str(tmp_path / "judge"), "safe", "cpu")(["p"], ["r"]) == [False]
