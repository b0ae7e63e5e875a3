"""The audit report as one self-contained HTML page (inline CSS, plots as base64 PNG data URIs).

Written for a reader who is not an engineer: the verdict first, in words, then the numbers behind it,
the plots with a sentence on how to read each, and the technical record (hashes, settings) last.
Plots are drawn with matplotlib's object API on the Agg canvas (no pyplot state, safe in threads).
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Sequence
from typing import Any

from jinja2 import Environment, select_autoescape
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from app.compliance.report_schema import AuditReport
from app.jobs.sections import kind_section

MAX_MODULES_PLOTTED = 30
COLORS = {"before": "#8c8c8c", "after": "#1f6fb2", "reference": "#e08a00", "forget": "#c0392b",
          "retain": "#1f6fb2"}


def _png(figure: Figure) -> str:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _finite(values: Sequence[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and math.isfinite(v)]


def plot_loss_curves(curves: dict[str, list[float]]) -> str | None:
    series = {name: _finite(values) for name, values in curves.items() if _finite(values)}
    if not series:
        return None
    figure = Figure(figsize=(7, 3.2))
    axes = figure.add_subplot()
    for name in sorted(series, key=lambda n: (n not in ("forget", "retain"), n)):
        axes.plot(range(1, len(series[name]) + 1), series[name], label=f"{name} loss",
                  color=COLORS.get(name), linewidth=1.6)
    axes.set_xlabel("training step")
    axes.set_ylabel("loss")
    axes.set_title("Loss during unlearning")
    axes.grid(alpha=0.3)
    axes.legend()
    return _png(figure)


def plot_truth_ratios(before: Sequence[float], after: Sequence[float], reference: Sequence[float] | None) -> str | None:
    groups = {"before": _finite(before), "after": _finite(after), "reference": _finite(reference or [])}
    groups = {name: values for name, values in groups.items() if values}
    if not groups:
        return None
    low = min(min(v) for v in groups.values())
    high = max(max(v) for v in groups.values())
    if high <= low:
        high = low + 1.0
    bins = [low + (high - low) * i / 20 for i in range(21)]
    figure = Figure(figsize=(7, 3.2))
    axes = figure.add_subplot()
    labels = {"before": "before unlearning", "after": "after unlearning", "reference": "reference model"}
    for name, values in groups.items():
        axes.hist(values, bins=bins, histtype="step", linewidth=2, color=COLORS[name], label=labels[name])
    axes.set_xlabel("truth ratio (per question)")
    axes.set_ylabel("questions")
    axes.set_title("Truth ratios on the forget set")
    axes.legend()
    axes.grid(alpha=0.3)
    return _png(figure)


def plot_mask_density(density: dict[str, float]) -> str | None:
    if not density:
        return None
    items = sorted(density.items(), key=lambda kv: kv[1], reverse=True)[:MAX_MODULES_PLOTTED]
    items.reverse()
    figure = Figure(figsize=(7, max(2.0, 0.25 * len(items) + 1)))
    axes = figure.add_subplot()
    axes.barh([name for name, _ in items], [value * 100 for _, value in items], color=COLORS["after"])
    axes.set_xlabel("share of the module's weights changed (%)")
    axes.set_title("Where the model was changed (mask density per module)")
    axes.tick_params(axis="y", labelsize=7)
    axes.grid(alpha=0.3, axis="x")
    return _png(figure)


def plot_probes(probes: Sequence[Any]) -> str | None:
    rows = [p for p in probes if p.before is not None or p.after is not None]
    if not rows:
        return None
    figure = Figure(figsize=(7, 3.2))
    axes = figure.add_subplot()
    positions = list(range(len(rows)))
    width = 0.38
    axes.bar([x - width / 2 for x in positions], [p.before if p.before is not None else 0 for p in rows], width,
             label="before", color=COLORS["before"])
    axes.bar([x + width / 2 for x in positions], [p.after if p.after is not None else 0 for p in rows], width,
             label="after", color=COLORS["after"])
    for x, probe in zip(positions, rows, strict=True):
        if probe.threshold is not None:
            axes.hlines(probe.threshold, x - 0.45, x + 0.45, colors="#c0392b", linestyles="dashed",
                        label="threshold" if x == 0 or all(p.threshold is None for p in rows[:x]) else None)
    axes.set_xticks(positions, [p.name for p in rows], rotation=15, ha="right", fontsize=8)
    axes.set_title("Robustness probes")
    axes.legend()
    axes.grid(alpha=0.3, axis="y")
    return _png(figure)


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _num(value: float | None) -> str:
    # The kind section's cells: a metric the job did not measure is a dash, not "n/a" text in a number column.
    return "\u2014" if value is None else _fmt(value)


def _outcome(passed: bool | None) -> str:
    return {True: "pass", False: "fail", None: "not evaluated"}[passed]


_TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Unlearning audit report: job {{ r.job.job_id }}</title>
<style>
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1d1d1f; max-width: 980px;
       margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.sub { color: #666; margin-top: 0; }
.verdict { border-radius: 8px; padding: 1em 1.4em; margin: 1.2em 0; border: 2px solid; }
.verdict.pass { background: #eaf7ee; border-color: #2e8b57; }
.verdict.fail { background: #fdecea; border-color: #c0392b; }
.verdict .word { font-size: 1.6em; font-weight: 700; }
table { border-collapse: collapse; width: 100%; margin: 0.6em 0; font-size: 0.92em; }
th, td { text-align: left; padding: 0.35em 0.6em; border-bottom: 1px solid #e5e5e5; vertical-align: top; }
th { background: #f6f6f6; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.pass { color: #1e7a46; font-weight: 600; } .fail { color: #b02a1a; font-weight: 600; } .na { color: #777; }
.hash { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.85em; word-break: break-all; }
figure { margin: 1em 0; } figure img { max-width: 100%; } figcaption { color: #555; font-size: 0.9em; }
.limits { background: #fff8e1; border-left: 4px solid #e0a800; padding: 0.8em 1em; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; } dt { color: #555; }
</style>
</head>
<body>
<h1>Unlearning audit report</h1>
<p class="sub">Job {{ r.job.job_id }} &middot; model {{ r.model.name }} &middot;
issued {{ r.issued_at.isoformat() }}</p>

<section id="verdict" class="verdict {{ 'pass' if r.verdict.passed else 'fail' }}">
<div class="word">{{ "PASSED" if r.verdict.passed else "FAILED" }}</div>
<p>{{ plain_verdict }}</p>
<p>{{ r.verdict.reason }}</p>
<table>
<tr><th>Check</th><th>Result</th><th>Why</th></tr>
{% for c in r.verdict.criteria %}
<tr><td>{{ c.name }}</td><td class="{{ css(c.passed) }}">{{ outcome(c.passed) }}</td><td>{{ c.reason }}</td></tr>
{% endfor %}
</table>
</section>

<h2>What was requested</h2>
<dl>
<dt>Data removed</dt><dd>{{ r.forget_data.record_count }} {{ r.forget_data.kind }} record(s); the text itself is not
kept, only a fingerprint of each record</dd>
<dt>Fingerprint of all records</dt><dd class="hash">{{ r.forget_data.merkle_root }} (Merkle root)</dd>
<dt>Subject reference</dt><dd>{{ r.job.subject_reference or "not given" }}</dd>
<dt>Legal basis</dt><dd>{{ r.job.legal_basis or "not given" }}</dd>
<dt>Received</dt><dd>{{ fmt(r.job.received_at) }}</dd>
<dt>Started / finished</dt><dd>{{ fmt(r.job.started_at) }} / {{ fmt(r.job.finished_at) }}</dd>
<dt>Tenant</dt><dd>{{ r.job.tenant_name or r.job.tenant_id }}</dd>
</dl>

<h2>Measurements before and after</h2>
<table id="metrics">
<tr><th>Metric</th><th>Before</th><th>After</th><th>Required</th><th>Result</th></tr>
{% for m in r.evaluation.metrics %}
<tr><td>{{ m.label or m.key }}{% if m.label %} <span class="na">({{ m.key }})</span>{% endif %}</td>
<td class="num">{{ fmt(m.before) }}</td><td class="num">{{ fmt(m.after) }}</td>
<td class="num">{% if m.threshold is not none %}{{ m.op or "" }} {{ fmt(m.threshold) }}{% endif %}</td>
<td class="{{ css(m.passed) if m.threshold is not none else 'na' }}">{{ outcome(m.passed) if m.threshold is not none
else "" }}</td></tr>
{% endfor %}
</table>

{% if section %}
<h2 id="kind-section">{{ section.title }}</h2>
<p>{{ section_about }}</p>
<table id="kind-metrics">
<tr><th>Metric</th><th>Before</th><th>After</th><th>After, 4-bit quantized</th><th>After &divide; before</th></tr>
{% for m in section.metrics %}
<tr><td>{{ m.name }} <span class="na">({{ m.key }})</span></td>
<td class="num">{{ num(m.before) }}</td><td class="num">{{ num(m.after) }}</td>
<td class="num">{{ num(m.after_int4) }}</td><td class="num">{{ num(m.change) }}</td></tr>
{% endfor %}
</table>
{% for note in section.notes %}<p class="na">{{ note }}</p>{% endfor %}
{% endif %}

<h2>Plots</h2>
{% for p in plots %}
<figure id="plot-{{ p.id }}">
{% if p.src %}<img alt="{{ p.title }}" src="{{ p.src }}">{% else %}<p class="na">{{ p.title }}: no data.</p>{% endif %}
<figcaption><strong>{{ p.title }}.</strong> {{ p.caption }}</figcaption>
</figure>
{% endfor %}

<h2>Robustness probes</h2>
{% if r.robustness %}
<table>
<tr><th>Probe</th><th>Before</th><th>After</th><th>Limit</th><th>Result</th></tr>
{% for p in r.robustness %}
<tr><td>{{ p.name }}{% if p.description %}<br><span class="na">{{ p.description }}</span>{% endif %}</td>
<td class="num">{{ fmt(p.before) }}</td><td class="num">{{ fmt(p.after) }}</td>
<td class="num">{{ fmt(p.threshold) }}</td>
<td class="{{ css(p.passed) }}">{{ outcome(p.passed) }}</td></tr>
{% endfor %}
</table>
{% else %}<p class="na">No robustness probes were run.</p>{% endif %}

<h2>Retention actions</h2>
{% if r.retention %}
<table><tr><th>Action</th><th>Target</th><th>When</th><th>Detail</th></tr>
{% for a in r.retention %}<tr><td>{{ a.action }}</td><td class="hash">{{ a.target }}</td><td>{{ fmt(a.at) }}</td>
<td>{{ a.detail }}</td></tr>{% endfor %}
</table>
{% else %}<p class="na">None recorded.</p>{% endif %}

<h2>Limitations</h2>
<p class="limits" id="limitations">{{ r.limitations }}</p>

<h2>Technical record</h2>
<h3>Model versions</h3>
{% for label, v in versions %}
<p><strong>{{ label }}</strong>{% if v.number is not none %}: version {{ v.number }}{% endif %}
{% if v.version_id %}<span class="hash">({{ v.version_id }})</span>{% endif %}</p>
<table><tr><th>File</th><th>sha256</th></tr>
{% for name, digest in v.files|dictsort %}<tr><td>{{ name }}</td><td class="hash">{{ digest }}</td></tr>{% endfor %}
</table>
{% endfor %}
{% if r.mask %}<h3>Mask</h3><dl><dt>sha256</dt><dd class="hash">{{ r.mask.sha256 }}</dd>
<dt>weights selected</dt><dd>{{ fmt(r.mask.k) }}{% if r.mask.fraction is not none %} ({{ fmt(r.mask.fraction) }} of all)
{% endif %}</dd></dl>{% endif %}
<h3>Method</h3>
<dl><dt>method</dt><dd>{{ r.method.name }}</dd><dt>seed</dt><dd>{{ fmt(r.method.seed) }}</dd>
{% for k, v in r.method.hyperparameters|dictsort %}<dt>{{ k }}</dt><dd class="hash">{{ v }}</dd>{% endfor %}</dl>
<h3>Code, hardware and timings</h3>
<dl><dt>package</dt><dd>{{ r.code.package_version }}</dd>
<dt>git commit</dt><dd class="hash">{{ fmt(r.code.git_commit) }}</dd>
{% for k, v in hardware|dictsort %}<dt>{{ k }}</dt><dd>{{ fmt(v) }}</dd>{% endfor %}
{% for k, v in r.timings_s|dictsort %}<dt>{{ k }} (s)</dt><dd>{{ fmt(v) }}</dd>{% endfor %}</dl>
<h3>Forget records (sha256 of each)</h3>
<p class="hash">{{ r.forget_data.record_sha256|join(" ") }}</p>
<p class="na">Merkle algorithm: {{ r.forget_data.merkle_algorithm }}. Report schema {{ r.schema_version }}.
Check the signed copy with <code>grin verify-report report.dsse.json --artifacts DIR --public-key key.pem</code>
(the public key is served at <code>/v1/signing-key</code>).</p>
</body>
</html>
"""

# What each kind's section measures, in words (the title and goal come with the section itself).
_SECTION_ABOUT = {
    "text": "Whether the model can still answer multiple-choice questions on the hazardous domain it was asked to "
            "forget (accuracy should fall to chance, i.e. guessing) and on a control domain whose knowledge it must "
            "keep.",
    "harmful": "How often the model answers held-out harmful prompts harmfully, as the job's judge rates it (this "
               "should fall sharply), and how well it still answers normal prompts (utility, which should hold).",
}
_QUANTIZED = (" The 4-bit column repeats the after-measurement on a quantized copy of the new model, because "
              "quantization can bring removed knowledge or behaviour back.")

_env = Environment(autoescape=select_autoescape(default=True, default_for_string=True), trim_blocks=True,
                   lstrip_blocks=True)
_template = _env.from_string(_TEMPLATE)


def _plain_verdict(report: AuditReport) -> str:
    failed = [c.name for c in report.verdict.criteria if c.passed is False]
    skipped = [c.name for c in report.verdict.criteria if c.passed is None]
    passed = sum(c.passed is True for c in report.verdict.criteria)
    if report.verdict.passed:
        text = (f"The new model version met every required check ({passed} passed): on these tests it behaves "
                f"as if it had not been trained on the {report.forget_data.record_count} removed record(s), and "
                "it kept its general ability.")
    else:
        which = ", ".join(failed) or "no check could be evaluated"
        text = (f"The new model version did not meet the required checks: {which}. It should not be treated as "
                "having forgotten the data.")
    if skipped:
        text += f" Not evaluated (numbers missing): {', '.join(skipped)}."
    return text


def render_report_html(report: AuditReport | dict[str, Any]) -> str:
    if not isinstance(report, AuditReport):
        report = AuditReport.model_validate(report)
    curves = report.training.loss_curves
    tr = report.evaluation.truth_ratios
    plots = [
        {"id": "loss", "title": "Loss during unlearning", "src": plot_loss_curves(curves),
         "caption": "Forget loss should rise (the model gets worse at the removed data) while retain loss stays "
                    "low (it keeps what it should know)."},
        {"id": "truth-ratio", "title": "Truth ratios on the forget set",
         "src": plot_truth_ratios(tr.before, tr.after, tr.reference),
         "caption": "How strongly the model prefers the true answer over false ones, per question. After "
                    "unlearning the distribution should move towards that of the reference model, which never "
                    "saw the data."},
        {"id": "mask", "title": "Where the model was changed",
         "src": plot_mask_density(report.mask.density if report.mask else {}),
         "caption": f"Share of each module's weights that unlearning was allowed to change (top "
                    f"{MAX_MODULES_PLOTTED} modules). Everything else was left untouched."},
        {"id": "probes", "title": "Robustness probes", "src": plot_probes(report.robustness),
         "caption": "Attempts to bring the removed knowledge back (e.g. quantization, brief re-training); lower "
                    "after-values mean the removal holds up. Dashed lines are the limits."},
    ]
    # Derived from the signed evaluation dumps, not stored in the report: the same numbers the API's
    # `GET /v1/jobs/{id}/report` section shows, without a new field in the signed schema.
    section = kind_section(report.forget_data.kind, report.evaluation.before or None,
                           report.evaluation.after or None)
    versions = [("Before", report.model.before)]
    if report.model.after is not None:
        versions.append(("After", report.model.after))
    return _template.render(
        r=report, plots=plots, versions=versions, plain_verdict=_plain_verdict(report), section=section,
        section_about=_SECTION_ABOUT.get(report.forget_data.kind, "") + _QUANTIZED, num=_num,
        hardware=report.hardware.model_dump(exclude_none=True), fmt=_fmt, outcome=_outcome,
        css=lambda passed: {True: "pass", False: "fail", None: "na"}[passed],
    )
