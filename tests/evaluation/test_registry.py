from __future__ import annotations

import pytest

from grin_engine.errors import DataError, EngineError
from grin_engine.evaluation.config import DEFAULT_METRICS
from grin_engine.evaluation.registry import get_metric, metric_names, register
from grin_engine.evaluation.suites import load_split_file, load_tofu_splits
from tests.evaluation.conftest import TOFU


def test_every_default_metric_is_registered() -> None:
    names = set(metric_names())
    assert {m for suite in DEFAULT_METRICS.values() for m in suite} <= names
    assert {"relearning", "quantization"} <= names
    with pytest.raises(EngineError, match="unknown metric 'nope'"):
        get_metric("nope")
    with pytest.raises(ValueError, match="registered twice"):
        register("probability")(get_metric("probability"))


def test_load_tofu_splits_by_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    splits = load_tofu_splits(TOFU, "forget01", holdout="forget05")
    assert splits.present() == {"forget": 40, "retain": 400, "real_authors": 100, "world_facts": 117, "holdout": 200}
    assert splits.forget and splits.forget[0].perturbed_answer  # the _perturbed file is preferred
    assert load_tofu_splits(TOFU, "forget01", utility=False).present() == {"forget": 40}
    with pytest.raises(DataError, match="no such split"):
        load_tofu_splits(TOFU, "forget99")
    mcq = tmp_path / "mcq.jsonl"
    mcq.write_text('{"question": "q", "choices": ["a", "b", "c", "d"], "answer": 2}\n')
    assert load_split_file(mcq, "mcq").present() == {"mcq": 1}
    pku = tmp_path / "pku.jsonl"
    pku.write_text('{"prompt": "p", "response_0": "r0", "response_1": "r1", '
                   '"is_response_0_safe": false, "is_response_1_safe": true}\n')
    assert load_split_file(pku, "harmful").present() == {"harmful": 1}
    plain = tmp_path / "harmful.jsonl"
    plain.write_text('{"prompt": "p", "response": "r"}\n')
    assert load_split_file(plain, "harmful").present() == {"harmful": 1}
