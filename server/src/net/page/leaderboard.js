// The leaderboard page: the top 100 and, for a player this browser has been, their rank and
// the players around them. Refreshed every 3 s, so it moves as rounds end. Every name is a
// peer's text: set with textContent, never as markup.
"use strict";
(function () {
  const me = (function () {
    try { return localStorage.getItem("arena.player"); } catch (e) { return null; }
  })();
  const byId = (id) => document.getElementById(id);
  let board = "rating";
  function line(entry) {
    const value = board === "rating" ? entry.rating.toFixed(1) : String(entry.score);
    return entry.rank + ". " + entry.name + " — " + value + " (" + entry.rounds + " rounds, " + entry.wins + " wins)";
  }
  function fill(list, lines) {
    list.textContent = "";
    for (const entry of lines) {
      const item = document.createElement("li");
      item.textContent = line(entry);
      item.dataset.player = entry.player;
      if (entry.player === me) item.className = "me";
      list.appendChild(item);
    }
  }
  async function get(path) {
    const response = await fetch(path, { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    return body;
  }
  async function refresh() {
    try {
      const top = await get("api/leaderboard?board=" + board + "&limit=100");
      fill(byId("top"), top.lines);
      byId("total").textContent = top.total + " players on this board";
      if (me) {
        const around = await get("api/leaderboard?board=" + board + "&limit=11&around=" + encodeURIComponent(me));
        const mine = around.lines.find((entry) => entry.player === me);
        byId("me").hidden = !mine;
        if (mine) {
          byId("me-line").textContent = "Rank " + mine.rank + " of " + around.total + ": " + line(mine);
          fill(byId("around"), around.lines);
        }
      }
      document.body.dataset.loaded = "1";
      byId("message").hidden = true;
    } catch (error) {
      byId("message").textContent = "Cannot load the board: " + error.message;
      byId("message").hidden = false;
    }
  }
  for (const radio of document.querySelectorAll("input[name=board]")) {
    radio.addEventListener("change", () => { board = radio.value; refresh(); });
  }
  refresh();
  setInterval(refresh, 3000);
})();
