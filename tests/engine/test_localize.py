import torch

from grin_engine.config import LocalizeConfig
from grin_engine.data import encode
from grin_engine.localize import (
    eligible_parameters,
    item_sample,
    localize,
    ratio_scores,
    select_top,
    top_k_masks,
)
from grin_engine.modeling import load_model


def test_select_top_is_exact_and_breaks_ties_by_index():
    flat = torch.tensor([0.5, 2.0, 1.0, 1.0, 1.0, 3.0, 1.0])
    chosen = select_top(flat, 4)
    assert chosen.tolist() == [False, True, True, True, False, True, False]
    assert select_top(flat, 0).sum() == 0 and select_top(flat, 7).all()


def test_top_k_global_picks_the_k_highest_scores():
    gen = torch.Generator().manual_seed(0)
    scores = {"a": torch.rand(10, 10, generator=gen), "b": torch.rand(30, generator=gen) * 2}
    masks = top_k_masks(scores, 0.1, "global")
    flat = torch.cat([scores["a"].flatten(), scores["b"]])
    chosen = torch.cat([masks["a"].flatten(), masks["b"]])
    assert int(chosen.sum()) == 13
    assert flat[chosen].min() > flat[~chosen].max()
    per = top_k_masks(scores, 0.1, "per_module")
    assert int(per["a"].sum()) == 10 and int(per["b"].sum()) == 3


def test_ratio_scores_use_relative_eps():
    gf = {"w": torch.tensor([1.0, 1.0, 0.0])}
    gr = {"w": torch.tensor([0.0, 2.0, 1.0])}
    eps = 0.1 * 1.0  # eps_rel * mean |G_r|
    out = ratio_scores(gf, gr, eps_rel=0.1, eps_scope="tensor")
    assert torch.allclose(out["w"], torch.tensor([1 / eps, 1 / (2 + eps), 0.0]))


def test_eligible_parameters_gpt2_conv1d_and_llama(tmp_path):
    from grin_engine.build import build_tiny_model

    texts = ["a tiny corpus of words"] * 3
    for arch, expect in (
        ("gpt2", {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"}),
        ("llama", {"self_attn.q_proj", "mlp.down_proj"}),
    ):
        build_tiny_model(tmp_path / arch, texts, arch=arch, vocab_size=280, hidden=32, layers=2, heads=2)
        model, _ = load_model(tmp_path / arch, device="cpu")
        names = eligible_parameters(model)
        assert all(n.endswith(".weight") and (".0." in n or ".1." in n) for n in names)
        assert expect <= {n.split(".", 3)[-1].rsplit(".", 1)[0] for n in names}
        assert not any("wte" in n or "embed" in n or "norm" in n or "ln_" in n for n in names)
        more = eligible_parameters(model, include_embeddings=True, include_norms=True, include_biases=True)
        assert len(more) > len(names)


def test_same_seed_same_mask_and_localizers_differ(tiny_qa):
    model, tok = load_model(tiny_qa.model_dir, device="cpu")
    f, r = encode(tok, tiny_qa.forget, 200), encode(tok, tiny_qa.retain, 200)
    top2 = {"k": 0.02, "scope": "global"}  # one global count, so every localizer selects the same number
    cfg = LocalizeConfig(**top2)
    m1, m2 = localize(model, f, r, cfg, seed=1), localize(model, f, r, cfg, seed=1)
    assert all(torch.equal(m1.tensors[n], m2.tensors[n]) for n in m1.tensors)
    n_eligible = sum(t.numel() for t in m1.tensors.values())
    assert m1.meta.selected == round(0.02 * n_eligible)
    salun = localize(model, f, r, LocalizeConfig(method="salun", **top2))
    rand = localize(model, f, r, LocalizeConfig(method="random", **top2), seed=1)
    assert salun.meta.selected == rand.meta.selected == m1.meta.selected
    overlap = sum(int((m1.tensors[n] & rand.tensors[n]).sum()) for n in m1.tensors)
    assert overlap < m1.meta.selected / 5  # random is a control, not a near-copy
    for agg in ("abs_sum", "fisher"):
        assert localize(model, f, r, LocalizeConfig(aggregation=agg, **top2)).meta.selected == m1.meta.selected
    assert all(p.grad is None for p in model.parameters())


def test_item_sample_is_seeded_keeps_order_and_is_everything_when_small(tiny_qa):
    _, tok = load_model(tiny_qa.model_dir, device="cpu")
    f = encode(tok, tiny_qa.forget, 200)
    n = len(f) // 2
    sample = item_sample(f, n, seed=3)
    expected = torch.randperm(len(f), generator=torch.Generator().manual_seed(3))[:n].sort().values
    assert torch.equal(sample.labels, f.select(expected).labels)  # the seed's rows, in their original order
    assert len(sample) == n
    assert torch.equal(item_sample(f, n, seed=3).input_ids, sample.input_ids)
    assert item_sample(f, len(f), seed=3) is f and item_sample(f, len(f) + 5, seed=3) is f


def test_forget_sample_scores_exactly_the_sampled_items(tiny_qa):
    """A sampled localization is the full localization of the sample (same retain tokens rule, same seed)."""
    model, tok = load_model(tiny_qa.model_dir, device="cpu")
    f, r = encode(tok, tiny_qa.forget, 200), encode(tok, tiny_qa.retain, 200)
    n = len(f) // 2
    sampled = localize(model, f, r, LocalizeConfig(k=0.02, forget_sample=n), seed=5)
    explicit = localize(model, item_sample(f, n, seed=5), r, LocalizeConfig(k=0.02), seed=5)
    assert all(torch.equal(sampled.tensors[name], explicit.tensors[name]) for name in sampled.tensors)
    assert sampled.meta.forget_sample == n and explicit.meta.forget_sample is None
    everything = localize(model, f, r, LocalizeConfig(k=0.02, forget_sample=len(f)), seed=5)
    assert everything.meta.forget_sample is None  # a sample as large as the set is the set
