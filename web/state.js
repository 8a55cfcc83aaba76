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

// The most a list read answers at once (the API's ?limit= bound).
const MAX_PAGE = 200;

/**
 * A list read page by page into `list` (a <ul>): the first page, then `more` (a "Show
 * more" button) appends the next. `refresh()` (after a notice: something was added or
 * changed) reads from the start again, at least as many rows as are shown and on until
 * the row that was last (by `id`) is in, and replaces them at once: a list opened to its
 * third page stays open that far, new rows on top (every page fell back to its first
 * page at each notice of the session). `restart()` reads the first page alone (a filter
 * changed). One read at a time, in the order asked; a refresh asked while one waits is
 * the same refresh. A read answering after its page was left changes nothing.
 *
 * `url(cursor, limit)` is the read's URL; `item(record)` its row; `state` the list's
 * state line (loading, empty with `empty`, or the error about `what`, with Retry);
 * `shown(count)` is told how many rows show after each read that placed them.
 *
 * With `keep`, the list starts with rows of its own (a record's latest entries): `more`
 * reads the first page, which replaces them, and a first read of nothing leaves them,
 * the state line saying `empty` (the read's view may not have them yet).
 */
export function pagedList({ list, state, more, url, item, empty, what, size = 50, id = (r) => r.id, keep = false, shown = () => {} }) {
  let started = !keep; // a page has been read (or the list has no rows of its own)
  let cursor = null;
  let last = null; // the id of the last row shown
  let queue = Promise.resolve();
  let waiting = null; // a refresh or restart asked for and not begun
  const run = (step) => (queue = queue.then(step, step));

  // Rows from `from` on: `wanted` of them, and on (10 at a time, a page at most more)
  // until the row `until` is among them.
  async function read(from, wanted, until) {
    const records = [];
    let next = from;
    let seen = until === null;
    do {
      const short = wanted - records.length;
      const got = await getJson(url(next, Math.min(MAX_PAGE, short > 0 ? short : 10)));
      if (!list.isConnected) return null; // the page was left
      if (!got.ok) {
        showState(state, "error", `Could not load ${what}: ${got.problem.detail}`, () => ask(from ? "more" : "refresh"));
        return null;
      }
      const items = got.data.items || [];
      records.push(...items);
      seen ||= items.some((r) => id(r) === until);
      next = got.data.next_cursor || null;
    } while (next && (records.length < wanted || (!seen && records.length < wanted + MAX_PAGE)));
    return { records, next };
  }

  async function load(kind) {
    if (kind !== "more") waiting = null;
    else if (!started) kind = "restart"; // the first page, in place of the list's own rows
    more.disabled = true;
    const refresh = kind === "refresh" && list.children.length > 0;
    const from = kind === "more" ? cursor : null;
    const got = await read(from, refresh ? Math.max(size, list.children.length) : size, refresh ? last : null);
    more.disabled = false;
    if (!got) return;
    const rows = got.records.map(item);
    const none = kind !== "more" && !rows.length;
    if (kind === "more") list.append(...rows);
    else if (!none || started) list.replaceChildren(...rows);
    started ||= !none;
    if (got.records.length || kind !== "more") last = got.records.length ? id(got.records.at(-1)) : null;
    cursor = got.next;
    showState(state, none || !list.children.length ? "empty" : "none", empty);
    more.hidden = !cursor;
    if (started) shown(list.children.length);
  }

  function ask(kind) {
    if (kind === "more") return run(() => load("more"));
    if (waiting) {
      if (kind === "restart") waiting.kind = "restart"; // one page, the filter's
      return waiting.done;
    }
    const asked = { kind };
    waiting = asked;
    asked.done = run(() => load(asked.kind));
    return asked.done;
  }

  more.addEventListener("click", () => ask("more"));
  return { refresh: () => ask("refresh"), restart: () => ask("restart") };
}

/** `url` for `pagedList`: `path` with `params()` (read at each request), limit and cursor. */
export function listUrl(path, params = () => ({})) {
  return (cursor, limit) => {
    const query = new URLSearchParams({ ...params(), limit: String(limit) });
    if (cursor) query.set("cursor", cursor);
    return `${path}?${query}`;
  };
}
