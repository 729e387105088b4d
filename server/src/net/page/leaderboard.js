// The leaderboard page: the top 100 and, for a player this browser has been, their rank and
// the players around them; this season (by default), all time or a past season. Refreshed every
// 3 s, so it moves as rounds end. Every name is a peer's text: set with textContent, never as
// markup.
"use strict";
(function () {
  const me = (function () {
    try { return localStorage.getItem("arena.player"); } catch (e) { return null; }
  })();
  const byId = (id) => document.getElementById(id);
  let board = "rating";
  let season = "current";
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
      const which = "board=" + board + "&season=" + encodeURIComponent(season);
      const top = await get("api/leaderboard?" + which + "&limit=100");
      fill(byId("top"), top.lines);
      byId("total").textContent = top.total + " players on this board";
      byId("season-dates").textContent = top.season_info ? top.season_info.name : "All time";
      if (me) {
        const around = await get("api/leaderboard?" + which + "&limit=11&around=" + encodeURIComponent(me));
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
  const pick = byId("season");
  pick.addEventListener("change", () => { season = pick.value; refresh(); });
  // Past seasons, newest first, for the picker.
  get("api/seasons").then((list) => {
    for (const past of list.seasons) {
      if (past.ended_unix_ms === null) continue;
      const option = document.createElement("option");
      option.value = String(past.season);
      option.textContent = past.name;
      pick.appendChild(option);
    }
  }).catch(() => {});
  refresh();
  setInterval(refresh, 3000);
})();
