// The tenant console: one page over the instance's own REST API, no framework, no build step.
// Every text from the store goes into the page as text (textContent), never as HTML.
// The API key lives in `state.key` only: never in storage, a cookie or the address.

const state = { key: null };
const $ = (id) => document.getElementById(id);
const DISARM_AFTER_MS = 5000;

function percent(part, whole) {
  const share = (100 * part) / whole;
  return part > 0 && share < 0.1 ? "< 0.1 %" : `${share.toFixed(1)} %`;
}

function counted(n, word) {
  return `${n.toLocaleString("en")} ${word}${n === 1 ? "" : "s"}`;
}

class ApiError extends Error {
  constructor(status, body) {
    super(body.message);
    this.status = status;
    this.name = body.error;
    this.field = body.field;
  }
}

// Paths are relative to the page (/console/), so the console works behind a path prefix too.
async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.key) headers.Authorization = `Bearer ${state.key}`;
  let response;
  try {
    response = await fetch(new URL(`../${path}`, location.href), {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (failure) {
    throw new ApiError(0, { error: "unreachable", message: `the instance did not answer (${failure.message})` });
  }
  const payload = await response.json().catch(() => null);
  // /healthz/ answers 503 with its usual body while a deployment is down: still worth showing.
  if (response.ok || (path === "healthz/" && payload && payload.tenant_id !== undefined)) return payload;
  throw new ApiError(response.status, payload && payload.message ? payload : {
    error: `http_${response.status}`,
    message: `the instance answered ${response.status} ${response.statusText}`,
  });
}

// Each form reports in its own feedback box, right under it: an error as the API words it
// (its name, message and field), a success as a short notice.
function showError(failure, box) {
  const parts = [];
  if (failure instanceof ApiError) {
    const name = document.createElement("span");
    name.className = "error-name";
    name.textContent = failure.name;
    parts.push(name, ` ${failure.message}`);
    if (failure.field) parts.push(` (field: ${failure.field})`);
    if (failure.status === 401) revealKeyForm();
  } else {
    parts.push(failure.message);
  }
  box.replaceChildren(...parts);
  box.className = "feedback error";
  box.setAttribute("role", "alert");
}

function showNotice(text, box) {
  box.textContent = text;
  box.className = "feedback notice";
  box.setAttribute("role", "status");
}

// Runs what a form or button does, reporting its outcome in `box`: the action returns the notice.
async function attempt(action, box) {
  try {
    const notice = await action();
    if (notice) showNotice(notice, box);
    else box.replaceChildren();
  } catch (failure) {
    showError(failure, box);
  }
}

function parseJson(text, what) {
  try {
    return JSON.parse(text);
  } catch (failure) {
    throw new Error(`${what} is not valid JSON: ${failure.message}`);
  }
}

// An optional JSON object typed into a field: undefined when the field is empty.
function parseObject(text, what, example) {
  if (!text.trim()) return undefined;
  const value = parseJson(text, what);
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${what} must be a JSON object, like ${example}`);
  }
  return value;
}

// ---- Instance overview ----------------------------------------------------------------------

async function refreshHealth() {
  const health = await api("GET", "healthz/");
  $("tenant").textContent = health.tenant_id;
  document.title = `${health.tenant_id} · chromedb-instance console`;
  const badge = $("instance-status");
  badge.textContent = health.status === "ok" ? "all deployments up" : "degraded: a deployment is not answering";
  badge.className = `badge ${health.status === "ok" ? "ok" : "degraded"}`;
  $("plan").textContent = health.plan;
  $("model").textContent = `${health.model_name} (${health.dimension} dimensions)`;
  $("count").textContent = health.count === null ? "unavailable" : health.count.toLocaleString("en");
  $("auth").textContent = health.auth === "api_key" ? "API key required" : "open (no API key set)";
  const used = health.count ?? 0;
  $("quota-bar").value = health.quota ? used / health.quota : 0;
  $("quota-text").textContent =
    `${used.toLocaleString("en")} of ${counted(health.quota, "document")} ` +
    `(${percent(used, health.quota)})`;
  $("search-top-k").max = health.limits.max_top_k;
  $("import-limit").textContent = health.limits.max_docs_per_request.toLocaleString("en");
  $("deployments").replaceChildren(
    ...Object.entries(health.deployments).map(([name, deployment]) => {
      const item = document.createElement("li");
      const status = document.createElement("span");
      status.className = deployment.status === "ok" ? "state-ok" : "state-bad";
      status.textContent = deployment.status;
      item.append(`${name}: `, status);
      const index = deployment.detail && deployment.detail.index;
      if (index && index.state !== "ready") item.append(` (index ${index.state})`);
      return item;
    }),
  );
  if (health.auth === "api_key" && !state.key) revealKeyForm();
  if (health.auth !== "api_key") $("key-panel").hidden = true;
}

function revealKeyForm() {
  $("key-panel").hidden = false;
}

async function useKey() {
  state.key = $("api-key").value.trim();
  try {
    await api("GET", "count/"); // needs the key: proves it before anything else is tried
  } catch (failure) {
    state.key = null;
    throw failure;
  }
  $("api-key").value = "";
  return "Key accepted; kept in this page's memory only.";
}

function forgetKey() {
  state.key = null;
  $("api-key").value = "";
  $("results").replaceChildren();
  return "Key forgotten: this page no longer holds it.";
}

// ---- Search --------------------------------------------------------------------------------

function searchRequest() {
  const request = {
    query: $("search-query").value,
    mode: $("search-mode").value,
    top_k: Number($("search-top-k").value || 10),
  };
  const where = parseObject($("search-where").value, "The metadata filter", '{"source": "notes"}');
  if (where !== undefined) request.where = where;
  return request;
}

async function search(request) {
  const found = await api("POST", "search/", request);
  renderResults(found.results);
  return `${counted(found.results.length, "result")} (${request.mode}).`;
}

function renderResults(results) {
  const list = $("results");
  if (!results.length) {
    const empty = document.createElement("li");
    empty.className = "empty";
    empty.textContent = "No documents matched.";
    list.replaceChildren(empty);
    return;
  }
  list.replaceChildren(...results.map(resultItem));
  // Long texts scroll in their own box: bring each marked chunk into its box's view.
  for (const best of list.querySelectorAll(".text mark")) {
    const box = best.parentElement;
    box.scrollTop = best.offsetTop - box.offsetTop - 8;
  }
}

function resultItem(hit) {
  const item = document.createElement("li");
  item.dataset.id = hit.id;
  const id = document.createElement("span");
  id.className = "id";
  id.textContent = hit.id;
  const score = document.createElement("span");
  score.className = "score";
  score.textContent = `score ${hit.score.toFixed(3)}`;
  const text = document.createElement("p");
  text.className = "text";
  if (hit.span) {
    // A chunked document: mark the chunk that matched. The span counts Unicode code points (the
    // service is Python), so index by code point, not by JavaScript's UTF-16 units.
    const chars = Array.from(hit.text);
    const [start, end] = hit.span;
    const best = document.createElement("mark");
    best.textContent = chars.slice(start, end).join("");
    text.append(chars.slice(0, start).join(""), best, chars.slice(end).join(""));
  } else {
    text.textContent = hit.text;
  }
  const metadata = document.createElement("ul");
  metadata.className = "metadata";
  metadata.setAttribute("aria-label", "metadata");
  // Sorted by key: the store keeps no order, and a steady one is easier to read.
  for (const [key, value] of Object.entries(hit.metadata).sort(([a], [b]) => a.localeCompare(b))) {
    const entry = document.createElement("li");
    entry.textContent = `${key}: ${JSON.stringify(value)}`;
    metadata.append(entry);
  }
  const remove = document.createElement("button");
  remove.type = "button";
  remove.className = "danger";
  remove.textContent = "Delete";
  remove.setAttribute("aria-label", `Delete ${hit.id}`);
  remove.addEventListener("click", () => attempt(() => deleteFromResult(hit.id, item, remove), $("search-feedback")));
  item.append(id, score, text, metadata, remove);
  return item;
}

// Two presses: the first arms the button for a few seconds, the second deletes.
async function deleteFromResult(id, item, button) {
  if (!button.classList.contains("armed")) {
    button.classList.add("armed");
    button.textContent = "Press again to delete";
    setTimeout(() => {
      button.classList.remove("armed");
      button.textContent = "Delete";
    }, DISARM_AFTER_MS);
    return `Press the button again to delete ${id}.`;
  }
  const deleted = await api("POST", "delete/", { ids: [id] });
  item.remove();
  await refreshHealth();
  return `Deleted ${id}: ${counted(deleted.count, "document")} left.`;
}

// ---- Adding documents -----------------------------------------------------------------------

async function addOne() {
  const document_ = { text: $("add-text").value };
  const id = $("add-id").value.trim();
  if (id) document_.id = id;
  const metadata = parseObject($("add-metadata").value, "Metadata", '{"source": "notes"}');
  if (metadata !== undefined) document_.metadata = metadata;
  const stored = await api("POST", "embed/", { documents: [document_], chunking: $("add-chunking").checked });
  $("add-form").reset();
  await refreshHealth();
  return `Stored ${stored.ids[0]}: ${counted(stored.count, "document")} in all.`;
}

function parseLines(text) {
  const documents = text
    .split("\n")
    .map((line, index) => parseObject(line, `Line ${index + 1}`, '{"text": "…"}'))
    .filter((document_) => document_ !== undefined);
  if (!documents.length) throw new Error("Paste at least one line of JSON.");
  return documents;
}

// One request, so the paste is stored whole or not at all; past the plan's documents per request
// the API says so (bulk loads belong to `python -m chromedb_client import`, README).
async function addLines() {
  const documents = parseLines($("import-lines").value);
  const stored = await api("POST", "embed/", { documents, chunking: $("import-chunking").checked });
  $("import-form").reset();
  await refreshHealth();
  return `Stored ${counted(documents.length, "document")}: ${stored.count.toLocaleString("en")} in all.`;
}

// ---- Wiring ---------------------------------------------------------------------------------

function onSubmit(formId, feedbackId, action) {
  $(formId).addEventListener("submit", (event) => {
    event.preventDefault();
    attempt(action, $(feedbackId));
  });
}

document.addEventListener("DOMContentLoaded", () => {
  onSubmit("key-form", "key-feedback", useKey);
  onSubmit("search-form", "search-feedback", () => search(searchRequest()));
  onSubmit("add-form", "add-feedback", addOne);
  onSubmit("import-form", "import-feedback", addLines);
  $("forget-key").addEventListener("click", () => attempt(forgetKey, $("key-feedback")));
  $("refresh").addEventListener("click", () => attempt(refreshHealth, $("overview-feedback")));
  attempt(refreshHealth, $("overview-feedback"));
});
