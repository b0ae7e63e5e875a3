"""The stand-in generators: seeded, of the published formats, no overlap between what is forgotten and kept."""

from __future__ import annotations

import re

import torch

from bench.hazard_data import behaviour, knowledge, rotations
from grin_engine.objectives.base import kl_on_answers
from grin_engine.records import MCQRecord, parse_row


def test_knowledge_is_seeded_and_wmdp_shaped() -> None:
    a, b = knowledge(8, seed=3), knowledge(8, seed=3)
    assert a == b and knowledge(8, seed=4).forget_mcq != a.forget_mcq
    assert len(a.forget_mcq) == len(a.retain_mcq) == 16 and len(a.forget_corpus) == len(a.retain_corpus) == 16
    for row in a.forget_mcq + a.retain_mcq:
        rec = parse_row(row, "wmdp")[0]
        assert isinstance(rec, MCQRecord) and len(set(rec.choices)) == 4
    answers = [r["answer"] for r in a.forget_mcq + a.retain_mcq]
    assert len(set(answers)) == 4  # the answer position is spread, not constant
    # The rotations put the right choice once in every position: the letter alone says nothing.
    rots = rotations(a.forget_mcq[0])
    assert sorted(r["answer"] for r in rots) == [0, 1, 2, 3]
    assert {r["choices"][r["answer"]] for r in rots} == {a.forget_mcq[0]["choices"][a.forget_mcq[0]["answer"]]}
    # Hazard words never appear in the control domain.
    hazard = {w for t in a.forget_corpus for w in re.findall(r"[a-z]{5,}", t.lower())} - {
        w for t in a.retain_corpus for w in re.findall(r"[a-z]{5,}", t.lower())}
    assert hazard and not any(w in " ".join(a.retain_corpus).lower() for w in hazard)


def test_behaviour_rows_are_pku_shaped_and_judged() -> None:
    b = behaviour(n_forget=10, n_heldout=5, n_normal=6, seed=0)
    assert b == behaviour(n_forget=10, n_heldout=5, n_normal=6, seed=0)
    prompts = {r["prompt"] for r in b.forget}
    assert len(prompts) == 10 and not prompts & {r["prompt"] for r in b.heldout}
    patterns = [re.compile(p, re.IGNORECASE) for p in b.judge_patterns]
    for row in b.forget + b.heldout:
        [rec] = parse_row(row, "harmful")  # exactly the unsafe response of the pair
        safe = row["response_1"] if row["is_response_0_safe"] is False else row["response_0"]
        assert any(p.search(rec.response) for p in patterns) and not any(p.search(safe) for p in patterns)
    assert not any(p.search(n["response"]) for p in patterns for n in b.normal_retain)
    assert len(b.normal_eval) == 3
    assert not {q["question"] for q in b.normal_eval} & {n["prompt"] for n in b.normal_retain}


def test_kl_on_answers_is_zero_on_itself_and_positive_otherwise() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[-100, -100, 3, 4, 5], [-100, 1, 2, -100, -100]])
    assert float(kl_on_answers(logits, logits, labels)) < 1e-6
    assert float(kl_on_answers(logits, torch.randn(2, 5, 11), labels)) > 0
