"""Test sizes and the figures the reliability tests report.

`pytest tests/reliability` runs the scaled-down sizes (the whole suite in a few minutes on 2 cores);
`bench/reliability.py` sets GRIN_RELIABILITY_FULL=1 for the sizes of issue 9 and GRIN_RELIABILITY_RESULTS to a
folder where every test writes its figures as `<name>.json`, which the script turns into docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

FULL = os.environ.get("GRIN_RELIABILITY_FULL", "") == "1"


def size(scaled: T, full: T) -> T:
    """The scaled-down value in the test suite, the full one under bench/reliability.py."""
    return full if FULL else scaled


def record(name: str, **figures: Any) -> None:
    figures = {"full_size": FULL, **figures}
    print(f"[reliability] {name}: {json.dumps(figures, default=str)}")
    folder = os.environ.get("GRIN_RELIABILITY_RESULTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]
