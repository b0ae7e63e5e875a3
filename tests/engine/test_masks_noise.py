import pytest
import torch

from grin_engine.config import NoiseConfig
from grin_engine.errors import MaskMismatch
from grin_engine.masks import Mask, check_fits, encode_tensor, load_mask, save_mask
from grin_engine.noise import add_noise


def _mask(density: float, seed: int = 0) -> Mask:
    gen = torch.Generator().manual_seed(seed)
    tensors = {
        "0.weight": torch.rand(64, 32, generator=gen) < density,
        "2.weight": torch.rand(8, 64, generator=gen) < density,
    }
    return Mask.from_tensors(tensors, method="grin", k=density, base_model_hash="abc")


@pytest.mark.parametrize("density", [0.001, 0.05, 0.6])
def test_mask_roundtrip_picks_smaller_encoding(tmp_path, density):
    mask = _mask(density)
    size = save_mask(mask, tmp_path / "m.safetensors")
    back = load_mask(tmp_path / "m.safetensors")
    assert all(torch.equal(mask.tensors[n], back.tensors[n]) for n in mask.tensors)
    assert back.meta == mask.meta
    kind, _ = encode_tensor(mask.tensors["0.weight"])
    assert kind == ("idx" if density * 32 < 1 else "bits")  # 4 bytes/index vs 1/8 byte/entry
    assert size < 2000 + 64 * 32 // 8 + 8 * 64 // 8


def test_mask_on_wrong_model_is_a_clear_error():
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    mask = _mask(0.1)
    check_fits(mask, model, "abc")
    with pytest.raises(MaskMismatch, match="base model"):
        check_fits(mask, model, "other")
    with pytest.raises(MaskMismatch, match="shape"):
        check_fits(mask, torch.nn.Sequential(torch.nn.Linear(32, 65), torch.nn.ReLU(), torch.nn.Linear(65, 8)))


@pytest.mark.parametrize("mode", ["relative", "absolute"])
def test_noise_touches_masked_entries_only_and_is_seeded(mode):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    mask = _mask(0.1)
    touched = add_noise(model, mask, NoiseConfig(sigma=0.5, mode=mode), seed=3)
    assert touched == mask.meta.selected
    for n, p in model.named_parameters():
        m = mask.tensors.get(n, torch.zeros_like(p, dtype=torch.bool))
        assert torch.equal(p[~m], before[n][~m])
        assert (p[m] != before[n][m]).all()
    again = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 8))
    again.load_state_dict(before)
    add_noise(again, mask, NoiseConfig(sigma=0.5, mode=mode), seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters(), strict=True))
