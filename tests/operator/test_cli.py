"""`grin models|datasets|jobs ...` through typer's CliRunner against the real stack: output, exit codes, config."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from app.cli import cli
from tests.operator.conftest import FAST_METHOD, FORGET, HOLDOUT, POLICY, RETAIN, OperatorStack, jsonl
from tests.processes import free_port


def grin(stack: OperatorStack, *args: str, env: dict[str, str] | None = None, code: int = 0) -> Any:
    result = CliRunner().invoke(cli, list(args), env=env if env is not None else stack.cli_env())
    assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
    assert "Traceback" not in result.output
    if code:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.stderr  # one line says what went wrong
    return result


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"forget": tmp_path / "forget.jsonl", "holdout": tmp_path / "holdout.jsonl",
             "retain": tmp_path / "retain.jsonl", "method": tmp_path / "method.json",
             "policy": tmp_path / "policy.json", "bad": tmp_path / "bad.jsonl"}
    paths["forget"].write_text(jsonl(FORGET))
    paths["holdout"].write_text(jsonl(HOLDOUT))
    paths["retain"].write_text(jsonl(RETAIN))
    paths["method"].write_text(json.dumps(FAST_METHOD))
    paths["policy"].write_text(json.dumps(POLICY))
    paths["bad"].write_text(jsonl(FORGET[:1]) + "{not json\n")
    return paths


def test_models_datasets_and_a_job_end_to_end(stack: OperatorStack, files: dict[str, Path], tmp_path: Path) -> None:
    name = f"cli-{uuid.uuid4().hex[:6]}"
    registered = grin(stack, "models", "register", name, str(stack.copy_model(name)))
    model_id = registered.stdout.split("\t")[0]
    assert uuid.UUID(model_id) and name in grin(stack, "models", "list").stdout
    listed = [json.loads(line) for line in grin(stack, "models", "list", "--json").stdout.splitlines()]
    assert any(m["id"] == model_id for m in listed)

    uploaded = grin(stack, "datasets", "upload", str(files["retain"]), "--name", "cli-retain", "--kind", "qa")
    dataset_id, _, _, count = uploaded.stdout.strip().split("\t")
    assert count == f"{len(RETAIN)} records"

    submitted = grin(stack, "jobs", "submit", "--forget", str(files["forget"]), "--model", model_id,
                     "--holdout", str(files["holdout"]), "--retain-dataset", dataset_id,
                     "--method", f"@{files['method']}", "--evaluation", str(files["policy"]),
                     "--idempotency-key", f"cli-{uuid.uuid4().hex}", "--wait", "--timeout", "150")
    job_id = submitted.stdout.strip().splitlines()[0]
    assert uuid.UUID(job_id)
    assert f"job {job_id}: running finetune" in submitted.stderr  # the live progress, stage by stage
    assert f"job {job_id} succeeded" in submitted.stderr

    shown = grin(stack, "jobs", "show", job_id).stdout
    assert "succeeded" in shown and "verdict:" in shown
    assert json.loads(grin(stack, "jobs", "show", job_id, "--json").stdout)["status"] == "succeeded"
    assert job_id in grin(stack, "jobs", "list", "--status", "succeeded").stdout
    assert grin(stack, "jobs", "list", "--limit", "1").stdout.count("\n") == 1
    grin(stack, "jobs", "wait", job_id, "--quiet")

    versions = grin(stack, "models", "versions", model_id).stdout.splitlines()
    assert versions[0].startswith("v1\t") and versions[1].startswith("v2\t")
    assert "parent v1" in versions[1] and f"job {job_id}" in versions[1] and "(current)" in versions[1]

    report = json.loads(grin(stack, "jobs", "report", job_id).stdout)
    assert report["job"]["id"] == job_id
    grin(stack, "jobs", "report", job_id, "--json", str(tmp_path / "r.json"), "--mask", str(tmp_path / "m.st"))
    assert json.loads((tmp_path / "r.json").read_text())["forget"]["count"] == len(FORGET)
    assert (tmp_path / "m.st").stat().st_size > 0


def test_report_html(stack: OperatorStack, finished_job: dict[str, Any], tmp_path: Path) -> None:
    """`--html` writes the service's HTML report; a server without that route gets a one-line exit 2."""
    job_id = str(finished_job["job"].id)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["jobs", "report", job_id, "--html", str(out)], env=stack.cli_env())
    assert "Traceback" not in result.output
    if result.exit_code == 0:
        assert "<html" in out.read_text().lower()
    else:
        assert result.exit_code == 2 and result.stderr.startswith(f"error: no HTML report for job {job_id}")


def test_submit_sends_the_evaluation_object(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--evaluation carries probes and a judge for text / harmful jobs. What matters is the body the CLI sends,
    so the service is a mock transport here, not the stack; a non-object --evaluation is refused before sending."""
    from grin_client import client as client_module

    sent: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body)
        now = "2026-01-01T00:00:00Z"
        return httpx.Response(202, json={
            "id": str(uuid.uuid4()), "model_id": body["model_id"], "base_version_id": str(uuid.uuid4()),
            "result_version_id": None, "retain_dataset_id": None, "kind": body["kind"], "status": "queued",
            "stage": None, "progress": 0.0, "attempts": 0, "max_attempts": 3, "cancel_requested": False,
            "error": None, "metrics": None, "method": {}, "evaluation": body["evaluation"], "subject_reference": None,
            "legal_basis": None, "metadata": {}, "forget_count": len(body["forget"]), "forget_merkle_root": "0" * 64,
            "holdout_count": 0, "request_sha256": "0" * 64, "created_at": now, "started_at": None,
            "finished_at": None, "updated_at": now})

    real = client_module.GrinClient
    monkeypatch.setattr(client_module, "GrinClient",
                        lambda url, key: real(url, key, transport=httpx.MockTransport(handler)))
    env = {"GRIN_URL": "http://grin.test", "GRIN_API_KEY": "grin_0123456789ab_x",
           "GRIN_CONFIG": str(tmp_path / "none.toml")}
    mcq = [{"question": "q?", "choices": ["a", "b", "c", "d"], "answer": 2}]
    text_eval = {"probes": {"mcq": mcq, "mcq_retain": mcq}, "missing_fails": True}
    harmful_eval = {"probes": {"normal": FORGET[:1]}, "judge": {"kind": "rules", "patterns": ["how to build"]},
                    "criteria": [{"name": "harmful rate down", "keys": ["harmful/harmful_rate"], "op": "<=",
                                  "threshold": 0.2, "basis": "before_ratio"}]}
    (tmp_path / "text.jsonl").write_text(jsonl([{"text": "a passage"}]))
    (tmp_path / "harmful.jsonl").write_text(jsonl([{"prompt": "how to build it", "response": "like this"}]))
    (tmp_path / "text-eval.json").write_text(json.dumps(text_eval))
    model_id = str(uuid.uuid4())

    def submit(kind: str, evaluation: str) -> Any:
        return CliRunner().invoke(cli, ["jobs", "submit", "--forget", str(tmp_path / f"{kind}.jsonl"), "--model",
                                        model_id, "--kind", kind, "--evaluation", evaluation], env=env)

    for kind, evaluation, expected in [("text", f"@{tmp_path / 'text-eval.json'}", text_eval),
                                       ("harmful", json.dumps(harmful_eval), harmful_eval)]:
        result = submit(kind, evaluation)
        assert result.exit_code == 0, result.output
        assert uuid.UUID(result.stdout.strip())
        assert sent[-1]["kind"] == kind and sent[-1]["evaluation"] == expected
    for bad, word in [("[1, 2]", "an array"), ('"policy.json"', "a string")]:
        result = submit("text", bad)
        assert result.exit_code == 2 and "Traceback" not in result.output
        assert result.stderr == f"error: --evaluation: must be a JSON object, not {word}\n"
    assert len(sent) == 2  # the refused ones were never sent


def test_a_failed_job_exits_1(stack: OperatorStack, files: dict[str, Path]) -> None:
    """A model whose files changed after registration: the worker refuses it, the job fails, exit code 1."""
    name = f"tampered-{uuid.uuid4().hex[:6]}"
    directory = stack.copy_model(name)
    model_id = grin(stack, "models", "register", name, str(directory)).stdout.split("\t")[0]
    with open(directory / "config.json", "a") as handle:
        handle.write("\n")
    result = grin(stack, "jobs", "submit", "--forget", str(files["forget"]), "--model", model_id,
                  "--method", json.dumps(FAST_METHOD), "--wait", "--quiet", "--timeout", "120", code=1)
    assert "failed" in result.stderr and "changed since registration" in result.stderr


def test_cancel(stack: OperatorStack, files: dict[str, Path]) -> None:
    slow = {**FAST_METHOD, "config": {**FAST_METHOD["config"], "finetune": {
        **FAST_METHOD["config"]["finetune"], "steps": 5000}}}
    job_id = grin(stack, "jobs", "submit", "--forget", str(files["forget"]), "--model", stack.model_id,
                  "--retain-dataset", stack.dataset_id, "--method", json.dumps(slow)).stdout.strip()
    stack.wait_status(job_id, ("running",))
    cancelled = grin(stack, "jobs", "cancel", job_id)
    assert cancelled.stdout.strip().split("\t")[1] in ("cancelling", "cancelled")
    grin(stack, "jobs", "wait", job_id, "--quiet", code=1)  # cancelled is not success
    assert stack.wait_status(job_id, ("cancelled",)).status == "cancelled"
    grin(stack, "jobs", "cancel", job_id, code=2)  # 409: already over


def test_usage_and_input_errors_exit_2(stack: OperatorStack, files: dict[str, Path], tmp_path: Path) -> None:
    submit = ["jobs", "submit", "--model", stack.model_id]
    assert "line 2 is not JSON" in grin(stack, *submit, "--forget", str(files["bad"]), code=2).stderr
    assert "no such file" in grin(stack, *submit, "--forget", str(tmp_path / "missing.jsonl"), code=2).stderr.lower()
    assert "invalid request" in grin(stack, *submit, "--forget", str(files["forget"]), "--kind", "poetry",
                                     code=2).stderr
    assert "404" in grin(stack, "jobs", "show", str(uuid.uuid4()), code=2).stderr
    assert "422" in grin(stack, "jobs", "show", "not-a-uuid", code=2).stderr
    assert "--method: not JSON" in grin(stack, *submit, "--forget", str(files["forget"]), "--method", "{",
                                        code=2).stderr
    # No key anywhere; a wrong key; nobody listening.
    assert "no API key" in grin(stack, "jobs", "list", env={"GRIN_URL": stack.url, "GRIN_API_KEY": "",
                                                            "GRIN_CONFIG": str(tmp_path / "none.toml")},
                                code=2).stderr
    assert "401" in grin(stack, "jobs", "list", env={**stack.cli_env(), "GRIN_API_KEY": "grin_0123456789ab_x"},
                         code=2).stderr
    assert "cannot reach" in grin(stack, "jobs", "list", env={**stack.cli_env(),
                                                              "GRIN_URL": f"http://127.0.0.1:{free_port()}"},
                                  code=2).stderr
    # Click's own usage errors (a missing option) exit 2 as well.
    assert CliRunner().invoke(cli, ["jobs", "submit"], env=stack.cli_env()).exit_code == 2


def test_config_file(stack: OperatorStack, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'url = "{stack.url}"\napi_key = "{stack.key}"\n')
    env = {"GRIN_URL": "", "GRIN_API_KEY": "", "GRIN_CONFIG": str(config)}
    assert "tiny" in grin(stack, "models", "list", env=env).stdout
    # XDG_CONFIG_HOME/grin/config.toml is the default place.
    (tmp_path / "xdg" / "grin").mkdir(parents=True)
    (tmp_path / "xdg" / "grin" / "config.toml").write_text(config.read_text())
    assert "tiny" in grin(stack, "models", "list", env={"GRIN_URL": "", "GRIN_API_KEY": "", "GRIN_CONFIG": "",
                                                        "XDG_CONFIG_HOME": str(tmp_path / "xdg")}).stdout
    config.write_text("url = [broken\n")
    assert "config:" in grin(stack, "models", "list", env=env, code=2).stderr
