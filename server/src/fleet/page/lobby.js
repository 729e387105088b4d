// The fleet lobby's page: lists every server's public rooms and sends the player to the right
// server with a join token. Room and server names are shown as text (textContent), never HTML.
"use strict";

const $ = (id) => document.getElementById(id);

function say(text) {
  const el = $("message");
  el.textContent = text || "";
  el.hidden = !text;
}

async function place(kind, body) {
  body.name = $("name").value.trim() || null;
  try { localStorage.setItem("arena.name", body.name || ""); } catch (_) {}
  const response = await fetch("/api/fleet/" + kind, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body), credentials: "omit",
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    say(answer.error || ("HTTP " + response.status));
    return;
  }
  say("");
  document.body.dataset.sent = answer.go;
  location.href = answer.go;
}

function render(rooms) {
  const list = $("rooms");
  list.replaceChildren();
  $("empty").hidden = rooms.length > 0;
  for (const room of rooms) {
    const item = document.createElement("li");
    item.dataset.code = room.code;
    item.dataset.server = room.server;
    const label = document.createElement("span");
    label.textContent = `${room.name} · ${room.map} · ${room.players}/${room.max_players} players · ${room.code}`;
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = "Join";
    // The server too: a code is unique on its server, not across the fleet.
    button.addEventListener("click", () => place("join", { code: room.code, server: room.server }));
    item.append(label, " ", button);
    list.append(item);
  }
  document.body.dataset.rooms = String(rooms.length);
}

async function refresh() {
  try {
    const response = await fetch("/api/rooms", { cache: "no-store" });
    if (response.ok) render(await response.json());
  } catch (_) { /* the next poll tries again */ }
}

try { $("name").value = localStorage.getItem("arena.name") || ""; } catch (_) {}
$("quickplay").addEventListener("click", () => place("quickplay", {}));
$("create").addEventListener("click", () => place("create", {}));
$("join").addEventListener("click", () => place("join", { code: $("code").value.trim().toUpperCase() }));
refresh();
setInterval(refresh, 2000);
