"""The audit report: schema, HTML (verdict first, embedded PNG plots, escaped text), and its signature."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import ValidationError

from app.compliance import signing
from app.compliance.issue import issue_report
from app.compliance.report_html import render_report_html
from app.compliance.report_schema import LIMITATIONS, AuditReport, report_json_bytes
from tests.compliance.sample_report import sample_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Outline(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[str] = []
        self.images: list[dict[str, str | None]] = []
        self.resources: list[str] = []
        self.scripts = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if attributes.get("id"):
            self.ids.append(str(attributes["id"]))
        if tag == "img":
            self.images.append(attributes)
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            if attributes.get(name) and not str(attributes[name]).startswith("data:"):
                self.resources.append(str(attributes[name]))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_schema_validates_and_serialises_canonically() -> None:
    report = AuditReport.model_validate(sample_report())
    assert report.limitations == LIMITATIONS
    first = report_json_bytes(report)
    assert first == report_json_bytes(AuditReport.model_validate(json.loads(first)))  # round trip, same bytes
    assert json.loads(first)["schema_version"] == "1.0"
    assert [row.key for row in report.evaluation.metrics][:3] == ["forget_quality", "model_utility",
                                                                   "quantization_int4/keyword_accuracy"]
    utility = report.evaluation.metrics[1]
    assert (utility.before, utility.after, utility.threshold, utility.op, utility.passed) == (0.62, 0.60, 0.558,
                                                                                              ">=", True)
    assert len(report.evaluation.truth_ratios.reference or []) == 8

    for change, message in [(lambda r: r.update(limitations="all good"), "limitations statement is fixed"),
                            (lambda r: r["forget_data"].update(record_count=9), "record_count 9"),
                            (lambda r: r["job"].update(record_text="secret"), "Extra inputs"),
                            (lambda r: r.update(schema_version="2.0"), "schema_version")]:
        data = sample_report()
        change(data)
        with pytest.raises(ValidationError, match=message):
            AuditReport.model_validate(data)


def test_html_puts_the_verdict_first_and_embeds_every_plot_as_png() -> None:
    html = render_report_html(sample_report())
    outline = _Outline()
    outline.feed(html)
    assert outline.ids.index("verdict") < outline.ids.index("metrics") < outline.ids.index("plot-loss")
    assert outline.ids[0] == "verdict"
    body_text = " ".join(" ".join(outline.text).split())
    assert body_text.index("PASSED") < body_text.index("Measurements before and after")
    assert [i for i in outline.ids if i.startswith("plot-")] == ["plot-loss", "plot-truth-ratio", "plot-mask",
                                                                 "plot-probes"]
    assert len(outline.images) == 4
    for image in outline.images:
        src = str(image["src"])
        assert src.startswith("data:image/png;base64,")
        png = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert png.startswith(PNG_MAGIC) and len(png) > 2000
    assert outline.resources == [] and outline.scripts == 0  # self-contained, nothing fetched, no script
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert LIMITATIONS.split(".")[0] in body_text
    assert "GDPR Art. 17(1)(a)" in body_text and "e" * 64 in body_text


def test_failed_verdict_and_missing_plot_data_render() -> None:
    data = sample_report()
    data["verdict"]["passed"] = False
    data["verdict"]["criteria"][0].update(passed=False, reason="forget quality: 0.01 < 0.05")
    data["training"]["loss_curves"] = {}
    data["mask"] = None
    html = render_report_html(data)
    outline = _Outline()
    outline.feed(html)
    text = " ".join(" ".join(outline.text).split())
    assert "FAILED" in text and "did not meet the required checks: forget quality" in text
    assert len(outline.images) == 2 and "Loss during unlearning: no data." in text


def test_report_and_checkpoint_are_signed_and_verified_end_to_end(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    report = AuditReport.model_validate(sample_report())
    out = tmp_path / "job"
    (out / "model").mkdir(parents=True)
    (out / "model" / "config.json").write_text("{}")
    (out / "model" / "model.safetensors").write_bytes(b"\x00" * 512)
    (out / "report.json").write_bytes(report_json_bytes(report))
    statement = signing.build_statement((out / "report.json").read_bytes(), signing.hash_tree(out / "model"),
                                        {"job_id": report.job.job_id, "verdict_passed": report.verdict.passed,
                                         "schema_version": report.schema_version})
    (out / "report.dsse.json").write_bytes(signing.envelope_bytes(signing.sign_statement(statement, key)))
    (out / "report.html").write_text(render_report_html(report))
    result = signing.verify_envelope((out / "report.dsse.json").read_bytes(), key.public_key(), artifacts_dir=out)
    assert result.subjects_checked == ["report.json", "model/config.json", "model/model.safetensors"]


def test_issue_report_signs_json_and_checkpoint_and_grin_verify_report_accepts_it(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from app.compliance.cli import compliance_cli
    from app.compliance.settings import ComplianceSettings
    from app.core.config import Settings

    settings = Settings(data_dir=tmp_path / "data")
    key = signing.load_signing_key(settings, ComplianceSettings())  # embedded: generated on first use
    out = tmp_path / "job"
    (out / "model").mkdir(parents=True)
    (out / "model" / "model.safetensors").write_bytes(b"\x01" * 256)
    issued = issue_report(sample_report(), signing.hash_tree(out / "model"), key=key, audit_head="ab" * 32)
    (out / "report.json").write_bytes(issued.report_json)
    (out / "report.dsse.json").write_bytes(issued.envelope)
    (tmp_path / "key.pem").write_text(signing.public_key_pem(settings, ComplianceSettings()))
    assert issued.audit_data()["report_sha256"] == signing.sha256_file(out / "report.json")
    assert "PASSED" in issued.html
    result = CliRunner().invoke(compliance_cli, ["verify-report", str(out / "report.dsse.json"), "--artifacts",
                                                 str(out), "--public-key", str(tmp_path / "key.pem")])
    assert result.exit_code == 0, result.output
    assert "OK: job 5f0c1f2e-0000-4000-8000-000000000001" in result.output
    statement = json.loads(base64.b64decode(json.loads(issued.envelope)["payload"]))
    assert statement["predicate"]["audit_log_head"] == "ab" * 32
    assert statement["predicate"]["verdict_passed"] is True


def _with_kind(kind: str, results: dict[str, tuple[float | None, float | None]]) -> dict[str, Any]:
    """The sample report as a `kind` job whose evaluation dumps carry these {key: (before, after)} values."""
    data = sample_report()
    data["forget_data"]["kind"] = kind
    for key, values in results.items():
        for side, value in zip(("before", "after"), values, strict=True):
            if value is not None:
                data["evaluation"][side]["results"][key] = {"metric": key.split("/")[-1], "split": None,
                                                            "value": value, "note": "", "per_item": None, "extra": {}}
    return data


def _section_text(html: str) -> tuple[list[str], str]:
    outline = _Outline()
    outline.feed(html)
    return outline.ids, " ".join(" ".join(outline.text).split())


def test_html_has_the_kind_section_of_text_and_harmful_jobs() -> None:
    ids, text = _section_text(render_report_html(_with_kind("text", {
        "mcq/accuracy": (0.96, 0.24), "mcq_retain/accuracy": (0.9, 0.88),
        "quantization_int4/mcq/accuracy": (None, 0.31)})))
    assert ids.index("metrics") < ids.index("kind-section") < ids.index("plot-loss")
    assert "Hazardous knowledge (WMDP-style)" in text and "multiple-choice questions" in text
    assert "forget-domain MCQ accuracy (mcq/accuracy) 0.96 0.24 0.31 0.25" in text  # last: after / before
    # The control domain was not measured on the int4 model: a dash, never "None".
    assert "control-domain MCQ accuracy (mcq_retain/accuracy) 0.9 0.88 \u2014" in text
    assert "None" not in text

    html = render_report_html(_with_kind("harmful", {"harmful/harmful_rate": (0.85, 0.1)}))
    _, text = _section_text(html)
    assert "Harmful behaviour (PKU-SafeRLHF-style)" in text and "harmful-response rate" in text
    assert "(harmful/harmful_rate) 0.85 0.1 \u2014 0.1176" in text
    assert "utility on normal prompts (ROUGE-L recall) (retain/rouge_l) \u2014 \u2014 \u2014 \u2014" in text
    assert "utility &gt;= 0.9 x before" in html  # the goal note, escaped like every other piece of text


def test_html_of_a_qa_job_has_no_kind_section_and_says_when_goal_metrics_are_missing() -> None:
    ids, text = _section_text(render_report_html(sample_report()))  # qa: the TOFU metrics are its section
    assert "kind-section" not in ids and "Hazardous knowledge" not in text
    ids, text = _section_text(render_report_html(_with_kind("text", {})))
    assert "kind-section" in ids and "the goal metrics are missing" in text
