"""Cursor pagination: opaque cursors that name the last item seen, so pages stay stable under inserts."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Sequence
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


def after_name(cursor: str | None) -> tuple[str, uuid.UUID] | None:
    """The (name, id) position of a by-name listing's cursor (models, data sets); None on the first page."""
    if not cursor:
        return None
    position = decode_cursor(cursor, {"name": str, "id": uuid.UUID})
    return position["name"], position["id"]


def page_by_name(rows: Sequence[Any], limit: int, out: Callable[[Any], ItemT]) -> Page[ItemT]:
    """A page from `limit + 1` rows ordered by (name, id): the extra row only says whether a next page exists."""
    next_cursor = (encode_cursor({"name": rows[limit - 1].name, "id": str(rows[limit - 1].id)})
                   if len(rows) > limit else None)
    return Page[ItemT](items=[out(row) for row in rows[:limit]], next_cursor=next_cursor)
