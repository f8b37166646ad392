// The operator dashboard: polls the node's view every 2 s and renders it.
// Every value from the node (names, causes, timelines: text that chains and peers control)
// is inserted with textContent, never as markup.
"use strict";

const VIEW_URL = "/api/v1/dashboard";
const POLL_MS = 2000;

// Incidents whose details the operator opened (true) or closed (false), kept across
// re-renders; the others show their details while not closed, and the newest always.
const incidentOpen = new Map();
let lastUpdate = null;

// ---------------------------------------------------------------- DOM helpers

// An element with an optional class and text.
function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

// A cell's content: a node as is, anything else as text.
function cell(tag, value) {
  const c = el(tag);
  if (value instanceof Node) c.appendChild(value);
  else c.textContent = value === undefined || value === null ? "" : String(value);
  return c;
}

// A table; `rows` holds arrays of cells, or {cells, className} objects.
function table(headers, rows, emptyText) {
  if (rows.length === 0) return el("p", "muted", emptyText);
  const box = el("div", "scroll");
  const t = box.appendChild(el("table"));
  const head = el("tr");
  for (const h of headers) head.appendChild(cell("th", h));
  t.appendChild(el("thead")).appendChild(head);
  const body = t.appendChild(el("tbody"));
  for (const row of rows) {
    const cells = Array.isArray(row) ? row : row.cells;
    const tr = el("tr", Array.isArray(row) ? "" : row.className);
    for (const v of cells) tr.appendChild(cell("td", v));
    body.appendChild(tr);
  }
  return box;
}

// A short coloured label.
function badge(text, kind) {
  return el("span", "badge " + kind, text);
}

// Text and badges side by side.
function group(items) {
  const span = el("span", "group");
  for (const item of items) {
    span.appendChild(item instanceof Node ? item : document.createTextNode(String(item)));
  }
  return span;
}

// A long hex value shortened for display, whole in its tooltip.
function short(hex) {
  const s = String(hex || "");
  if (s.length <= 18) return s || "–";
  const span = el("span", "hex", s.slice(0, 10) + "…" + s.slice(-6));
  span.title = s;
  return span;
}

function replace(id, node) {
  const target = document.getElementById(id);
  target.replaceChildren(node);
}

// ---------------------------------------------------------------- formatting

// A decimal amount with thousands separators; anything else unchanged.
function amount(s) {
  const v = String(s || "");
  if (v === "") return "–";
  return /^\d+$/.test(v) ? v.replace(/\B(?=(\d{3})+(?!\d))/g, ",") : v;
}

// True for a decimal amount above zero.
function positive(s) {
  return /^\d+$/.test(String(s)) && /[1-9]/.test(String(s));
}

// The sum of decimal amounts (non-decimal values are skipped).
function sum(values) {
  let total = 0n;
  for (const v of values) if (/^\d+$/.test(String(v))) total += BigInt(v);
  return total.toString();
}

// UTC date and time of a millisecond timestamp.
function time(ms) {
  if (ms === undefined || ms === null || ms === 0) return "–";
  const d = new Date(Number(ms));
  return isNaN(d.getTime()) ? "–" : d.toISOString().replace("T", " ").slice(0, 19);
}

// A duration in seconds, e.g. "3 m 5 s".
function duration(seconds) {
  let s = Math.max(0, Math.floor(Number(seconds) || 0));
  const parts = [];
  for (const [unit, size] of [["d", 86400], ["h", 3600], ["m", 60]]) {
    if (s >= size) {
      parts.push(Math.floor(s / size) + " " + unit);
      s %= size;
    }
  }
  if (parts.length < 2) parts.push(s + " s");
  return parts.slice(0, 2).join(" ");
}

// A breaker id (`<kind>:<subject>`) as a badge, its subject shortened.
function breakerBadge(id) {
  const [kind, subject] = String(id).split(":");
  const b = badge(subject ? kind + ":" + subject.slice(0, 8) + "…" : kind, "bad");
  b.title = String(id);
  return b;
}

function yesNo(b, yesKind) {
  return b ? badge("yes", yesKind || "bad") : el("span", "muted", "no");
}

// ---------------------------------------------------------------- sections

function renderHeader(v) {
  const info = v.info || {};
  document.getElementById("node-name").textContent = info.node_name || "node";
  document.title = "Backstop " + (info.node_name || "node");
  document.getElementById("identity").textContent =
    "peer " + (info.peer_id || "–") + " · guardian " + (info.guardian_address || "–") +
    " · version " + (info.version || "–") + " · n=" + info.n + " t=" + info.t + " p=" + info.p +
    " · up " + duration(v.uptime_seconds);
  const warning = document.getElementById("clock-warning");
  const text = (v.clock && v.clock.clock_warning) || "";
  warning.hidden = text === "";
  warning.textContent = text;
}

function renderSummary(v) {
  const c = v.counts || {};
  const cards = el("div", "cards");
  const card = (label, value, bad) => {
    const d = el("div", "card" + (bad ? " alarm" : ""));
    d.appendChild(el("div", "value", value));
    d.appendChild(el("div", "label", label));
    cards.appendChild(d);
  };
  card("ready", v.ready ? "yes" : "no", !v.ready);
  card("peers connected", c.peers_connected + " / " + c.peers_total, c.peers_connected < c.peers_total);
  card("chains halted", c.chains_halted + " / " + c.chains, c.chains_halted > 0);
  card("chains quarantined", (v.quarantined_chains || []).length, (v.quarantined_chains || []).length > 0);
  card("incidents open", c.incidents_open + " / " + c.incidents_total, c.incidents_open > 0);
  card("signals active", c.signals_active, c.signals_active > 0);
  card("breakers active", c.breakers_active, c.breakers_active > 0);
  replace("summary", cards);
}

function renderChains(v) {
  const quarantined = new Set(v.quarantined_chains || []);
  const nowS = Math.floor(v.generated_ms / 1000);
  const rows = (v.chains || []).map((c) => {
    const state = [];
    if (c.halted) state.push(badge("halted", "bad"));
    if (quarantined.has(c.chain_id)) state.push(badge("quarantined", "bad"));
    if (state.length === 0) state.push(badge("ok", "good"));
    return {
      className: state.length > 1 || c.halted || quarantined.has(c.chain_id) ? "alarm" : "",
      cells: [
        c.chain_id, c.name, c.head_number, c.confirmed_head,
        c.head_number - c.confirmed_head,
        c.head_time ? duration(nowS - c.head_time) : "–",
        short(c.head_hash), c.deep_reorgs, group(state),
      ],
    };
  });
  replace("chains", table(
    ["chain", "name", "head", "confirmed", "unconfirmed blocks", "head age", "head hash", "deep reorgs", "state"],
    rows, "no chains"));
}

function renderPool(v) {
  const quarantined = new Set(v.quarantined_chains || []);
  const vaults = (v.chains || []).filter((c) => c.vault);
  const rows = vaults.map((c) => {
    const w = c.vault;
    const state = [];
    if (w.paused) state.push(badge("paused", "bad"));
    if (quarantined.has(c.chain_id)) state.push(badge("quarantined", "bad"));
    if (state.length === 0) state.push(badge("paying", "good"));
    return [
      c.chain_id + " " + c.name, short(w.address), amount(w.balance), amount(w.reserve),
      amount(w.bucket_available), amount(w.available_for_payout), group(state),
      w.threshold + " / " + w.pause_threshold + " (" + w.guardian_set_index + ")",
    ];
  });
  if (rows.length > 0) {
    rows.push({
      className: "total",
      cells: [
        "all vaults", "", amount(sum(vaults.map((c) => c.vault.balance))),
        amount(sum(vaults.map((c) => c.vault.reserve))), "",
        amount(sum(vaults.map((c) => c.vault.available_for_payout))), "", "",
      ],
    });
  }
  replace("pool", table(
    ["chain", "vault", "balance", "reserve floor", "outflow bucket", "can pay now", "state", "signatures pay / stop (set)"],
    rows, "no vault read yet"));
}

// Member id (lower case) → name.
function memberNames(v) {
  const names = new Map();
  for (const m of v.members || []) names.set(String(m.id).toLowerCase(), m.name);
  return names;
}

function memberLabel(names, id) {
  const name = names.get(String(id).toLowerCase());
  return name ? group([name + " ", short(id)]) : short(id);
}

function renderMembers(v) {
  const rows = (v.members || []).map((m) => {
    const id = String(m.id).toLowerCase();
    const signals = (v.signals || [])
      .filter((s) => !s.cleared && String(s.subject).toLowerCase() === id)
      .map((s) => badge(s.kind + (s.confirmed ? " (confirmed)" : ""), s.confirmed ? "bad" : "warn"));
    const breakers = (m.breakers || []).map((b) => breakerBadge(b));
    const alerts = signals.concat(breakers);
    return {
      className: m.frozen || positive(m.gap) || alerts.length > 0 ? "alarm" : "",
      cells: [
        m.name, short(m.id), m.home_chain_id, amount(m.assets), amount(m.liabilities),
        positive(m.gap) ? badge(amount(m.gap), "bad") : amount(m.gap),
        amount(m.cap), amount(m.deductible), yesNo(m.frozen),
        alerts.length > 0 ? group(alerts) : el("span", "muted", "none"), m.next_seq,
      ],
    };
  });
  replace("members", table(
    ["name", "id", "home chain", "assets", "liabilities", "gap", "cap", "deductible", "frozen", "signals and breakers", "next seq"],
    rows, "no members"));
}

function phaseBadge(phase) {
  return badge(phase, phase === "CLOSED" ? "good" : "warn");
}

// The details of one incident: timeline, legs, signatures and transactions.
function incidentDetails(i) {
  const box = el("div", "details");
  box.appendChild(el("h4", "", "Timeline"));
  box.appendChild(table(["when (UTC)", "block", "what"],
    (i.timeline || []).map((e) => [time(e.timestamp_ms), e.block_number === null ? "–" : e.block_number, e.what]),
    "no entries"));
  box.appendChild(el("h4", "", "Legs"));
  box.appendChild(table(["chain", "vault", "amount", "status", "transaction", "block"],
    (i.legs || []).map((l) => [
      l.chain_id, short(l.vault), amount(l.amount), l.status, short(l.tx_hash),
      l.block_number === undefined || l.block_number === null ? "–" : l.block_number,
    ]),
    "no legs yet"));
  const r = i.registration;
  box.appendChild(el("p", "muted",
    (i.attestations || []).length + " signature(s) held · draw digest " + (i.draw_hash || "–") +
    (r ? " · registered on chain " + r.chain_id + " in block " + r.block_number + " (" + r.tx_hash + ")" : "") +
    " · transactions: " + ((i.tx_hashes || []).join(", ") || "none")));
  return box;
}

function renderIncidents(v) {
  const names = memberNames(v);
  const incidents = (v.incidents || []).slice().reverse();
  if (incidents.length === 0) {
    replace("incidents", el("p", "muted", "no incidents"));
    return;
  }
  const list = el("div", "incident-list");
  incidents.forEach((i, index) => {
    const executed = (i.legs || []).filter((l) => l.status === "EXECUTED").length;
    const item = el("details", "incident-row" + (i.phase === "CLOSED" ? "" : " alarm"));
    const chosen = incidentOpen.get(i.id);
    item.open = chosen !== undefined ? chosen : i.phase !== "CLOSED" || index === 0;
    const summary = el("summary");
    // A click on the summary (or Enter on it) toggles the details after this handler.
    summary.addEventListener("click", () => incidentOpen.set(i.id, !item.open));
    summary.appendChild(phaseBadge(i.phase));
    summary.appendChild(el("span", "incident-id", i.id));
    summary.appendChild(memberLabel(names, i.member));
    const timeline = i.timeline || [];
    const last = timeline[timeline.length - 1];
    summary.appendChild(el("span", "muted",
      "gap " + amount(i.gap) + " · draw " + amount(i.draw_amount) + " · uncovered " +
      amount(i.uncovered_amount) + " · legs paid " + executed + "/" + (i.legs || []).length +
      " · attempt " + i.attempt + (last ? " · " + time(last.timestamp_ms) + " " + last.what : "")));
    item.appendChild(summary);
    item.appendChild(incidentDetails(i));
    list.appendChild(item);
  });
  replace("incidents", list);
}

function renderSignals(v) {
  const rows = (v.signals || []).map((s) => ({
    className: s.cleared ? "muted" : "alarm",
    cells: [
      s.kind, short(s.subject), (s.raised_by || []).join(", "),
      s.cleared ? badge("cleared", "good") : s.confirmed ? badge("confirmed", "bad") : badge("raised", "warn"),
      time(s.first_seen_ms), time(s.last_seen_ms), time(s.expires_ms),
    ],
  }));
  replace("signals", table(
    ["kind", "subject", "raised by", "state", "first seen", "last seen", "expires"], rows, "no signals"));
}

function renderBreakers(v) {
  const names = memberNames(v);
  const rows = (v.breakers || []).map((b) => {
    const blocked = (b.members_blocked || []).map((id) => names.get(String(id).toLowerCase()) || id);
    const effects = (b.effects || []).map((e) =>
      e.action + (e.level ? " " + e.level : "") + " on " + e.chain_id + ": " + e.status);
    return {
      className: b.active ? "alarm" : "muted",
      cells: [
        b.kind, b.cause, b.active ? badge("active", "bad") : group([badge("ended", "good"), " " + b.lifted_by]),
        time(b.tripped_ms), time(b.expires_ms), blocked.join(", ") || "–",
        (b.chains_quarantined || []).join(", ") || "–", effects.join("; ") || "–",
      ],
    };
  });
  replace("breakers", table(
    ["kind", "cause", "state", "tripped", "expires", "members blocked", "chains quarantined", "on-chain effects"],
    rows, "no circuit breakers"));
}

function renderPeers(v) {
  const rows = (v.peers || []).map((p) => [
    p.name, p.peer_id, p.connected ? badge("connected", "good") : badge("disconnected", "bad"), p.address || "–",
  ]);
  replace("peers", table(["name", "peer id", "state", "address"], rows, "no peers"));
}

function render(v) {
  renderHeader(v);
  renderSummary(v);
  renderChains(v);
  renderPool(v);
  renderMembers(v);
  renderIncidents(v);
  renderSignals(v);
  renderBreakers(v);
  renderPeers(v);
}

// ---------------------------------------------------------------- polling

function showConnection(ok, detail) {
  const c = document.getElementById("connection");
  const updated = lastUpdate ? "updated " + time(lastUpdate.getTime()).slice(11) + " UTC" : "no data yet";
  c.className = "connection " + (ok ? "live" : "down");
  c.textContent = ok ? "live · " + updated : "node unreachable (" + detail + ") · " + updated;
}

async function poll() {
  try {
    const response = await fetch(VIEW_URL, { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    const view = await response.json();
    render(view);
    lastUpdate = new Date();
    showConnection(true);
  } catch (e) {
    showConnection(false, e && e.message ? e.message : String(e));
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
