"""JSON from clients, with a bound on nesting.

`json.loads` recurses once per level: a body of 100,000 `[` raises RecursionError (not a JSONDecodeError),
which used to escape as a 500. Documents nested deeper than MAX_JSON_DEPTH are refused as a client error; no
record, request or metadata the service accepts needs more than a handful of levels.
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_DEPTH = 64


class JsonTooDeep(ValueError):
    def __init__(self) -> None:
        super().__init__(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")


def _depth_exceeds(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def loads(raw: str | bytes) -> Any:
    """`json.loads`, raising JsonTooDeep (a ValueError, not a JSONDecodeError) beyond MAX_JSON_DEPTH levels."""
    try:
        value = json.loads(raw)
    except RecursionError:
        raise JsonTooDeep() from None
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise JsonTooDeep()
    return value
