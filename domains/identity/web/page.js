// The account page: sign up at /account/signup, sign in at /account/signin, and who
// you are at /account. Signing up is a command (its notice says whether the email
// was free); the page then signs the new user in with the same email and password,
// so sign-up ends signed in. Signing in and out are plain requests to /api/sessions.

import { busy, clearErrors, el, field, finder, showProblem } from "/static/forms.js";

const SIGNUP = ["email", "password", "display_name"];
const SIGNIN = ["email", "password"];

export async function render(view, path) {
  if (path === "/signup") return signUp(view);
  if (path === "/signin") return signIn(view);
  return whoAmI(view);
}

// ---- sign up ------------------------------------------------------------------------------
function signUp(view) {
  view.root.innerHTML = `
    <section aria-labelledby="signup-title">
      <form id="signup-form" novalidate>
        <h1 id="signup-title">Sign up</h1>
        ${field("display_name", "Your name", 'type="text" maxlength="60" autocomplete="name" required')}
        ${field("email", "Email", 'type="email" maxlength="254" autocomplete="email" required')}
        ${field("password", "Password", 'type="password" minlength="8" maxlength="128" autocomplete="new-password" required', { hint: "at least 8 characters" })}
        <p class="error" id="form-error" role="alert" hidden></p>
        <button type="submit" id="signup">Sign up</button>
        <p class="hint">Already registered? <a href="/account/signin" data-nav>Sign in</a></p>
      </form>
    </section>`;
  view.title("Sign up");
  const $ = finder(view.root);
  $("signup-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(view.root, SIGNUP);
    view.clearNotice();
    const body = Object.fromEntries(SIGNUP.map((f) => [f, $(f).value]));
    busy($("signup"), true, "Sign up", "Signing up…");
    try {
      const outcome = await view.submit("/api/users", body, { label: "Your account" });
      if (outcome.kind === "succeeded") {
        let signedIn = null;
        try {
          signedIn = await postSession(body.email, body.password);
        } catch {
          // the server could not be reached: said below
        }
        if (!signedIn?.ok) {
          // The account exists (a second sign-up would be "taken"): signing in is left.
          view.notify("warn", "Your account is ready, but you could not be signed in just now: sign in.");
          await view.navigate("/account/signin");
          return;
        }
        await view.signedInOrOut();
        view.notify("ok", `Welcome, ${body.display_name.trim()}! You are signed in; a welcome email is on its way.`);
        await view.navigate("/account");
      } else if (outcome.kind === "later") {
        view.notify("warn", "Your account will be ready shortly: sign in in a moment.");
        await view.navigate("/account/signin");
      } else {
        showProblem(view.root, SIGNUP, outcome.problem, { conflictField: "email" });
      }
    } finally {
      if ($("signup")) busy($("signup"), false, "Sign up", "Signing up…");
    }
  });
  $("display_name").focus();
}

// ---- sign in ------------------------------------------------------------------------------
function postSession(email, password) {
  return fetch("/api/sessions", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
}

function signIn(view) {
  view.root.innerHTML = `
    <section aria-labelledby="signin-title">
      <form id="signin-form" novalidate>
        <h1 id="signin-title">Sign in</h1>
        ${field("email", "Email", 'type="email" maxlength="254" autocomplete="email" required')}
        ${field("password", "Password", 'type="password" maxlength="128" autocomplete="current-password" required')}
        <p class="error" id="form-error" role="alert" hidden></p>
        <button type="submit" id="signin">Sign in</button>
        <p class="hint">New here? <a href="/account/signup" data-nav>Sign up</a></p>
      </form>
    </section>`;
  view.title("Sign in");
  const $ = finder(view.root);
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(view.root, SIGNIN);
    view.clearNotice();
    busy($("signin"), true, "Sign in", "Signing in…");
    try {
      let res;
      try {
        res = await postSession($("email").value, $("password").value);
      } catch {
        showProblem(view.root, SIGNIN, { detail: "Could not reach the server. Try again." });
        return;
      }
      if (res.ok) {
        const user = await view.signedInOrOut();
        view.notify("ok", `Signed in as ${user?.display_name ?? "you"}.`);
        await view.navigate("/videos");
        return;
      }
      const problem = await res.json();
      if (res.status === 429) {
        const minutes = Math.ceil(Number(res.headers.get("retry-after") || 60) / 60);
        problem.detail = `${problem.detail} (in about ${minutes} minute${minutes === 1 ? "" : "s"})`;
      }
      showProblem(view.root, SIGNIN, problem);
    } finally {
      if ($("signin")) busy($("signin"), false, "Sign in", "Signing in…");
    }
  });
  $("email").focus();
}

// ---- who am I -----------------------------------------------------------------------------
function whoAmI(view) {
  const user = view.account();
  const section = el("section", "", { id: "account-view" });
  const article = el("article");
  if (user) {
    const h1 = el("h1", user.display_name, { tabIndex: -1 });
    article.append(h1, el("p", `Signed in as ${user.email}.`, { id: "account-email" }));
    const mine = el("p");
    mine.append(view.link(`/videos?owner=${user.user_id}`, "Your videos"), " · ", view.link("/videos", "all videos"));
    article.append(mine);
  } else {
    article.append(el("h1", "Your account"), el("p", "You are not signed in."));
    const links = el("p");
    links.append(view.link("/account/signin", "Sign in"), " or ", view.link("/account/signup", "sign up"), ".");
    article.append(links);
  }
  section.append(article);
  view.root.replaceChildren(section);
  view.title("");
}
