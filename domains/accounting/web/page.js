// The accounts page: open an account and list them at /accounts; one account at
// /accounts/{id} with its balance, its ledger and a form to record a payment.
// A charge (sent by the billing policy when a shipment is delivered) updates an
// account on screen as its notice arrives.

import { busy, clearErrors, el, field, finder, minorUnits, money, showProblem } from "/static/forms.js";
import { listUrl, loadRecord, pagedList } from "/static/state.js";

const ID = /^\/([0-9A-Za-z_-]{1,64})$/;

export async function render(view, path) {
  const id = path.match(ID)?.[1];
  if (id) return showOne(view, id);
  view.root.innerHTML = `
    <section aria-labelledby="open-title">
      <form id="open-form" novalidate>
        <h1 id="open-title">Open an account</h1>
        ${field("holder", "Holder", 'maxlength="100" required autocomplete="off"')}
        <p class="error" id="form-error" role="alert" hidden></p>
        <button type="submit" id="open">Open account</button>
      </form>
    </section>
    <section aria-labelledby="accounts-title">
      <h2 id="accounts-title">Accounts <span class="hint">newest first</span></h2>
      <ul id="accounts" class="items"></ul>
      <p id="list-state" class="state" role="status">Loading…</p>
      <button type="button" id="more" class="secondary" hidden>Show more</button>
    </section>`;
  view.title("");
  const $ = finder(view.root);
  $("open-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(view.root, ["holder"]);
    view.clearNotice();
    const holder = $("holder").value.trim();
    busy($("open"), true, "Open account", "Opening…");
    try {
      const outcome = await view.submit("/api/accounts", { holder: $("holder").value }, { label: `${holder}'s account` });
      if (outcome.kind === "succeeded") await view.navigate(`/accounts/${outcome.resource.id}`);
      else if (outcome.kind === "later") view.notify("warn", `${holder}'s account will be open shortly.`);
      else showProblem(view.root, ["holder"], outcome.problem);
    } finally {
      if ($("open")) busy($("open"), false, "Open account", "Opening…");
    }
  });
  const rows = pagedList({
    list: $("accounts"),
    state: $("list-state"),
    more: $("more"),
    url: listUrl("/api/accounts"),
    item: (a) => {
      const li = el("li");
      li.append(view.link(`/accounts/${a.id}`, a.holder), el("span", `owes ${money(a.balance)}`, { className: "cat" }));
      return li;
    },
    empty: "No accounts yet.",
    what: "the accounts",
  });
  view.onNotice(() => rows.refresh());
  await rows.restart();
}

// ---- one account ------------------------------------------------------------------------
async function showOne(view, id) {
  view.root.innerHTML = `
    <section id="account-view">
      <p id="back"></p>
      <article id="account"></article>
      <form id="pay-form" novalidate hidden>
        <h2>Record a payment</h2>
        ${field("amount", "Amount", 'inputmode="decimal" autocomplete="off" placeholder="12.50"')}
        ${field("reference", "Reference", 'maxlength="100" autocomplete="off"', { hint: "applied once, for ever" })}
        <p class="error" id="form-error" role="alert" hidden></p>
        <button type="submit" id="pay">Record payment</button>
      </form>
    </section>`;
  const $ = finder(view.root);
  $("back").append(view.link("/accounts", "← All accounts"));
  const account = await loadRecord($("account"), `/api/accounts/${id}`, "account", () => showOne(view, id));
  if (!account) return;
  const ledger = { account, open: null }; // the account shown; the ledger's pages once read
  show(view, $, ledger, account);
  $("pay-form").hidden = false;
  $("pay-form").addEventListener("submit", (event) => pay(event, view, $, ledger));
  // A charge or payment from anywhere in this session: show the account as it is now.
  view.onNotice((notice) => {
    if (notice.status === "succeeded" && notice.resource?.id === id && $("account")) show(view, $, ledger, notice.resource);
  });
}

const entriesOf = (account) => account.entries || account.ledger.length; // a record of before `entries`: its ledger was whole

function show(view, $, ledger, account) {
  ledger.account = account;
  const h1 = el("h1", account.holder, { tabIndex: -1 });
  const balance = el("p", "", { id: "balance" });
  balance.append("Balance ", el("strong", money(account.balance)), el("span", " (what the holder owes)", { className: "hint" }));
  view.title(account.holder);
  if (ledger.open) {
    // Every entry was asked for: keep the table as far as it is open, the new ones on top.
    const [, , ...table] = $("account").children;
    $("account").replaceChildren(h1, balance, ...table);
    ledger.open.refresh();
    return;
  }
  const table = el("table", "", { id: "ledger", className: "ledger" });
  const total = entriesOf(account);
  const caption = table.createCaption();
  caption.textContent = total > account.ledger.length
    ? `Ledger: the latest ${account.ledger.length} of ${total} entries`
    : `Ledger: ${total} ${total === 1 ? "entry" : "entries"}`;
  const head = table.createTHead().insertRow();
  for (const h of ["When", "What", "Reference", "Amount"]) head.append(el("th", h, { scope: "col" }));
  const body = table.createTBody();
  body.append(...[...account.ledger].reverse().map((entry) => row(view, entry)));
  const parts = [h1, balance, table];
  if (total > account.ledger.length) {
    // The record keeps the latest entries; every entry is a record of the ledger read,
    // folded after the fact: read as far as the account shown, at least.
    const more = el("button", "Show every entry", { type: "button", id: "ledger-more" });
    const state = el("p", "", { id: "ledger-state", className: "state", role: "status" });
    const pages = pagedList({
      list: body,
      state,
      more,
      keep: true,
      size: 100,
      id: (entry) => entry.position,
      url: listUrl(`/api/accounts/${account.id}/ledger`, () => ({ min_position: String(ledger.account.position) })),
      item: (entry) => row(view, entry),
      empty: "The older entries cannot be listed yet.",
      what: "the ledger",
      shown: (count) => {
        ledger.open = pages;
        caption.textContent = `Ledger: ${count} of ${entriesOf(ledger.account)} entries, newest first`;
        more.textContent = "Show more";
      },
    });
    parts.push(more, state);
  }
  $("account").replaceChildren(...parts);
}

function row(view, entry) {
  const tr = el("tr", "", { className: entry.kind });
  tr.insertCell().textContent = new Date(entry.at).toLocaleString();
  tr.insertCell().textContent = entry.kind;
  // A charge's reference is the shipment it bills (domains/accounting/billing.py).
  const ref = tr.insertCell();
  ref.append(entry.kind === "charge" ? view.link(`/shipments/${entry.reference}`, entry.reference) : entry.reference);
  tr.insertCell().textContent = (entry.kind === "payment" ? "−" : "") + money(entry.amount);
  return tr;
}

async function pay(event, view, $, ledger) {
  const { id } = ledger.account;
  event.preventDefault();
  const fields = ["amount", "reference"];
  clearErrors(view.root, fields);
  view.clearNotice();
  const amount = minorUnits($("amount").value);
  if (Number.isNaN(amount) || amount < 1) {
    showProblem(view.root, fields, { errors: [{ loc: "$.amount", msg: "must be an amount such as 12.50" }] });
    return;
  }
  busy($("pay"), true, "Record payment", "Recording…");
  try {
    const body = { amount, reference: $("reference").value.trim() };
    const outcome = await view.submit(`/api/accounts/${id}/payments`, body, { label: `The payment ${body.reference}` });
    if (outcome.kind === "succeeded") {
      $("pay-form").reset();
      show(view, $, ledger, outcome.resource);
      view.notify("ok", `Payment of ${money(amount)} recorded.`);
    } else if (outcome.kind === "later") {
      $("pay-form").reset();
      view.notify("warn", "The payment will be recorded shortly.");
    } else {
      showProblem(view.root, fields, outcome.problem, { conflictField: "reference" });
    }
  } finally {
    if ($("pay")) busy($("pay"), false, "Record payment", "Recording…");
  }
}
