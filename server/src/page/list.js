// The event list at `/`: every event with its counts and a link to its seat map.
"use strict";

(function () {
  const list = document.getElementById("events");
  const more = document.getElementById("more");
  const empty = document.getElementById("empty");
  const messages = document.getElementById("messages");
  // A token given in the fragment travels on to the event pages (fragments stay local).
  const fragment = location.hash;
  let cursor = null;

  function text(tag, value, cls) {
    const el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }

  function summary(event) {
    let available = 0, held = 0, sold = 0, capacity = 0;
    for (const s of event.sections) {
      available += s.available; held += s.held; sold += s.sold; capacity += s.capacity;
    }
    return `${available} of ${capacity} free, ${held} held, ${sold} sold`;
  }

  async function load() {
    more.disabled = true;
    const query = cursor ? `?limit=100&after=${encodeURIComponent(cursor)}` : "?limit=100";
    try {
      const response = await fetch(`/v1/events${query}`);
      const body = await response.json();
      if (!response.ok) throw new Error(body.error ? body.error.message : response.statusText);
      for (const event of body.data) {
        const item = document.createElement("li");
        const link = text("a", event.name);
        link.href = `/events/${encodeURIComponent(event.id)}${fragment}`;
        item.append(link, text("span", ` (${event.id}) · ${summary(event)}`, "hint"));
        list.append(item);
      }
      cursor = body.next_cursor;
      more.hidden = !cursor;
      empty.hidden = list.children.length > 0;
    } catch (error) {
      messages.textContent = `Could not load the events: ${error.message}`;
    } finally {
      more.disabled = false;
      list.setAttribute("aria-busy", "false");
    }
  }

  more.addEventListener("click", load);
  if (list.dataset.rendered) {
    // The server put the first page in the HTML: carry a token on, and page on from it.
    for (const link of list.querySelectorAll("a")) {
      link.setAttribute("href", link.getAttribute("href") + fragment);
    }
    cursor = list.dataset.cursor || null;
    more.hidden = !cursor;
  } else {
    load();
  }
})();
