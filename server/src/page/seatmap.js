// The live seat map of one event at `/events/{event_id}`.
//
// It draws the event from the first `snapshot` message of the availability stream and keeps
// it current from each `change`; it holds seats for the user whose token is given (clicks,
// "best N together", general-admission quantities), counts each hold down from its
// `expires_at` (corrected by the server's `Date` header), confirms and releases. Every call
// goes to this server only, with the token in the Authorization header.
"use strict";

(function () {
  const eventId = decodeURIComponent(location.pathname.split("/")[2] || "");
  const $ = (id) => document.getElementById(id);
  const el = {
    name: $("event-name"), connection: $("connection"), connectionText: $("connection-text"),
    token: $("token"), who: $("who"), counts: document.querySelector("#counts tbody"),
    map: $("map"), bestForm: $("best-form"), bestQty: $("best-qty"), best: $("best"),
    gaPanel: $("ga-panel"), gaForm: $("ga-form"), gaSection: $("ga-section"), gaQty: $("ga-qty"),
    holds: $("holds"), noHolds: $("no-holds"), messages: $("messages"), allEvents: $("all-events"),
  };

  // Sentences for the API's stable error codes.
  const SENTENCES = {
    seat_taken: "Sorry, that seat was just taken by someone else. Please pick another one.",
    sold_out: "Sorry, there are not enough tickets left for that.",
    no_adjacent_seats: "There are not that many free seats next to each other. Try fewer seats.",
    hold_expired: "That hold ran out of time before it was confirmed; its seats went back on sale.",
    hold_not_active: "That hold is no longer active: it was already confirmed, released or expired.",
    limit_exceeded: "That would be more tickets than one buyer may have for this event.",
    extension_limit: "That hold cannot be extended any further.",
    already_waiting: "You are already on the waiting list for this event.",
    tickets_available: "Tickets are available now: hold them instead of waiting.",
    unauthorized: "Your token is missing, malformed or expired. Paste a valid token above.",
    forbidden: "Your token is not allowed to do that.",
    not_found: "That no longer exists here (unknown event or hold).",
    overloaded: "The box office is very busy right now. Please try again in a moment.",
    unavailable: "The box office cannot take that right now. Please try again in a moment.",
    over_capacity: "The box office is full for now. Please try again later.",
    request_timeout: "The request took too long. Please try again.",
    idempotency_key_reused: "That request was already sent with different details.",
  };

  const state = {
    token: "",
    sections: new Map(), // section id → {name, kind, price_cents, available, held, sold, waiting}
    seats: new Map(),    // seat id → "free" | "held" | "sold"
    buttons: new Map(),  // seat id → its button
    holds: new Map(),    // hold id → {hold, offset, status, node}
  };

  // ---- messages --------------------------------------------------------------------------

  function say(text, code) {
    el.messages.textContent = text;
    el.messages.dataset.code = code || "";
  }

  function sentence(error) {
    if (!error || !error.code) return "Something went wrong. Please try again.";
    const known = SENTENCES[error.code];
    if (known) return known;
    if (error.code === "invalid_input") return `The server refused the request: ${error.message}`;
    return `${error.message} (${error.code})`;
  }

  // ---- the token -------------------------------------------------------------------------

  function userOf(token) {
    try {
      const part = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part)).sub || "";
    } catch (_) {
      return "";
    }
  }

  function setToken(token) {
    state.token = token.trim();
    const user = userOf(state.token);
    el.who.textContent = state.token ? (user ? `Signed in as ${user}` : "This does not look like a token") : "";
    try { sessionStorage.setItem("boxoffice-token", state.token); } catch (_) { /* private mode */ }
  }

  function initialToken() {
    const fromFragment = new URLSearchParams(location.hash.slice(1)).get("token");
    if (fromFragment) return fromFragment;
    try { return sessionStorage.getItem("boxoffice-token") || ""; } catch (_) { return ""; }
  }

  // ---- calls -----------------------------------------------------------------------------

  // One API call; resolves with {ok, status, body, offset} where `offset` is the server's
  // clock minus ours (from the Date header; 0 if absent).
  async function call(method, path, body) {
    const headers = { "Accept": "application/json" };
    if (state.token) headers["Authorization"] = `Bearer ${state.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, {
        method, headers, body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store", credentials: "omit", referrerPolicy: "no-referrer",
      });
    } catch (_) {
      return { ok: false, status: 0, body: { error: { code: "unavailable", message: "no answer" } }, offset: 0 };
    }
    const received = Date.now();
    let parsed = null;
    try { parsed = await response.json(); } catch (_) { parsed = null; }
    // The server's clock when it answered, as well as we know it: its Date header (whole
    // seconds, rounded down), or the later `created_at` of what it just made (to the ms).
    let server = Date.parse(response.headers.get("Date") || "");
    const made = parsed && parsed.created_at ? Date.parse(parsed.created_at) : NaN;
    if (!Number.isNaN(made) && (Number.isNaN(server) || made > server)) server = made;
    const offset = Number.isNaN(server) ? 0 : server - received;
    return { ok: response.ok, status: response.status, body: parsed, offset };
  }

  async function placeHold(body, what) {
    if (!state.token) {
      say("Paste your token first: holding needs one.", "no_token");
      el.token.focus();
      return;
    }
    say("Asking the box office…", "pending");
    const answer = await call("POST", `/v1/events/${encodeURIComponent(eventId)}/holds`, body);
    if (!answer.ok) {
      say(sentence(answer.body && answer.body.error), answer.body && answer.body.error && answer.body.error.code);
      return;
    }
    addHold(answer.body, answer.offset);
    say(`Held ${what(answer.body)}. Confirm before the time runs out.`, "held");
  }

  function describe(hold) {
    const parts = [];
    if (hold.seats && hold.seats.length) parts.push(`seat${hold.seats.length > 1 ? "s" : ""} ${hold.seats.join(", ")}`);
    for (const item of hold.items || []) {
      const section = state.sections.get(item.section_id);
      parts.push(`${item.qty} × ${section ? section.name : item.section_id}`);
    }
    return parts.join(" and ") || "nothing";
  }

  function money(cents) {
    return (cents / 100).toFixed(2);
  }

  // ---- holds -----------------------------------------------------------------------------

  function addHold(hold, offset) {
    const node = document.createElement("li");
    node.className = "hold";
    node.id = `hold-${hold.id}`;
    node.dataset.hold = hold.id;
    node.innerHTML =
      '<span class="what"></span> · <span class="total"></span> · ' +
      '<span class="state">Time left: <span class="countdown" aria-live="off"></span></span> ' +
      '<button type="button" class="confirm">Confirm</button> ' +
      '<button type="button" class="release">Release</button>';
    node.querySelector(".what").textContent = describe(hold);
    node.querySelector(".total").textContent = money(hold.total_cents);
    const entry = { hold, offset, status: "held", node };
    node.querySelector(".confirm").addEventListener("click", () => confirmHold(entry));
    node.querySelector(".release").addEventListener("click", () => releaseHold(entry));
    state.holds.set(hold.id, entry);
    el.holds.prepend(node);
    el.noHolds.hidden = true;
    tick();
    for (const seat of hold.seats || []) paint(seat);
  }

  function finish(entry, status, text) {
    entry.status = status;
    entry.node.dataset.status = status;
    entry.node.querySelector(".state").textContent = text;
    for (const b of entry.node.querySelectorAll("button")) b.remove();
    for (const seat of entry.hold.seats || []) paint(seat);
  }

  async function confirmHold(entry) {
    const answer = await call("POST", `/v1/holds/${encodeURIComponent(entry.hold.id)}/confirm`, {});
    if (!answer.ok) {
      const error = answer.body && answer.body.error;
      say(sentence(error), error && error.code);
      if (error && error.code === "hold_expired") finish(entry, "expired", "expired");
      return;
    }
    finish(entry, "confirmed", `Booked (${answer.body.id})`);
    for (const seat of entry.hold.seats || []) setSeat(seat, "sold");
    say(`Booked ${describe(entry.hold)}. Booking ${answer.body.id}.`, "booked");
  }

  async function releaseHold(entry) {
    const answer = await call("DELETE", `/v1/holds/${encodeURIComponent(entry.hold.id)}`);
    if (!answer.ok) {
      const error = answer.body && answer.body.error;
      say(sentence(error), error && error.code);
      return;
    }
    finish(entry, "released", "released");
    say(`Released ${describe(entry.hold)}.`, "released");
  }

  function remainingMs(entry) {
    return Date.parse(entry.hold.expires_at) - (Date.now() + entry.offset);
  }

  function tick() {
    for (const entry of state.holds.values()) {
      if (entry.status !== "held") continue;
      const left = remainingMs(entry);
      if (left <= 0) {
        finish(entry, "expired", "expired");
        say(`Your hold of ${describe(entry.hold)} expired.`, "hold_expired");
        continue;
      }
      const seconds = Math.ceil(left / 1000);
      const text = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
      const countdown = entry.node.querySelector(".countdown");
      countdown.textContent = text;
      countdown.setAttribute("aria-label", `${seconds} seconds left`);
    }
  }

  // A seat is "mine" while one of my live holds has it and the map says held.
  function mine(seat) {
    for (const entry of state.holds.values()) {
      if (entry.status === "held" && (entry.hold.seats || []).includes(seat)) return true;
    }
    return false;
  }

  // ---- drawing ---------------------------------------------------------------------------

  function seatNumber(id) {
    return id.slice(id.lastIndexOf("-") + 1);
  }

  function rowLabel(id) {
    return id.slice(0, id.lastIndexOf("-"));
  }

  const SPOKEN = { free: "free", held: "held", mine: "held by you", sold: "sold" };

  function paint(seat) {
    const button = state.buttons.get(seat);
    if (!button) return;
    const status = state.seats.get(seat);
    const shown = status === "held" && mine(seat) ? "mine" : status;
    button.dataset.status = shown;
    button.setAttribute("aria-label", `Row ${rowLabel(seat)} seat ${seatNumber(seat)}, ${SPOKEN[shown] || shown}`);
  }

  function setSeat(seat, status) {
    state.seats.set(seat, status);
    paint(seat);
  }

  function drawCounts() {
    el.counts.textContent = "";
    for (const [id, s] of state.sections) {
      const row = document.createElement("tr");
      row.dataset.section = id;
      const cells = [s.name, money(s.price_cents), s.available, s.held, s.sold, s.waiting || 0];
      const names = ["name", "price", "available", "held", "sold", "waiting"];
      cells.forEach((value, i) => {
        const cell = document.createElement(i === 0 ? "th" : "td");
        if (i === 0) cell.scope = "row";
        cell.className = names[i];
        cell.textContent = value;
        row.append(cell);
      });
      el.counts.append(row);
    }
  }

  function drawMap(seatSections) {
    el.map.textContent = "";
    state.buttons.clear();
    for (const section of seatSections) {
      const block = document.createElement("div");
      block.className = "section";
      block.dataset.section = section.section_id;
      const heading = document.createElement("h3");
      heading.textContent = section.name;
      block.append(heading);
      const grid = document.createElement("div");
      grid.className = "rows";
      grid.setAttribute("role", "group");
      grid.setAttribute("aria-label", `Seats of ${section.name}`);
      for (const row of section.rows) {
        const line = document.createElement("div");
        line.className = "row";
        const label = document.createElement("span");
        label.className = "row-label";
        label.textContent = row.label;
        label.setAttribute("aria-hidden", "true");
        line.append(label);
        for (const seat of row.seats) {
          const button = document.createElement("button");
          button.type = "button";
          button.className = "seat";
          button.dataset.seat = seat.id;
          button.textContent = seatNumber(seat.id);
          state.buttons.set(seat.id, button);
          state.seats.set(seat.id, seat.status);
          line.append(button);
          paint(seat.id);
        }
        grid.append(line);
      }
      block.append(grid);
      el.map.append(block);
    }
  }

  function drawGa() {
    const ga = [...state.sections].filter(([, s]) => s.kind === "general");
    const chosen = el.gaSection.value;
    el.gaSection.textContent = "";
    for (const [id, s] of ga) {
      const option = document.createElement("option");
      option.value = id;
      option.textContent = `${s.name} (${s.available} free)`;
      el.gaSection.append(option);
    }
    if (chosen) el.gaSection.value = chosen;
    el.gaPanel.hidden = ga.length === 0;
  }

  function applySnapshot(data) {
    el.name.textContent = data.name;
    document.title = `${data.name} · boxoffice`;
    state.sections.clear();
    state.seats.clear();
    for (const s of data.sections) {
      state.sections.set(s.id, {
        name: s.name, kind: s.kind, price_cents: s.price_cents,
        available: s.available, held: s.held, sold: s.sold, waiting: s.waiting || 0,
      });
    }
    drawCounts();
    drawMap(data.seats || []);
    drawGa();
  }

  function applyChange(data) {
    for (const c of data.sections || []) {
      const s = state.sections.get(c.id);
      if (!s) continue;
      Object.assign(s, { available: c.available, held: c.held, sold: c.sold, waiting: c.waiting });
    }
    if ((data.sections || []).length) { drawCounts(); drawGa(); }
    for (const [seat, status] of Object.entries(data.seats || {})) setSeat(seat, status);
  }

  // ---- the stream ------------------------------------------------------------------------

  function connection(stateName, text) {
    el.connection.dataset.state = stateName;
    el.connectionText.textContent = text;
  }

  function listen() {
    const source = new EventSource(`/v1/events/${encodeURIComponent(eventId)}/stream`);
    source.addEventListener("open", () => connection("live", "Live"));
    source.addEventListener("snapshot", (e) => {
      connection("live", "Live");
      el.map.dataset.lastEventId = e.lastEventId;
      applySnapshot(JSON.parse(e.data));
    });
    source.addEventListener("change", (e) => {
      el.map.dataset.lastEventId = e.lastEventId;
      applyChange(JSON.parse(e.data));
    });
    source.addEventListener("error", async () => {
      if (source.readyState === EventSource.CLOSED) {
        // Refused (not a stream): find out why, then try again later unless it is gone.
        const answer = await call("GET", `/v1/events/${encodeURIComponent(eventId)}`);
        if (answer.status === 404) {
          connection("gone", "No such event");
          el.name.textContent = "No such event";
          say(`There is no event “${eventId}” here.`, "not_found");
          return;
        }
        connection("reconnecting", "Reconnecting…");
        setTimeout(listen, 2000);
      } else {
        connection("reconnecting", "Reconnecting…");
      }
    });
  }

  // ---- input -----------------------------------------------------------------------------

  el.map.addEventListener("click", (e) => {
    const button = e.target.closest("button.seat");
    if (!button) return;
    const seat = button.dataset.seat;
    if (mine(seat)) {
      say(`Seat ${seat} is already in your hold.`, "mine");
      return;
    }
    placeHold({ seats: [seat] }, describe);
  });

  // Arrow keys move between seats: left and right along a row, up and down across rows.
  el.map.addEventListener("keydown", (e) => {
    const button = e.target.closest("button.seat");
    if (!button) return;
    const row = button.parentElement;
    const seats = [...row.querySelectorAll("button.seat")];
    const index = seats.indexOf(button);
    let target = null;
    if (e.key === "ArrowLeft") target = seats[index - 1];
    else if (e.key === "ArrowRight") target = seats[index + 1];
    else if (e.key === "ArrowUp" || e.key === "ArrowDown") {
      const rows = [...el.map.querySelectorAll(".row")];
      const next = rows[rows.indexOf(row) + (e.key === "ArrowUp" ? -1 : 1)];
      if (next) {
        const others = next.querySelectorAll("button.seat");
        target = others[Math.min(index, others.length - 1)];
      }
    }
    if (target) {
      e.preventDefault();
      target.focus();
    }
  });

  el.bestQty.addEventListener("input", () => {
    const n = parseInt(el.bestQty.value, 10);
    el.best.textContent = n > 0 ? `Best ${n} together` : "Best seats together";
  });

  el.bestForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const qty = parseInt(el.bestQty.value, 10);
    if (!(qty > 0)) {
      say("Give how many seats you want together (1 or more).", "invalid_input");
      return;
    }
    placeHold({ best_available: { qty } }, describe);
  });

  el.gaForm.addEventListener("submit", (e) => {
    e.preventDefault();
    const qty = parseInt(el.gaQty.value, 10);
    if (!(qty > 0)) {
      say("Give how many tickets you want (1 or more).", "invalid_input");
      return;
    }
    placeHold({ items: [{ section_id: el.gaSection.value, qty }] }, describe);
  });

  el.token.addEventListener("input", () => setToken(el.token.value));
  $("token-form").addEventListener("submit", (e) => { e.preventDefault(); setToken(el.token.value); });

  // ---- start -----------------------------------------------------------------------------

  const token = initialToken();
  el.token.value = token;
  setToken(token);
  if (location.hash) el.allEvents.href = `/${location.hash}`;
  setInterval(tick, 250);
  listen();
})();
