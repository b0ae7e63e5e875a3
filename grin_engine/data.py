"""Records, JSON Lines readers, prompt formatting and tokenization with answer-only labels.

Every training and scoring path goes through `encode`, so the prompt/answer split (and therefore which
tokens carry loss) is defined in exactly one place.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from grin_engine.errors import DataError

# Records live in the torch-free `records` module (the API validates with them); re-exported here because
# every training path imports them together with `encode`.
from grin_engine.records import HarmfulRecord as HarmfulRecord
from grin_engine.records import MCQRecord as MCQRecord
from grin_engine.records import QARecord as QARecord
from grin_engine.records import Record as Record
from grin_engine.records import RecordKind as RecordKind
from grin_engine.records import TextRecord as TextRecord
from grin_engine.records import load_lines as load_lines
from grin_engine.records import load_records as load_records
from grin_engine.records import parse_row as parse_row
from grin_engine.records import record_kind as record_kind

IGNORE_INDEX = -100
DEFAULT_TEMPLATE = "Question: {question}\nAnswer: {answer}"
AUTO_TEMPLATE = "auto"


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
