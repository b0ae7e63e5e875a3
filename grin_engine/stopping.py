"""The `indistinguishable` stop rule: stop when the forget set looks like data the model never saw.

Every N steps the per-item statistic (length-normalized answer NLL, or TOFU's truth ratio) of the forget
set is compared with that of a holdout set of the same kind that the model never trained on, by a
two-sample Kolmogorov-Smirnov test. Once the test can no longer tell them apart (p >= threshold),
further unlearning would only push the forget set to the other side: over-unlearning leaves a
fingerprint as visible as no unlearning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from scipy.stats import ks_2samp

from grin_engine.data import Encoded, QARecord, Record, encode
from grin_engine.errors import EngineError
from grin_engine.scoring import per_item_nll_batched


@dataclass(frozen=True)
class KSCheck:
    step: int
    statistic: float
    p_value: float
    indistinguishable: bool


def ks_check(step: int, forget_values: torch.Tensor, holdout_values: torch.Tensor, p_threshold: float) -> KSCheck:
    res = ks_2samp(forget_values.numpy(), holdout_values.numpy())
    p = float(res.pvalue)
    return KSCheck(step, float(res.statistic), p, p >= p_threshold)


class _TruthRatioSet:
    """Encodings for TOFU's truth ratio: mean_j P(perturbed_j)^(1/|.|) / P(paraphrased)^(1/|.|)."""

    def __init__(self, tokenizer: Any, records: Sequence[Record], max_length: int, template: str) -> None:
        if not records or not all(
            isinstance(r, QARecord) and r.paraphrased_answer and r.perturbed_answer for r in records
        ):
            raise EngineError("stop_statistic 'truth_ratio' needs QA records with paraphrased and perturbed answers")
        qa = [r for r in records if isinstance(r, QARecord)]
        self.para = encode(tokenizer, [(r.question, r.paraphrased_answer or "") for r in qa], max_length, template)
        self.n_pert = min(len(r.perturbed_answer or []) for r in qa)
        pairs = [(r.question, (r.perturbed_answer or [])[j]) for r in qa for j in range(self.n_pert)]
        self.pert = encode(tokenizer, pairs, max_length, template)

    def values(self, model: Any, batch_size: int) -> torch.Tensor:
        nll_para = per_item_nll_batched(model, self.para, batch_size)
        nll_pert = per_item_nll_batched(model, self.pert, batch_size).reshape(-1, self.n_pert)
        log_mean_pert = torch.logsumexp(-nll_pert, dim=1) - torch.log(torch.tensor(float(self.n_pert)))
        return log_mean_pert + nll_para  # log truth ratio: a monotone transform, KS is unaffected


class IndistinguishableStop:
    def __init__(
        self,
        tokenizer: Any,
        forget: Sequence[Record],
        holdout: Sequence[Record],
        statistic: str,
        p_threshold: float,
        max_length: int,
        template: str,
        batch_size: int = 16,
    ) -> None:
        if len(holdout) < 2:
            raise EngineError("stop 'indistinguishable' needs a holdout set of at least 2 records")
        self.p_threshold, self.batch_size, self.statistic = p_threshold, batch_size, statistic
        self.sets: tuple[Any, Any]
        if statistic == "truth_ratio":
            self.sets = (
                _TruthRatioSet(tokenizer, forget, max_length, template),
                _TruthRatioSet(tokenizer, holdout, max_length, template),
            )
        else:
            self.sets = (
                encode(tokenizer, forget, max_length, template),
                encode(tokenizer, holdout, max_length, template),
            )

    def _values(self, model: Any, data: Any) -> torch.Tensor:
        if isinstance(data, Encoded):
            return per_item_nll_batched(model, data, self.batch_size)
        return data.values(model, self.batch_size)

    def check(self, model: Any, step: int) -> KSCheck:
        forget_values = self._values(model, self.sets[0])
        holdout_values = self._values(model, self.sets[1])
        return ks_check(step, forget_values, holdout_values, self.p_threshold)
