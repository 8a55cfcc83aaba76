// The videos page: the home totals, the publish form (signed in) and the list at
// /videos (?owner=<user id> for one user's); one video at /videos/{id} with its view
// count followed live (/api/videos/{id}/live), a "watch" button, and a rename form
// for its owner. A viewing has an id of its own: sending it again never counts twice.

import { busy, clearErrors, el, field, finder, randomId, showProblem } from "/static/forms.js";
import { getJson, listUrl, loadRecord, pagedList } from "/static/state.js";

const ID = /^\/([0-9A-Za-z_-]{1,64})$/;
const PUBLISH = ["title", "url", "description"];

export async function render(view, path) {
  const id = path.match(ID)?.[1];
  if (id) return showOne(view, id);
  const owner = new URLSearchParams(location.search).get("owner");
  const user = view.account();
  view.root.innerHTML = `
    <section aria-labelledby="totals-title">
      <article>
        <h1 id="totals-title">Videos</h1>
        <div class="totals">
          <p><span class="big" id="watched">–</span><br><span class="hint">videos watched in all</span></p>
          <p><span class="big" id="published">–</span><br><span class="hint">videos published</span></p>
        </div>
      </article>
    </section>
    <section id="publish-area"></section>
    <section aria-labelledby="list-title">
      <h2 id="list-title">${!owner ? "All videos" : owner === user?.user_id ? "Your videos" : "Their videos"} <span class="hint">newest first</span></h2>
      <ul id="videos" class="items"></ul>
      <p id="list-state" class="state" role="status">Loading…</p>
      <button type="button" id="more" class="secondary" hidden>Show more</button>
    </section>`;
  view.title("");
  const $ = finder(view.root);
  if (user) {
    $("publish-area").innerHTML = `
      <form id="publish-form" novalidate>
        <h2>Publish a video</h2>
        ${field("title", "Title", 'maxlength="200" required autocomplete="off"')}
        ${field("url", "Address of the video", 'type="url" maxlength="2000" required placeholder="https://…"')}
        ${field("description", "Description", 'maxlength="5000" rows="2"', { tag: "textarea", hint: "optional" })}
        <p class="error" id="form-error" role="alert" hidden></p>
        <button type="submit" id="publish">Publish</button>
      </form>`;
    $("publish-form").addEventListener("submit", (e) => publish(e, view, $));
  } else if (view.auth) {
    const p = el("p", "", { className: "hint" });
    p.append(view.link(view.auth.signin, "Sign in"), " to publish videos.");
    $("publish-area").replaceChildren(p);
  }
  const rows = pagedList({
    list: $("videos"),
    state: $("list-state"),
    more: $("more"),
    url: listUrl("/api/videos", () => (owner ? { owner_id: owner } : {})),
    item: (v) => videoItem(view, v),
    empty: "No videos yet.",
    what: "the videos",
  });
  view.onNotice((notice) => {
    if (notice.status !== "succeeded") return;
    rows.refresh();
    loadTotals($, notice.position); // the home totals are an async view: read at the notice
  });
  await Promise.all([rows.restart(), loadTotals($)]);
}

async function loadTotals($, position) {
  const got = await getJson(position ? `/api/home?min_position=${position}` : "/api/home");
  if (!$("watched") || !got.ok) return;
  const home = got.data;
  $("watched").textContent = home.videos_watched;
  $("published").textContent = home.videos_published;
}

function videoItem(view, v) {
  const li = el("li");
  li.append(view.link(`/videos/${v.id}`, v.title), el("span", `${v.views} view${v.views === 1 ? "" : "s"}`, { className: "cat" }));
  return li;
}

async function publish(event, view, $) {
  event.preventDefault();
  clearErrors(view.root, PUBLISH);
  view.clearNotice();
  const body = Object.fromEntries(PUBLISH.map((f) => [f, $(f).value]));
  busy($("publish"), true, "Publish", "Publishing…");
  try {
    const outcome = await view.submit("/api/videos", body, { label: `“${body.title.trim()}”` });
    if (outcome.kind === "succeeded") await view.navigate(`/videos/${outcome.resource.id}`);
    else if (outcome.kind === "later") {
      $("publish-form").reset();
      view.notify("warn", `“${body.title.trim()}” will be published shortly.`);
    } else showProblem(view.root, PUBLISH, outcome.problem);
  } finally {
    if ($("publish")) busy($("publish"), false, "Publish", "Publishing…");
  }
}

// ---- one video ----------------------------------------------------------------------------
async function showOne(view, id) {
  view.root.innerHTML = `
    <section id="video-view">
      <p id="back"></p>
      <article id="video"></article>
      <div class="actions"><button type="button" id="watch" hidden>Watch</button></div>
      <p class="error" id="watch-error" role="alert" hidden></p>
      <form id="rename-form" novalidate hidden>
        <h2>Rename</h2>
        ${field("title", "New title", 'maxlength="200" required autocomplete="off"')}
        <p class="error" id="form-error" role="alert" hidden></p>
        <button type="submit" id="rename">Rename</button>
      </form>
    </section>`;
  const $ = finder(view.root);
  $("back").append(view.link("/videos", "← All videos"));
  const video = await loadRecord($("video"), `/api/videos/${id}`, "video", () => showOne(view, id));
  if (!video) return;
  show(view, $, video);
  $("watch").hidden = false;
  $("watch").addEventListener("click", () => watch(view, $, id));
  if (view.account()?.user_id === video.owner_id) {
    $("title").value = video.title; // a rename is most often a small change of it
    $("rename-form").hidden = false;
    $("rename-form").addEventListener("submit", (e) => rename(e, view, $, id));
  }
  // The count as it changes, whoever watches: the view followed live.
  const live = new EventSource(`/api/videos/${id}/live`);
  live.addEventListener("state", (e) => {
    if (!$("video")) return live.close();
    const state = JSON.parse(e.data);
    if (state) show(view, $, state);
  });
  view.onLeave(() => live.close());
}

function show(view, $, video) {
  const h1 = el("h1", video.title, { tabIndex: -1, id: "video-title" });
  const views = el("p");
  views.append(el("strong", String(video.views), { id: "views" }), ` view${video.views === 1 ? "" : "s"}`);
  const watchAt = el("p");
  const a = el("a", video.url, { href: video.url, rel: "noopener noreferrer", target: "_blank" });
  watchAt.append(a);
  const parts = [h1, views, watchAt];
  if (video.description) parts.push(el("p", video.description, { className: "description" }));
  parts.push(el("p", `Published ${new Date(video.published_at).toLocaleString()}`, { className: "hint" }));
  $("video").replaceChildren(...parts);
  view.title(video.title);
}

// A click's viewing id, kept until its answer comes: clicking again after a lost
// answer is a retry of the same viewing (the same body, so the same Idempotency-Key).
const unanswered = new Map(); // video id -> viewing id

async function watch(view, $, id) {
  $("watch-error").hidden = true;
  // One viewing, one id: a retry of this click (or a redelivery) counts once.
  const viewing = unanswered.get(id) ?? randomId();
  unanswered.set(id, viewing);
  busy($("watch"), true, "Watch", "Recording…");
  try {
    const outcome = await view.submit(`/api/videos/${id}/views`, { viewing_id: viewing }, { label: "Your viewing" });
    if (outcome.kind !== "error") unanswered.delete(id);
    if (outcome.kind === "succeeded") show(view, $, outcome.resource);
    else if (outcome.kind === "later") view.notify("warn", "Your viewing will be counted shortly.");
    else {
      $("watch-error").textContent = outcome.problem.detail || outcome.problem.title;
      $("watch-error").hidden = false;
    }
  } finally {
    if ($("watch")) busy($("watch"), false, "Watch", "Recording…");
  }
}

async function rename(event, view, $, id) {
  event.preventDefault();
  clearErrors(view.root, ["title"]);
  view.clearNotice();
  const title = $("title").value;
  busy($("rename"), true, "Rename", "Renaming…");
  try {
    const outcome = await view.submit(`/api/videos/${id}/rename`, { title }, { label: "The new title" });
    if (outcome.kind === "succeeded") {
      $("title").value = outcome.resource.title;
      show(view, $, outcome.resource);
      view.notify("ok", `Renamed to “${outcome.resource.title}”.`);
    } else if (outcome.kind === "later") view.notify("warn", "The new title will show shortly.");
    else showProblem(view.root, ["title"], outcome.problem);
  } finally {
    if ($("rename")) busy($("rename"), false, "Rename", "Renaming…");
  }
}
