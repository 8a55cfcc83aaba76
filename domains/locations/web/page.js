// The locations page: the create form and the list at /locations, one location at
// /locations/{id}. Submitting goes through the shell's `view.submit` (the shared
// command module), so waiting, the "shortly" fallback and the late "ready" are
// not this page's concern.

import { busy, clearErrors, field, finder, showProblem } from "/static/forms.js";
import { listUrl, loadRecord, pagedList } from "/static/state.js";

const FIELDS = ["name", "category", "description"];
const CATEGORIES = ["Town", "City", "County/Region", "Country", "Continent"];

const FORM = `
  <section id="home-view" aria-labelledby="create-title">
    <form id="create-form" novalidate>
      <h1 id="create-title">New location</h1>
      ${field("name", "Name", 'maxlength="100" required autocomplete="off"')}
      ${field("category", "Category", "required", {
        tag: "select",
        content: CATEGORIES.map((c) => `<option${c === "City" ? " selected" : ""}>${c}</option>`).join(""),
      })}
      ${field("description", "Description", 'maxlength="1000" rows="3"', { tag: "textarea", hint: "optional" })}
      <p class="error" id="form-error" role="alert" hidden></p>
      <button type="submit" id="submit">Create location</button>
    </form>
    <section aria-labelledby="list-title">
      <h2 id="list-title">All locations <span class="hint">newest first</span></h2>
      <ul id="locations" class="items"></ul>
      <p id="list-state" class="state" role="status">Loading…</p>
      <button type="button" id="more" class="secondary" hidden>Show more</button>
    </section>
  </section>`;

export async function render(view, path) {
  const id = path.match(/^\/([0-9a-f]{24})$/)?.[1];
  if (id) return showOne(view, id);
  view.root.innerHTML = FORM;
  view.title("");
  const $ = finder(view.root);
  $("create-form").addEventListener("submit", (e) => create(e, view, $));
  const rows = pagedList({
    list: $("locations"),
    state: $("list-state"),
    more: $("more"),
    url: listUrl("/api/locations"),
    item: (loc) => item(view, loc),
    empty: "No locations yet.",
    what: "the locations",
  });
  view.onNotice(() => rows.refresh()); // created in another tab of this session, maybe
  await rows.restart();
}

// ---- creating -----------------------------------------------------------------------------
async function create(event, view, $) {
  event.preventDefault();
  clearErrors(view.root, FIELDS);
  view.clearNotice();
  const body = Object.fromEntries(FIELDS.map((f) => [f, $(f).value]));
  const name = body.name.trim();
  busy($("submit"), true, "Create location", "Creating…");
  try {
    const outcome = await view.submit("/api/locations", body, { label: `“${name}”` });
    if (outcome.kind === "succeeded") {
      $("create-form").reset();
      await view.navigate(`/locations/${outcome.resource.id}`);
    } else if (outcome.kind === "later") {
      $("create-form").reset();
      view.notify("warn", `“${name}” will be available shortly. You will be told here when it is ready.`);
    } else {
      showProblem(view.root, FIELDS, outcome.problem, { conflictField: "name" });
    }
  } finally {
    if ($("submit")) busy($("submit"), false, "Create location", "Creating…");
  }
}

// ---- the list -------------------------------------------------------------------------------
function item(view, loc) {
  const li = document.createElement("li");
  const cat = document.createElement("span");
  cat.className = "cat";
  cat.textContent = loc.category;
  li.append(view.link(`/locations/${loc.id}`, loc.name), cat);
  return li;
}

// ---- one location ---------------------------------------------------------------------------
async function showOne(view, id) {
  const back = document.createElement("p");
  back.append(view.link("/locations", "← All locations"));
  const article = document.createElement("article");
  article.id = "location";
  const section = document.createElement("section");
  section.id = "location-view";
  section.append(back, article);
  view.root.replaceChildren(section);
  const loc = await loadRecord(article, `/api/locations/${id}`, "location", () => showOne(view, id));
  if (!loc) return;
  const h1 = document.createElement("h1");
  h1.textContent = loc.name;
  h1.tabIndex = -1;
  const meta = document.createElement("p");
  meta.className = "hint";
  meta.textContent = `${loc.category} · created ${new Date(loc.created_at).toLocaleString()}`;
  const desc = document.createElement("p");
  desc.textContent = loc.description || "No description.";
  article.replaceChildren(h1, meta, desc);
  view.title(loc.name);
  h1.focus();
}
