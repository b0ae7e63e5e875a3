from __future__ import annotations

import torch

from grin_engine.evaluation.quantize import int4_rtn_grouped, int8_per_channel, quantized_copy


def test_int8_per_channel_hand_values() -> None:
    w = torch.tensor([[1.0, -0.5, 0.25], [127.0, 63.4, -1.0]])
    q = int8_per_channel(w)
    # row 0: scale 1/127, every value on the grid up to rounding of 0.5*127 and 0.25*127
    assert torch.allclose(q[0], torch.tensor([127.0, -64.0, 32.0]) / 127)
    # row 1: scale 1 -> integers
    assert torch.equal(q[1], torch.tensor([127.0, 63.0, -1.0]))


def test_int4_rtn_group_levels_and_padding() -> None:
    w = torch.linspace(-1, 2, 10).reshape(1, 10)
    q = int4_rtn_grouped(w, group_size=4)
    assert q.shape == w.shape
    for g in range(3):  # each group has at most 16 distinct levels and min/max exactly kept
        chunk = q[0, g * 4 : (g + 1) * 4]
        assert len(torch.unique(chunk)) <= 16
    assert torch.allclose(q[0, :4], w[0, :4], atol=(w[0, 3] - w[0, 0]).item() / 15 / 2 + 1e-6)
    # 16 evenly spaced values in one group are exactly representable
    exact = torch.arange(16.0).reshape(1, 16) * 0.1
    assert torch.allclose(int4_rtn_grouped(exact, 16), exact, atol=1e-6)


def test_quantized_copy_leaves_original_and_head() -> None:
    first = torch.nn.Linear(8, 8)
    model = torch.nn.Sequential(first, torch.nn.Linear(8, 4))
    before = [p.clone() for p in model.parameters()]
    q = quantized_copy(model, "int4", group_size=4)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert not torch.equal(q[0].weight, first.weight)
    assert torch.equal(q[0].bias, first.bias)  # biases are not quantized
