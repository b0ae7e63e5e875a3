"""Progress events handed to the caller's on_event callback (the worker turns them into job events)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, ConfigDict

Stage = Literal["load", "localize", "noise", "finetune", "save", "done"]


class EngineEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["stage", "step", "info"]
    stage: Stage
    step: int | None = None
    total_steps: int | None = None
    losses: dict[str, float] = {}
    message: str = ""


EventSink = Callable[[EngineEvent], None]


def emit(sink: EventSink | None, event: EngineEvent) -> None:
    if sink is not None:
        sink(event)
