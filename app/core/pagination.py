"""Cursor pagination: opaque cursors that name the last item seen, so pages stay stable under inserts."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from app.core.problems import ProblemError

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200

ItemT = TypeVar("ItemT")


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_cursor: str | None = None  # pass as `cursor` to get the next page; null on the last page


def encode_cursor(position: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, fields: dict[str, Callable[[Any], Any]]) -> dict[str, Any]:
    """The position `encode_cursor` wrote, each field parsed by its callable; 422 for anything else."""
    try:
        position = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
        return {name: parse(position[name]) for name, parse in fields.items()}
    except Exception as exc:  # any malformed cursor is the client's error, whatever the parser raised
        raise ProblemError(422, "Unprocessable Content", "cursor: not a cursor this API issued",
                           errors=[{"loc": "query.cursor", "msg": "invalid cursor", "type": "value_error"}]) from exc
