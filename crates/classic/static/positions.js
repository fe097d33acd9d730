// The positions map (issue #18): every connected client as a coloured dot
// with its id and a short trail, fed by the server over a WebSocket; "Play"
// joins as a client of the same registry, moved with the arrow keys or WASD.
// Everything shown is set as text or attributes, never as HTML.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const TRAIL = 12;
const map = document.getElementById("map");
const list = document.getElementById("players");
const events = document.getElementById("events");
const status = document.getElementById("status");
const play = document.getElementById("play");

// id -> { x, y, trail: [[x, y]...], dot, label, line }
const players = new Map();
let me = null;
let mine = { x: 0, y: 0 };
let ws = null;

function colour(id) {
  return "hsl(" + ((id * 137) % 360) + ", 70%, 45%)";
}

function note(text) {
  const li = document.createElement("li");
  li.textContent = text;
  events.prepend(li);
  while (events.children.length > 50) {
    events.lastChild.remove();
  }
}

function el(name, attrs) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) {
    e.setAttribute(k, String(v));
  }
  return e;
}

function add(id) {
  if (players.has(id)) {
    return players.get(id);
  }
  const c = colour(id);
  const p = {
    x: null, y: null, trail: [],
    line: el("polyline", { fill: "none", stroke: c, "stroke-width": 0.4, "stroke-opacity": 0.6 }),
    dot: el("circle", { r: 0.9, fill: c }),
    label: el("text", { "font-size": 1.6, fill: c }),
  };
  p.label.textContent = String(id);
  map.append(p.line, p.dot, p.label);
  players.set(id, p);
  return p;
}

function place(id, x, y) {
  const p = add(id);
  p.x = x;
  p.y = y;
  p.trail.push([x, -y]);
  if (p.trail.length > TRAIL) {
    p.trail.shift();
  }
  p.dot.setAttribute("cx", x);
  p.dot.setAttribute("cy", -y);
  p.label.setAttribute("x", x + 1.2);
  p.label.setAttribute("y", -y - 1.2);
  p.line.setAttribute("points", p.trail.map((t) => t.join(",")).join(" "));
}

function remove(id) {
  const p = players.get(id);
  if (p) {
    p.dot.remove();
    p.label.remove();
    p.line.remove();
    players.delete(id);
  }
}

function redraw() {
  let span = 20;
  for (const p of players.values()) {
    if (p.x !== null) {
      span = Math.max(span, Math.abs(p.x) + 5, Math.abs(p.y) + 5);
    }
  }
  map.setAttribute("viewBox", -span + " " + -span + " " + 2 * span + " " + 2 * span);
  list.replaceChildren();
  for (const [id, p] of [...players.entries()].sort((a, b) => a[0] - b[0])) {
    const li = document.createElement("li");
    li.dataset.id = String(id);
    li.textContent = p.x === null ? id + " (no position yet)" : id + " (" + p.x + ", " + p.y + ")";
    if (id === me) {
      li.className = "me";
      li.textContent += " — you";
    }
    list.append(li);
  }
}

function connect() {
  ws = new WebSocket("ws://" + location.host + "/ws");
  ws.onopen = () => {
    status.textContent = "connected";
  };
  ws.onmessage = (m) => {
    const msg = JSON.parse(m.data);
    if (msg.type === "snapshot") {
      for (const id of [...players.keys()]) {
        remove(id);
      }
      for (const p of msg.players) {
        add(p.id);
        if (p.x !== undefined) {
          place(p.id, p.x, p.y);
        }
      }
    } else if (msg.type === "join") {
      add(msg.id);
      note(msg.id + " joined");
    } else if (msg.type === "move") {
      place(msg.id, msg.x, msg.y);
    } else if (msg.type === "leave") {
      remove(msg.id);
      note(msg.id + " left");
    } else if (msg.type === "you") {
      me = msg.id;
      status.textContent = "playing as " + me;
      play.hidden = true;
      ws.send("move " + mine.x + " " + mine.y);
    }
    redraw();
  };
  ws.onclose = () => {
    status.textContent = "disconnected; reconnecting…";
    me = null;
    play.hidden = false;
    setTimeout(connect, 1000);
  };
}

play.addEventListener("click", () => {
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send("play");
  }
});

const KEYS = {
  ArrowUp: [0, 1], w: [0, 1], W: [0, 1],
  ArrowDown: [0, -1], s: [0, -1], S: [0, -1],
  ArrowLeft: [-1, 0], a: [-1, 0], A: [-1, 0],
  ArrowRight: [1, 0], d: [1, 0], D: [1, 0],
};

document.addEventListener("keydown", (e) => {
  const step = KEYS[e.key];
  if (!step || me === null || !ws || ws.readyState !== WebSocket.OPEN) {
    return;
  }
  e.preventDefault();
  mine.x = Math.max(-32768, Math.min(32767, mine.x + step[0]));
  mine.y = Math.max(-32768, Math.min(32767, mine.y + step[1]));
  ws.send("move " + mine.x + " " + mine.y);
});

connect();
