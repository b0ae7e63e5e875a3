"""The grin-engine command line: the happy path on tiny data, and one-line errors with exit code 2."""

import json

import pytest

from grin_engine.cli import main


def last_line_error(err):
    """The error is one line (after any progress/info output) and never a traceback."""
    return err.strip().splitlines()[-1].startswith("error: ") and "Traceback" not in err


def run(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*args])
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


def test_build_localize_unlearn_and_errors(tiny_qa, tmp_path, capsys):
    forget, retain = tmp_path / "forget.jsonl", tmp_path / "retain.jsonl"
    forget.write_text("\n".join(r.model_dump_json() for r in tiny_qa.forget[:3]))
    retain.write_text("\n".join(r.model_dump_json() for r in tiny_qa.retain[:4]))

    code, out, _ = run(["build-model", str(tmp_path / "m"), "--text", str(forget), "--vocab-size", "300",
                        "--hidden", "32", "--layers", "1", "--heads", "2"], capsys)  # fmt: skip
    assert code == 0 and "model.safetensors" in json.loads(out)["files"]

    mask = tmp_path / "mask.safetensors"
    code, out, _ = run(["localize", str(tiny_qa.model_dir), "--forget", str(forget), "--retain", str(retain),
                        "--out", str(mask), "--k", "0.01", "--device", "cpu"],
                       capsys)  # fmt: skip
    assert code == 0 and json.loads(out)["selected"] > 0

    code, out, _ = run(["unlearn", str(tiny_qa.model_dir), "--forget", str(forget), "--retain", str(retain),
                        "--out", str(tmp_path / "u"), "--mask", str(mask), "--steps", "2", "--device", "cpu"],
                       capsys)  # fmt: skip
    assert code == 0 and json.loads(out)["steps"] == 2

    # A mask from another model: one line, exit 2.
    code, _, err = run(["unlearn", str(tmp_path / "m"), "--forget", str(forget), "--retain", str(retain),
                        "--out", str(tmp_path / "u2"), "--mask", str(mask), "--steps", "1", "--device", "cpu"],
                       capsys)  # fmt: skip
    assert code == 2 and last_line_error(err) and "mask does not fit" in err

    bad = tmp_path / "bad.jsonl"
    bad.write_text(forget.read_text().splitlines()[0] + "\n{oops\n")
    code, _, err = run(["localize", str(tiny_qa.model_dir), "--forget", str(bad), "--retain", str(retain),
                        "--out", str(tmp_path / "x.safetensors")], capsys)  # fmt: skip
    assert code == 2 and "bad.jsonl:2" in err and err.count("\n") == 1 and last_line_error(err)

    code, _, err = run(["localize", str(tmp_path / "missing"), "--forget", str(forget), "--retain", str(retain),
                        "--out", str(tmp_path / "x.safetensors")], capsys)  # fmt: skip
    assert code == 2 and "missing" in err and err.count("\n") == 1 and last_line_error(err)
