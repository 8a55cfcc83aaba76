// The profile page: /profile is yours (your summary, your name and bio, your posts
// with the write, edit and delete forms); /profile/{user id} is anyone's summary and
// posts. The summary is a view made again from all of a user's inputs after each
// change; after each notice the page reads it at the notice's position
// (?min_position=), so what it shows is never behind what you just did.

import { busy, clearErrors, el, field, finder, refocus, showProblem } from "/static/forms.js";
import { getJson, listUrl, pagedList, showState } from "/static/state.js";

const ID = /^\/([0-9A-Za-z_-]{1,64})$/;
const POST_FIELDS = ["title", "body"];

export async function render(view, path) {
  const me = view.account();
  const who = path.match(ID)?.[1] || me?.user_id;
  if (!who) {
    const p = el("p");
    p.append(view.link(view.auth?.signin || "/", "Sign in"), " to see your profile.");
    view.root.replaceChildren(el("section", "", { id: "profile-view" }));
    view.root.firstChild.append(el("h1", "Profile"), p);
    view.title("");
    return;
  }
  const mine = me?.user_id === who;
  view.root.innerHTML = `
    <section id="profile-view" aria-labelledby="summary-name">
      <article id="summary" aria-live="polite"><p id="summary-state" class="state">Loading…</p></article>
      <p id="bio" class="bio" hidden></p>
      <div id="mine"></div>
      <section aria-labelledby="posts-title">
        <h2 id="posts-title">Posts <span class="hint">newest first</span></h2>
        <ul id="posts" class="items"></ul>
        <p id="list-state" class="state" role="status">Loading…</p>
        <button type="button" id="more" class="secondary" hidden>Show more</button>
      </section>
    </section>`;
  const $ = finder(view.root);
  if (mine) showForms(view, $, who);
  const posts = pagedList({
    list: $("posts"),
    state: $("list-state"),
    more: $("more"),
    url: listUrl("/api/posts", () => ({ author_id: who })),
    item: (post) => postItem(view, $, post, mine),
    empty: "No posts yet.",
    what: "the posts",
    size: 20,
  });
  await Promise.all([loadSummary(view, $, who), loadProfile($, who, mine), posts.restart()]);
  // After anything of this session (a post, an edit, a profile change, a viewing),
  // read the summary at that notice's position.
  view.onNotice((notice) => {
    if (notice.status !== "succeeded") return;
    loadSummary(view, $, who, notice.position);
    loadProfile($, who, mine, notice.position);
    posts.refresh();
  });
}

// The user's public profile: the bio under the summary; on your own page it also fills
// the profile form (until you type in it), so that saving your name keeps your bio (the
// form was filled with the name alone, and saving it emptied the bio).
async function loadProfile($, who, mine, position) {
  const query = position ? `?min_position=${position}` : "";
  const got = await getJson(`/api/users/${who}${query}`);
  if (!got.ok || !$("bio")) return; // the summary says what is wrong, if anything
  $("bio").textContent = got.data.bio;
  $("bio").hidden = !got.data.bio;
  const form = mine && $("profile-form");
  if (form && !form.dataset.touched) {
    $("profile-display_name").value = got.data.display_name;
    $("profile-bio").value = got.data.bio;
  }
}

async function loadSummary(view, $, who, position) {
  const query = position ? `?min_position=${position}` : "";
  const got = await getJson(`/api/users/${who}/summary${query}`);
  if (!$("summary")) return;
  if (got.status === 404) {
    $("summary").replaceChildren(el("p", "No summary for this user (yet).", { className: "state" }));
    return;
  }
  if (!got.ok) {
    // Behind or unavailable: say so where the summary is (the next notice reads it again).
    const state = $("summary-state") || el("p", "", { className: "state", id: "summary-state" });
    if (!state.isConnected) $("summary").append(state);
    showState(state, "error", `Could not load the summary: ${got.problem.detail}`, () => loadSummary(view, $, who, position));
    return;
  }
  const s = got.data;
  const h1 = el("h1", s.display_name, { id: "summary-name" });
  const facts = el("dl", "", { className: "facts", id: "facts" });
  const fact = (label, value, id) => facts.append(el("dt", label), el("dd", String(value), { id }));
  fact("Posts", s.post_count, "post-count");
  fact("Words written", s.total_words, "total-words");
  fact("Videos watched", s.videos_watched, "videos-watched");
  fact("First post", s.first_post_at ? new Date(s.first_post_at).toLocaleString() : "–", "first-post");
  const latest = el("dd", "", { id: "latest-post" });
  latest.append(s.latest_post ? `${s.latest_post.title} (${new Date(s.latest_post.at).toLocaleString()})` : "–");
  facts.append(el("dt", "Latest post"), latest);
  $("summary").replaceChildren(h1, facts, el("p", `As of event ${s.position}`, { className: "hint" }));
  view.title(s.display_name);
}

function postItem(view, $, post, mine) {
  const li = el("li", "", { className: "post" });
  li.dataset.id = post.id;
  li.append(el("h3", post.title), el("p", post.body, { className: "body" }));
  li.append(el("p", `${post.words} words · ${new Date(post.written_at).toLocaleString()}${post.edited_at ? " · edited" : ""}`, { className: "hint" }));
  if (mine) {
    const actions = el("div", "", { className: "actions" });
    const edit = el("button", "Edit", { type: "button", className: "secondary edit" });
    const remove = el("button", "Delete", { type: "button", className: "secondary delete" });
    edit.addEventListener("click", () => startEdit($, post));
    // Two clicks: the first asks "Really delete?" (for 5 s), the second deletes.
    remove.addEventListener("click", () => {
      if (remove.dataset.armed) return removePost(view, $, post, remove);
      remove.dataset.armed = "yes";
      remove.textContent = "Really delete?";
      setTimeout(() => {
        if (!remove.disabled) Object.assign(remove, { textContent: "Delete" }).removeAttribute("data-armed");
      }, 5000);
    });
    actions.append(edit, remove);
    li.append(actions);
  }
  return li;
}

// ---- your own forms -----------------------------------------------------------------------
function showForms(view, $, who) {
  $("mine").innerHTML = `
    <form id="post-form" novalidate>
      <h2 id="post-form-title">Write a post</h2>
      <input type="hidden" id="editing" value="">
      ${field("title", "Title", 'maxlength="200" required autocomplete="off"')}
      ${field("body", "Text", 'rows="4" maxlength="20000" required', { tag: "textarea" })}
      <p class="error" id="form-error" role="alert" hidden></p>
      <div class="actions">
        <button type="submit" id="save">Publish</button>
        <button type="button" id="cancel-edit" class="secondary" hidden>Cancel</button>
      </div>
    </form>
    <form id="profile-form" novalidate>
      <h2>Your profile</h2>
      ${field("profile-display_name", "Display name", 'maxlength="60" required autocomplete="name"', { name: "display_name" })}
      ${field("profile-bio", "Bio", 'rows="2" maxlength="500"', { tag: "textarea", name: "bio", hint: "optional" })}
      <p class="error" id="profile-form-error" role="alert" hidden></p>
      <button type="submit" id="save-profile">Save profile</button>
    </form>`;
  $("profile-display_name").value = view.account()?.display_name || "";
  $("profile-form").addEventListener("input", () => { $("profile-form").dataset.touched = "1"; });
  $("post-form").addEventListener("submit", (e) => savePost(e, view, $));
  $("cancel-edit").addEventListener("click", () => {
    stopEdit($); // the Cancel button hides, and the focus with it: on to the form
    refocus($("title"));
  });
  $("profile-form").addEventListener("submit", (e) => saveProfile(e, view, $));
}

function startEdit($, post) {
  $("editing").value = post.id;
  $("title").value = post.title;
  $("body").value = post.body;
  $("post-form-title").textContent = "Edit your post";
  $("save").textContent = "Save changes";
  $("cancel-edit").hidden = false;
  $("title").focus();
}

function stopEdit($) {
  $("post-form").reset();
  $("editing").value = "";
  $("post-form-title").textContent = "Write a post";
  $("save").textContent = "Publish";
  $("cancel-edit").hidden = true;
}

async function savePost(event, view, $) {
  event.preventDefault();
  clearErrors(view.root, POST_FIELDS);
  view.clearNotice();
  const editing = $("editing").value;
  const body = { title: $("title").value, body: $("body").value };
  const idle = editing ? "Save changes" : "Publish";
  busy($("save"), true, idle, "Saving…");
  try {
    const url = editing ? `/api/posts/${editing}/edit` : "/api/posts";
    const outcome = await view.submit(url, body, { label: `“${body.title.trim()}”` });
    if (outcome.kind === "succeeded") {
      stopEdit($);
      view.notify("ok", editing ? "Post saved." : "Post published.");
    } else if (outcome.kind === "later") {
      stopEdit($);
      view.notify("warn", "Your post will show shortly.");
    } else showProblem(view.root, POST_FIELDS, outcome.problem);
  } finally {
    if ($("save")) busy($("save"), false, $("editing").value ? "Save changes" : "Publish", "Saving…");
  }
}

async function removePost(view, $, post, button) {
  view.clearNotice();
  button.disabled = true;
  const outcome = await view.submit(`/api/posts/${post.id}/delete`, {}, { label: `Deleting “${post.title}”` });
  if (outcome.kind === "succeeded") view.notify("ok", `“${post.title}” deleted.`);
  else if (outcome.kind === "later") view.notify("warn", `“${post.title}” will be gone shortly.`);
  else {
    view.notify("err", outcome.problem.detail || "Could not delete the post.");
    button.disabled = false;
  }
}

async function saveProfile(event, view, $) {
  event.preventDefault();
  // Its ids carry "profile-" (the post form beside it has its own form-error).
  const fields = ["display_name", "bio"];
  clearErrors(view.root, fields, "profile-");
  view.clearNotice();
  busy($("save-profile"), true, "Save profile", "Saving…");
  try {
    const body = { display_name: $("profile-display_name").value, bio: $("profile-bio").value };
    const outcome = await view.submit("/api/users/me/profile", body, { label: "Your profile" });
    if (outcome.kind === "succeeded") {
      view.notify("ok", "Profile saved.");
      await view.refreshAccount();
    } else if (outcome.kind === "later") view.notify("warn", "Your profile will change shortly.");
    else showProblem(view.root, fields, outcome.problem, { prefix: "profile-" });
  } finally {
    if ($("save-profile")) busy($("save-profile"), false, "Save profile", "Saving…");
  }
}
