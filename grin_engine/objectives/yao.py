"""Yao et al. 2024, "Large Language Model Unlearning" (harmful-behaviour recipe).

L = forget_weight * (-NLL(unsafe response | harmful prompt))           gradient ascent on what to forget
  + random_weight * NLL(random normal answer | harmful prompt)          descent on random answers
  + retain_weight * KL(p_ref || p_model) on normal data                 (retain_loss="kl", the paper's choice)

The random answers are the answers of the retain (normal) records, re-paired with the forget prompts:
`draws` seeded pairings are built once in prepare() and cycled through step by step. The paper's weights
are 0.5 / 1 / 1 (forget / random / normal).
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from grin_engine.data import IGNORE_INDEX, Batch, encode, prompt_and_target
from grin_engine.errors import EngineError
from grin_engine.objectives.base import Objective, ObjectiveContext, Params
from grin_engine.scoring import mean_nll


class YaoParams(Params):
    retain_loss: Literal["nll", "kl"] = "kl"
    forget_weight: float = 0.5
    random_weight: float = 1.0
    draws: int = 4


class Yao(Objective):
    name = "yao"
    params_model = YaoParams

    def prepare(self, model: Any, ctx: ObjectiveContext) -> None:
        super().prepare(model, ctx)
        assert isinstance(self.params, YaoParams)
        if len(ctx.retain) == 0:
            raise EngineError("yao needs retain (normal) records: their answers are the random responses")
        answers = []
        for ids, labels in zip(ctx.retain.input_ids, ctx.retain.labels, strict=True):
            text = ctx.tokenizer.decode(ids[labels != IGNORE_INDEX].tolist(), skip_special_tokens=True).strip()
            if text:
                answers.append(text)
        if not answers:
            raise EngineError("yao: the retain records have no answer text")
        prompts = [prompt_and_target(r)[0] for r in ctx.forget_records]
        gen = torch.Generator().manual_seed(ctx.seed + 7)
        self.random = []
        for _ in range(max(self.params.draws, 1)):
            pick = torch.randint(len(answers), (len(prompts),), generator=gen)
            pairs = [(p, answers[int(i)]) for p, i in zip(prompts, pick, strict=True)]
            self.random.append(encode(ctx.tokenizer, pairs, ctx.max_length, ctx.template))
        self.calls = 0

    def loss(self, model: Any, forget_idx: torch.Tensor, retain: Batch | None) -> tuple[torch.Tensor, dict[str, float]]:
        assert isinstance(self.params, YaoParams)
        nll = mean_nll(model, self.forget_batch(forget_idx, model.device))
        rnd = mean_nll(model, self.random[self.calls % len(self.random)].select(forget_idx).to(model.device))
        self.calls += 1
        keep, logs = self.retain_term(model, retain)
        value = -self.params.forget_weight * nll + self.params.random_weight * rnd + keep.to(nll.device)
        return value, {"forget_nll": float(nll.detach()), "random_nll": float(rnd.detach()), **logs}
