"""Model-level checks on tiny models: a model that memorized its data scores high on memorization
metrics, a random one low; batching does not change numbers; reports round-trip."""

from __future__ import annotations

import math

import pytest
from scipy import stats as sps

from grin_engine.data import encode
from grin_engine.errors import EngineError
from grin_engine.evaluation import EvalConfig, EvaluationReport, ReferenceValues, evaluate, reference_values
from grin_engine.evaluation.config import EvalSplits
from grin_engine.evaluation.forward import greedy_generate, score_pairs
from grin_engine.modeling import load_model
from grin_engine.scoring import per_item_nll_batched
from tests.evaluation.conftest import TinyTofu, one_torch_thread, val

CHEAP = EvalConfig(max_new_tokens=96)


@pytest.fixture(scope="module")
def reports(tiny_tofu: TinyTofu) -> dict[str, EvaluationReport]:
    with one_torch_thread():
        return {
            name: evaluate(getattr(tiny_tofu, name), tiny_tofu.splits, CHEAP)
            for name in ("random", "memorized", "reference")
        }


def test_memorized_model_scores_high_random_low(reports: dict[str, EvaluationReport]) -> None:
    mem, rnd = reports["memorized"], reports["random"]
    high = {
        "forget/probability": 0.8, "forget/exact_memorization": 0.9, "forget/extraction_strength": 0.5,
        "forget/keyword_accuracy": 0.8, "forget/keyword_confidence": 0.8, "forget/rouge_l": 0.8,
        "forget/mia_loss": 0.95, "forget/mia_min_k": 0.95, "forget/mia_zlib": 0.95,
        "forget/mia_min_k_plus_plus": 0.9, "model_utility": 0.3,
    }
    for key, floor in high.items():
        assert val(mem, key) >= floor, key
    for key in ("forget/probability", "forget/exact_memorization", "forget/extraction_strength",
                "forget/keyword_accuracy", "forget/rouge_l", "model_utility"):
        assert val(rnd, key) <= 0.1, key
    assert val(mem, "forget/privleak_loss") < -90  # fully exposed membership
    assert val(mem, "holdout/exact_memorization") < 0.5  # never-seen author
    # random model: truth ratio ~1 on the forget set (cannot tell true from false answers)
    assert val(rnd, "forget/truth_ratio") > 0.9
    # memorized model answers fluently; the random one emits non-words
    assert val(mem, "forget/nonword_share") < 0.2 < val(rnd, "forget/nonword_share")


def test_report_shape_and_json_round_trip(reports: dict[str, EvaluationReport], tiny_tofu: TinyTofu) -> None:
    rep = reports["memorized"]
    again = EvaluationReport.model_validate_json(rep.model_dump_json())
    assert again == rep
    tr = rep.results["forget/truth_ratio"]
    assert tr.per_item is not None and len(tr.per_item) == len(tiny_tofu.splits.forget or [])
    assert rep.samples == []  # generations are not stored unless asked for
    assert rep.splits == {"forget": 20, "retain": 10, "real_authors": 10, "world_facts": 10, "holdout": 20}
    mu = rep.results["model_utility"]
    assert mu.value == pytest.approx(sps.hmean([v for v in mu.extra.values() if v is not None]))
    assert len(mu.extra) == 9
    fq = rep.results["forget_quality"]
    assert fq.value is None and "no reference" in fq.note  # omitted, never invented
    assert "holdout" in rep.results["forget_quality_holdout"].note
    assert all(v.value is None or math.isfinite(v.value) for v in rep.results.values())


def test_forget_quality_from_reference_model_and_file(tiny_tofu: TinyTofu, tmp_path) -> None:  # type: ignore[no-untyped-def]
    cfg = EvalConfig(metrics=["forget_quality", "mia_min_k"])
    ref = reference_values(tiny_tofu.reference, tiny_tofu.splits, cfg)
    assert len(ref.truth_ratios) == 20 and set(ref.mia_auc) >= {"mia_min_k", "mia_loss"}
    ref.save(tmp_path / "ref.json")
    stored = ReferenceValues.load(tmp_path / "ref.json")
    assert stored == ref
    own = evaluate(tiny_tofu.reference, tiny_tofu.splits, cfg, reference=stored)
    mem = evaluate(tiny_tofu.memorized, tiny_tofu.splits, cfg, reference=stored)
    assert own.value("forget_quality") == pytest.approx(1.0)  # identical distributions
    assert val(mem, "forget_quality") < 0.05 < val(own, "forget_quality")
    assert own.value("forget/privleak_min_k") == pytest.approx(0.0, abs=1e-6)  # AUC equals AUC_ref
    assert "reference model" in own.results["forget/privleak_min_k"].note


def test_scores_match_engine_nll_and_batched_generation_matches_single(tiny_tofu: TinyTofu) -> None:
    model, tok = load_model(tiny_tofu.memorized, device="cpu")
    records = (tiny_tofu.splits.forget or [])[:6]
    pairs = [(r.question, r.answer) for r in records]
    ours = score_pairs(model, tok, pairs, batch_size=4, max_length=256, template="auto").nll()
    engine = per_item_nll_batched(model, encode(tok, records, 256), batch_size=6)
    assert ours == pytest.approx(engine.tolist(), rel=1e-4)
    prompts = [r.question for r in records]
    kwargs = {"max_new_tokens": 24, "max_length": 256, "template": "auto"}
    together = greedy_generate(model, tok, prompts, batch_size=6, **kwargs)  # type: ignore[arg-type]
    alone = [greedy_generate(model, tok, [p], batch_size=1, **kwargs)[0] for p in prompts]  # type: ignore[arg-type]
    assert together == alone


def test_cheap_subset_samples_and_unknown_metric(tiny_tofu: TinyTofu) -> None:
    cfg = EvalConfig(metrics=["model_utility"], max_items=3, max_new_tokens=8, sample_generations=2)
    rep = evaluate(tiny_tofu.random, tiny_tofu.splits, cfg)
    assert set(rep.splits.values()) == {3}
    # dependencies appear, unrelated metrics do not run
    assert "retain/rouge_l" in rep.results and "forget/mia_loss" not in rep.results
    assert {s.split for s in rep.samples} >= {"retain:question"} and all(s.index < 2 for s in rep.samples)
    with pytest.raises(EngineError, match="unknown metric"):
        evaluate(tiny_tofu.random, tiny_tofu.splits, EvalConfig(metrics=["nope"]))
    empty = evaluate(tiny_tofu.random, EvalSplits(), EvalConfig(metrics=["forget_quality_holdout", "mia_loss"]))
    assert all(r.value is None and r.note for r in empty.results.values())


def test_engine_tiny_qa_fixture_memorized_vs_base(tiny_qa) -> None:  # type: ignore[no-untyped-def]
    """The shared engine fixture (6 taught forget items, never-seen holdout): same direction."""
    splits = EvalSplits(forget=tiny_qa.forget, holdout=tiny_qa.holdout)
    cfg = EvalConfig(metrics=["exact_memorization", "extraction_strength", "mia_loss"], max_length=tiny_qa.max_length)
    taught = evaluate(tiny_qa.model_dir, splits, cfg)
    base = evaluate(tiny_qa.base_dir, splits, cfg)
    assert val(taught, "forget/exact_memorization") > 0.8 > val(base, "forget/exact_memorization")
    assert val(taught, "forget/extraction_strength") > val(base, "forget/extraction_strength")
    assert taught.value("forget/mia_loss") == 1.0  # every taught item has lower loss than every unseen one


def test_key_token_mask_aligns_tokens_with_keywords(tiny_tofu: TinyTofu) -> None:
    from grin_engine.evaluation.metrics.keyword_confidence import key_token_mask
    from grin_engine.modeling import load_tokenizer

    tok = load_tokenizer(tiny_tofu.random)
    ids = [*tok.encode(" The author's name is Hina Ameen.", add_special_tokens=False), tok.eos_token_id]
    mask = key_token_mask(tok, ids, ["Hina", "Ameen"])
    picked = tok.decode([t for t, m in zip(ids, mask, strict=True) if m])
    assert picked.split() == ["Hina", "Ameen"]
    assert not mask[-1]  # EOS decodes to nothing and is never a key token
