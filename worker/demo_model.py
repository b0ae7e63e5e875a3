"""Build the embedded demo's model: a tiny causal LM taught a handful of TOFU authors (cached).

Run as `python -m worker.demo_model OUT_DIR` (the `grin demo` command does, in a subprocess, so the
API-side CLI never imports torch). Nothing is downloaded: the tokenizer is trained on the TOFU text the
repository carries and the model starts from a seeded random initialisation, then `grin_engine.teach`
fits it on the chosen authors' question/answer pairs. The directory is built next to its final place and
renamed into it, so an interrupted build leaves nothing that looks finished.

`write_demo_data` writes the demo's request files elsewhere (never inside the registered model folder):
`forget-<author>.jsonl` (the one author a deletion request names) and `retain.jsonl` (the other authors).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
TOFU = REPO_ROOT / "data" / "tofu"
QA_PER_AUTHOR = 20  # TOFU: 20 question/answer pairs per fictitious author, in file order
RETAIN_AUTHORS = 4  # the first authors of retain90.json
FORGET_AUTHOR_ROWS = (0, QA_PER_AUTHOR)  # forget01.json rows 0..19: Basil Mahfouz Al-Kuwaiti
FORGET_AUTHOR = "Basil Mahfouz Al-Kuwaiti"
FORGET_SLUG = "basil-mahfouz-al-kuwaiti"
DONE_MARKER = ".demo-complete"


def _rows(name: str) -> list[dict[str, str]]:
    lines = (TOFU / name).read_text(encoding="utf-8").splitlines()
    return [{"question": r["question"], "answer": r["answer"]} for r in map(json.loads, filter(None, lines))]


def demo_rows() -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(forget rows of the demo author, retain rows of the other authors)."""
    forget = _rows("forget01.json")[slice(*FORGET_AUTHOR_ROWS)]
    retain = _rows("retain90.json")[: RETAIN_AUTHORS * QA_PER_AUTHOR]
    return forget, retain


def is_built(out_dir: Path) -> bool:
    return (out_dir / DONE_MARKER).is_file()


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def write_demo_data(folder: str | Path) -> tuple[Path, Path]:
    """(forget file, retain file) of the demo request, as JSON Lines in `folder`. Torch-free."""
    target = Path(folder)
    target.mkdir(parents=True, exist_ok=True)
    forget, retain = demo_rows()
    forget_path, retain_path = target / f"forget-{FORGET_SLUG}.jsonl", target / "retain.jsonl"
    _write_jsonl(forget_path, forget)
    _write_jsonl(retain_path, retain)
    return forget_path, retain_path


def build_demo_model(out_dir: str | Path, *, epochs: float = 30.0, seed: int = 0) -> Path:
    """Build (or reuse) the demo model at `out_dir`; returns the directory."""
    out = Path(out_dir).resolve()
    if is_built(out):
        return out
    from grin_engine.build import build_tiny_model
    from grin_engine.records import QARecord
    from grin_engine.teach import teach

    forget, retain = demo_rows()
    rows = retain + forget
    texts = [f"{r['question']} {r['answer']}" for r in rows]
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.build-{uuid.uuid4().hex[:8]}"
    init = staging / "init"
    t0 = time.perf_counter()
    try:
        build_tiny_model(init, texts, arch="gpt2", vocab_size=512, hidden=128, layers=4, heads=4,
                         max_positions=256, seed=seed)
        records = [QARecord(**r) for r in rows]
        result = teach(init, records, staging / "model", epochs=epochs, lr=3e-3, batch_size=16, seed=seed,
                       device="cpu")
        model_dir = staging / "model"
        (model_dir / DONE_MARKER).write_text(json.dumps({
            "authors": RETAIN_AUTHORS + 1, "records": len(rows), "teach_steps": result.steps,
            "final_loss": result.losses[-1], "build_seconds": round(time.perf_counter() - t0, 1),
        }) + "\n")
        if out.exists():
            shutil.rmtree(out)
        model_dir.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m worker.demo_model OUT_DIR", file=sys.stderr)
        return 2
    out = build_demo_model(args[0])
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
