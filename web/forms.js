// Small helpers every domain page's forms use: errors at their fields, a busy
// button, money in minor units. Pages pass their own root and field names.

const byId = (root, id) => root.querySelector(`#${CSS.escape(id)}`);

/** Hide every field error of `fields` (and the form-wide one, `<prefix>form-error`). */
export function clearErrors(root, fields, prefix = "") {
  for (const f of [...fields, "form"]) {
    const p = byId(root, `${prefix}${f}-error`);
    if (p) p.hidden = true;
    const input = byId(root, `${prefix}${f}`);
    if (input && f !== "form") {
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby"); // no longer described by a hidden error
    }
  }
}

/**
 * Show a problem: each `errors[].loc` at its field ("$.name" -> #name-error), named by
 * the field's label (the API's name for it, "weight_grams", is not what the form says),
 * and focus the first such field in the form's order (not the API's); what has no field
 * goes to `conflictField` (for a 409) or the form-wide error.
 */
export function showProblem(root, fields, problem, { prefix = "", conflictField = null } = {}) {
  const invalid = [];
  for (const err of problem.errors || []) {
    const key = (err.loc || "").replace(/^\$\./, "");
    if (!fields.includes(key)) continue;
    const p = byId(root, `${prefix}${key}-error`);
    const input = byId(root, `${prefix}${key}`);
    const label = labelOf(root, input.id) || key.replaceAll("_", " ");
    p.textContent = `${label[0].toUpperCase()}${label.slice(1)} ${err.msg}.`;
    p.hidden = false;
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", p.id);
    invalid.push(input);
  }
  if (invalid.length) {
    const first = (a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1);
    invalid.sort(first)[0].focus();
    return;
  }
  const onField = problem.status === 409 && conflictField;
  const target = byId(root, onField ? `${prefix}${conflictField}-error` : `${prefix}form-error`);
  target.textContent = problem.detail || problem.title || "Something went wrong.";
  target.hidden = false;
  if (onField) {
    const input = byId(root, `${prefix}${conflictField}`);
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", target.id);
    input.focus();
  }
}

/** The words of a control's <label>, without its hint ("Weight" of "Weight (grams)"). */
function labelOf(root, id) {
  const label = root.querySelector(`label[for="${CSS.escape(id)}"]`);
  if (!label) return "";
  const words = [...label.childNodes].filter((n) => n.nodeType === Node.TEXT_NODE);
  return words.map((n) => n.textContent).join("").trim();
}

/** 32 random hex digits (getRandomValues, not randomUUID: the page may be served over plain HTTP). */
export function randomId() {
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** A submit button's busy state: disabled, aria-busy, and its label while busy. */
export function busy(button, on, idle, working) {
  if (on) button.dataset.hadFocus = String(document.activeElement === button);
  button.disabled = on;
  button.setAttribute("aria-busy", String(on));
  button.textContent = on ? working : idle;
  // Disabled, it dropped the keyboard's focus to the page's body: give it back.
  if (!on && button.dataset.hadFocus === "true") refocus(button);
}

/**
 * Put the focus back where the person was if it was lost (a disabled or replaced
 * control drops it to the page's body): on the first of `candidates` still on the page
 * and enabled. Focus the person moved meanwhile is left where it is.
 */
export function refocus(...candidates) {
  const now = document.activeElement;
  if (now && now !== document.body) return;
  candidates.find((c) => c?.isConnected && !c.disabled)?.focus();
}

/** Minor units as major ones: 1250 -> "12.50". */
export function money(minor) {
  const sign = minor < 0 ? "-" : "";
  const abs = Math.abs(minor);
  return `${sign}${Math.floor(abs / 100)}.${String(abs % 100).padStart(2, "0")}`;
}

/** "12.5" -> 1250; NaN when it is not an amount with at most two decimals. */
export function minorUnits(text) {
  const m = String(text).trim().match(/^(\d{1,9})(?:\.(\d{1,2}))?$/);
  return m ? Number(m[1]) * 100 + Number((m[2] || "0").padEnd(2, "0")) : NaN;
}

/** An element with text: el("p", "hello", {className: "hint"}). */
export function el(tag, text = "", props = {}) {
  return Object.assign(document.createElement(tag), { textContent: text }, props);
}

/** The page's root-scoped getElementById. */
export function finder(root) {
  return (id) => byId(root, id);
}

/**
 * A form field's markup: its label (and a hint in brackets), its control and the
 * place its error goes (`#<id>-error`, where showProblem puts it). `attrs` are the
 * control's other attributes; `tag` "textarea" or "select" (with its `content`).
 * Every argument is markup, not text: pass literals, never what a user typed.
 */
export function field(id, label, attrs = "", { tag = "input", name = id, hint = "", content = "" } = {}) {
  const note = hint ? ` <span class="hint">(${hint})</span>` : "";
  const open = `<${tag} id="${id}" name="${name}"${attrs ? ` ${attrs}` : ""}>`;
  const control = tag === "input" ? open : `${open}${content}</${tag}>`;
  return `
    <div class="field">
      <label for="${id}">${label}${note}</label>
      ${control}
      <p class="error" id="${id}-error" hidden></p>
    </div>`;
}
