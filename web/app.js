// The locations page: submit a command, await its notice over SSE, show the result.
// No framework, no build step. Per-command event streams (GET /api/commands/{id}/events).
"use strict";

const $ = (id) => document.getElementById(id);
const FIELDS = ["name", "category", "description"];
const LATER_TIMEOUT_S = 300; // how long one "tell me when it is ready" stream waits

// ---- log panel -------------------------------------------------------------
function log(kind, text) {
  const li = document.createElement("li");
  const t = document.createElement("span");
  t.className = "t";
  t.textContent = `${new Date().toISOString().slice(11, 23)} ${kind} `;
  li.append(t, typeof text === "string" ? text : JSON.stringify(text));
  $("log").prepend(li);
}

// ---- notices shown to the user --------------------------------------------
function notify(kind, ...parts) {
  const box = $("notice");
  box.className = `notice ${kind}`;
  box.replaceChildren(...parts);
  box.hidden = false;
}
function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  a.dataset.nav = "";
  return a;
}

// ---- form errors -----------------------------------------------------------
function clearErrors() {
  for (const f of [...FIELDS, "form"]) {
    $(`${f}-error`).hidden = true;
    if (f !== "form") $(f).removeAttribute("aria-invalid");
  }
}
function showProblem(problem) {
  let placed = false;
  for (const err of problem.errors || []) {
    const field = (err.loc || "").replace(/^\$\./, "");
    if (FIELDS.includes(field)) {
      const p = $(`${field}-error`);
      p.textContent = `${field[0].toUpperCase()}${field.slice(1)} ${err.msg}.`;
      p.hidden = false;
      $(field).setAttribute("aria-invalid", "true");
      $(field).setAttribute("aria-describedby", `${field}-error`);
      if (!placed) $(field).focus();
      placed = true;
    }
  }
  if (!placed) {
    const target = problem.status === 409 ? $("name-error") : $("form-error");
    target.textContent = problem.detail || problem.title || "Something went wrong.";
    target.hidden = false;
    if (problem.status === 409) { $("name").setAttribute("aria-invalid", "true"); $("name").focus(); }
  }
}

// ---- the command / notice flow ---------------------------------------------
function busy(on) {
  const b = $("submit");
  b.disabled = on;
  b.setAttribute("aria-busy", String(on));
  b.textContent = on ? "Creating…" : "Create location";
}

async function submitForm(event) {
  event.preventDefault();
  clearErrors();
  $("notice").hidden = true;
  const body = Object.fromEntries(FIELDS.map((f) => [f, $(f).value]));
  const headers = { "content-type": "application/json" };
  if ($("slow").checked) headers["x-simulate-delay"] = $("slow-seconds").value;
  busy(true);
  try {
    const res = await fetch("/api/locations", { method: "POST", headers, body: JSON.stringify(body) });
    const json = await res.json();
    log(`POST ${res.status}`, json);
    if (res.status !== 202) { showProblem(json); return; }
    const outcome = await awaitOutcome(json, Number($("timeout").value) || 5);
    if (outcome.event === "succeeded") {
      $("create-form").reset();
      showLocation(outcome.notice.resource, true);
    } else if (outcome.event === "failed") {
      showProblem(outcome.notice.error);
    } else {
      $("create-form").reset();
      notify("warn", `“${body.name.trim()}” will be available shortly. You will be told here when it is ready.`);
      followLater(json, body.name.trim());
    }
  } catch (err) {
    log("ERROR", String(err));
    showProblem({ detail: "Could not reach the server. Check your connection and try again." });
  } finally {
    busy(false);
  }
}

// Resolves with {event, notice} on succeeded / failed / timeout.
function awaitOutcome(accepted, timeoutS) {
  return new Promise((resolve) => {
    const es = new EventSource(`${accepted.events_url}?timeout=${timeoutS}`);
    const finish = (event) => (e) => {
      es.close();
      log(`SSE ${event}`, e.data);
      resolve({ event, notice: JSON.parse(e.data) });
    };
    es.addEventListener("succeeded", finish("succeeded"));
    es.addEventListener("failed", finish("failed"));
    es.addEventListener("timeout", finish("timeout"));
    es.onopen = () => log("SSE open", accepted.events_url);
    es.onerror = () => log("SSE error", "connection lost; the browser reconnects by itself");
  });
}

// After a timeout: keep a stream open until the notice comes, then say so.
async function followLater(accepted, name) {
  for (;;) {
    const { event, notice } = await awaitOutcome(accepted, LATER_TIMEOUT_S);
    if (event === "succeeded") {
      notify("ok", `“${notice.resource.name}” is ready: `, link(notice.actions[0].href, "open it"), ".");
      if (!$("home-view").hidden) loadList();
      return;
    }
    if (event === "failed") {
      notify("err", `“${name}” could not be created: ${notice.error.detail}`);
      return;
    }
  }
}

// ---- views -------------------------------------------------------------------
function locationItem(loc) {
  const li = document.createElement("li");
  const cat = document.createElement("span");
  cat.className = "cat";
  cat.textContent = loc.category;
  li.append(link(`/locations/${loc.id}`, loc.name), cat);
  return li;
}

async function loadList() {
  const res = await fetch("/api/locations?limit=50");
  const json = await res.json();
  $("locations").replaceChildren(...(json.items || []).map(locationItem));
  $("empty").hidden = (json.items || []).length > 0;
}

function showLocation(loc, push) {
  if (push) history.pushState({}, "", `/locations/${loc.id}`);
  $("home-view").hidden = true;
  $("location-view").hidden = false;
  const art = $("location");
  const h1 = document.createElement("h1");
  h1.textContent = loc.name;
  h1.tabIndex = -1;
  const meta = document.createElement("p");
  meta.className = "hint";
  meta.textContent = `${loc.category} · created ${new Date(loc.created_at).toLocaleString()}`;
  const desc = document.createElement("p");
  desc.textContent = loc.description || "No description.";
  art.replaceChildren(h1, meta, desc);
  document.title = `${loc.name} · Locations`;
  h1.focus();
}

async function route() {
  const m = location.pathname.match(/^\/locations\/([0-9a-f]{24})$/);
  if (!m) {
    $("home-view").hidden = false;
    $("location-view").hidden = true;
    document.title = "Locations";
    await loadList();
    return;
  }
  const res = await fetch(`/api/locations/${m[1]}`);
  if (res.ok) { showLocation(await res.json(), false); return; }
  $("home-view").hidden = true;
  $("location-view").hidden = false;
  $("location").replaceChildren(Object.assign(document.createElement("p"), { textContent: "This location does not exist (yet)." }));
}

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-nav]");
  if (!a || e.metaKey || e.ctrlKey || e.shiftKey) return;
  e.preventDefault();
  history.pushState({}, "", a.getAttribute("href"));
  route();
});
window.addEventListener("popstate", route);
$("create-form").addEventListener("submit", submitForm);
route();
