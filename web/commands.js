// Submit a command and await its outcome: the one browser module every domain page uses.
//
// One session event stream per tab (GET /api/events) carries the notice of
// every command this browser session submits. `submit()` POSTs a command and
// waits for its own notice on that stream, up to the wait the developer panel
// sets; if none comes in time it answers "later", and the notice is still
// delivered when it comes, to the `onLate` listeners (the shell says "ready").
// The stream's cursor and the commands still pending live in sessionStorage,
// so a reload or a navigation resumes from the cursor and loses none; after a
// `reset` (a cursor the server cannot resume from) the status of each pending
// command is asked for instead.

import { randomId } from "/static/forms.js";

const store = {
  get cursor() { return sessionStorage.getItem("events.cursor"); },
  set cursor(id) { if (id) sessionStorage.setItem("events.cursor", id); },
  get pending() { return JSON.parse(sessionStorage.getItem("pending") || "{}"); },
  set pending(map) { sessionStorage.setItem("pending", JSON.stringify(map)); },
  // Which session of this tab's the stream is (a sign-in or out starts another).
  get epoch() { return Number(sessionStorage.getItem("events.epoch") || 0); },
  set epoch(n) { sessionStorage.setItem("events.epoch", String(n)); },
};

const waiters = new Map(); // command id -> resolve(notice), for a submit still waiting
const recent = new Map(); // command id -> notice, for a notice that beats its POST response
const listeners = { notice: new Set(), late: new Set(), state: new Set(), log: new Set() };
let settings = () => ({ timeout: 5, serverWait: false, slowSeconds: null });

/** How long to wait, whether to wait on the server, whether to simulate a slow reactor. */
export function configure(provider) { settings = provider; }

/** Every notice of this session, as it arrives (to refresh a list, say). Returns an unsubscribe. */
export function onNotice(fn) { return listen("notice", fn); }
/** A notice that came after its submit stopped waiting: fn(notice, pending) where pending = {label}. */
export function onLate(fn) { return listen("late", fn); }
/** The stream's state: "connecting", "live", "reconnecting" or "unavailable". */
export function onState(fn) { return listen("state", fn); }
/** A line for the developer log: fn(kind, text). */
export function onLog(fn) { return listen("log", fn); }

function listen(kind, fn) {
  listeners[kind].add(fn);
  return () => listeners[kind].delete(fn);
}
function emit(kind, ...args) { for (const fn of listeners[kind]) fn(...args); }
const log = (kind, text) => emit("log", kind, text);

/** The commands submitted in this tab's session and not yet answered: {id: {label}}. */
export function pending() { return store.pending; }

function remember(id, label, epoch) {
  store.pending = { ...store.pending, [id]: { label, epoch } };
}
function forget(id) {
  const map = store.pending;
  delete map[id];
  store.pending = map;
}

// ---- the session event stream ---------------------------------------------------
let source = null;
let away = false; // the last stream said NATS is unreachable

/**
 * Open the stream again, for a new session (signing in or out gives the browser a new
 * session id): notices now come to the new one. Commands still pending were the old
 * session's, so their outcome is asked for by id.
 */
export function reconnect() {
  if (source) source.close();
  source = null;
  // The old session's cursor means nothing to the new one (it would answer `reset`):
  // start afresh. Its pending commands' notices never come on the new stream: each is
  // asked for until it has an outcome (`follow`).
  sessionStorage.removeItem("events.cursor");
  store.epoch += 1;
  connect();
}

let probing = false;

/**
 * Ask /readyz, every second while the stream stays open, until NATS is back: the
 * stream may open again while a cluster still elects a leader (readyz 503), and
 * then stays open with nothing to say, so one look would leave the page "unavailable".
 */
function probeUntilBack() {
  if (probing) return;
  probing = true;
  const again = () => {
    probing = false;
    if (away && source && source.readyState === EventSource.OPEN) setTimeout(probeUntilBack, 1000);
  };
  fetch("/readyz").then((r) => {
    if (!r.ok) return again();
    probing = false;
    away = false;
    emit("state", "live");
  }, again);
}

/** Open the session stream (once per tab), resuming from the stored cursor. */
export function connect() {
  if (source) return;
  followEarlierSessions();
  const cursor = store.cursor;
  source = new EventSource(cursor ? `/api/events?last_event_id=${encodeURIComponent(cursor)}` : "/api/events");
  emit("state", "connecting");
  source.onopen = () => {
    log("SSE open", "/api/events");
    if (!away) return emit("state", "live");
    // After "unavailable" the stream opens again every retry: live only once NATS is back.
    probeUntilBack();
  };
  source.onerror = () => {
    // Ended after "unavailable": still retrying, still unavailable until NATS is back.
    emit("state", away ? "unavailable" : "reconnecting");
    log("SSE error", "connection lost; reconnecting");
    // Refused (e.g. too many streams): EventSource gives up by itself, so try again later.
    if (source.readyState === EventSource.CLOSED) {
      source = null;
      setTimeout(connect, 3000);
    }
  };
  // A stream without a cursor starts at the present: a notice stored before it (a
  // form sent while it opened, or the old session's) never comes on it, so ask.
  source.addEventListener("connected", (e) => {
    store.cursor = e.lastEventId;
    starts += 1;
    resyncPending();
  });
  // The API is up but cannot reach NATS: it says so and ends the stream, which
  // EventSource opens again after the stream's retry hint.
  source.addEventListener("unavailable", () => {
    away = true;
    emit("state", "unavailable");
    log("SSE unavailable", "NATS unreachable; retrying");
  });
  source.addEventListener("reset", (e) => {
    store.cursor = e.lastEventId;
    starts += 1;
    log("SSE reset", e.data);
    resyncPending();
  });
  for (const kind of ["succeeded", "failed"]) {
    source.addEventListener(kind, (e) => {
      store.cursor = e.lastEventId;
      log(`SSE ${kind}`, e.data);
      deliver(JSON.parse(e.data));
    });
  }
}

// Commands whose outcome was delivered in the last minute: its notice may come twice
// (from the status endpoint, then on the stream), and is delivered once.
const delivered = new Set();

function deliver(notice) {
  const id = notice.command_id;
  if (delivered.has(id)) return;
  delivered.add(id);
  setTimeout(() => delivered.delete(id), 60000);
  const waiting = waiters.get(id);
  if (waiting) {
    waiting(notice);
  } else if (store.pending[id]) {
    const mine = store.pending[id];
    forget(id);
    emit("late", notice, mine);
  } else {
    recent.set(id, notice); // maybe ours, its POST response not back yet
    setTimeout(() => recent.delete(id), 60000);
  }
  emit("notice", notice);
}

// The stream cannot send what was stored before it started (a new stream, or a `reset`):
// ask the status endpoint about each pending command instead. One still pending is
// this session's, so its notice comes on the stream; one of an earlier session's is
// followed until it has an outcome.
let starts = 0; // streams started from the present (`connected`, `reset`)

async function resyncPending() {
  followEarlierSessions();
  for (const [id, { epoch }] of Object.entries(store.pending)) {
    if (epoch === store.epoch) await settle(id);
  }
}

// Deliver a pending command's outcome if it has one; whether it is settled.
async function settle(id) {
  const status = await outcomeOf(id);
  if (status === undefined) forget(id);
  else if (status && store.pending[id]) deliver(status); // not delivered meanwhile
  return status !== null;
}

// Commands sent in an earlier session of this tab (before a sign-in or out): asked for
// every few seconds (1 s, doubling up to 30 s) until they have an outcome.
const followed = new Set();

function followEarlierSessions() {
  for (const [id, { epoch }] of Object.entries(store.pending)) {
    if ((epoch ?? 0) !== store.epoch) follow(id);
  }
}

async function follow(id) {
  if (followed.has(id)) return;
  followed.add(id);
  try {
    for (let wait = 1000; store.pending[id] && !(await settle(id)); wait = Math.min(wait * 2, 30000)) {
      await sleep(wait);
    }
  } finally {
    followed.delete(id);
  }
}

// The command's outcome from the status endpoint (shaped as its notice); null while it
// is pending or cannot be read; undefined if there is no such command.
async function outcomeOf(id) {
  try {
    const res = await fetch(`/api/commands/${id}`);
    if (res.status === 404) return undefined;
    const status = res.ok ? await res.json() : null;
    return status && status.status !== "pending" ? status : null;
  } catch {
    return null;
  }
}

// Resolves with the notice, or null when `seconds` pass first. Its status is asked for
// too, once the time is up (a stream that was not open when the notice came never
// sends it), and at once if `askNow`; a notice that comes meanwhile still wins.
function awaitNotice(id, seconds, askNow) {
  if (recent.has(id)) return Promise.resolve(recent.get(id));
  return new Promise((resolve) => {
    const done = (notice) => {
      clearTimeout(timer);
      if (waiters.get(id) === done) waiters.delete(id);
      resolve(notice);
    };
    const ask = async (last) => {
      const status = await outcomeOf(id);
      if (status || last) done(status || null);
    };
    const timer = setTimeout(() => ask(true), seconds * 1000);
    waiters.set(id, done);
    if (askNow) ask(false);
  });
}

// Each submission carries an Idempotency-Key. One whose answer was lost (the
// network failed after the POST left, a 503 after which the command may be stored,
// or a 409 saying the first attempt is still in progress) keeps its key for ten
// minutes: submitting the same form again sends it again, so the server answers
// with the first command instead of making a second one (a location made twice
// would fail as "name taken"). Any other answer forgets it. Kept in sessionStorage,
// so a reload keeps them too, except for a body with a secret in it (a field
// named like a password, secret or token): that one is kept in memory only.
const KEPT_KEYS = "unanswered";
const KEEP_KEY_MS = 10 * 60 * 1000;
const IN_FLIGHT = "/problems/idempotency-in-flight";
const SECRET_FIELD = /"[^"]*(pass|secret|token)[^"]*"\s*:/i;

function keptKeys() {
  try {
    return new Map(JSON.parse(sessionStorage.getItem(KEPT_KEYS) || "[]"));
  } catch {
    return new Map(); // unreadable: start afresh
  }
}

const unanswered = keptKeys(); // url + body -> {key, at, secret}

function keepKeys() {
  const kept = [...unanswered].filter(([, { secret }]) => !secret);
  try {
    sessionStorage.setItem(KEPT_KEYS, JSON.stringify(kept));
  } catch {
    // storage full or refused: the keys are still kept in memory
  }
}

function keyFor(attempt) {
  const now = Date.now();
  for (const [kept, { at }] of unanswered) if (now - at > KEEP_KEY_MS) unanswered.delete(kept);
  if (!unanswered.has(attempt)) {
    unanswered.set(attempt, { key: randomId(), at: now, secret: SECRET_FIELD.test(attempt) });
  }
  keepKeys();
  return unanswered.get(attempt).key;
}

function answered(attempt) {
  unanswered.delete(attempt);
  keepKeys();
}

// Whether the answer says the first attempt with this key has not answered yet.
const inFlight = (res, problem) => res.status === 409 && problem.type === IN_FLIGHT;

// Whether an answer may leave the command stored, or still being published.
function maybeAccepted(res, problem) {
  if (res.headers.has("idempotent-replayed")) return false; // a final answer, again
  if (res.status === 409) return inFlight(res, problem);
  return res.status === 503 && problem.type !== "/problems/busy"; // busy: nothing stored
}

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

/**
 * POST a command and await its outcome. `label` names it to the user ("“Leeds”").
 * Resolves with one of:
 *   {kind: "succeeded", resource, notice}  the command succeeded in time
 *   {kind: "failed", problem}              refused at once (400/422...) or failed in time
 *   {kind: "later", commandId}             no outcome in time: onLate listeners get it
 *   {kind: "error", problem}               the server could not be reached
 */
export async function submit(url, body, { label = "" } = {}) {
  const { timeout, serverWait, slowSeconds } = settings();
  const payload = JSON.stringify(body);
  const attempt = `${url} ${payload}`;
  const headers = { "content-type": "application/json", "idempotency-key": keyFor(attempt) };
  if (slowSeconds) headers["x-simulate-delay"] = String(slowSeconds);
  if (serverWait) headers.prefer = `wait=${Math.min(timeout, 30)}`;
  const until = Date.now() + timeout * 1000;
  const startsBefore = starts;
  const epoch = store.epoch; // the session it is sent in: its notice goes to that one
  let res;
  let json;
  for (;;) {
    try {
      res = await fetch(url, { method: "POST", headers, body: payload });
    } catch (err) {
      log("ERROR", String(err));
      return { kind: "error", problem: { detail: "Could not reach the server. Check your connection and try again." } };
    }
    try {
      json = await res.json();
    } catch {
      // Not the service's answer (a proxy's error page, say): whether the command was
      // stored is unknown, so the key is kept for the retry, and the answer is named.
      log(`POST ${res.status}`, "(not JSON)");
      const detail = `The server answered ${res.status} ${res.statusText} without saying why: something between you and the service may be failing. Try again in a moment; it will not be done twice.`;
      return { kind: "error", problem: { detail } };
    }
    log(`POST ${res.status}`, json);
    // The first attempt of this form is still being answered: ask again when it has.
    const wait = Number(res.headers.get("retry-after") || 1) * 1000;
    if (!inFlight(res, json) || Date.now() + wait > until) break;
    await sleep(wait);
  }
  if (!maybeAccepted(res, json)) answered(attempt);
  if (inFlight(res, json)) {
    return { kind: "error", problem: { detail: "Your previous attempt is still being processed. Try again in a moment." } };
  }
  if (res.status === 201 || res.status === 200) return { kind: "succeeded", resource: json, notice: null };
  if (res.status !== 202) return { kind: "failed", problem: json };
  const id = json.command_id;
  // A replayed 202 is the first attempt's command: it may have finished long ago.
  const done = res.headers.has("idempotent-replayed") ? await outcomeOf(id) : null;
  if (done) return settled(done);
  remember(id, label, epoch);
  if (epoch !== store.epoch) follow(id); // signed in or out while it was answered
  // The server waited already (`Prefer: wait` answered 202): no more waiting here. A
  // stream that started while the POST was out may have started after its notice
  // (which it then never sends), and asked for the pending ones before this was one.
  const waited = res.headers.has("preference-applied");
  const notice = await awaitNotice(id, waited ? 0 : timeout, starts !== startsBefore);
  if (!notice) return { kind: "later", commandId: id };
  forget(id);
  return settled(notice);
}

function settled(notice) {
  return notice.status === "succeeded"
    ? { kind: "succeeded", resource: notice.resource, notice }
    : { kind: "failed", problem: notice.error };
}
