// The shipments page: create one and list them (filtered by status and account) at
// /shipments; one shipment at /shipments/{id} with its history and the actions its
// state allows. Delivering shows the delivery's outcome at once, then the charge
// the billing policy makes as its notice (caused by the delivery) arrives.

import { busy, clearErrors, el, field, finder, money, refocus, showProblem } from "/static/forms.js";
import { pending } from "/static/commands.js";
import { getJson, listUrl, loadRecord, pagedList } from "/static/state.js";

const ID = /^\/([0-9A-Za-z_-]{1,64})$/;
const FIELDS = ["account_id", "origin", "destination", "weight_grams"];
const STATUSES = ["created", "shipped", "delivered", "cancelled"];
const charged = new Set(); // shipments whose charge notice has been shown
// Actions said "shortly", shipment id -> command id: its actions wait for that notice.
const awaited = new Map();

// Whether the shipment's actions still wait (its notice may have come while the page was
// left: the command is then no longer pending).
function waiting(shipmentId) {
  const command = awaited.get(shipmentId);
  if (command && !pending()[command]) awaited.delete(shipmentId);
  return awaited.has(shipmentId);
}
const ACTIONS = {
  created: [["ship", "Ship"], ["cancel", "Cancel"]],
  shipped: [["deliver", "Deliver"]],
};

export async function render(view, path) {
  const id = path.match(ID)?.[1];
  if (id) return showOne(view, id);
  view.root.innerHTML = `
    <section aria-labelledby="create-title">
      <form id="create-form" novalidate>
        <h1 id="create-title">New shipment</h1>
        ${field("account_id", "Account", "required", { tag: "select" })}
        <div class="row">
          ${field("origin", "From", 'maxlength="2" required autocomplete="off" placeholder="GB"', { hint: "country code" })}
          ${field("destination", "To", 'maxlength="2" required autocomplete="off" placeholder="FR"', { hint: "country code" })}
          ${field("weight_grams", "Weight", 'type="number" min="1" max="30000" required', { hint: "grams" })}
        </div>
        <p class="error" id="form-error" role="alert" hidden></p>
        <button type="submit" id="submit">Create shipment</button>
      </form>
    </section>
    <section aria-labelledby="list-title">
      <h2 id="list-title">Shipments <span class="hint">newest first</span></h2>
      <div class="filters">
        <label>Status <select id="filter-status"><option value="">any</option>
          ${STATUSES.map((s) => `<option>${s}</option>`).join("")}</select></label>
        <label>Account <select id="filter-account"><option value="">any</option></select></label>
      </div>
      <ul id="shipments" class="items"></ul>
      <p id="list-state" class="state" role="status">Loading…</p>
      <button type="button" id="more" class="secondary" hidden>Show more</button>
    </section>`;
  view.title("");
  const $ = finder(view.root);
  const accounts = await getJson("/api/accounts?limit=200");
  const options = ((accounts.ok && accounts.data.items) || []).map((a) => el("option", a.holder, { value: a.id }));
  $("account_id").replaceChildren(el("option", "Choose an account", { value: "" }), ...options);
  if (!accounts.ok || !options.length) {
    // An empty choice says why: the accounts could not be read, or there are none yet.
    $("account_id-error").textContent = accounts.ok
      ? "There is no account yet: open one on the Billing page first."
      : `The accounts could not be read: ${accounts.problem.detail} Reload the page to try again.`;
    $("account_id-error").hidden = false;
  }
  $("filter-account").append(...options.map((o) => o.cloneNode(true)));
  $("create-form").addEventListener("submit", (e) => create(e, view, $));
  const filters = () => {
    const wanted = {};
    if ($("filter-status").value) wanted.status = $("filter-status").value;
    if ($("filter-account").value) wanted.account_id = $("filter-account").value;
    return wanted;
  };
  const rows = pagedList({
    list: $("shipments"),
    state: $("list-state"),
    more: $("more"),
    url: listUrl("/api/shipments", filters),
    item: (s) => shipmentItem(view, s),
    empty: "No shipments here yet.",
    what: "the shipments",
  });
  for (const f of ["filter-status", "filter-account"]) $(f).addEventListener("change", () => rows.restart());
  view.onNotice(() => rows.refresh());
  await rows.restart();
}

async function create(event, view, $) {
  event.preventDefault();
  clearErrors(view.root, FIELDS);
  view.clearNotice();
  const body = {
    account_id: $("account_id").value,
    origin: $("origin").value.trim().toUpperCase(),
    destination: $("destination").value.trim().toUpperCase(),
    weight_grams: Number($("weight_grams").value),
  };
  busy($("submit"), true, "Create shipment", "Creating…");
  try {
    const label = `The shipment to ${body.destination}`;
    const outcome = await view.submit("/api/shipments", body, { label });
    if (outcome.kind === "succeeded") await view.navigate(`/shipments/${outcome.resource.id}`);
    else if (outcome.kind === "later") view.notify("warn", `${label} will be ready shortly.`);
    else showProblem(view.root, FIELDS, outcome.problem);
  } finally {
    if ($("submit")) busy($("submit"), false, "Create shipment", "Creating…");
  }
}

function shipmentItem(view, s) {
  const li = el("li");
  const what = `${s.origin} → ${s.destination}, ${s.weight_grams} g`;
  li.append(view.link(`/shipments/${s.id}`, what), el("span", `${s.status} · ${money(s.price)}`, { className: "cat" }));
  return li;
}

// ---- one shipment -----------------------------------------------------------------------
async function showOne(view, id) {
  view.root.innerHTML = `
    <section id="shipment-view">
      <p id="back"></p>
      <article id="shipment"></article>
      <div id="actions" class="actions"></div>
      <p class="error" id="action-error" role="alert" hidden></p>
    </section>`;
  const $ = finder(view.root);
  $("back").append(view.link("/shipments", "← All shipments"));
  const shipment = await loadRecord($("shipment"), `/api/shipments/${id}`, "shipment", () => showOne(view, id));
  if (!shipment) return;
  show(view, $, shipment);
  view.onNotice((notice) => {
    if (!$("shipment")) return;
    if (notice.command_id === awaited.get(id)) {
      awaited.delete(id); // done (its state comes below) or refused: the actions are open again
      for (const b of $("actions").querySelectorAll("button")) b.disabled = false;
    }
    if (notice.status !== "succeeded") return;
    if (notice.resource?.id === id) show(view, $, notice.resource); // changed from another tab
    const entry = notice.type === "ChargeAccount" && notice.caused_by
      && (notice.resource?.ledger || []).find((e) => e.kind === "charge" && e.reference === id);
    if (entry) {
      charged.add(id);
      view.notify("ok", `Delivered, and ${notice.resource.holder}'s account was charged ${money(entry.amount)}: `,
        view.link(`/accounts/${notice.resource.id}`, "see the account"), ".");
    }
  });
}

function show(view, $, shipment) {
  const h1 = el("h1", `${shipment.origin} → ${shipment.destination}`, { tabIndex: -1 });
  const facts = el("p", "", { className: "hint" });
  facts.append(`${shipment.weight_grams} g · ${money(shipment.price)} · `, el("strong", shipment.status, { id: "status" }));
  const billed = el("p", "Billed to ", { id: "billed-to" });
  billed.append(view.link(`/accounts/${shipment.account_id}`, "its account"), " on delivery.");
  const history = el("ol", "", { id: "history", className: "history" });
  for (const step of shipment.history) {
    history.append(el("li", `${new Date(step.at).toLocaleString()}: ${step.status}`));
  }
  $("shipment").replaceChildren(h1, facts, billed, el("h2", "History"), history);
  $("actions").replaceChildren(
    ...(ACTIONS[shipment.status] || []).map(([action, label]) => {
      const button = el("button", label, { type: "button", id: `do-${action}` });
      button.addEventListener("click", () => act(view, $, shipment, action, label));
      button.disabled = waiting(shipment.id); // still to hear of the last one
      return button;
    }),
  );
  view.title(`${shipment.origin} → ${shipment.destination}`);
}

async function act(view, $, shipment, action, label) {
  $("action-error").hidden = true;
  view.clearNotice();
  const buttons = [...$("actions").querySelectorAll("button")];
  for (const b of buttons) b.disabled = true;
  try {
    const outcome = await view.submit(`/api/shipments/${shipment.id}/${action}`, {}, { label: `${label} (shipment)` });
    if (outcome.kind === "succeeded") {
      show(view, $, outcome.resource);
      if (action === "deliver" && !charged.has(shipment.id)) view.notify("ok", "Delivered. Charging the account…");
    } else if (outcome.kind === "later") {
      // Still to happen: another action now would be decided after it (a cancel after a
      // ship, refused). The actions wait for its notice.
      view.notify("warn", `${label}: it will be done shortly.`);
      awaited.set(shipment.id, outcome.commandId);
    } else {
      $("action-error").textContent = outcome.problem.detail || outcome.problem.title;
      $("action-error").hidden = false;
    }
  } finally {
    if (!waiting(shipment.id)) for (const b of buttons) b.disabled = false;
    // The clicked button was disabled or replaced (Ship by Deliver): the focus goes on
    // to the next action, or to the shipment when none is left.
    if ($("actions")) refocus($("actions").querySelector("button"), $("shipment").querySelector("h1"));
  }
}
