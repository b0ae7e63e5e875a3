"""Each objective's loss against a hand computation on a toy batch, and the sign of its gradient."""

import math
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch

from grin_engine.data import IGNORE_INDEX, Encoded
from grin_engine.errors import EngineError
from grin_engine.objectives import get_objective
from grin_engine.objectives.base import ObjectiveContext

V = 5


class Unigram(torch.nn.Module):
    """logits[t] = table[input_ids[t]]: a model whose log-probs are easy to compute by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(torch.linspace(-1, 1, V * V).reshape(V, V))
        self.config = SimpleNamespace(num_hidden_layers=1, hidden_size=V)

    @property
    def device(self) -> torch.device:
        return self.table.device

    def forward(self, input_ids, attention_mask=None, output_hidden_states=False):
        logits = self.table[input_ids]
        return SimpleNamespace(logits=logits, hidden_states=(logits, logits))


def toy(ids, labels) -> Encoded:
    ids_t = torch.tensor(ids)
    return Encoded(ids_t, torch.ones_like(ids_t), torch.tensor(labels))


FORGET = toy([[0, 1, 2]], [[IGNORE_INDEX, 1, 2]])  # answer tokens 1 then 2
RETAIN = toy([[3, 4, 1]], [[IGNORE_INDEX, 4, 1]])


def hand_logp(model, prev, nxt):
    return float(torch.log_softmax(model.table[prev].detach(), -1)[nxt])


def forget_logp(model):
    return hand_logp(model, 0, 1) + hand_logp(model, 1, 2)


def retain_nll(model):
    return -(hand_logp(model, 3, 4) + hand_logp(model, 4, 1)) / 2


def prepared(name, params=None, retain_weight=1.0):
    model = Unigram()
    obj = get_objective(name, params or {}, retain_weight)
    obj.prepare(model, ObjectiveContext(
        tokenizer=None, forget_records=[], forget=FORGET, retain=RETAIN, max_length=8, template="auto", seed=0,
        batch_size=4, reference=nullcontext,
    ))  # fmt: skip
    return model, obj


def run(model, obj, with_retain=True):
    loss, _ = obj.loss(model, torch.tensor([0]), RETAIN if with_retain else None)
    loss.backward()
    return float(loss.detach()), model.table.grad


def test_ga():
    model, obj = prepared("ga")
    loss, grad = run(model, obj, with_retain=False)
    assert loss == pytest.approx(forget_logp(model) / 2, rel=1e-5)  # -NLL = mean log-prob
    assert grad[0, 1] > 0 and grad[1, 2] > 0  # descending the loss lowers the answer logits


def test_graddiff():
    model, obj = prepared("graddiff", retain_weight=0.5)
    loss, grad = run(model, obj)
    assert loss == pytest.approx(forget_logp(model) / 2 + 0.5 * retain_nll(model), rel=1e-5)
    assert grad[0, 1] > 0 and grad[3, 4] < 0  # forget answer pushed down, retain answer pulled up


def test_npo_at_reference_is_2_over_beta_log2():
    model, obj = prepared("npo", {"beta": 0.1})
    loss, grad = run(model, obj, with_retain=False)
    assert loss == pytest.approx(2 / 0.1 * math.log(2), rel=1e-5)  # logp == ref_logp at the start
    assert grad[0, 1] > 0


def test_npo_hand_value_off_reference():
    from grin_engine.objectives.npo import npo_loss

    logp, ref = torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -2.0])
    expected = -(2 / 0.1) * sum(math.log(1 / (1 + math.exp(0.1 * (lp - r)))) for lp, r in [(-1, -2), (-3, -2)]) / 2
    assert float(npo_loss(logp, ref, 0.1)) == pytest.approx(expected, rel=1e-6)


def test_simnpo():
    model, obj = prepared("simnpo", {"beta": 2.5, "gamma": 0.5})
    loss, grad = run(model, obj, with_retain=False)
    avg = forget_logp(model) / 2
    expected = -(2 / 2.5) * math.log(1 / (1 + math.exp(2.5 * avg + 0.5)))
    assert loss == pytest.approx(expected, rel=1e-5)
    assert grad[0, 1] > 0


def test_dpo_hand_value():
    from grin_engine.objectives.idk import dpo_loss

    lw, ll = torch.tensor([-2.0]), torch.tensor([-1.0])
    lw_ref, ll_ref = torch.tensor([-3.0]), torch.tensor([-1.5])
    margin = (-2 + 3) - (-1 + 1.5)
    assert float(dpo_loss(lw, ll, lw_ref, ll_ref, 0.1)) == pytest.approx(
        -(2 / 0.1) * math.log(1 / (1 + math.exp(-0.1 * margin))), rel=1e-6
    )


def test_idk_sft_targets_refusals(tmp_path):
    from grin_engine.build import train_tokenizer
    from grin_engine.data import QARecord, encode
    from grin_engine.objectives.idk import IDK

    idk_file = tmp_path / "idk.jsonl"
    idk_file.write_text("I do not know.\n")
    tok = train_tokenizer(["Question: who? Answer: I do not know. Basil."] * 4, vocab_size=280)
    records = [QARecord(question="who?", answer="Basil.")]
    obj = IDK({"idk_file": str(idk_file)}, 1.0)
    model = Unigram()
    ctx = ObjectiveContext(
        tokenizer=tok,
        forget_records=records,
        forget=encode(tok, records, 32),
        retain=RETAIN,
        max_length=32,
        template="auto",
        seed=0,
        batch_size=2,
        reference=nullcontext,
    )
    obj.ctx = ctx
    obj.prepare(model, ctx)
    target = obj.idk.labels[obj.idk.labels != IGNORE_INDEX]
    assert tok.decode(target).startswith(" I do not know.")


def test_rmu_hand_value():
    model, obj = prepared("rmu", {"steering_coeff": 2.0, "layer": 1}, retain_weight=0.0)
    loss, _ = run(model, obj, with_retain=False)
    h = model.table.detach()[torch.tensor([0, 1, 2])]
    expected = float(((h - obj.control) ** 2).mean())
    assert loss == pytest.approx(expected, rel=1e-5)
    assert float(obj.control.norm()) == pytest.approx(2.0)


def test_rmu_relative_steering_coefficient_is_a_multiple_of_the_forget_activation_norm():
    # hidden_states[1] of the unigram model is table[token]; table = linspace(-1, 1, V*V) row-major, so row r
    # holds -1 + 2 * (r*V + j) / (V*V - 1), j = 0..V-1. The forget record is tokens 0, 1, 2, all attended.
    def row_norm(r: int) -> float:
        return math.sqrt(sum((-1 + 2 * (r * V + j) / (V * V - 1)) ** 2 for j in range(V)))

    expected_norm = (row_norm(0) + row_norm(1) + row_norm(2)) / 3
    _, obj = prepared("rmu", {"steering_coeff_rel": 3.0, "layer": 1}, retain_weight=0.0)
    assert obj.steering_coeff == pytest.approx(3.0 * expected_norm, rel=1e-6)
    assert float(obj.control.norm()) == pytest.approx(3.0 * expected_norm, rel=1e-6)
    _, absolute = prepared("rmu", {"steering_coeff": 2.0, "layer": 1}, retain_weight=0.0)
    assert absolute.steering_coeff == 2.0
    with pytest.raises(EngineError, match="invalid params"):
        get_objective("rmu", {"steering_coeff_rel": 0.0})


def test_unknown_objective_params_are_rejected():
    from grin_engine.errors import EngineError

    with pytest.raises(EngineError, match="invalid params"):
        get_objective("npo", {"betta": 1.0})
