"""Every formula against hand-computed values on tiny inputs."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from scipy import stats as sps

from grin_engine.evaluation import stats


def test_probability_and_normalized_probability() -> None:
    assert stats.probability(0.0) == 1.0
    assert stats.probability(math.log(4)) == pytest.approx(0.25)
    # P(a)=0.5, perturbed 0.25 and 0.25 -> 0.5 / (0.5 + 0.5)
    assert stats.normalized_probability(math.log(2), [math.log(4), math.log(4)]) == pytest.approx(0.5)


def test_truth_ratio_hand_values() -> None:
    # l_para = 1, perturbed mean = 2 -> R = e^-1
    assert stats.truth_ratio(1.0, [1.5, 2.5]) == pytest.approx(math.exp(-1))
    ratios = [0.5, 2.0, 1.0]
    assert stats.truth_ratio_forget_score(ratios) == pytest.approx((0.5 + 0.5 + 1.0) / 3)
    assert stats.truth_ratio_utility_score(ratios) == pytest.approx((0.5 + 0.0 + 0.0) / 3)


def test_ks_pvalue_is_scipys() -> None:
    a, b = [0.1, 0.4, 0.35, 0.8, 0.9], [0.5, 0.6, 0.7, 0.95, 1.2, 1.3]
    assert stats.ks_pvalue(a, b) == sps.ks_2samp(a, b).pvalue
    assert stats.ks_pvalue(a, a) == pytest.approx(1.0)


def test_harmonic_mean() -> None:
    assert stats.harmonic_mean([1.0, 0.5, 0.25]) == pytest.approx(3 / (1 + 2 + 4))
    assert stats.harmonic_mean([0.5] * 9) == pytest.approx(0.5)
    assert stats.harmonic_mean([0.5, 0.0, 1.0]) == 0.0


def test_auc_on_known_score_lists() -> None:
    assert stats.auc([0.1, 0.2], [0.8, 0.9]) == 1.0  # holdout always scores "more unseen"
    assert stats.auc([0.8, 0.9], [0.1, 0.2]) == 0.0
    assert stats.auc([0.5], [0.5]) == 0.5  # ties count half
    # pairs (m, n): (1,2)+ (1,0)- (3,2)- (3,0)- (1,4)+ (3,4)+ -> 3/6
    assert stats.auc([1, 3], [2, 0, 4]) == pytest.approx(0.5)
    # agrees with the rank formulation (Mann-Whitney U)
    rng = np.random.default_rng(0)
    m, n = rng.normal(size=30), rng.normal(0.5, size=40)
    u = sps.mannwhitneyu(n, m).statistic
    assert stats.auc(m.tolist(), n.tolist()) == pytest.approx(u / (30 * 40))


def test_privleak() -> None:
    assert stats.privleak(0.5) == pytest.approx(0.0)
    assert stats.privleak(1.0) == pytest.approx(-100.0)
    # (0.4 - 0.3) / 0.3 * 100 with AUC 0.6 against a reference AUC of 0.7
    assert stats.privleak(0.6, 0.7) == pytest.approx(100 / 3)


def test_zlib_min_k_and_min_k_plus_plus() -> None:
    text = "abcabcabc"
    assert stats.zlib_score(2.0, text) == pytest.approx(2.0 / len(zlib.compress(text.encode())))
    lp = [-0.1, -3.0, -0.5, -2.0, -0.2]
    # k=0.4 of 5 tokens -> the 2 lowest: -3, -2
    assert stats.min_k_score(lp, 0.4) == pytest.approx(2.5)
    assert stats.min_k_score([-1.0], 0.4) == pytest.approx(1.0)  # at least one token
    mu, var = [-1.0] * 5, [4.0] * 5  # z = (lp + 1) / 2 -> lowest two: -1.0, -0.5
    assert stats.min_k_plus_plus_score(lp, mu, var, 0.4) == pytest.approx(0.75)
    assert stats.min_k_plus_plus_score([-1.0], [0.0], [0.0], 0.4) == pytest.approx(1.0 / math.sqrt(1e-6))


def test_exact_memorization() -> None:
    assert stats.exact_memorization([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    assert math.isnan(stats.exact_memorization([], []))


def test_extraction_strength_crafted() -> None:
    labels = [5, 6, 7, 8]
    assert stats.extraction_strength([5, 6, 7, 8], labels) == 1.0  # reproduced from no prefix
    # mismatch at position 1: from prefix length 2 greedy reproduces 7, 8 -> 1 - 2/4
    assert stats.extraction_strength([5, 0, 7, 8], labels) == 0.5
    assert stats.extraction_strength([5, 6, 7, 0], labels) == 0.0  # last token never reproduced
    assert stats.extraction_strength([0, 6, 7, 8], labels) == 0.75


def test_next_token_moments_for_min_k_plus_plus() -> None:
    import torch

    from grin_engine.evaluation.forward import _moments

    probs = torch.tensor([[0.5, 0.5], [0.9, 0.1]])
    mu, var = _moments(probs.log())
    lp = np.log([0.9, 0.1])
    assert mu == pytest.approx([-math.log(2), float((np.array([0.9, 0.1]) * lp).sum())])
    assert var[0] == pytest.approx(0.0, abs=1e-9)
    assert var[1] == pytest.approx(float((np.array([0.9, 0.1]) * lp**2).sum() - mu[1] ** 2), rel=1e-5)
