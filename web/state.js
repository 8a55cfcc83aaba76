// What a list or a record shows while it loads, when it is empty, and when it cannot
// be read (the API or NATS away): never an empty list for an error. Every page uses it.

/**
 * GET a JSON resource: {ok: true, data} or {ok: false, status, problem}; a network error is
 * status 0 with a problem of its own, so the caller has one shape to show.
 */
export async function getJson(url) {
  let res;
  try {
    res = await fetch(url);
  } catch {
    return { ok: false, status: 0, problem: { detail: "The server cannot be reached." } };
  }
  let body = {};
  try {
    body = await res.json();
  } catch {
    // not JSON: the status says enough
  }
  if (res.ok) return { ok: true, status: res.status, data: body };
  const detail = body.detail || `The server answered ${res.status}.`;
  return { ok: false, status: res.status, problem: { ...body, detail } };
}

/**
 * Show a state in `box` (a <p class="state" role="status">): "loading", "empty" (with
 * `text`), "error" (with `text` and a Retry button calling `retry`), or "none" (hidden).
 */
export function showState(box, kind, text = "", retry = null) {
  if (!box) return;
  box.dataset.state = kind;
  box.hidden = kind === "none";
  if (kind === "loading") box.replaceChildren("Loading…");
  else if (kind === "error" && retry) {
    const again = Object.assign(document.createElement("button"), {
      type: "button",
      className: "secondary retry",
      textContent: "Retry",
    });
    again.addEventListener("click", retry);
    box.replaceChildren(`${text} `, again);
  } else box.replaceChildren(text);
}

/** Replace what `container` shows with a state line (for `showState`), and return it. */
export function stateIn(container) {
  const box = Object.assign(document.createElement("p"), { className: "state" });
  box.setAttribute("role", "status");
  container.replaceChildren(box);
  return box;
}

/**
 * Read one record into `container`: a state line shows while it loads; the record's data
 * comes back, or null once the line says why not (404: "does not exist (yet)", since a
 * view may trail its command; anything else: the problem, with Retry calling `retry`).
 */
export async function loadRecord(container, url, what, retry) {
  const box = stateIn(container);
  showState(box, "loading");
  const got = await getJson(url);
  if (got.ok) return got.data;
  if (got.status === 404) showState(box, "empty", `This ${what} does not exist (yet).`);
  else showState(box, "error", `Could not load the ${what}: ${got.problem.detail}`, retry);
  return null;
}
