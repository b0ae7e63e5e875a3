"""`grin-engine` command line: build-model, finetune, localize, unlearn.

User errors (bad path, malformed JSONL line, mask that does not fit, invalid config) print one line on
stderr and exit with code 2, without a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
import typer
from pydantic import ValidationError

from grin_engine.errors import Cancelled, EngineError
from grin_engine.evaluation.cli import evaluate_command

app = typer.Typer(add_completion=False, no_args_is_help=True, help="GRIN unlearning engine.")


def _quiet_transformers() -> None:
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()


def _records(path: Path | None, kind: str) -> list[Any]:
    from grin_engine.data import load_records

    return load_records(path, kind) if path else []  # type: ignore[arg-type]


@app.command("build-model")
def build_model(
    out: Path = typer.Argument(..., help="output model directory"),
    text: list[Path] = typer.Option(..., "--text", help="text or JSONL files to train the tokenizer on"),
    arch: str = typer.Option("gpt2", help="gpt2 or llama"),
    vocab_size: int = 512,
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    max_positions: int = 512,
    seed: int = 0,
) -> None:
    """Build a small random model with a locally trained byte-level BPE tokenizer."""
    from grin_engine.build import build_tiny_model, read_texts

    files = build_tiny_model(
        out, read_texts(text), arch=arch, vocab_size=vocab_size, hidden=hidden, layers=layers,  # type: ignore[arg-type]
        heads=heads, max_positions=max_positions, seed=seed,
    )  # fmt: skip
    typer.echo(json.dumps({"model_dir": str(out), "files": files}, indent=2))


@app.command("finetune")
def finetune(
    model_dir: Path,
    data: list[Path] = typer.Argument(..., help="QA JSONL files to teach"),
    out: Path = typer.Option(..., "--out"),
    kind: str = "qa",
    epochs: float = 10.0,
    lr: float = 3e-3,
    batch_size: int = 8,
    max_length: int = 256,
    seed: int = 0,
    device: str = "auto",
) -> None:
    """Teach a model a QA set (makes the target model and the retain-only reference model)."""
    from tqdm import tqdm

    from grin_engine.teach import teach

    records = [r for p in data for r in _records(p, kind)]
    bar = tqdm(desc="finetune", unit="step", file=sys.stderr)

    def progress(step: int, total: int, loss: float) -> None:
        bar.total = total
        bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
        bar.update(1)

    res = teach(model_dir, records, out, epochs, lr, batch_size, max_length, seed, device=device, on_step=progress)
    bar.close()
    if res.truncated:
        typer.echo(f"warning: {res.truncated} records truncated to {max_length} tokens", err=True)
    typer.echo(json.dumps({"model_dir": res.model_dir, "files": res.files, "final_loss": res.losses[-1]}, indent=2))


def _config(config: Path | None, preset: str, overrides: dict[str, dict[str, Any]]) -> Any:
    from grin_engine.config import UnlearnConfig
    from grin_engine.config import preset as make_preset

    base = make_preset(preset)  # type: ignore[arg-type]
    data = base.model_dump()
    if config is not None:
        if not config.is_file():
            raise EngineError(f"{config}: no such config file")
        try:
            data = {**data, **json.loads(config.read_text())}
        except json.JSONDecodeError as exc:
            raise EngineError(f"{config}: invalid JSON ({exc.msg}, line {exc.lineno})") from None
    for section, values in overrides.items():
        data[section] = {**data[section], **{k: v for k, v in values.items() if v is not None}}
    return UnlearnConfig.model_validate(data)


@app.command("localize")
def localize_cmd(
    model_dir: Path,
    forget: Path = typer.Option(..., "--forget"),
    retain: Path = typer.Option(..., "--retain"),
    out: Path = typer.Option(..., "--out", help="mask file to write (safetensors)"),
    kind: str = "qa",
    method: str = "grin",
    k: float = 0.05,
    aggregation: str = "sum_then_abs",
    scope: str = "global",
    max_length: int = 256,
    seed: int = 0,
    device: str = "auto",
) -> None:
    """Compute and save a GRIN (or salun/random/none) mask."""
    from grin_engine.config import LocalizeConfig
    from grin_engine.data import encode
    from grin_engine.localize import localize
    from grin_engine.masks import save_mask
    from grin_engine.modeling import load_model, weights_hash

    cfg = LocalizeConfig.model_validate({"method": method, "k": k, "aggregation": aggregation, "scope": scope})
    f_records, r_records = _records(forget, kind), _records(retain, kind)
    model, tok = load_model(model_dir, device=device)
    mask = localize(model, encode(tok, f_records, max_length), encode(tok, r_records, max_length), cfg, seed,
                    weights_hash(model_dir))  # fmt: skip
    size = save_mask(mask, out)
    typer.echo(json.dumps({"mask": str(out), "bytes": size, **mask.summary()}, indent=2))


@app.command("unlearn")
def unlearn_cmd(
    model_dir: Path,
    forget: Path = typer.Option(..., "--forget"),
    retain: Path = typer.Option(..., "--retain"),
    out: Path = typer.Option(..., "--out"),
    holdout: Path | None = typer.Option(None, "--holdout"),
    mask: Path | None = typer.Option(None, "--mask", help="use this precomputed mask instead of localizing"),
    kind: str = "qa",
    config: Path | None = typer.Option(None, "--config", help="JSON UnlearnConfig (overrides the preset)"),
    preset: str = typer.Option("grin", help="grin or baseline"),
    objective: str | None = None,
    steps: int | None = None,
    lr: float | None = None,
    k: float | None = None,
    sigma: float | None = None,
    stop: str | None = None,
    seed: int | None = None,
    device: str | None = None,
) -> None:
    """Run localize -> noise -> masked fine-tune and save the unlearned model."""
    from tqdm import tqdm

    from grin_engine.events import EngineEvent
    from grin_engine.pipeline import unlearn

    cfg = _config(
        config, preset,
        {"finetune": {"objective": objective, "steps": steps, "lr": lr, "stop": stop},
         "localize": {"k": k}, "noise": {"sigma": sigma}},
    )  # fmt: skip
    top = {"seed": seed, "device": device}
    cfg = cfg.model_copy(update={k_: v for k_, v in top.items() if v is not None})
    bars: list[Any] = []  # created at the fine-tune stage, so early errors stay a single stderr line

    def on_event(ev: EngineEvent) -> None:
        if ev.type == "stage" and ev.stage == "finetune":
            bars.append(tqdm(total=ev.total_steps, initial=ev.step or 0, desc="finetune", unit="step", file=sys.stderr))
        elif ev.type == "step" and bars:
            bars[0].set_postfix({k_: f"{v:.3f}" for k_, v in ev.losses.items()}, refresh=False)
            bars[0].update(1)
        elif ev.type == "info":
            tqdm.write(f"[{ev.stage}] {ev.message}", file=sys.stderr)

    res = unlearn(
        model_dir, _records(forget, kind), _records(retain, kind), cfg, out,
        holdout=_records(holdout, kind) or None, on_event=on_event, mask=mask,
    )  # fmt: skip
    for bar in bars:
        bar.close()
    typer.echo(res.model_dump_json(indent=2, exclude={"curves"}))


app.command("evaluate")(evaluate_command)


def main(argv: list[str] | None = None) -> None:
    _quiet_transformers()
    try:
        app(args=argv, standalone_mode=False)
    except EngineError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ValidationError as exc:
        err = exc.errors()[0]
        typer.echo(f"error: invalid config: {'.'.join(map(str, err['loc']))}: {err['msg']}", err=True)
        sys.exit(2)
    except Cancelled as exc:
        typer.echo(f"cancelled: {exc}", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(1)


if __name__ == "__main__":
    main()
