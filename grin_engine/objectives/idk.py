"""IDK: teach refusals on the forget questions.

mode="sft": NLL of a refusal ("I don't know"-style, drawn seeded per item from idk_file) + retain term.
mode="dpo": DPO with the refusal as winner and the true answer as loser, reference log-probs computed
once in prepare(): L = -(2/beta) * mean log sigmoid(beta * ((lw - lw_ref) - (ll - ll_ref))).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F

from grin_engine.data import Batch, QARecord, encode, load_lines, prompt_and_target
from grin_engine.errors import EngineError
from grin_engine.objectives.base import Objective, ObjectiveContext, Params
from grin_engine.scoring import mean_nll, sequence_logprob, sequence_logprob_batched

DEFAULT_IDK_FILE = Path(__file__).resolve().parents[2] / "data" / "tofu" / "idontknow.jsonl"


class IDKParams(Params):
    mode: Literal["sft", "dpo"] = "sft"
    beta: float = 0.1
    idk_file: str | None = None


def dpo_loss(
    lw: torch.Tensor, ll: torch.Tensor, lw_ref: torch.Tensor, ll_ref: torch.Tensor, beta: float
) -> torch.Tensor:
    return -(2.0 / beta) * F.logsigmoid(beta * ((lw - lw_ref) - (ll - ll_ref))).mean()


class IDK(Objective):
    name = "idk"
    params_model = IDKParams

    def prepare(self, model: Any, ctx: ObjectiveContext) -> None:
        super().prepare(model, ctx)
        assert isinstance(self.params, IDKParams)
        refusals = load_lines(self.params.idk_file or DEFAULT_IDK_FILE)
        if not refusals:
            raise EngineError("idk: the refusal file is empty")
        gen = torch.Generator().manual_seed(ctx.seed)
        pick = torch.randint(len(refusals), (len(ctx.forget_records),), generator=gen)
        pairs = [(prompt_and_target(r)[0], refusals[int(i)]) for r, i in zip(ctx.forget_records, pick, strict=True)]
        if any(not isinstance(r, QARecord) for r in ctx.forget_records):
            raise EngineError("idk needs question/answer (or prompt/response) forget records")
        self.idk = encode(ctx.tokenizer, pairs, ctx.max_length, ctx.template)
        if self.params.mode == "dpo":
            self.ref_w, _ = sequence_logprob_batched(model, self.idk, ctx.batch_size)
            self.ref_l, _ = sequence_logprob_batched(model, ctx.forget, ctx.batch_size)

    def loss(self, model: Any, forget_idx: torch.Tensor, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(self.params, IDKParams)
        winner = self.idk.select(forget_idx).to(model.device)
        if self.params.mode == "sft":
            value = mean_nll(model, winner)
        else:
            lw, _ = sequence_logprob(model, winner)
            ll, _ = sequence_logprob(model, self.forget_batch(forget_idx, model.device))
            dev = lw.device
            value = dpo_loss(lw, ll, self.ref_w[forget_idx].to(dev), self.ref_l[forget_idx].to(dev), self.params.beta)
        keep, logs = self.retain_term(model, retain)
        return value + keep.to(value.device), {"idk": float(value.detach()), **logs}
