"""Records, JSON Lines readers, prompt formatting and tokenization with answer-only labels.

Every training and scoring path goes through `encode`, so the prompt/answer split (and therefore which
tokens carry loss) is defined in exactly one place.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from grin_engine.errors import DataError

IGNORE_INDEX = -100
DEFAULT_TEMPLATE = "Question: {question}\nAnswer: {answer}"
AUTO_TEMPLATE = "auto"


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


def _pku_rows(row: dict[str, Any]) -> list[HarmfulRecord]:
    """PKU-SafeRLHF pairs two responses per prompt; only the unsafe ones are things to forget."""
    out = []
    for i in (0, 1):
        if row.get(f"is_response_{i}_safe") is False:
            out.append(HarmfulRecord(prompt=row["prompt"], response=row[f"response_{i}"]))
        elif f"is_response_{i}_safe" not in row:
            raise KeyError(f"is_response_{i}_safe")
    return out


def parse_row(row: Any, kind: RecordKind) -> list[Record]:
    """Turn one decoded JSON value into records (PKU rows give 0-2; every other kind exactly 1)."""
    if kind == "text" and isinstance(row, str):
        return [TextRecord(text=row)]
    if not isinstance(row, dict):
        raise TypeError(f"expected a JSON object, got {type(row).__name__}")
    if kind == "pku":
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


def prompt_and_target(record: Record) -> tuple[str | None, str]:
    """(prompt, target) for a record; text passages have no prompt and carry loss on every token."""
    if isinstance(record, QARecord):
        return record.question, record.answer
    if isinstance(record, HarmfulRecord):
        return record.prompt, record.response
    if isinstance(record, MCQRecord):
        letters = "ABCD"
        body = "\n".join(f"{letters[i]}. {c}" for i, c in enumerate(record.choices))
        return f"{record.question}\n{body}", f"{letters[record.answer]}. {record.choices[record.answer]}"
    return None, record.text


def has_chat_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def format_prompt(tokenizer: Any, question: str, template: str | None = AUTO_TEMPLATE) -> tuple[str, str]:
    """Render the prompt prefix for `question`. Returns (prefix, lead) where `lead` is whitespace that
    belongs in front of the answer: byte-level BPE merges a space with the following word, so
    "Answer: " + "Paris" is tokenized as "Answer:" + " Paris", the same split as in the joined text.

    template: "auto"/None -> the tokenizer's chat template when it has one, else DEFAULT_TEMPLATE;
    otherwise a string with {question} and a trailing {answer} placeholder.
    """
    if template in (None, AUTO_TEMPLATE):
        if has_chat_template(tokenizer):
            prefix = tokenizer.apply_chat_template(
                [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
            )
            return str(prefix), ""
        template = DEFAULT_TEMPLATE
    if "{question}" not in template or not template.endswith("{answer}"):
        raise DataError("prompt template must contain {question} and end with {answer}")
    prefix = template[: -len("{answer}")].replace("{question}", question)
    stripped = prefix.rstrip(" ")
    return stripped, prefix[len(stripped) :]


@dataclass(frozen=True)
class Batch:
    """Right-padded token batch; labels are IGNORE_INDEX on prompt and padding positions."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.input_ids.shape[0])

    def to(self, device: torch.device | str) -> Batch:
        return Batch(self.input_ids.to(device), self.attention_mask.to(device), self.labels.to(device))

    def select(self, index: slice | torch.Tensor | list[int]) -> Batch:
        """Rows `index`, with the all-padding columns at the end trimmed off (saves compute)."""
        ids, att, lab = self.input_ids[index], self.attention_mask[index], self.labels[index]
        width = int(att.sum(dim=1).max().item()) if len(ids) else 0
        return Batch(ids[:, :width], att[:, :width], lab[:, :width])


@dataclass(frozen=True)
class Encoded(Batch):
    """A whole encoded record set plus what truncation did to it (reported, never silent)."""

    truncated: tuple[int, ...] = field(default=())

    @property
    def n_truncated(self) -> int:
        return len(self.truncated)


def _special_id(tokenizer: Any, name: str) -> int | None:
    value = getattr(tokenizer, f"{name}_token_id", None)
    return int(value) if value is not None else None


def encode_pair(
    tokenizer: Any, prompt: str | None, target: str, max_length: int, template: str | None = AUTO_TEMPLATE
) -> tuple[list[int], list[int], bool]:
    """Token ids and labels for one (prompt, target). Returns (ids, labels, truncated).

    The target ends with EOS so a taught model learns to stop. When too long, the target is cut from
    the right; a prompt that alone fills max_length keeps its last tokens and one target token.
    """
    bos = _special_id(tokenizer, "bos")
    eos = _special_id(tokenizer, "eos")
    prompt_ids: list[int] = []
    lead = ""
    use_chat = prompt is not None and template in (None, AUTO_TEMPLATE) and has_chat_template(tokenizer)
    if bos is not None and not use_chat:  # chat templates write their own BOS text
        prompt_ids.append(bos)
    if prompt is not None:
        prefix, lead = format_prompt(tokenizer, prompt, template)
        prompt_ids += tokenizer.encode(prefix, add_special_tokens=False)
    target_ids = tokenizer.encode(lead + target, add_special_tokens=False)
    if eos is not None:
        target_ids.append(eos)
    truncated = len(prompt_ids) + len(target_ids) > max_length
    if truncated:
        room = max(max_length - len(prompt_ids), 1)
        target_ids = target_ids[:room]
        prompt_ids = prompt_ids[len(prompt_ids) - (max_length - len(target_ids)) :]
    ids = prompt_ids + target_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + target_ids
    return ids, labels, truncated


def encode(
    tokenizer: Any,
    records: Sequence[Record] | Sequence[tuple[str | None, str]],
    max_length: int = 256,
    template: str | None = AUTO_TEMPLATE,
) -> Encoded:
    """Encode records (or explicit (prompt, target) pairs) into one right-padded Encoded batch."""
    if max_length < 2:
        raise DataError("max_length must be at least 2")
    pad = _special_id(tokenizer, "pad")
    if pad is None:
        pad = _special_id(tokenizer, "eos") or 0
    rows, truncated = [], []
    for i, rec in enumerate(records):
        prompt, target = rec if isinstance(rec, tuple) else prompt_and_target(rec)
        ids, labels, cut = encode_pair(tokenizer, prompt, target, max_length, template)
        rows.append((ids, labels))
        if cut:
            truncated.append(i)
    width = max((len(ids) for ids, _ in rows), default=0)
    n = len(rows)
    input_ids = torch.full((n, width), pad, dtype=torch.long)
    attention = torch.zeros((n, width), dtype=torch.long)
    labels_t = torch.full((n, width), IGNORE_INDEX, dtype=torch.long)
    for i, (ids, labels) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[i, : len(ids)] = 1
        labels_t[i, : len(labels)] = torch.tensor(labels, dtype=torch.long)
    return Encoded(input_ids, attention, labels_t, truncated=tuple(truncated))


def batches(data: Batch, batch_size: int, order: torch.Tensor | None = None) -> Iterator[Batch]:
    """Consecutive mini-batches (in `order` when given), each trimmed to its longest row."""
    n = len(data)
    idx = order if order is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        yield data.select(idx[start : start + batch_size])
