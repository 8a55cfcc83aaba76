// The locations page. One session event stream (GET /api/events) carries the
// notices of every command this browser session submits; a submit waits for
// its own notice on it, and a notice that comes after the wait gave up is
// still shown. The stream's cursor and the commands still pending live in
// sessionStorage, so a reload or a navigation resumes without losing one.
"use strict";

const $ = (id) => document.getElementById(id);
const FIELDS = ["name", "category", "description"];
const store = {
  get cursor() { return sessionStorage.getItem("events.cursor"); },
  set cursor(id) { if (id) sessionStorage.setItem("events.cursor", id); },
  get pending() { return JSON.parse(sessionStorage.getItem("pending") || "{}"); },
  set pending(map) { sessionStorage.setItem("pending", JSON.stringify(map)); },
};
const waiters = new Map(); // command id -> resolve(notice), for a submit still waiting
const recent = new Map(); // command id -> notice, for a notice that beats its POST response

// ---- log panel ---------------------------------------------------------------
function log(kind, text) {
  const li = document.createElement("li");
  const t = document.createElement("span");
  t.className = "t";
  t.textContent = `${new Date().toISOString().slice(11, 23)} ${kind} `;
  li.append(t, typeof text === "string" ? text : JSON.stringify(text));
  $("log").prepend(li);
}

// ---- messages to the user ------------------------------------------------------
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

// ---- the session event stream ----------------------------------------------------
function connect() {
  const cursor = store.cursor;
  const source = new EventSource(cursor ? `/api/events?last_event_id=${encodeURIComponent(cursor)}` : "/api/events");
  const state = (s, text) => { $("conn").dataset.state = s; $("conn").textContent = text; };
  source.onopen = () => { state("live", "live"); log("SSE open", "/api/events"); };
  source.onerror = () => {
    state("reconnecting", "reconnecting…");
    log("SSE error", "connection lost; reconnecting");
    // Refused (e.g. too many streams): EventSource gives up by itself, so try again later.
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 3000);
  };
  source.addEventListener("connected", (e) => { store.cursor = e.lastEventId; });
  source.addEventListener("reset", (e) => {
    store.cursor = e.lastEventId;
    log("SSE reset", e.data);
    resyncPending();
  });
  for (const kind of ["succeeded", "failed"]) {
    source.addEventListener(kind, (e) => {
      store.cursor = e.lastEventId;
      log(`SSE ${kind}`, e.data);
      onNotice(JSON.parse(e.data));
    });
  }
}

function onNotice(notice) {
  const id = notice.command_id;
  const waiting = waiters.get(id);
  if (waiting) { waiting(notice); return; }
  const pending = store.pending[id];
  if (pending) {
    forget(id);
    announceLate(notice, pending.name);
  } else {
    recent.set(id, notice); // maybe ours, its POST response not back yet
    setTimeout(() => recent.delete(id), 60000);
  }
  if (!$("home-view").hidden) loadList(); // created in another tab of this session, maybe
}

function announceLate(notice, name) {
  if (notice.status === "succeeded") {
    const action = notice.actions[0];
    notify("ok", `“${notice.resource.name}” is ready: `, link(action.href, "open it"), ".");
  } else {
    notify("err", `${name ? `“${name}”` : "A location"} could not be created: ${notice.error.detail}`);
  }
}

// After a reset the cursor is gone: ask the status endpoint about each pending command.
async function resyncPending() {
  for (const id of Object.keys(store.pending)) {
    const res = await fetch(`/api/commands/${id}`);
    if (res.status === 404) { forget(id); continue; }
    const status = await res.json();
    if (status.status !== "pending") onNotice(status);
  }
}
function forget(id) {
  const pending = store.pending;
  delete pending[id];
  store.pending = pending;
}

// ---- form errors -------------------------------------------------------------------
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

// ---- submitting ----------------------------------------------------------------------
function busy(on) {
  const b = $("submit");
  b.disabled = on;
  b.setAttribute("aria-busy", String(on));
  b.textContent = on ? "Creating…" : "Create location";
}

// Resolves with the notice, or null when `seconds` pass first.
function awaitNotice(id, seconds) {
  if (recent.has(id)) return Promise.resolve(recent.get(id));
  return new Promise((resolve) => {
    const timer = setTimeout(() => { waiters.delete(id); resolve(null); }, seconds * 1000);
    waiters.set(id, (notice) => { clearTimeout(timer); waiters.delete(id); resolve(notice); });
  });
}

async function submitForm(event) {
  event.preventDefault();
  clearErrors();
  $("notice").hidden = true;
  const body = Object.fromEntries(FIELDS.map((f) => [f, $(f).value]));
  const name = body.name.trim();
  const timeout = Number($("timeout").value) || 5;
  const headers = { "content-type": "application/json" };
  if ($("slow").checked) headers["x-simulate-delay"] = $("slow-seconds").value;
  if ($("server-wait").checked) headers.prefer = `wait=${Math.min(timeout, 30)}`;
  busy(true);
  try {
    const res = await fetch("/api/locations", { method: "POST", headers, body: JSON.stringify(body) });
    const json = await res.json();
    log(`POST ${res.status}`, json);
    if (res.status === 201) { done({ status: "succeeded", resource: json }); return; }
    if (res.status !== 202) { showProblem(json); return; }
    const id = json.command_id;
    store.pending = { ...store.pending, [id]: { name } };
    const notice = res.headers.has("preference-applied") ? recent.get(id) : await awaitNotice(id, timeout);
    if (notice) {
      forget(id);
      done(notice);
    } else {
      $("create-form").reset();
      notify("warn", `“${name}” will be available shortly. You will be told here when it is ready.`);
    }
  } catch (err) {
    log("ERROR", String(err));
    showProblem({ detail: "Could not reach the server. Check your connection and try again." });
  } finally {
    busy(false);
  }
}

function done(notice) {
  if (notice.status === "succeeded") {
    $("create-form").reset();
    showLocation(notice.resource, true);
  } else {
    showProblem(notice.error);
  }
}

// ---- views ------------------------------------------------------------------------------
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
  const h1 = document.createElement("h1");
  h1.textContent = loc.name;
  h1.tabIndex = -1;
  const meta = document.createElement("p");
  meta.className = "hint";
  meta.textContent = `${loc.category} · created ${new Date(loc.created_at).toLocaleString()}`;
  const desc = document.createElement("p");
  desc.textContent = loc.description || "No description.";
  $("location").replaceChildren(h1, meta, desc);
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
connect();
route();
