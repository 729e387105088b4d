// Arena's admin page. Every string from the server (room and player names, reasons, messages) is
// put on the page as text (textContent), never as HTML. The token lives in this variable only.
"use strict";

let token = null;
let timer = null;
// Where this server's pages live ("/", or a proxy's prefix like "/gs/pod-1/"); the server says so.
const BASE = (() => {
  const meta = document.querySelector('meta[name="arena-base"]');
  const base = meta ? meta.getAttribute("content") : "/";
  return /^\/([A-Za-z0-9._~-]+\/)*$/.test(base || "") ? base : "/";
})();

const $ = (id) => document.getElementById(id);

function status(text, ok) {
  const el = $("status");
  el.textContent = text;
  el.className = ok ? "ok" : "error";
}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: "Bearer " + token }, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(BASE + path.replace(/^\//, ""), init);
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (response.status === 401) {
    signOut("That token is not valid.");
    throw new Error("unauthorized");
  }
  if (!response.ok) {
    throw new Error((data && data.error) || ("HTTP " + response.status));
  }
  return data;
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

function button(label, onClick, cls) {
  const b = el("button", label, cls ? { class: cls } : {});
  b.type = "button";
  b.addEventListener("click", onClick);
  return b;
}

async function act(label, method, path, body) {
  try {
    const result = await api(method, path, body);
    status(label + ": " + (result && result.done ? result.done : "done"), true);
  } catch (e) {
    if (e.message !== "unauthorized") status(label + " failed: " + e.message, false);
  }
  refresh();
}

function fmt(n, digits) {
  return n === null || n === undefined ? "–" : Number(n).toFixed(digits);
}

function renderRooms(data) {
  const s = data.server;
  $("summary").textContent =
    `Arena ${s.version} (protocol ${s.protocol}) · ${s.rooms}/${s.max_rooms} rooms · ${s.connections} connections · ${s.bans} bans` +
    (s.draining ? ` · DRAINING, ${s.drain_seconds_left} s left` : "");
  const rooms = $("rooms");
  // The cards are rebuilt every refresh: keep what the operator is typing, and where.
  const kept = {};
  for (const input of rooms.querySelectorAll(".room input")) {
    const code = input.closest(".room").dataset.room;
    kept[code + "/" + input.className] = { value: input.value, focused: input === document.activeElement, edited: input.dataset.edited === "1" };
  }
  rooms.replaceChildren();
  for (const room of data.rooms) {
    const card = el("div", null, { class: "room", "data-room": room.code });
    if (room.error) {
      card.append(el("h3", room.code + ": " + room.error));
      rooms.append(card);
      continue;
    }
    card.append(el("h3", `${room.code} — ${room.name} (${room.map})`));
    card.append(el("p",
      `${room.players.length}/${room.max_players} players · ${room.spectators.length} spectators · ` +
      `${room.bots} bots · tick p99 ${fmt(room.tick_p99_ms, 2)} ms · ` +
      `${room.public ? "public" : "private"}${room.locked ? " · locked" : ""}${room.permanent ? " · permanent" : ""}${room.replay ? " · replay" : ""}`,
      { class: "muted" }));
    const controls = el("div", null, { class: "row" });
    const message = el("input", null, { maxlength: "200", placeholder: "Message (notice, kick or close reason)", class: "message" });
    const bots = el("input", null, { type: "number", min: "0", max: "1000", value: String(room.bots), class: "bots", style: "width:5em" });
    controls.append(
      message,
      button("Notice", () => act("Notice", "POST", "/api/admin/broadcast", { room: room.code, message: message.value })),
      bots,
      button("Set bots", () => act("Bots", "POST", `/api/admin/rooms/${room.code}/bots`, { bots: Number(bots.value) })),
      button("Close room", () => act("Close room", "POST", `/api/admin/rooms/${room.code}/close`, { message: message.value || null }), "danger close"),
    );
    for (const input of [message, bots]) {
      const was = kept[room.code + "/" + input.className];
      input.addEventListener("input", () => { input.dataset.edited = "1"; });
      if (was && (was.edited || input === message)) {
        input.value = was.value;
        if (was.edited) input.dataset.edited = "1";
      }
      if (was && was.focused) setTimeout(() => input.focus(), 0);
    }
    card.append(controls);
    const table = el("table");
    const head = el("tr");
    for (const h of ["Id", "Name", "Address", "RTT ms", "Bytes/s", "Score", ""]) head.append(el("th", h));
    table.append(head);
    for (const p of room.players) {
      const row = el("tr", null, { "data-player-id": String(p.id) });
      row.append(el("td", p.id), el("td", p.name + (p.host ? " (host)" : "")), el("td", p.ip || "–"),
        el("td", fmt(p.rtt_ms, 1)), el("td", p.bytes_per_second), el("td", `${p.score} (${p.kills}/${p.deaths})`));
      const actions = el("td");
      actions.append(
        button("Kick", () => act("Kick " + p.name, "POST", `/api/admin/rooms/${room.code}/kick`, { player: p.id, message: message.value || null }), "kick"),
      );
      if (p.ip) {
        actions.append(button("Ban address", () => act("Ban " + p.ip, "POST", "/api/admin/bans", { ip: p.ip, reason: message.value || null }), "danger ban"));
      }
      row.append(actions);
      table.append(row);
    }
    for (const sp of room.spectators) {
      const row = el("tr");
      row.append(el("td", "–"), el("td", "(spectator)"), el("td", sp.ip || "–"), el("td", fmt(sp.rtt_ms, 1)), el("td", sp.bytes_per_second), el("td", ""), el("td", ""));
      table.append(row);
    }
    card.append(table);
    rooms.append(card);
  }
}

function renderBans(bans) {
  const body = $("bans").tBodies[0];
  body.replaceChildren();
  for (const b of bans) {
    const row = el("tr", null, { "data-ban": b.ip });
    const cell = el("td");
    cell.append(button("Unban", () => act("Unban " + b.ip, "DELETE", "/api/admin/bans/" + encodeURIComponent(b.ip))));
    row.append(el("td", b.ip), el("td", b.reason), el("td", b.by), el("td", new Date(b.at * 1000).toLocaleString()), cell);
    body.append(row);
  }
}

function renderAudit(entries) {
  const body = $("audit").tBodies[0];
  body.replaceChildren();
  for (const e of entries.slice(-50).reverse()) {
    const row = el("tr");
    row.append(el("td", new Date(e.at_ms).toLocaleTimeString()), el("td", e.who), el("td", e.from), el("td", e.action), el("td", e.target), el("td", e.outcome));
    body.append(row);
  }
}

async function refresh() {
  if (!token) return;
  try {
    const [rooms, bans, audit] = await Promise.all([
      api("GET", "/api/admin/rooms"), api("GET", "/api/admin/bans"), api("GET", "/api/admin/audit"),
    ]);
    renderRooms(rooms);
    renderBans(bans);
    renderAudit(audit);
    document.body.dataset.loaded = "1";
  } catch (e) {
    if (e.message !== "unauthorized") status("Refresh failed: " + e.message, false);
  }
}

function signOut(why) {
  token = null;
  clearInterval(timer);
  $("console").hidden = true;
  $("login").hidden = false;
  $("rooms").replaceChildren();
  if (why) status(why, false);
}

$("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  token = $("token").value.trim();
  $("token").value = "";
  try {
    await api("GET", "/api/admin/rooms");
  } catch (e) {
    if (e.message !== "unauthorized") { status("Sign-in failed: " + e.message, false); token = null; }
    return;
  }
  $("login").hidden = true;
  $("console").hidden = false;
  status("Signed in", true);
  refresh();
  timer = setInterval(refresh, 2000);
});

$("signout").addEventListener("click", () => signOut(""));
$("broadcast").addEventListener("click", () => act("Broadcast", "POST", "/api/admin/broadcast", { message: $("broadcast-text").value }));
$("ban").addEventListener("click", () => act("Ban", "POST", "/api/admin/bans", { ip: $("ban-ip").value, reason: $("ban-reason").value || null }));
$("drain").addEventListener("click", (event) => {
  const b = event.currentTarget;
  if (!b.classList.contains("armed")) {
    b.classList.add("armed");
    b.textContent = "Click again to drain";
    setTimeout(() => { b.classList.remove("armed"); b.textContent = "Drain server…"; }, 4000);
    return;
  }
  b.classList.remove("armed");
  b.textContent = "Drain server…";
  act("Drain", "POST", "/api/admin/drain", {});
});
