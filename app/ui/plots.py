"""The dashboard's plots of a job, as PNG data URIs (matplotlib object API on the Agg canvas: thread-safe)."""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

BLUE, RED, GREY = "#1f6fb2", "#c0392b", "#8c8c8c"
MAX_MODULES = 24


def _png(figure: Figure) -> str:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def loss_curves(progress_events: Sequence[dict[str, Any]]) -> str | None:
    """Losses logged with the job's `progress` events (every N fine-tune steps)."""
    series: dict[str, tuple[list[float], list[float]]] = {}
    for data in progress_events:
        step = _number(data.get("step"))
        losses = data.get("losses") or {}
        if step is None or not isinstance(losses, dict):
            continue
        for name, value in losses.items():
            number = _number(value)
            if number is not None:
                xs, ys = series.setdefault(str(name), ([], []))
                xs.append(step)
                ys.append(number)
    if not series:
        return None
    figure = Figure(figsize=(6.4, 3.0))
    axes = figure.add_subplot()
    for name, (xs, ys) in sorted(series.items()):
        color = RED if "forget" in name else BLUE if "retain" in name else GREY
        axes.plot(xs, ys, marker="o", markersize=3, label=name, color=color)
    axes.set_xlabel("fine-tune step")
    axes.set_ylabel("loss")
    axes.set_title("Loss during unlearning")
    axes.grid(alpha=0.3)
    axes.legend()
    return _png(figure)


def probabilities(metrics: dict[str, Any]) -> str | None:
    """Forget and retain answer probabilities before and after (the engine's own measurement)."""
    pairs = [("forget", metrics.get("forget_prob_before"), metrics.get("forget_prob_after")),
             ("retain", metrics.get("retain_prob_before"), metrics.get("retain_prob_after"))]
    rows = [(name, _number(before), _number(after)) for name, before, after in pairs]
    rows = [(name, b, a) for name, b, a in rows if b is not None and a is not None]
    if not rows:
        return None
    figure = Figure(figsize=(6.4, 3.0))
    axes = figure.add_subplot()
    positions = range(len(rows))
    axes.bar([p - 0.2 for p in positions], [r[1] for r in rows], width=0.4, color=GREY, label="before")
    axes.bar([p + 0.2 for p in positions], [r[2] for r in rows], width=0.4, color=BLUE, label="after")
    axes.set_xticks(list(positions), [f"{r[0]} set" for r in rows])
    axes.set_ylabel("mean answer probability")
    axes.set_title("What the model still knows")
    axes.grid(alpha=0.3, axis="y")
    axes.legend()
    return _png(figure)


def mask_density(summary: dict[str, Any]) -> str | None:
    """Share of each module's weights the mask selected (the densest modules first)."""
    density = summary.get("per_module_density") or summary.get("module_density") or summary.get("density")
    if not isinstance(density, dict):
        return None
    values = sorted(((str(k), v) for k, v in density.items() if _number(v) is not None), key=lambda kv: -kv[1])
    values = values[:MAX_MODULES]
    if not values:
        return None
    figure = Figure(figsize=(6.4, 0.8 + 0.22 * len(values)))
    axes = figure.add_subplot()
    names = [name if len(name) <= 40 else "..." + name[-37:] for name, _ in values]
    axes.barh(range(len(values)), [float(v) for _, v in values], color=RED)
    axes.set_yticks(range(len(values)), names, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("fraction of weights selected")
    axes.set_title("Where the mask is (per module)")
    axes.grid(alpha=0.3, axis="x")
    return _png(figure)
