"""Record types and JSON Lines readers for forget/retain/holdout data.

Pure pydantic and the standard library (no torch), so the API process validates uploads with the very
same types the engine trains on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grin_engine.errors import DataError


class _Record(BaseModel):
    # Upstream rows carry extra columns (ids, sources); ignoring them keeps public dumps loadable.
    model_config = ConfigDict(extra="ignore", frozen=True)


class QARecord(_Record):
    question: str = Field(min_length=1)
    answer: str = Field(min_length=1)
    paraphrased_answer: str | None = None
    perturbed_answer: list[str] | None = None
    paraphrased_question: str | None = None


class TextRecord(_Record):
    text: str = Field(min_length=1)


class HarmfulRecord(_Record):
    prompt: str = Field(min_length=1)
    response: str = Field(min_length=1)


class MCQRecord(_Record):
    question: str = Field(min_length=1)
    choices: list[str] = Field(min_length=4, max_length=4)
    answer: int = Field(ge=0, le=3)


Record = QARecord | TextRecord | HarmfulRecord | MCQRecord
RecordKind = Literal["qa", "text", "harmful", "mcq", "wmdp", "pku"]

_MODELS: dict[str, type[_Record]] = {
    "qa": QARecord,
    "text": TextRecord,
    "harmful": HarmfulRecord,
    "mcq": MCQRecord,
    "wmdp": MCQRecord,  # WMDP rows are exactly {question, choices[4], answer}
}


class PKURow(_Record):
    """A PKU-SafeRLHF row: one prompt, two responses, each with its safety label (other columns ignored)."""

    prompt: str = Field(min_length=1)
    response_0: str
    response_1: str
    is_response_0_safe: bool
    is_response_1_safe: bool


def is_pku_row(row: Any) -> bool:
    """A row in PKU-SafeRLHF's paired format rather than a plain {prompt, response}."""
    return isinstance(row, dict) and "response" not in row and any(
        k in row for k in ("response_0", "response_1", "is_response_0_safe", "is_response_1_safe")
    )


def _pku_rows(row: dict[str, Any]) -> list[HarmfulRecord]:
    """PKU-SafeRLHF pairs two responses per prompt; only the unsafe ones are things to forget.
    A malformed row (no prompt, no safety label, ...) raises ValidationError naming the field."""
    pku = PKURow.model_validate(row)
    pairs = ((pku.response_0, pku.is_response_0_safe), (pku.response_1, pku.is_response_1_safe))
    return [HarmfulRecord(prompt=pku.prompt, response=r) for r, safe in pairs if not safe and r.strip()]


def parse_row(row: Any, kind: RecordKind) -> list[Record]:
    """Turn one decoded JSON value into records (PKU rows give 0-2; every other kind exactly 1)."""
    if kind == "text" and isinstance(row, str):
        return [TextRecord(text=row)]
    if not isinstance(row, dict):
        raise TypeError(f"expected a JSON object, got {type(row).__name__}")
    if kind == "pku" or (kind == "harmful" and is_pku_row(row)):
        return list(_pku_rows(row))
    if kind not in _MODELS:
        raise ValueError(f"unknown record kind {kind!r}")
    return [_MODELS[kind].model_validate(row)]  # type: ignore[list-item]


def load_records(path: str | Path, kind: RecordKind) -> list[Record]:
    """Read a JSON Lines file of one record kind. Blank lines are skipped; anything else malformed
    raises DataError naming the file and the 1-based line number."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    records: list[Record] = []
    with p.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                records.extend(parse_row(json.loads(line), kind))
            except json.JSONDecodeError as exc:
                raise DataError(f"{p}:{lineno}: invalid JSON ({exc.msg})") from None
            except ValidationError as exc:
                err = exc.errors()[0]
                where = ".".join(str(x) for x in err["loc"]) or "record"
                raise DataError(f"{p}:{lineno}: {where}: {err['msg']} (expected a {kind} record)") from None
            except (KeyError, TypeError, ValueError) as exc:
                raise DataError(f"{p}:{lineno}: {exc} (expected a {kind} record)") from None
    return records


def load_lines(path: str | Path) -> list[str]:
    """Plain-text list, one item per non-empty line (idontknow.jsonl holds bare strings or JSON strings)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"{p}: no such file")
    out = []
    for lineno, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        if s.startswith('"'):
            try:
                s = json.loads(s)
            except json.JSONDecodeError:
                raise DataError(f"{p}:{lineno}: invalid JSON string") from None
        out.append(s)
    return out


def record_kind(records: Sequence[Record]) -> str:
    """The kind shared by all records; mixing kinds in one set is a caller bug worth a clear error."""
    kinds = {type(r).__name__ for r in records}
    if len(kinds) > 1:
        raise DataError(f"records of mixed kinds: {sorted(kinds)}")
    return {"QARecord": "qa", "TextRecord": "text", "HarmfulRecord": "harmful", "MCQRecord": "mcq"}[
        kinds.pop() if kinds else "QARecord"
    ]
