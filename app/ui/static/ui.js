// GRIN dashboard: a small script over the JSON API. The API key lives in sessionStorage (this tab only)
// and goes out as a bearer header; everything the server sends is inserted as text, never as markup.
"use strict";

const KEY = "grin.apiKey";
const STAGES = ["localize", "noise", "finetune", "evaluate", "report"];
const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);
let viewAbort = new AbortController();
let pollTimer = null;

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function flash(message, kind = "error") {
  const box = $("flash");
  box.textContent = message || "";
  box.className = "flash " + kind;
  box.hidden = !message;
}

class ApiError extends Error {
  constructor(status, problem) {
    super(`${status} ${problem.title || "Error"}${problem.detail ? ": " + problem.detail : ""}`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(path, options = {}) {
  const key = sessionStorage.getItem(KEY);
  const headers = Object.assign({ Accept: "application/json" }, options.headers || {});
  if (key) headers.Authorization = "Bearer " + key;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  if (!response.ok) {
    let problem = { title: response.statusText };
    try { problem = await response.json(); } catch (_) { /* not JSON */ }
    if (response.status === 401 && path !== "/v1/tenant") {
      logout("Your API key was refused; log in again.");
    }
    throw new ApiError(response.status, problem);
  }
  if (options.raw) return response;
  if (response.status === 204) return null;
  return response.json();
}

function logout(message) {
  sessionStorage.removeItem(KEY);
  location.hash = "#/login";
  if (message) flash(message);
}

function show(view) {
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== "view-" + view;
  for (const link of document.querySelectorAll("[data-nav]")) {
    link.classList.toggle("active", link.dataset.nav === view || (view === "job" && link.dataset.nav === "jobs")
      || (view === "model" && link.dataset.nav === "models"));
  }
}

function fmtDate(value) { return value ? new Date(value).toLocaleString() : "-"; }
function pct(value) { return `${Math.round((value || 0) * 100)}%`; }
function badge(status) { return el("span", { class: "badge " + status, text: status }); }

// --- router --------------------------------------------------------------------------------------
async function route() {
  viewAbort.abort();
  viewAbort = new AbortController();
  clearTimeout(pollTimer);
  flash("");
  const hash = location.hash.replace(/^#/, "") || "/jobs";
  const parts = hash.split("/").filter(Boolean);
  const loggedIn = !!sessionStorage.getItem(KEY);
  $("nav").hidden = !loggedIn;
  if (!loggedIn || parts[0] === "login") {
    if (loggedIn) { location.hash = "#/jobs"; return; }
    show("login");
    $("login-key").focus();
    return;
  }
  try {
    if (parts[0] === "jobs" && parts[1]) await jobView(parts[1], viewAbort.signal);
    else if (parts[0] === "models" && parts[1]) await modelView(parts[1]);
    else if (parts[0] === "models") await modelsView();
    else if (parts[0] === "submit") await submitView();
    else await jobsView(viewAbort.signal);
  } catch (error) {
    if (error.name !== "AbortError") flash(error.message);
  }
}

// --- login ---------------------------------------------------------------------------------------
async function login(event) {
  event.preventDefault();
  const key = $("login-key").value.trim();
  sessionStorage.setItem(KEY, key);
  try {
    const tenant = await api("/v1/tenant");
    $("tenant").textContent = "tenant " + tenant.name;
    $("login-key").value = "";
    location.hash = "#/jobs";
    await route();
  } catch (error) {
    sessionStorage.removeItem(KEY);
    flash(error.status === 401 ? "That API key is not valid." : error.message);
  }
}

// --- jobs ----------------------------------------------------------------------------------------
async function jobsView(signal) {
  show("jobs");
  let cursor = null;
  const body = $("jobs-body");
  const load = async (append) => {
    const page = await api("/v1/jobs?limit=50" + (append && cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    if (signal.aborted) return;
    if (!append) body.replaceChildren();
    for (const job of page.items) {
      const progress = el("progress", { max: "1", value: String(job.progress) });
      body.append(el("tr", { "data-job": job.id },
        el("td", {}, el("a", { href: "#/jobs/" + job.id, text: job.id.slice(0, 8) })),
        el("td", {}, badge(job.status)), el("td", { text: job.stage || "-" }),
        el("td", {}, progress, " " + pct(job.progress)), el("td", { text: job.kind }),
        el("td", { text: job.forget_count }), el("td", { text: fmtDate(job.created_at) })));
    }
    cursor = page.next_cursor;
    $("jobs-more").hidden = !cursor;
    if (!append && page.items.some((j) => !TERMINAL.has(j.status))) {
      pollTimer = setTimeout(() => { if (!signal.aborted) load(false).catch(() => {}); }, 2000);
    }
  };
  $("jobs-more").onclick = () => load(true).catch((e) => flash(e.message));
  await load(false);
}

function renderJob(job) {
  $("job-id").textContent = job.id;
  const status = $("job-status");
  status.textContent = job.status;
  status.className = "badge " + job.status;
  const stages = $("job-stages");
  stages.replaceChildren();
  const current = STAGES.indexOf(job.stage);
  for (const [index, stage] of STAGES.entries()) {
    let state = "todo";
    if (job.status === "succeeded" || (current >= 0 && index < current)) state = "done";
    else if (index === current) state = "current";
    stages.append(el("li", { class: state, "data-stage": stage, text: stage }));
  }
  $("job-progress").value = job.progress;
  $("job-progress-text").textContent = pct(job.progress);
  const model = $("job-model");
  model.textContent = job.model_id;
  model.href = "#/models/" + job.model_id;
  $("job-version").textContent = job.result_version_id || "-";
  $("job-forget").textContent = String(job.forget_count);
  $("job-merkle").textContent = job.forget_merkle_root;
  $("job-error").textContent = job.error || "-";
  $("approval").hidden = job.status !== "awaiting_approval";
  $("cancel").hidden = TERMINAL.has(job.status) || job.status === "cancelling";
}

function addEvent(event) {
  const list = $("events");
  if (list.querySelector(`[data-event="${event.id}"]`)) return;
  const data = event.data || {};
  let text = event.type;
  if (event.type === "status") text = `${data.from || "submitted"} → ${data.to}` + (event.stage ? ` (${event.stage})` : "");
  else if (event.type === "progress") text = `step ${data.step}/${data.total_steps}`
    + (data.losses ? " " + Object.entries(data.losses).map(([k, v]) => `${k}=${Number(v).toFixed(3)}`).join(" ") : "");
  else if (data.message) text += ": " + data.message;
  if (data.error) text += ": " + data.error;
  list.append(el("li", { "data-event": String(event.id) }, el("time", { text: fmtDate(event.created_at) }), " " + text));
}

// Server-sent events over fetch (EventSource cannot send an Authorization header).
async function streamEvents(jobId, signal, onEvent) {
  let lastId = null;
  for (let attempt = 0; attempt < 5 && !signal.aborted; attempt++) {
    const headers = { Accept: "text/event-stream" };
    if (lastId !== null) headers["Last-Event-ID"] = String(lastId);
    const response = await api(`/v1/jobs/${jobId}/events`, { headers, signal, raw: true });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = frame.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
        if (!data) continue;
        const event = JSON.parse(data);
        lastId = event.id;
        attempt = 0;
        await onEvent(event);
      }
    }
    return;  // the server ends the stream once the job has ended
  }
}

async function jobView(jobId, signal) {
  show("job");
  $("events").replaceChildren();
  $("report").hidden = true;
  $("plots").replaceChildren();
  let job = await api("/v1/jobs/" + jobId);
  renderJob(job);
  $("approve").onclick = () => act(jobId, "approve");
  $("reject").onclick = () => act(jobId, "reject");
  $("cancel").onclick = () => act(jobId, "cancel");
  if (TERMINAL.has(job.status)) {
    const page = await api(`/v1/jobs/${jobId}/events?limit=200`);
    page.items.forEach(addEvent);
  } else {
    try {
      await streamEvents(jobId, signal, async (event) => {
        addEvent(event);
        if (event.type === "status" || event.type === "progress") {
          job = await api("/v1/jobs/" + jobId, { signal });
          renderJob(job);
        }
      });
    } catch (error) {
      if (error.name === "AbortError") return;
      flash("Live updates stopped (" + error.message + "); reload to resume.", "warning");
    }
    job = await api("/v1/jobs/" + jobId, { signal });
    renderJob(job);
  }
  if (job.status === "succeeded" && !signal.aborted) await showReport(jobId, job, signal);
}

async function act(jobId, action) {
  try {
    const options = { method: "POST", headers: { "Content-Type": "application/json" } };
    if (action === "reject") {
      const reason = prompt("Reason for rejecting (recorded in the job's history):", "");
      if (reason === null) return;
      options.body = JSON.stringify({ reason });
    }
    const job = await api(`/v1/jobs/${jobId}/${action}`, options);
    renderJob(job);
    flash(`Job ${action === "cancel" ? "cancel requested" : action + "d"}: now ${job.status}.`, "ok");
    if (!TERMINAL.has(job.status)) route();
  } catch (error) {
    flash(error.message);
  }
}

async function showReport(jobId, job, signal) {
  const report = await api(`/v1/jobs/${jobId}/report`, { signal });
  $("report").hidden = false;
  const verdict = (report.evaluation && report.evaluation.verdict) || (job.metrics && job.metrics.verdict);
  const box = $("verdict");
  if (verdict) {
    box.textContent = `Verdict: ${verdict.passed ? "PASSED" : "FAILED"}` + (verdict.reason ? ` — ${verdict.reason}` : "");
    box.className = "verdict " + (verdict.passed ? "passed" : "failed");
  } else {
    box.textContent = "Verdict: none (" + ((job.metrics && job.metrics.evaluation_note) || "no evaluation") + ")";
    box.className = "verdict";
  }
  const metrics = $("metrics-body");
  metrics.replaceChildren();
  const m = job.metrics || {};
  const rows = [["forget probability", m.forget_prob_before, m.forget_prob_after],
    ["retain probability", m.retain_prob_before, m.retain_prob_after]];
  metrics.append(el("tr", {}, el("th", { text: "" }), el("th", { text: "before" }), el("th", { text: "after" })));
  for (const [name, before, after] of rows) {
    if (before === undefined) continue;
    metrics.append(el("tr", {}, el("td", { text: name }), el("td", { text: Number(before).toFixed(4) }),
      el("td", { text: Number(after).toFixed(4) })));
  }
  $("download-json-report").onclick = () => {
    const blob = new Blob([JSON.stringify(report, null, 2)], { type: "application/json" });
    const link = el("a", { href: URL.createObjectURL(blob), download: `report-${jobId}.json` });
    link.click();
  };
  const plots = await api(`/ui/api/jobs/${jobId}/plots`, { signal });
  const holder = $("plots");
  holder.replaceChildren();
  for (const plot of plots.plots) {
    holder.append(el("figure", { "data-plot": plot.name },
      el("img", { src: plot.src, alt: plot.title, class: "plot" }),
      el("figcaption", {}, el("strong", { text: plot.title }), " " + plot.caption)));
  }
  // The signed, self-contained HTML report, when this server version has it.
  try {
    const response = await api(`/v1/jobs/${jobId}/report.html`, { headers: { Accept: "text/html" }, raw: true, signal });
    const html = await response.blob();
    const button = $("open-html-report");
    button.hidden = false;
    button.onclick = () => window.open(URL.createObjectURL(new Blob([html], { type: "text/html" })), "_blank");
  } catch (_) {
    $("open-html-report").hidden = true;
  }
}

// --- models --------------------------------------------------------------------------------------
async function allPages(path) {
  const items = [];
  let cursor = null;
  do {
    const page = await api(path + (path.includes("?") ? "&" : "?") + "limit=200"
      + (cursor ? "&cursor=" + encodeURIComponent(cursor) : ""));
    items.push(...page.items);
    cursor = page.next_cursor;
  } while (cursor);
  return items;
}

async function modelsView() {
  show("models");
  const body = $("models-body");
  body.replaceChildren();
  for (const model of await allPages("/v1/models")) {
    body.append(el("tr", { "data-model": model.id },
      el("td", {}, el("a", { href: "#/models/" + model.id, text: model.name })),
      el("td", {}, el("code", { text: model.id })), el("td", {}, el("code", { text: model.current_version_id || "-" })),
      el("td", { text: model.source_path })));
  }
}

async function modelView(modelId) {
  show("model");
  const [model, versions] = await Promise.all([api("/v1/models/" + modelId), api(`/v1/models/${modelId}/versions`)]);
  $("model-name").textContent = model.name;
  const children = new Map();
  for (const version of versions) {
    const key = version.parent_id || "root";
    if (!children.has(key)) children.set(key, []);
    children.get(key).push(version);
  }
  const build = (parentKey) => {
    const list = el("ul", { class: "lineage" });
    for (const version of children.get(parentKey) || []) {
      const label = el("span", { class: "version" + (version.id === model.current_version_id ? " current" : "") },
        el("strong", { text: "v" + version.number }), " ", el("code", { text: version.id.slice(0, 8) }),
        version.job_id ? el("span", {}, " made by job ", el("a", { href: "#/jobs/" + version.job_id, text: version.job_id.slice(0, 8) })) : " registered",
        " · " + fmtDate(version.created_at),
        version.id === model.current_version_id ? " · current" : "",
        version.weights_deleted_at ? " · weights deleted" : "");
      list.append(el("li", { "data-version": String(version.number) }, label, build(version.id)));
    }
    return list;
  };
  $("lineage").replaceChildren(...build("root").children);
}

// --- submit --------------------------------------------------------------------------------------
async function submitView() {
  show("submit");
  const [models, datasets] = await Promise.all([allPages("/v1/models"), allPages("/v1/datasets")]);
  const select = $("submit-model");
  const chosen = select.value;
  select.replaceChildren(...models.map((m) => el("option", { value: m.id, text: `${m.name} (${m.id.slice(0, 8)})` })));
  if (chosen) select.value = chosen;
  const retain = $("submit-retain");
  const retainChosen = retain.value;
  retain.replaceChildren(el("option", { value: "", text: "none" }),
    ...datasets.map((d) => el("option", { value: d.id, text: `${d.name} (${d.kind}, ${d.record_count} records)` })));
  if (retainChosen) retain.value = retainChosen;
}

function parseJsonl(text, name) {
  const records = [];
  text.split("\n").forEach((line, index) => {
    if (!line.trim()) return;
    try { records.push(JSON.parse(line)); } catch (_) { throw new Error(`${name}: line ${index + 1} is not JSON`); }
  });
  return records;
}

function parseJsonField(text, name) {
  if (!text.trim()) return undefined;
  try { return JSON.parse(text); } catch (_) { throw new Error(`${name}: not JSON`); }
}

async function submitJob(event) {
  event.preventDefault();
  const button = $("submit-button");
  button.disabled = true;
  try {
    const body = { model_id: $("submit-model").value, kind: $("submit-kind").value,
      forget: parseJsonl($("submit-forget").value, "Records to forget") };
    if (!body.forget.length) throw new Error("Records to forget: at least one record is required");
    const holdout = parseJsonl($("submit-holdout").value, "Holdout");
    if (holdout.length) body.holdout = holdout;
    if ($("submit-retain").value) body.retain_dataset_id = $("submit-retain").value;
    if ($("submit-subject").value.trim()) body.subject_reference = $("submit-subject").value.trim();
    const method = parseJsonField($("submit-method").value, "Method");
    if (method !== undefined) body.method = method;
    const evaluation = parseJsonField($("submit-evaluation").value, "Evaluation policy");
    if (evaluation !== undefined) body.evaluation = evaluation;
    // One key per form submission: a double click or a retried request cannot make two jobs.
    const job = await api("/v1/unlearn", { method: "POST", body: JSON.stringify(body),
      headers: { "Content-Type": "application/json", "Idempotency-Key": "ui-" + crypto.randomUUID() } });
    $("submit-forget").value = "";
    $("submit-holdout").value = "";
    location.hash = "#/jobs/" + job.id;
  } catch (error) {
    flash(error.message);
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login-form").addEventListener("submit", login);
  $("submit-form").addEventListener("submit", submitJob);
  $("logout").addEventListener("click", () => logout("Logged out."));
  window.addEventListener("hashchange", route);
  if (sessionStorage.getItem(KEY)) {
    api("/v1/tenant").then((t) => { $("tenant").textContent = "tenant " + t.name; }).catch(() => {});
  }
  route();
});
