// The shell: navigation between the domains' pages, the outcome messages, the
// developer panel. It knows no domain: the pages come from /app/manifest.json,
// and each is an ES module with `render(view, path)` (see domains/*/web/page.js).
import * as commands from "/static/commands.js";
import { showState, stateIn } from "/static/state.js";
import { refocus } from "/static/forms.js";

const $ = (id) => document.getElementById(id);

// ---- developer log -------------------------------------------------------------------
function log(kind, text) {
  const li = document.createElement("li");
  const t = document.createElement("span");
  t.className = "t";
  t.textContent = `${new Date().toISOString().slice(11, 23)} ${kind} `;
  li.append(t, typeof text === "string" ? text : JSON.stringify(text));
  $("log").prepend(li);
}

// ---- messages to the user --------------------------------------------------------------
// A toast fixed in the viewport: seen wherever the user is on the page (a phone's
// form far below the top included), until closed or replaced.
export function notify(kind, ...parts) {
  const box = $("notice");
  box.className = `notice ${kind}`;
  const close = Object.assign(document.createElement("button"), {
    type: "button",
    className: "close",
    textContent: "×",
    title: "Close",
  });
  close.setAttribute("aria-label", "Close the message");
  close.addEventListener("click", clearNotice);
  const text = document.createElement("span");
  text.append(...parts);
  box.replaceChildren(text, close);
  box.hidden = false;
  announce(text.textContent);
}
export function clearNotice() { $("notice").hidden = true; }

// The toast appears with its text, which screen readers often do not announce: the
// same words go to a live region that is always there (emptied first, so that the
// same message twice is announced twice).
function announce(words) {
  const region = $("announce");
  region.textContent = "";
  setTimeout(() => { region.textContent = words; }, 50);
}

export function link(href, text) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  a.dataset.nav = "";
  return a;
}

// A notice that came after its submit stopped waiting, here or before a reload.
function announceLate(notice, pending) {
  const label = pending.label || "It";
  if (notice.status === "succeeded") {
    const action = (notice.actions || [])[0];
    notify("ok", `${label} is ready`, ...(action ? [": ", link(action.href, "open it"), "."] : ["."]));
  } else {
    notify("err", `${label} could not be done: ${notice.error.detail}`);
  }
}

// ---- pages -------------------------------------------------------------------------------
let pages = [];
let leaving = []; // unsubscribes of the page on screen
let routing = 0; // which call of route() is the page on screen's

function pageFor(path) {
  return pages.find((p) => path === p.path || path.startsWith(`${p.path}/`));
}

export async function navigate(href) {
  history.pushState({}, "", href);
  await route();
  // What was focused (the button that led here) is gone: the new page's heading, for a
  // keyboard or a screen reader to go on from.
  const h1 = $("page").querySelector("h1");
  if (h1 && !h1.hasAttribute("tabindex")) h1.tabIndex = -1;
  refocus(h1);
}

async function route() {
  for (const stop of leaving) stop();
  leaving = [];
  const mine = ++routing;
  // A page left before it finished rendering (a quick second navigation) stops what it
  // starts after that at once, rather than leave it running under the next page.
  const keep = (stop) => {
    if (mine === routing) leaving.push(stop);
    else stop();
  };
  const path = location.pathname;
  for (const a of document.querySelectorAll("#nav a")) {
    a.toggleAttribute("aria-current", a.getAttribute("href") === pageFor(path)?.path);
    if (a.hasAttribute("aria-current")) a.setAttribute("aria-current", "page");
  }
  const page = pageFor(path);
  const root = $("page");
  if (!page) {
    document.title = "notify-service";
    root.replaceChildren(home());
    return;
  }
  let module;
  try {
    module = await import(page.module);
  } catch (err) {
    // The API restarting or the network gone while the page loaded: say so, and offer a
    // reload (a module that failed to load may be remembered as failed until then).
    log("page error", `${page.module}: ${err}`);
    if (mine === routing) showState(stateIn(root), "error", "Could not load this page.", () => location.reload());
    return;
  }
  if (mine !== routing) return; // left while its module loaded: the next page renders
  const view = {
    root,
    submit: commands.submit,
    notify,
    clearNotice,
    link,
    navigate,
    onNotice: (fn) => keep(commands.onNotice(fn)),
    onLeave: (fn) => keep(fn), // run when the user leaves the page
    title: (text) => { document.title = text ? `${text} · ${page.title}` : page.title; },
    account: () => account,
    auth,
    signedInOrOut,
    refreshAccount: loadAccount, // the header's name, after a profile change
  };
  await module.render(view, path.slice(page.path.length) || "/");
}

function home() {
  const section = document.createElement("section");
  const h1 = document.createElement("h1");
  h1.textContent = "What would you like to do?";
  const list = document.createElement("ul");
  list.className = "cards";
  for (const page of pages) {
    const li = document.createElement("li");
    const about = document.createElement("p");
    about.className = "hint";
    about.textContent = page.summary;
    li.append(link(page.path, page.title), about);
    list.append(li);
  }
  section.append(h1, list);
  return section;
}

// ---- who is signed in -------------------------------------------------------------------
let auth = null; // {signin, signup} paths, when a domain lets users sign in
let account = null; // {user_id, email, display_name}, or null

async function loadAccount() {
  if (!auth) return null;
  try {
    const res = await fetch("/api/sessions/current");
    // Signed out is a 401; a 503 or no answer says nothing of it: the header stays.
    if (res.ok) account = await res.json();
    else if (res.status === 401) account = null;
  } catch {
    // the server could not be reached: as above
  }
  showAccount();
  return account;
}

function showAccount() {
  const box = $("account");
  if (!auth) return box.replaceChildren();
  if (!account) {
    box.replaceChildren(link(auth.signin, "Sign in"), " · ", link(auth.signup, "Sign up"));
    return;
  }
  const out = document.createElement("button");
  out.type = "button";
  out.className = "link";
  out.id = "sign-out";
  out.textContent = "Sign out";
  out.addEventListener("click", async () => {
    out.disabled = true; // one sign-out at a time
    let res = null;
    try {
      res = await fetch("/api/sessions/current", { method: "DELETE" });
    } catch {
      // not reached: said below
    }
    if (!res?.ok) {
      // Still signed in: the header must not say otherwise (a shared computer).
      out.disabled = false;
      const why = res ? "the service is unavailable" : "the server could not be reached";
      notify("err", `Could not sign out: ${why}. You are still signed in; try again.`);
      return;
    }
    account = null; // said by the 204, whatever a read of the session says next
    await signedInOrOut(true);
    notify("ok", "You are signed out.");
    await navigate(auth.signin);
  });
  const who = document.createElement("span");
  who.id = "signed-in-as";
  who.textContent = `Signed in as ${account.display_name}`;
  box.replaceChildren(who, " · ", out);
}

/** After signing in or out: the session changed, so the header and the notice stream
 * follow, in this tab and in the others (they share the cookie, so the session). */
async function signedInOrOut(out = false) {
  sessionChanges?.postMessage(out ? "signed-out" : "changed");
  return followTheSession();
}

function followTheSession() {
  commands.reconnect();
  return loadAccount();
}

const sessionChanges = "BroadcastChannel" in window ? new BroadcastChannel("session") : null;
sessionChanges?.addEventListener("message", async (e) => {
  const before = account?.user_id ?? null;
  if (e.data === "signed-out") account = null;
  await followTheSession();
  // Another user now, or none: the page shows what that one may do (its forms were the
  // last user's: a rename kept on screen after signing out answered "Sign in first").
  if ((account?.user_id ?? null) !== before) await route();
});

// ---- start ---------------------------------------------------------------------------------
commands.configure(() => ({
  timeout: Number($("timeout").value) || 5,
  serverWait: $("server-wait").checked,
  slowSeconds: $("slow").checked ? $("slow-seconds").value : null,
}));
commands.onLog(log);
commands.onLate(announceLate);
commands.onState((state) => {
  $("conn").dataset.state = state;
  $("conn").textContent = {
    live: "live",
    reconnecting: "reconnecting…",
    unavailable: "service unavailable, retrying…",
  }[state] || "connecting…";
});

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[data-nav]");
  if (!a || e.metaKey || e.ctrlKey || e.shiftKey) return;
  e.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", route);

// The developer panel's settings last as long as the tab (they were reset by a reload,
// which is how a developer checks the "ready shortly" path of a slow reactor).
const DEV_SETTINGS = ["timeout", "server-wait", "slow", "slow-seconds"];
const setting = (input) => (input.type === "checkbox" ? "checked" : "value"); // what it holds
function keepDevSettings() {
  let kept = {};
  try {
    kept = JSON.parse(sessionStorage.getItem("dev") || "{}");
  } catch {
    // not ours, or broken: the defaults
  }
  const save = () => {
    const now = Object.fromEntries(DEV_SETTINGS.map((id) => [id, $(id)[setting($(id))]]));
    sessionStorage.setItem("dev", JSON.stringify(now));
  };
  for (const id of DEV_SETTINGS) {
    const input = $(id);
    if (id in kept) input[setting(input)] = kept[id];
    input.addEventListener("input", save);
    input.addEventListener("change", save);
  }
}

async function start() {
  let manifest;
  try {
    const res = await fetch("/app/manifest.json");
    if (!res.ok) throw new Error(`answered ${res.status}`);
    manifest = await res.json();
  } catch (err) {
    // The API restarting as the page loads: say so, and offer a reload.
    log("page error", `/app/manifest.json: ${err}`);
    showState(stateIn($("page")), "error", "Could not load the application.", () => location.reload());
    return;
  }
  pages = manifest.pages;
  auth = manifest.auth;
  // The developer panel (slow reactor, waits, the log) only when the stack runs in dev mode.
  $("dev").closest("aside").hidden = !manifest.dev;
  keepDevSettings();
  await loadAccount();
  $("nav").replaceChildren(...pages.map((p) => link(p.path, p.title)));
  commands.connect();
  // A reload while a command was still pending: say so again; its notice comes on the stream.
  const waiting = Object.values(commands.pending());
  if (waiting.length) notify("warn", `${waiting.at(-1).label || "Your last request"} will be ready shortly.`);
  route();
}

await start();
