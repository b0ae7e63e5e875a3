"""Load evaluation splits from files: the TOFU splits by name from a data directory, MCQ and harmful
sets from JSON Lines files."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from grin_engine.errors import DataError
from grin_engine.evaluation.config import EvalSplits
from grin_engine.records import HarmfulRecord, MCQRecord, QARecord, load_records

TOFU_UTILITY_FILES = {
    "retain": "retain_perturbed",
    "real_authors": "real_authors_perturbed",
    "world_facts": "world_facts_perturbed",
}


def _resolve(data_dir: Path, name: str) -> Path:
    """A split name ("forget05" -> forget05_perturbed.json, which carries the perturbed answers the
    truth ratio needs), a file name in data_dir, or a path."""
    candidates = [data_dir / f"{name}_perturbed.json", data_dir / f"{name}.json", data_dir / name, Path(name)]
    for c in candidates:
        if c.is_file():
            return c
    raise DataError(f"{name}: no such split in {data_dir} (tried {', '.join(str(c) for c in candidates)})")


def _qa(path: Path) -> list[QARecord]:
    return [r for r in load_records(path, "qa") if isinstance(r, QARecord)]


def load_tofu_splits(
    data_dir: str | Path,
    forget: str = "forget05",
    holdout: str | None = None,
    utility: bool = True,
) -> EvalSplits:
    """TOFU splits: `forget` (forget01/05/10 or a file), the three utility sets when `utility`, and an
    optional `holdout` of the same kind the model never saw (membership attacks, holdout FQ)."""
    root = Path(data_dir)
    splits = EvalSplits(forget=_qa(_resolve(root, forget)), holdout=_qa(_resolve(root, holdout)) if holdout else None)
    if utility:
        splits = splits.model_copy(update={k: _qa(_resolve(root, v)) for k, v in TOFU_UTILITY_FILES.items()})
    return splits


def load_split_file(path: str | Path, kind: Literal["mcq", "harmful"]) -> EvalSplits:
    """An MCQ (WMDP format) or harmful-prompt (PKU-SafeRLHF or {prompt, response}) file as splits."""
    p = Path(path)
    if kind == "mcq":
        return EvalSplits(mcq=[r for r in load_records(p, "mcq") if isinstance(r, MCQRecord)])
    try:
        records = load_records(p, "pku")
    except DataError:  # plain {prompt, response} rows rather than PKU's paired format
        records = load_records(p, "harmful")
    return EvalSplits(harmful=[r for r in records if isinstance(r, HarmfulRecord)])
