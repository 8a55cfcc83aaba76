// The chat dashboard: the busiest channels with their totals (the list, read every
// second) and a chart of one channel's recent 10-minute windows, drawn by hand in
// SVG and followed live (/api/chat/channels/{channel}/live, server-sent events).
// /chat follows the busiest channel; /chat/{channel} the one named.

import { el } from "/static/forms.js";
import { getJson, showState } from "/static/state.js";

const CHANNEL = /^\/([0-9A-Za-z][0-9A-Za-z_-]{0,63})$/;
const ROWS = 10;
const EVERY_MS = 1000;
const NUMBER = new Intl.NumberFormat("en");
const TIME = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const SVG = "http://www.w3.org/2000/svg";

export async function render(view, path) {
  const named = path.match(CHANNEL)?.[1] || null;
  view.title(named ? `#${named}` : "");
  view.root.innerHTML = `
    <style>
      .chat-chart { width: 100%; height: auto; display: block; }
      .chat-chart .win { fill: var(--accent); }
      .chat-chart .who { fill: var(--ok); }
      .chat-chart .who-line { stroke: var(--ok); fill: none; stroke-width: 2; }
      .chat-chart text { fill: var(--muted); font-size: 11px; }
      .chat-chart .grid { stroke: var(--line); }
      .chat-facts { display: flex; flex-wrap: wrap; gap: .25rem 1.25rem; margin: 0 0 .5rem; }
      .chat-facts strong { font-variant-numeric: tabular-nums; }
      .chat-spark { vertical-align: middle; }
      .chat-spark rect { fill: var(--accent); }
      #channels tr[aria-current] td { font-weight: 600; }
      #channels td { font-variant-numeric: tabular-nums; }
    </style>
    <section aria-labelledby="chat-title">
      <h1 id="chat-title">Chat channels <span class="hint">busiest first, live</span></h1>
      <article id="chart-card" hidden>
        <h2 id="chart-title"></h2>
        <p class="chat-facts">
          <span>total <strong id="chart-total">0</strong></span>
          <span>late <strong id="chart-late">0</strong></span>
          <span>now <strong id="chart-rate">–</strong> a second</span>
          <span class="hint" id="chart-newest"></span>
        </p>
        <p id="chart-waiting" class="state" role="status" hidden></p>
        <svg id="chart" class="chat-chart" viewBox="0 0 640 220" role="img"></svg>
        <p class="hint">Bars: messages per 10-minute window (newest on the right); dots: distinct chatters.</p>
      </article>
      <div class="scroll">
        <table class="ledger" id="channels">
          <caption>The ${ROWS} busiest channels</caption>
          <thead><tr><th scope="col">Channel</th><th scope="col">Late</th><th scope="col">Latest window</th>
            <th scope="col">Chatters</th><th scope="col">Recent windows</th><th scope="col">Total</th></tr></thead>
          <tbody></tbody>
        </table>
      </div>
      <p id="unavailable" class="state" role="status" hidden></p>
      <p id="empty" class="hint" hidden>No messages yet: post a batch to <code>/api/chat/messages</code>,
        or run <code>task chat:simulate</code>.</p>
    </section>`;
  const $ = (id) => view.root.querySelector(`#${id}`);
  const state = { followed: named, source: null, stopped: false, seen: [], empty: 0, invalid: false };

  const follow = (channel) => {
    if (state.source) state.source.close();
    if (channel !== state.followed) state.empty = 0; // how often in a row it had no message
    state.followed = channel;
    $("chart-card").hidden = false;
    $("chart-title").textContent = `#${channel}`;
    const source = new EventSource(`/api/chat/channels/${encodeURIComponent(channel)}/live`);
    state.source = source;
    state.seen = [];
    source.addEventListener("state", (e) => {
      if (state.stopped) return;
      const channel = JSON.parse(e.data);
      state.empty = 0;
      $("chart-waiting").hidden = true;
      draw($, channel);
      $("chart-rate").textContent = rate(state.seen, channel.total);
    });
    // A channel with no message yet is a 404, which EventSource does not retry: say so,
    // and try again, less often the longer it stays empty (every second, up to 10 s).
    source.onerror = () => {
      if (source.readyState === EventSource.CLOSED && !state.stopped && state.source === source) {
        showState($("chart-waiting"), "empty", `No message in #${channel} yet: it shows here from the first.`);
        const wait = Math.min(10 * EVERY_MS, EVERY_MS * 2 ** Math.min(state.empty++, 4));
        setTimeout(() => state.source === source && !state.stopped && follow(channel), wait);
      }
    };
  };

  const refresh = async () => {
    const got = await getJson(`/api/chat/channels?limit=${ROWS}`);
    if (state.stopped || !$("channels")) return;
    if (!got.ok) {
      // The API or NATS away: say so; the next round (a second) tries again.
      $("unavailable").hidden = false;
      showState($("unavailable"), "error", `Could not load the channels: ${got.problem.detail} Trying again…`);
      return;
    }
    $("unavailable").hidden = true;
    const items = got.data.items || [];
    $("empty").hidden = items.length > 0 || Boolean(state.followed) || state.invalid;
    $("channels").querySelector("tbody").replaceChildren(...items.map((c) => row(view, c, state.followed)));
    if (!state.followed && !state.invalid && items.length) follow(items[0].channel);
  };

  if (path !== "/" && !named) {
    // Not a channel's name: say so, rather than follow the busiest under this URL.
    state.invalid = true;
    $("chart-card").hidden = false;
    $("chart-title").textContent = "No such channel";
    $("chart").hidden = true;
    showState($("chart-waiting"), "empty", `“${decodeURIComponent(path.slice(1))}” is not a channel's name: a name is a letter or digit, then up to 63 letters, digits, - or _.`);
  }
  if (named) follow(named);
  await refresh();
  const timer = setInterval(refresh, EVERY_MS);
  view.onLeave(() => {
    state.stopped = true;
    clearInterval(timer);
    if (state.source) state.source.close();
  });
}

// Messages a second over the last few seconds of updates (the page's own estimate).
function rate(seen, total) {
  const now = performance.now();
  seen.push([now, total]);
  while (seen.length > 2 && now - seen[0][0] > 5000) seen.shift();
  const [then, before] = seen[0];
  return now - then < 500 ? "–" : NUMBER.format(Math.round(((total - before) * 1000) / (now - then)));
}

function row(view, channel, followed) {
  const tr = el("tr");
  const current = channel.windows[0] || { count: 0, chatters: 0 };
  const name = el("td");
  name.append(view.link(`/chat/${channel.channel}`, `#${channel.channel}`));
  const spark = el("td");
  spark.append(sparkline(channel.windows));
  tr.append(name, el("td", NUMBER.format(channel.late)), el("td", NUMBER.format(current.count)),
    el("td", NUMBER.format(current.chatters)), spark, el("td", NUMBER.format(channel.total)));
  tr.dataset.channel = channel.channel;
  if (channel.channel === followed) tr.setAttribute("aria-current", "true");
  return tr;
}

function svg(tag, attrs = {}, text = "") {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text) node.textContent = text;
  return node;
}

// A channel's windows as tiny bars, oldest first.
function sparkline(windows) {
  const shown = [...windows].reverse();
  const most = Math.max(1, ...shown.map((w) => w.count));
  const box = svg("svg", { width: 96, height: 20, viewBox: "0 0 96 20", class: "chat-spark", "aria-hidden": "true" });
  shown.forEach((w, i) => {
    const h = Math.max(1, Math.round((w.count / most) * 18));
    box.append(svg("rect", { x: i * 8, y: 20 - h, width: 6, height: h }));
  });
  return box;
}

// One channel's recent windows: a bar per window (its count) and a dot for its chatters.
function draw($, channel) {
  $("chart-total").textContent = NUMBER.format(channel.total);
  $("chart-late").textContent = NUMBER.format(channel.late);
  $("chart-newest").textContent = channel.newest_sent_at
    ? `newest message ${new Date(channel.newest_sent_at).toLocaleTimeString()}` : "";
  const chart = $("chart");
  const windows = [...channel.windows].reverse(); // oldest on the left
  const [W, H, left, bottom, top] = [640, 220, 48, 24, 12];
  const most = Math.max(1, ...windows.map((w) => w.count));
  const slot = (W - left) / Math.max(windows.length, 6);
  const y = (v) => H - bottom - (v / most) * (H - bottom - top);
  const parts = [
    svg("line", { x1: left, y1: y(0), x2: W, y2: y(0), class: "grid" }),
    svg("line", { x1: left, y1: y(most), x2: W, y2: y(most), class: "grid" }),
    svg("text", { x: left - 6, y: y(most) + 4, "text-anchor": "end" }, NUMBER.format(most)),
    svg("text", { x: left - 6, y: y(0) + 4, "text-anchor": "end" }, "0"),
  ];
  const dots = [];
  // A time label is about 56 units wide ("05:00 PM"): label every n-th window so that
  // they do not overlap, counting from the newest.
  const every = Math.ceil(56 / slot);
  windows.forEach((w, i) => {
    const x = left + i * slot + slot * 0.15;
    const width = slot * 0.7;
    const bar = svg("rect", { x, y: y(w.count), width, height: y(0) - y(w.count), class: "win" });
    bar.append(svg("title", {}, `${TIME.format(new Date(w.start))}: ${NUMBER.format(w.count)} messages, ${NUMBER.format(w.chatters)} chatters`));
    parts.push(bar);
    if ((windows.length - 1 - i) % every === 0) {
      parts.push(svg("text", { x: x + width / 2, y: H - 6, "text-anchor": "middle" }, TIME.format(new Date(w.start))));
    }
    dots.push([x + width / 2, y(w.chatters)]);
  });
  if (dots.length > 1) parts.push(svg("polyline", { points: dots.map((p) => p.join(",")).join(" "), class: "who-line" }));
  for (const [cx, cy] of dots) parts.push(svg("circle", { cx, cy, r: 4, class: "who" }));
  chart.replaceChildren(...parts);
  const newest = channel.windows[0];
  chart.setAttribute("aria-label", newest
    ? `#${channel.channel}: ${NUMBER.format(channel.total)} messages; its latest window ${NUMBER.format(newest.count)} messages from ${NUMBER.format(newest.chatters)} chatters`
    : `#${channel.channel}: no messages in a window yet`);
}
