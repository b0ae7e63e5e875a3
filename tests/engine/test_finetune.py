import torch

from grin_engine.finetune import MaskedAdamW, MaskedParams
from grin_engine.masks import Mask


def test_masked_adamw_keeps_unmasked_bits_with_weight_decay():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 4))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    m0 = torch.rand(32, 16) < 0.1
    mask = Mask.from_tensors({"0.weight": m0, "2.weight": torch.ones(4, 32, dtype=torch.bool)}, method="t", k=0.1)
    masked = MaskedParams(model, mask)
    opt = MaskedAdamW(masked, lr=0.05, weight_decay=0.5)
    assert opt.exp_avg["0.weight"].numel() == int(m0.sum())  # state only for masked entries
    x = torch.randn(8, 16)
    for _ in range(5):
        model(x).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
    w0 = model[0].weight.detach()
    assert torch.equal(w0[~m0], before["0.weight"][~m0])  # bit-identical
    assert (w0[m0] != before["0.weight"][m0]).all()
    assert torch.equal(model[0].bias.detach(), before["0.bias"])  # not eligible, never written
    assert not torch.equal(model[2].weight.detach(), before["2.weight"])


def test_reference_swap_restores_exactly():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    mask = Mask.from_tensors({"0.weight": torch.eye(4, dtype=torch.bool)}, method="t", k=0.25)
    masked = MaskedParams(model, mask)
    original = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.data.view(-1)[masked.index["0.weight"]] += 1.0
    moved = model[0].weight.detach().clone()
    with masked.reference():
        assert torch.equal(model[0].weight, original)
    assert torch.equal(model[0].weight, moved)
