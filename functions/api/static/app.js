// Custom Classifier UI: plain ES modules, no build step, no framework. Every URL is
// relative to <base>, which the API sets to its own base path (API Gateway stages work).
const $ = (id) => document.getElementById(id);
const API = "custom_classifier";
const state = { dataset: "", experiment: "", runId: "", timer: null };

async function call(method, path, body) {
  const init = { method, headers: {} };
  const key = localStorage.getItem("cc-api-key");
  if (key) init.headers["x-api-key"] = key;
  if (body instanceof FormData) {
    init.body = body;  // the browser sets multipart/form-data and its boundary
  } else if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const payload = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(payload.error || payload.detail || `${response.status} ${response.statusText}`);
    error.payload = payload;
    throw error;
  }
  return payload;
}

function say(id, text, kind = "") {
  const el = $(id);
  el.textContent = text;
  el.className = `status ${kind}`;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

const pct = (x) => (x === null || x === undefined ? "–" : x.toFixed(3));

// ---- health ---------------------------------------------------------------------------
async function health() {
  const pill = $("health");
  try {
    const body = await fetch("health").then((r) => r.json());
    pill.textContent = body.status === "ok" ? "connected" : `degraded: ${body.s3} / ${body.mlflow}`;
    pill.className = `pill ${body.status === "ok" ? "ok" : "down"}`;
  } catch {
    pill.textContent = "API unreachable";
    pill.className = "pill down";
  }
}

// ---- datasets and labels ----------------------------------------------------------------
async function loadDatasets() {
  const { data } = await call("GET", `${API}/datasets`);
  $("datasets").replaceChildren(...data.map((name) => new Option(name, name)));
}

// ": 10 text, 1 PDF" where a label has documents other than plain text; nothing otherwise.
const FORMAT_NAMES = { text: "text", pdf: "PDF", docx: "Word", html: "HTML", email: "e-mail", other: "other" };
function formatsOf(folder) {
  const kinds = Object.entries(folder.formats || {});
  if (!kinds.length || (kinds.length === 1 && kinds[0][0] === "text")) return "";
  return ": " + kinds.map(([kind, n]) => `${n} ${FORMAT_NAMES[kind] || kind}`).join(", ");
}

async function loadLabels() {
  const dataset = $("dataset").value.trim();
  if (dataset !== state.dataset) {  // another dataset: the last one's messages no longer apply
    say("upload-status", "");
    say("train-status", "");
  }
  state.dataset = dataset;
  const box = $("labels");
  if (!dataset) return;
  try {
    const { data } = await call("GET", `${API}/datasets/labels?path=${encodeURIComponent(dataset)}`);
    if (!data.length) {
      box.innerHTML = '<span class="hint">No label folders under this dataset yet.</span>';
      return;
    }
    box.replaceChildren(
      ...data.map((folder) => {
        const label = document.createElement("label");
        const input = document.createElement("input");
        input.type = "checkbox";
        input.value = folder.label;
        input.checked = folder.documents > 0;
        input.name = "label";
        label.append(input, ` ${folder.label} (${folder.documents}${formatsOf(folder)})`);
        return label;
      }),
    );
    // What training would not use, before it starts (the job lists the same in its report).
    const unusable = data.flatMap((folder) => folder.not_usable_documents);
    const total = data.reduce((sum, folder) => sum + folder.not_usable, 0);
    if (total) {
      const details = document.createElement("details");
      details.id = "not-usable";
      const summary = document.createElement("summary");
      summary.textContent = `${total} document${total === 1 ? "" : "s"} cannot be used`;
      const list = document.createElement("ul");
      list.replaceChildren(...unusable.map((doc) => {
        const item = document.createElement("li");
        item.textContent = `${doc.key}: ${doc.reason}`;
        return item;
      }));
      if (total > unusable.length) list.append(Object.assign(document.createElement("li"), { textContent: `and ${total - unusable.length} more` }));
      details.append(summary, list);
      box.append(details);
    }
  } catch (error) {
    box.textContent = error.message;
  }
}

async function deleteDataset() {
  const dataset = $("dataset").value.trim();
  if (!dataset) return say("upload-status", "Name the dataset to delete first.", "error");
  let count = "all its";
  try {
    const { data } = await call("GET", `${API}/datasets/labels?path=${encodeURIComponent(dataset)}`);
    count = `its ${data.reduce((n, f) => n + f.documents + f.not_usable, 0)}`;
  } catch {}  // the delete itself answers why, if it cannot
  if (!confirm(`Delete dataset "${dataset}" and ${count} documents for good?`)) return;
  try {
    const { data } = await call("POST", `${API}/datasets/delete`, { path: dataset });
    say("upload-status", `Dataset ${data.data_uri} deleted: ${data.objects_removed} objects removed.`, "ok");
    $("dataset").value = "";
    $("labels").innerHTML = '<span class="hint">Choose a dataset to see its label folders.</span>';
    await loadDatasets();
  } catch (error) {
    say("upload-status", error.message, "error");  // e.g. 409: the runs or batch jobs reading it
  }
}

// A picked folder's <picked>/<label>/<file> becomes <label>/<file>; loose files go to the
// label typed next to them.
function pickedFiles() {
  const fromFolder = [...$("folder").files]
    .map((file) => {
      const parts = (file.webkitRelativePath || file.name).split("/");
      return { file, path: parts.slice(-2).join("/"), depth: parts.length };
    })
    .filter((item) => item.depth >= 2);
  const label = $("files-label").value.trim();
  const loose = label ? [...$("files").files].map((file) => ({ file, path: `${label}/${file.name}` })) : [];
  return [...fromFolder, ...loose];
}

async function upload() {
  const dataset = $("dataset").value.trim();
  const files = pickedFiles();
  if (!dataset) return say("upload-status", "Name the dataset first.", "error");
  if (!files.length) return say("upload-status", "Pick a folder of label folders, or files and their label.", "error");
  $("upload").disabled = true;
  try {
    const byPath = Object.fromEntries(files.map((f) => [f.path, f.file]));
    const { data } = await call("POST", `${API}/uploads`, {
      path: dataset,
      files: files.map((f) => ({ path: f.path, size: f.file.size })),
    });
    let done = 0;
    const failed = [];
    const queue = [...data.uploads];
    const worker = async () => {
      while (queue.length) {
        const item = queue.shift();
        const response = await fetch(item.url, { method: "PUT", body: byPath[item.path] }).catch(() => null);
        if (!response || !response.ok) failed.push(item.path);
        done += 1;
        say("upload-status", `Uploading ${done}/${data.uploads.length}…`);
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    const rejected = data.rejected.map((r) => `${r.path}: ${r.reason}`).join("\n");
    say(
      "upload-status",
      `${data.uploads.length - failed.length} uploaded, ${data.skipped.length} already there` +
        (failed.length ? `, ${failed.length} failed (upload again to resume)` : "") +
        (rejected ? `\nNot used:\n${rejected}` : ""),
      failed.length ? "error" : rejected ? "warn" : "ok",
    );
    if (!failed.length) {  // sent: clear the pickers so the next upload starts empty
      $("folder").value = "";
      $("files").value = "";
    }
    await loadDatasets();
    await loadLabels();
  } catch (error) {
    say("upload-status", error.message, "error");
  } finally {
    $("upload").disabled = false;
  }
}

// ---- training ---------------------------------------------------------------------------
async function train() {
  const labels = [...document.querySelectorAll('#labels input[name="label"]:checked')].map((i) => i.value);
  const experiment = $("experiment").value.trim();
  try {
    const payload = await call("POST", `${API}/process`, {
      labels,
      path: $("dataset").value.trim(),
      experiment_name: experiment,
      mode: $("mode").value,
      ...($("multi-label").checked ? { multi_label: true } : {}),
      ...($("promote-if-better").checked ? { promote: "if_better" } : {}),
      ...($("min-macro-f1").value !== "" ? { min_macro_f1: Number($("min-macro-f1").value) } : {}),
    });
    const run = payload.data.info.run_id;
    const skipped = payload.list_id_not_treated || [];
    say("train-status", `Training started: run ${run} on ${payload.number_documents_treated} documents` +
      (skipped.length ? `; ${payload.number_documents_non_treated} not usable:\n${skipped.join("\n")}` : ""),
      skipped.length ? "warn" : "ok");
    await loadExperiments(experiment);
    showExperiment();
    navigate(experiment);
  } catch (error) {
    const skipped = (error.payload?.list_id_not_treated || []).join("\n");
    say("train-status", error.message + (skipped ? `\nNot usable:\n${skipped}` : ""), "error");
  }
}

// ---- runs -------------------------------------------------------------------------------
// Every experiment, to pick from (the runs section) or to train into again (the datalist).
async function loadExperiments(chosen = $("runs-experiment").value) {
  const found = await call("GET", `${API}/experiments`).catch(() => []);
  const names = found.map((e) => e.experiment_name);
  if (chosen && !names.includes(chosen)) names.push(chosen);
  $("experiments").replaceChildren(...names.map((n) => new Option(n, n)));
  const select = $("runs-experiment");
  select.replaceChildren(new Option(names.length ? "Choose an experiment…" : "No experiments yet", ""),
    ...names.map((n) => new Option(n, n)));
  select.value = chosen || "";
}

function showExperiment() {
  state.experiment = $("runs-experiment").value.trim();
  clearInterval(state.timer);
  refreshRuns();
  state.timer = setInterval(refreshRuns, 3000);
}

// ---- addresses: #/experiments/<name>[/runs/<id>], so a run page can be shared and Back works
function route() {
  const match = location.hash.match(/^#\/experiments\/([^/]+)(?:\/runs\/([0-9a-f]+))?$/);
  return match ? { experiment: decodeURIComponent(match[1]), runId: match[2] || "" } : null;
}

function navigate(experiment, runId = "") {
  const hash = `#/experiments/${encodeURIComponent(experiment)}${runId ? `/runs/${runId}` : ""}`;
  if (location.hash !== hash) history.pushState(null, "", hash);
}

async function followRoute() {
  const where = route();
  if (!where) return;
  if (where.experiment !== state.experiment) {
    await loadExperiments(where.experiment);
    showExperiment();
  }
  if (where.runId) {
    if (where.runId !== state.runId) openRun(where.runId, true, false);
  } else {
    state.runId = "";
    $("run-section").hidden = true;
  }
}

// RUNNING · training: candidate 2 of 4: head · epoch 3 · 42% · about 3 min left
function runStatus(run) {
  if (run.queue_position) return `${run.status} (#${run.queue_position} in queue)`;
  if (run.status !== "RUNNING" || !run.phase) return run.status;
  const parts = [`RUNNING · ${run.phase}${run.phase_detail ? `: ${run.phase_detail}` : ""}`];
  if (run.progress_percent != null) parts.push(`${Math.round(run.progress_percent)}%`);
  if (run.eta_seconds != null) {
    const eta = run.eta_seconds;
    parts.push(eta >= 90 ? `about ${Math.round(eta / 60)} min left` : `about ${Math.round(eta)} s left`);
  }
  return parts.join(" · ");
}

async function refreshRuns() {
  const body = $("runs").tBodies[0];
  if (!state.experiment) {
    body.replaceChildren();
    cell(body.insertRow(), "No experiment chosen.").colSpan = 7;
    return;
  }
  let runs;
  try {
    runs = await call("GET", `${API}/runid/status?limit=20&experiment_name=${encodeURIComponent(state.experiment)}`);
  } catch (error) {
    body.innerHTML = "";
    cell(body.insertRow(), error.message).colSpan = 7;
    return;
  }
  // Only rows whose run changed are rebuilt: a refresh every 3 s leaves the rest alone.
  const rows = runs.map((run) => {
    const seen = JSON.stringify(run);
    const old = [...body.rows].find((r) => r.dataset.runId === run.run_id && r.dataset.seen === seen);
    if (old) return old;
    const row = document.createElement("tr");
    row.className = "clickable";
    row.dataset.runId = run.run_id;
    row.dataset.seen = seen;
    cell(row, run.start_time ? new Date(run.start_time).toLocaleString() : "");
    cell(row, run.run_id.slice(0, 8));
    const status = cell(row, runStatus(run));
    if (run.status === "RUNNING" && run.progress_percent != null) {
      const bar = document.createElement("progress");
      bar.max = 100;
      bar.value = run.progress_percent;
      status.prepend(bar, " ");
    }
    cell(row, run.model_kind || "");
    cell(row, pct(run["metrics.test_macro_f1"]));
    cell(row, run.registered ? "yes" : run.status === "FINISHED" ? "no (below the bar)" : "");
    const open = document.createElement("button");
    open.textContent = "Open";
    cell(row, "").appendChild(open);
    row.addEventListener("click", () => openRun(run.run_id));
    return row;
  });
  if (rows.length !== body.rows.length || rows.some((row, i) => body.rows[i] !== row)) {
    body.replaceChildren(...rows);
  }
  if (!runs.length) cell(body.insertRow(), "No runs yet.").colSpan = 7;
  // the open run's page follows it while it runs, and once more when it ends
  const open = runs.find((r) => r.run_id === state.runId);
  const active = (r) => r.status === "RUNNING" || r.status === "SCHEDULED";
  if (open && (active(open) || open.status !== state.runStatus)) openRun(state.runId, false, false);
}

async function deleteExperiment() {
  const name = $("runs-experiment").value.trim();
  if (!name) return;
  const hard = confirm(`Delete experiment "${name}" for good (runs, models, artifacts)?\nCancel to hide it instead.`);
  if (!hard && !confirm(`Hide (soft-delete) experiment "${name}"?`)) return;
  try {
    const answer = await call("POST", `${API}/experiment/${hard ? "hard" : "soft"}_delete`, { experiment_name: name });
    say("run-summary", answer.status, "ok");
    $("run-section").hidden = true;
    await loadExperiments("");
    showExperiment();
    history.pushState(null, "", location.pathname);
  } catch (error) {
    alert(error.message);
  }
}

// ---- one run ----------------------------------------------------------------------------
async function openRun(runId, scroll = true, remember = true) {
  if (runId !== state.runId) say("prediction", "");  // another run: the last answer was not its
  state.runId = runId;
  if (remember && state.experiment) navigate(state.experiment, runId);
  const section = $("run-section");
  section.hidden = false;
  $("run-id").textContent = runId;
  try {
    const { data } = await call("GET", `${API}/runs/${runId}`);
    const registered = `registered as ${data.registered_model}${data.champion ? " (@champion)" : " (not @champion)"}`;
    const live = ["RUNNING", "SCHEDULED"].includes(data.status);
    const gate = data.gate === "passed" ? [registered, data.promotion].filter(Boolean).join(": ")
      : [data.gate_reason, live && data.model_name && `registers into ${data.model_name}`].filter(Boolean).join(" · ");
    const queued = data.queue_position ? `#${data.queue_position} in the queue` : "";
    state.runStatus = data.status;
    if (runId !== labelling.runId) {  // another run: its own labels and dataset to file into
      Object.assign(labelling, { runId, queue: [], index: 0, filed: 0, labels: runLabels(data.params.id2label) });
      $("label-dataset").value = data.params.data_uri || "";
      $("labeller").hidden = true;
      $("retrain").disabled = true;
      say("suggest-status", "");
    }
    const progress = { ...data, progress_percent: data.metrics.progress_percent, eta_seconds: data.metrics.eta_seconds };
    const status = data.status === "RUNNING" && data.phase ? runStatus(progress) : data.status;
    // a failure in red, a refusal (below the bar, cancelled, not promoted) in amber
    const refused = data.gate === "failed" || data.status === "KILLED" || data.promotion?.startsWith("not promoted");
    say("run-summary", [status, data.model_kind || (live ? "training…" : ""), queued, gate, data.failure_reason,
      data.cancelled].filter(Boolean).join(" · "), data.status === "FAILED" ? "error" : refused ? "warn" : "");
    $("cancel-run").disabled = !["RUNNING", "SCHEDULED"].includes(data.status);
    // a finished run the bar refused registers at a bar its estimate passes (offered: the highest)
    const reachable = data.metrics.passes_bar_up_to;
    $("promote-bar-box").hidden = !(data.status === "FINISHED" && data.gate === "failed" && reachable !== undefined);
    if (reachable !== undefined) $("promote-bar").value = (Math.floor(reachable * 100) / 100).toFixed(2);
    const metrics = $("metrics").tBodies[0];
    const headline = ["test_macro_f1", "test_micro_f1", "test_accuracy", "test_subset_accuracy",
      "test_hamming_loss", "test_macro_precision", "test_macro_recall", "test_roc_auc", "test_pr_auc", "test_ece",
      "train_seconds"];
    metrics.replaceChildren(...headline.filter((k) => k in data.metrics).map((k) => {
      const row = document.createElement("tr");
      cell(row, k.replace("test_", ""));
      cell(row, pct(data.metrics[k]));
      return row;
    }));
    const perClass = $("per-class").tBodies[0];
    const classes = Object.entries(data.report?.per_class || {});
    perClass.replaceChildren(...classes.map(([label, m]) => {
      const row = document.createElement("tr");
      [label, pct(m.precision), pct(m.recall), pct(m.f1), String(m.support)].forEach((t) => cell(row, t));
      return row;
    }));
    // each image a link to itself at full size: with many labels the page shows it scaled down
    const image = (path) => {
      const link = document.createElement("a");
      const img = document.createElement("img");
      link.href = img.src = `${API}/runs/${runId}/artifacts/${path}`;
      link.target = "_blank";
      link.title = "open at full size";
      img.alt = path.split("/").pop().replace(".png", "").replaceAll("_", " ");
      link.appendChild(img);
      return link;
    };
    // the matrix beside the metrics; the curves below at their drawn size, to be read
    const curves = (path) => path.endsWith("pr_roc_curves.png");
    $("images").replaceChildren(...data.artifacts.filter((p) => !curves(p)).map(image));
    $("curves").replaceChildren(...data.artifacts.filter(curves).map(image));
    $("promote").disabled = data.gate !== "passed" && $("promote-bar-box").hidden;
    showConfusion(data.status === "FINISHED" ? data.report : null);
    loadDrift();
  } catch (error) {
    say("run-summary", error.message, "error");
  }
  if (scroll) section.scrollIntoView({ behavior: "smooth" });
}

// ---- what it got wrong ------------------------------------------------------------------
function option(select, value) {
  const item = document.createElement("option");
  item.value = item.textContent = value;
  select.appendChild(item);
}

function heading(texts) {
  const head = document.createElement("tr");
  texts.forEach((text) => {
    const th = document.createElement("th");
    th.textContent = text;
    head.appendChild(th);
  });
  return head;
}

// A count in the confusion table: a button listing the documents it counts.
function countButton(row, count, right, title, filters) {
  const td = cell(row, "");
  td.className = right ? "right" : "wrong";
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = count;
  button.disabled = count === 0;
  button.title = title;
  button.addEventListener("click", () => listMistakes(filters));
  td.appendChild(button);
}

// The confusion matrix as a table of buttons (multi-label: each label's right, missed and
// wrongly added documents): a count lists the documents of its cell.
function showConfusion(report) {
  const multi = Boolean(report?.multi_label);
  const shown = multi || Boolean(report?.confusion_matrix);
  $("mistakes-section").hidden = !shown;
  if (!shown) return;
  const labels = report.labels || Object.keys(report.per_class);
  const table = $("confusion");
  if (multi) {
    table.setAttribute("aria-label", "Per label: documents given it rightly, missed, or given it wrongly; click a count to list them");
    table.tHead.replaceChildren(heading(["label", "right", "missed", "added wrongly"]));
    table.tBodies[0].replaceChildren(...labels.map((label) => {
      const row = document.createElement("tr");
      const counts = report.per_class[label];
      cell(row, label);
      countButton(row, counts.true_positives, true, `has ${label}, given it`, { true_label: label, predicted_label: label });
      countButton(row, counts.false_negatives, false, `has ${label}, not given it`, { missed_label: label });
      countButton(row, counts.false_positives, false, `given ${label} without having it`, { added_label: label });
      return row;
    }));
  } else {
    table.tHead.replaceChildren(heading(["true ↓ predicted →", ...labels]));
    table.tBodies[0].replaceChildren(...report.confusion_matrix.map((counts, i) => {
      const row = document.createElement("tr");
      cell(row, labels[i]);
      counts.forEach((count, j) => countButton(row, count, i === j, `true ${labels[i]}, predicted ${labels[j]}`,
        { true_label: labels[i], predicted_label: labels[j] }));
      return row;
    }));
  }
  for (const id of ["mistakes-true", "mistakes-predicted"]) {
    $(id).replaceChildren();
    option($(id), "");
    $(id).options[0].textContent = "any";
    labels.forEach((label) => option($(id), label));
  }
  listMistakes({});
}

// Misclassified documents (or, for a right cell, the right ones) matching the filters:
// true_label, predicted_label, missed_label, added_label.
async function listMistakes(filters) {
  $("mistakes-true").value = filters.true_label || "";
  $("mistakes-predicted").value = filters.predicted_label || "";
  $("document-text").hidden = true;
  const params = new URLSearchParams({ limit: "200", ...filters });
  const right = filters.true_label && filters.true_label === filters.predicted_label;
  if (!right) params.set("wrong_only", "true");
  const body = $("mistakes").tBodies[0];
  try {
    const { data } = await call("GET", `${API}/runs/${state.runId}/test_predictions?${params}`);
    $("mistakes-summary").textContent = `${data.wrong} of ${data.documents} documents wrong (${data.estimate}); ` +
      `${data.matching} listed` + (data.matching > data.rows.length ? `, the first ${data.rows.length} shown` : "");
    body.replaceChildren(...data.rows.map((r) => {
      const row = document.createElement("tr");
      row.className = "clickable";
      [r.key, r.true_labels.join(", "), r.predicted_labels.join(", "), pct(r.score)].forEach((t) => cell(row, t));
      row.addEventListener("click", () => openDocument(r.key));
      return row;
    }));
    if (!data.rows.length) {
      const row = document.createElement("tr");
      cell(row, "No documents here.").colSpan = 4;
      body.replaceChildren(row);
    }
  } catch (error) {
    $("mistakes-summary").textContent = error.message;
    body.replaceChildren();
  }
}

async function openDocument(key) {
  const view = $("document-text");
  try {
    const { data } = await call("GET", `${API}/runs/${state.runId}/document?${new URLSearchParams({ key })}`);
    view.textContent = `${data.key}\n\n${data.text}${data.truncated ? "\n…" : ""}`;
  } catch (error) {
    view.textContent = error.message;
  }
  view.hidden = false;
}

// ---- labelling ---------------------------------------------------------------------------
const labelling = { queue: [], index: 0, filed: 0, labels: [], bucket: "" };

// id2label as the job logs it, a Python dict: {0: 'billing', 1: "bug's"}
function runLabels(id2label) {
  return [...(id2label || "").matchAll(/\d+: (?:'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)")/g)]
    .map((m) => (m[1] ?? m[2]).replace(/\\(.)/g, "$1"));
}

async function suggest() {
  const path = $("suggest-path").value.trim();
  if (!path) return say("suggest-status", "Name the folder of unlabelled documents first.", "error");
  $("labeller").hidden = true;
  try {
    let { data: job } = await call("POST", `${API}/suggest`, { runid: state.runId, input_path: path, n: Number($("suggest-n").value) || 10 });
    while (!["COMPLETED", "FAILED"].includes(job.status)) {
      say("suggest-status", `Ranking… ${job.done}/${job.total ?? "?"} documents read`);
      await new Promise((resolve) => setTimeout(resolve, 1500));
      ({ data: job } = await call("GET", `${API}/suggest/${job.job_id}`));
    }
    if (job.status === "FAILED") return say("suggest-status", `Suggest failed: ${job.error}`, "error");
    Object.assign(labelling, { queue: job.suggestions || [], index: 0, bucket: job.input_uri.slice(5).split("/")[0] });
    say("suggest-status", `${labelling.queue.length} to label, least sure first.`);
    showSuggestion();
  } catch (error) {
    say("suggest-status", error.message, "error");
  }
}

function showSuggestion() {
  const item = labelling.queue[labelling.index];
  if (!item) {
    $("labeller").hidden = true;
    say("suggest-status", `All ${labelling.queue.length} seen: ${labelling.filed} labelled.` +
      (labelling.filed ? " Retrain to learn from them." : ""), labelling.filed ? "ok" : "");
    return;
  }
  $("labeller").hidden = false;
  $("labeller-position").textContent = `${labelling.index + 1} of ${labelling.queue.length} · ${item.key}`;
  $("labeller-text").textContent = item.text;
  $("labeller-guess").textContent = `The model guesses ${item.label} (${item.score.toFixed(3)}; margin ${item.margin.toFixed(3)})`;
  const button = (text, action) => Object.assign(document.createElement("button"), { type: "button", textContent: text, onclick: action });
  $("labeller-buttons").replaceChildren(
    ...labelling.labels.map((label, i) => button(`${i + 1} ${label}`, () => fileAs(label))),
    button("s skip", skipSuggestion),
    button("n new label…", newLabel),
  );
}

async function fileAs(label) {
  const item = labelling.queue[labelling.index];
  try {
    await call("POST", `${API}/datasets/file`, { document: `s3://${labelling.bucket}/${item.key}`, path: $("label-dataset").value.trim(), label });
    if (!labelling.labels.includes(label)) labelling.labels.push(label);
    labelling.filed += 1;
    $("retrain").disabled = false;
    say("suggest-status", `${labelling.filed} labelled: the last as ${label}.`, "ok");
    labelling.index += 1;
    showSuggestion();
  } catch (error) {
    say("suggest-status", error.message, "error");
  }
}

function skipSuggestion() {
  labelling.index += 1;
  showSuggestion();
}

function newLabel() {
  const label = (prompt("New label for this document:") || "").trim();
  if (label) fileAs(label);
}

async function retrain() {
  try {
    const payload = await call("POST", `${API}/process`, {
      labels: labelling.labels, path: $("label-dataset").value.trim(), experiment_name: state.experiment, promote: "if_better",
    });
    say("suggest-status", `Retraining: run ${payload.data.info.run_id} on ${payload.number_documents_treated} documents; ` +
      "it takes @champion only if it beats this model.", "ok");
    labelling.filed = 0;
    $("retrain").disabled = true;
    refreshRuns();
  } catch (error) {
    say("suggest-status", error.message, "error");
  }
}

document.addEventListener("keydown", (event) => {
  if ($("labeller").hidden || ["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName)) return;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const number = Number(event.key);
  if (number >= 1 && number <= labelling.labels.length) fileAs(labelling.labels[number - 1]);
  else if (event.key === "s") skipSuggestion();
  else if (event.key === "n") newLabel();
  else return;
  event.preventDefault();
});

// A chosen file is sent whole (the API reads PDFs, Word files, pages and e-mails); it is
// cleared once answered, so the next click classifies the text box again.
async function predict() {
  const file = $("predict-file").files[0];
  try {
    let request = { runid: state.runId, text: $("text").value };
    if (file) {
      request = new FormData();
      request.append("runid", state.runId);
      request.append("file", file);
    }
    const { data } = await call("POST", `${API}/predict${file ? "/file" : ""}`, request);
    $("predict-file").value = "";
    const answer = data.labels
      ? (data.labels.map((label) => `${label} (${data.scores[label].toFixed(3)})`).join(", ") ||
        `no label passes its threshold (best: ${data.label}, ${data.score.toFixed(3)})`)
      : `${data.label} (score ${data.score.toFixed(3)})`;
    const scope = data.ood_score === undefined ? ""
      : data.out_of_scope ? ` · out of scope (ood ${data.ood_score.toFixed(2)}): unlike the documents it was trained on`
        : ` · in scope (ood ${data.ood_score.toFixed(2)})`;
    const read = data.format ? ` · ${file.name} read as ${FORMAT_NAMES[data.format] || data.format}` : "";
    say("prediction", answer + (data.abstained ? " · abstained: route to a person" : "") + scope + read,
      data.out_of_scope ? "warn" : data.abstained ? "" : "ok");
    loadDrift();
  } catch (error) {
    say("prediction", error.message, "error");
  }
}

// ---- drift ------------------------------------------------------------------------------
async function loadDrift() {
  const chart = $("drift-chart");  // an <svg> has no `hidden`: its <div> is shown or not
  if (state.runStatus !== "FINISHED") {
    chart.hidden = true;
    say("drift-summary", "");
    return;
  }
  try {
    const { data } = await call("GET", `${API}/runs/${state.runId}/drift?hours=${$("drift-hours").value}`);
    say("drift-summary", data.verdict, data.drifted ? "warn" : "");
    chart.hidden = data.hours.length === 0;
    drawDrift($("drift-plot"), data.hours);
  } catch (error) {
    chart.hidden = true;
    say("drift-summary", error.message, error.payload?.status?.code === 422 ? "warn" : "error");
  }
}

function drawDrift(plot, hours) {
  const [w, h, left, top, bottom] = [640, 220, 40, 14, 34];
  const first = hours.length ? hours[0].hour : 0;
  const span = Math.max(hours.length ? hours[hours.length - 1].hour - first : 0, 3600);
  const x = (hour) => left + ((hour - first) / span) * (w - left - 16);
  const y = (v) => top + (1 - v) * (h - top - bottom);
  const ns = "http://www.w3.org/2000/svg";
  const el = (name, attrs, text) => {
    const node = document.createElementNS(ns, name);
    Object.entries(attrs).forEach(([k, v]) => node.setAttribute(k, v));
    if (text) node.textContent = text;
    return node;
  };
  const line = (key, cls) => el("polyline", { class: cls, points: hours.map((p) => `${x(p.hour)},${y(p[key])}`).join(" ") });
  const dots = (key, cls) => hours.map((p) => el("circle", { class: cls, cx: x(p.hour), cy: y(p[key]), r: 3 },
    ""));
  const stamp = (hour) => new Date(hour * 1000).toISOString().slice(5, 13).replace("T", " ") + "h";
  plot.replaceChildren(
    ...[0, 0.5, 1].map((v) => el("text", { x: 4, y: y(v) + 4 }, v.toFixed(1))),
    el("line", { class: "guide", x1: left, x2: w - 16, y1: y(0.5), y2: y(0.5) }),
    el("line", { class: "guide", x1: left, x2: w - 16, y1: y(0.05), y2: y(0.05) }),
    line("drift_auc", "auc"), ...dots("drift_auc", "auc"),
    line("out_of_scope_share", "oos"), ...dots("out_of_scope_share", "oos"),
    el("text", { x: left, y: h - 18 }, hours.length ? stamp(first) : ""),
    el("text", { x: w - 110, y: h - 18 }, hours.length > 1 ? stamp(hours[hours.length - 1].hour) : ""),
    el("text", { x: left, y: h - 4 }, "— drift AUC (0.5: like the training data)"),
    el("text", { x: left + 290, y: h - 4, style: "fill:#b54708" }, "— share out of scope (about 0.05)"),
  );
}

async function promote() {
  const request = { run_id: state.runId };
  if (!$("promote-bar-box").hidden) request.min_macro_f1 = Number($("promote-bar").value);
  try {
    const { data } = await call("POST", `${API}/promote`, request);
    await openRun(state.runId, false, false);
    refreshRuns();
    say("run-summary", `${data.registered_model} version ${data.version} is now @${data.alias}`, "ok");
  } catch (error) {
    say("run-summary", error.message, "error");
  }
}

async function cancelRun() {
  if (!confirm(`Stop training run ${state.runId}? It ends KILLED and registers no model.`)) return;
  try {
    const { data } = await call("POST", `${API}/run/cancel`, { run_id: state.runId, reason: "cancelled in the web UI" });
    say("run-summary", `${data.status} · ${data.cancelled}`, "ok");
    $("cancel-run").disabled = true;
    refreshRuns();
  } catch (error) {
    say("run-summary", error.message, "error");
  }
}

async function deleteRun() {
  if (!confirm(`Delete run ${state.runId}?`)) return;
  try {
    await call("POST", `${API}/run/soft_delete`, { run_id: state.runId });
    $("run-section").hidden = true;
    refreshRuns();
  } catch (error) {
    say("run-summary", error.message, "error");
  }
}

// ---- wiring -----------------------------------------------------------------------------
$("api-key").value = localStorage.getItem("cc-api-key") || "";
$("api-key").addEventListener("change", () => {
  localStorage.setItem("cc-api-key", $("api-key").value.trim());
  loadDatasets().catch(() => {});
  loadExperiments();
});
$("dataset").addEventListener("change", loadLabels);
$("folder").addEventListener("change", () => {
  $("upload").disabled = pickedFiles().length === 0;
  const first = $("folder").files[0];
  if (first && !$("dataset").value) $("dataset").value = (first.webkitRelativePath || "").split("/")[0];
});
for (const id of ["files", "files-label"]) {
  $(id).addEventListener("input", () => ($("upload").disabled = pickedFiles().length === 0));
}
$("upload").addEventListener("click", upload);
$("delete-dataset").addEventListener("click", deleteDataset);
$("train").addEventListener("click", train);
$("runs-experiment").addEventListener("change", () => {
  showExperiment();
  if (state.experiment) navigate(state.experiment);
});
window.addEventListener("popstate", followRoute);
$("delete-experiment").addEventListener("click", deleteExperiment);
$("predict").addEventListener("click", predict);
$("drift-refresh").addEventListener("click", loadDrift);
$("drift-hours").addEventListener("change", loadDrift);
$("suggest").addEventListener("click", suggest);
$("retrain").addEventListener("click", retrain);
$("promote").addEventListener("click", promote);
$("delete-run").addEventListener("click", deleteRun);
$("cancel-run").addEventListener("click", cancelRun);
for (const id of ["mistakes-true", "mistakes-predicted"]) {
  $(id).addEventListener("change", () => listMistakes(Object.fromEntries(
    [["true_label", $("mistakes-true").value], ["predicted_label", $("mistakes-predicted").value]].filter(([, v]) => v))));
}
health();
loadDatasets().catch(() => {});
loadExperiments().then(followRoute);
