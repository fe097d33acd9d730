// The relay chat page (issue #18): a relay client of the server's sequencer
// over a WebSocket. Every name and text goes into the page as text
// (textContent), never as HTML. What it needs to resume after a reload with
// no gap and no duplicate lives in localStorage: its id, token, last sequence
// number, the events shown, and the lines not yet seen sequenced.
"use strict";

const KEY = "protolab-relay";
const SHOWN = 500;
const log = document.getElementById("log");
const status = document.getElementById("status");
const join = document.getElementById("join");
const send = document.getElementById("send");
const nameBox = document.getElementById("name");
const line = document.getElementById("line");

function fresh(name) {
  return { id: 0, token: "0", last: 0, name: name, next: 1, pending: [], shown: [] };
}

let state = null;
try {
  state = JSON.parse(localStorage.getItem(KEY));
} catch (e) {
  state = null;
}
let ws = null;

function save() {
  localStorage.setItem(KEY, JSON.stringify(state));
}

function span(cls, text) {
  const s = document.createElement("span");
  s.className = cls;
  s.textContent = text;
  return s;
}

function render(ev) {
  const li = document.createElement("li");
  li.className = ev.kind;
  li.dataset.seq = String(ev.seq);
  li.append(span("seq", "[" + ev.seq + "]"));
  if (ev.kind === "chat") {
    li.append(span("name", ev.name + ":"), span("text", ev.text));
  } else if (ev.kind === "join") {
    li.append(span("text", "* " + ev.name + " joined"));
  } else {
    li.append(span("text", "* " + ev.name + " left (" + ev.text + ")"));
  }
  log.append(li);
  log.scrollTop = log.scrollHeight;
}

function connect() {
  ws = new WebSocket("ws://" + location.host + "/ws");
  ws.onopen = () => {
    ws.send("hello " + state.id + " " + state.token + " " + state.last + " " + state.name);
  };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "welcome") {
      state.id = msg.client_id;
      state.token = msg.token;
      save();
      status.textContent = "connected as " + msg.name;
      send.hidden = false;
      for (const p of state.pending) {
        ws.send("chat " + p.n + " " + p.text);
      }
    } else if (msg.type === "event") {
      if (msg.seq <= state.last) {
        return;
      }
      render(msg);
      state.last = msg.seq;
      state.shown.push(msg);
      if (state.shown.length > SHOWN) {
        state.shown.splice(0, state.shown.length - SHOWN);
      }
      if (msg.kind === "chat" && msg.origin === state.id) {
        state.pending = state.pending.filter((p) => p.n > msg.sender_seq);
      }
      save();
      ws.send("ack " + msg.seq);
    } else if (msg.type === "error") {
      status.textContent = msg.text;
      if (msg.text.startsWith("cannot resume")) {
        // History no longer reaches us, or the server forgot us: join anew.
        const name = state.name;
        state = fresh(name);
        log.replaceChildren();
        save();
      }
    }
  };
  ws.onclose = () => {
    status.textContent = "disconnected; reconnecting…";
    setTimeout(connect, 1000);
  };
}

function start() {
  for (const ev of state.shown) {
    render(ev);
  }
  connect();
}

join.addEventListener("submit", (e) => {
  e.preventDefault();
  const name = nameBox.value.trim();
  if (!name) {
    return;
  }
  state = fresh(name);
  save();
  join.hidden = true;
  start();
});

send.addEventListener("submit", (e) => {
  e.preventDefault();
  const text = line.value;
  if (!text) {
    return;
  }
  const n = state.next++;
  state.pending.push({ n: n, text: text });
  save();
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send("chat " + n + " " + text);
  }
  line.value = "";
});

if (state && state.name) {
  start();
} else {
  join.hidden = false;
  status.textContent = "choose a name to join";
}
