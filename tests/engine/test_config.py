"""The defaults chosen from the TOFU benchmark, and the baseline preset's own learning rate."""

from app.jobs.schemas import MethodSpec
from grin_engine.config import FULL_PARAMETER_LR, MASKED_LR, UnlearnConfig


def test_grin_default_is_the_benchmarks_choice() -> None:
    cfg = UnlearnConfig.grin()
    assert (cfg.finetune.objective, cfg.finetune.lr) == ("simnpo", MASKED_LR) == ("simnpo", 1e-2)
    assert (cfg.localize.method, cfg.localize.k, cfg.localize.eps_rel) == ("grin", 0.05, 1.0)
    assert (cfg.localize.scope, cfg.localize.forget_sample, cfg.noise.sigma) == ("per_module", None, 0.1)


def test_baseline_runs_all_weights_at_the_full_parameter_rate_unless_told() -> None:
    cfg = UnlearnConfig.baseline()
    assert (cfg.localize.method, cfg.noise.sigma, cfg.finetune.objective) == ("none", 0.0, "simnpo")
    assert cfg.finetune.lr == FULL_PARAMETER_LR == 1e-3  # a tenth of the masked rate: Adam moves every entry
    assert UnlearnConfig.baseline("graddiff", finetune={"lr": 5e-4, "steps": 7}).finetune.lr == 5e-4
    # Through the API's method object: the rate a client gave is kept, an absent one is the full-parameter one.
    assert MethodSpec(preset="baseline").resolve().finetune.lr == FULL_PARAMETER_LR
    given = MethodSpec.model_validate({"preset": "baseline", "config": {"finetune": {"lr": 2e-4, "objective": "npo"}}})
    assert (given.resolve().finetune.lr, given.resolve().finetune.objective) == (2e-4, "npo")
    assert MethodSpec().resolve().finetune.lr == MASKED_LR
