"""The simulated box's page (/sim/): the front panel, the printer and the drives of hw-sim as a
person standing at the box would see them, with their controls. Plain HTML/CSS/JS, no build step,
no library. It follows /sim/events (Server-Sent Events; the simulators report each change, the
server pushes it): no polling loop in the page. Actions go to POST /sim/act/<view>/<action> as JSON.
Text goes in with textContent only, never as HTML (a display line may hold anything a modality sent).

What it draws per view kind (views.py; the state shapes are hw-sim's view_state docstrings):
  panel    each LED lit, dark or blinking by a CSS animation with the pattern's on/off ms; the
           display's lines in a monospace box as the glass shows them; a button per panel button:
           a click is a short press, holding the mouse past HOLD_MS holds the button until it is
           released, and the "long" toggle makes a click a long press (the simulator holds it)
  printer  its status, films left and printed, jam / un-jam / out-of-film / load, the last film
  drive    what it holds, insert blank / with data, pull
  grabber  signal on/off, the format and frames sent, signal off / on, a few resolutions, and the
           last frame sent (a new picture URL at most once a second, however often it is drawn)
and the queue (waiting / dead per kind and target, as last counted) and the gateway's own view of
the printer (what its print service last saw, the status a DICOM print client gets).

Element ids a test reads: "stream" ("live", "reconnecting"), "led-<name>" (data-pattern),
"display-line-0", "display-line-1", "btn-<button>", "long", "<view>-status", "<view>-medium",
"act-<view>-<action>[-<arg>]", "<view>-film", "<view>-signal", "<view>-format", "queue", "gw-printer",
"outcome".
"""

SIM_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>DICOM gateway: the simulated box</title>
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; background: #eef0f2; }
 h1 { font-size: 1.3em; margin: 0 0 .3em; }
 h2 { font-size: 1.05em; margin: 0 0 .4em; }
 .box { background: #fff; border: 1px solid #ccc; border-radius: 6px; padding: .8em 1em; margin: 0 1em 1em 0;
        display: inline-block; vertical-align: top; min-width: 18em; }
 .panel { background: #2b2f33; color: #ddd; }
 .leds { display: flex; gap: 1.2em; margin-bottom: .8em; flex-wrap: wrap; }
 .led { display: flex; flex-direction: column; align-items: center; font-size: .8em; }
 .lamp { width: 14px; height: 14px; border-radius: 50%; background: #444; border: 1px solid #111; margin-bottom: .2em; }
 .lamp.on { background: var(--lit); box-shadow: 0 0 8px var(--lit); }
 .glass { font: 20px/1.25 "DejaVu Sans Mono", monospace; background: #9fc13a; color: #1b2a05; padding: .3em .5em;
          border: 4px solid #111; white-space: pre; display: inline-block; }
 .glass.dark { background: #56661f; }
 .buttons { margin-top: .8em; }
 .buttons button { min-width: 4.5em; padding: .5em; margin-right: .4em; border-radius: 4px; }
 button { cursor: pointer; }
 .bad { color: #a00; font-weight: 600; } .good { color: #070; } .muted { color: #888; }
 img.film { max-width: 16em; max-height: 20em; border: 1px solid #999; display: block; margin-top: .5em; background: #000; }
 table { border-collapse: collapse; } td, th { padding: .1em .8em .1em 0; text-align: left; }
 .num { text-align: right; font-variant-numeric: tabular-nums; }
 #outcome { min-height: 1.4em; }
</style>
<style id="blinks"></style>
</head>
<body>
<h1>The simulated box <span class="muted">(hw-sim)</span></h1>
<p class="muted">Stream: <span id="stream">connecting</span>. <span id="outcome"></span></p>
<div id="views"></div>
<div class="box"><h2>Queue</h2>
 <table><thead><tr><th>kind</th><th>target</th><th class="num">waiting</th><th class="num">dead</th></tr></thead>
 <tbody id="queue"></tbody></table>
 <p>Gateway's printer status: <b id="gw-printer">-</b></p>
</div>
<script>
"use strict";
const HOLD_MS = 600;
const LIT = {amber: "#ffb000", red: "#ff3030", green: "#30e040"};
const blinks = new Set();
let chain = Promise.resolve();

function el(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// One action after the other: a press's "up" must never overtake its "down".
function act(view, action, args) {
  chain = chain.then(async () => {
    const out = document.getElementById("outcome");
    try {
      const r = await fetch("/sim/act/" + encodeURIComponent(view) + "/" + encodeURIComponent(action),
        {method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(args || {})});
      const text = (await r.text()).trim();
      out.textContent = view + " " + action + ": " + text;
      out.className = r.ok ? "good" : "bad";
    } catch (e) {
      out.textContent = view + " " + action + ": " + e;
      out.className = "bad";
    }
  });
}

function blinkAnimation(on, off) {
  const name = "blink-" + on + "-" + off;
  if (!blinks.has(name)) {
    blinks.add(name);
    const pct = (100 * on / (on + off)).toFixed(2);
    document.getElementById("blinks").textContent +=
      "@keyframes " + name + " { 0% { background: var(--lit); box-shadow: 0 0 8px var(--lit); } " +
      pct + "% { background: #444; box-shadow: none; } }\\n";
  }
  return name + " " + (on + off) + "ms step-end infinite";
}

function drawLed(name, led) {
  const box = el("div", {class: "led"});
  const lamp = el("div", {class: "lamp", id: "led-" + name, "data-pattern": led.pattern,
                          title: led.device + ": " + led.pattern});
  const colour = Object.keys(LIT).find(c => (led.device || "").includes(c)) || "green";
  lamp.style.setProperty("--lit", LIT[colour]);
  if (led.on_ms > 0 && led.off_ms > 0) lamp.style.animation = blinkAnimation(led.on_ms, led.off_ms);
  else if (led.on_ms > 0) lamp.classList.add("on");
  box.append(lamp, el("span", {}, name));
  return box;
}

// The button being held: kept outside the drawing, because a change pushed while the mouse is
// down redraws the page, and the release must still reach the button that was pressed.
let holding = null;

function release() {
  if (holding === null) return;
  const h = holding; holding = null;
  clearTimeout(h.timer);
  if (h.held) act(h.view, "up", {button: h.name});
  else act(h.view, "press", {button: h.name, long: document.getElementById("long").checked});
}

function panelButton(view, name) {
  const b = el("button", {id: "btn-" + name, type: "button"}, name);
  b.addEventListener("mousedown", () => {
    release();
    const h = {view: view, name: name, held: false, timer: null};
    h.timer = setTimeout(() => { h.held = true; act(view, "down", {button: name}); }, HOLD_MS);
    holding = h;
  });
  return b;
}
document.addEventListener("mouseup", release);

function actionButton(view, action, label, args, suffix) {
  const b = el("button", {id: "act-" + view + "-" + action + (suffix ? "-" + suffix : ""), type: "button"}, label);
  b.addEventListener("click", () => act(view, action, args));
  return b;
}

function drawPanel(v) {
  const s = v.state, box = el("div", {class: "box panel", id: v.name});
  box.append(el("h2", {}, "Front panel"));
  const leds = el("div", {class: "leds"});
  for (const [name, led] of Object.entries(s.leds || {})) leds.append(drawLed(name, led));
  box.append(leds);
  const glass = el("div", {class: "glass" + (s.display && s.display.backlight ? "" : " dark")});
  (s.display ? s.display.lines : []).forEach((line, i) => {
    glass.append(el("div", {id: "display-line-" + i}, line));
  });
  box.append(glass);
  const buttons = el("div", {class: "buttons"});
  for (const name of s.buttons || []) buttons.append(panelButton(v.name, name));
  const toggle = el("label", {}, "");
  const check = el("input", {type: "checkbox", id: "long"});
  if (window.longChecked) check.checked = true;
  check.addEventListener("change", () => { window.longChecked = check.checked; });
  toggle.append(check, document.createTextNode(" long"));
  buttons.append(toggle);
  box.append(buttons);
  return box;
}

function drawPrinter(v) {
  const s = v.state, box = el("div", {class: "box", id: v.name});
  box.append(el("h2", {}, "Printer " + v.name + (s.model ? " (" + s.model + ")" : "")));
  const st = el("b", {id: v.name + "-status", class: s.status === "NORMAL" ? "good" : "bad"}, s.status);
  const p = el("p", {}, "Status: "); p.append(st);
  box.append(p, el("p", {}, "Films left: " + (s.films_left === null ? "endless" : s.films_left) +
                            "; printed: " + s.printed));
  const labels = {jam: "jam", unjam: "un-jam", "out-of-film": "out of film", load: "load films"};
  for (const a of v.actions) box.append(actionButton(v.name, a, labels[a] || a, {}));
  if (v.film && s.printed > 0) {
    box.append(el("img", {class: "film", id: v.name + "-film", alt: "the last film",
                          src: "/sim/film/" + encodeURIComponent(v.name) + "?n=" + s.printed}));
  }
  return box;
}

function drawDrive(v) {
  const s = v.state, box = el("div", {class: "box", id: v.name});
  box.append(el("h2", {}, "Drive " + v.name + " (" + s.type + ")"));
  const m = s.medium;
  const what = m ? m.kind + (m.blank ? " blank" : " with data") + (m.read_only ? ", write-protected" : "") : "empty";
  const p = el("p", {}, "Holds: "); p.append(el("b", {id: v.name + "-medium"}, what));
  box.append(p);
  if ((s.faults || []).length) box.append(el("p", {class: "bad"}, "faults armed: " + s.faults.join(", ")));
  const media = s.type === "usb" ? ["usb"] : ["cd", "dvd"];
  for (const kind of media) {
    box.append(actionButton(v.name, "insert", "insert blank " + kind, {medium: kind, data: false}, kind + "-blank"));
    box.append(actionButton(v.name, "insert", kind + " with data", {medium: kind, data: true}, kind + "-data"));
  }
  box.append(actionButton(v.name, "pull", "pull", {}));
  return box;
}

const FRAME_MS = 1000;
const frameSrc = {};

function drawGrabber(v) {
  const s = v.state, f = s.format || {}, box = el("div", {class: "box", id: v.name});
  box.append(el("h2", {}, "Frame grabber"));
  const p = el("p", {}, "Signal: ");
  p.append(el("b", {id: v.name + "-signal", class: s.signal ? "good" : "bad"}, s.signal ? "on" : "off"));
  box.append(p, el("p", {id: v.name + "-format"}, f.width + "x" + f.height + " at " + f.fps + " fps " +
                   f.pixel_format + "; frames sent: " + s.frames_sent));
  box.append(actionButton(v.name, "signal-off", "signal off", {}), actionButton(v.name, "signal-on", "signal on", {}));
  for (const size of ["640x480", "800x600", "1920x1080"]) {
    box.append(actionButton(v.name, "resolution", size, {size: size}, size));
  }
  if (v.film && s.frames_sent > 0) {
    // Redrawn on every change: the picture's URL changes at most once a FRAME_MS.
    const old = frameSrc[v.name];
    if (!old || Date.now() - old.at >= FRAME_MS) {
      frameSrc[v.name] = {at: Date.now(), src: "/sim/film/" + encodeURIComponent(v.name) + "?n=" + s.frames_sent};
    }
    box.append(el("img", {class: "film", id: v.name + "-film", alt: "the last frame", src: frameSrc[v.name].src}));
  }
  return box;
}

const DRAW = {panel: drawPanel, printer: drawPrinter, drive: drawDrive, grabber: drawGrabber};

function render(doc) {
  const views = document.getElementById("views");
  const parts = doc.views.map(v => (DRAW[v.kind] || (x => el("div", {class: "box"}, x.name + ": " + x.kind)))(v));
  views.replaceChildren(...parts);
  const q = document.getElementById("queue");
  q.replaceChildren(...doc.queue.map(r => {
    const tr = el("tr", {"data-target": r.target, "data-kind": r.kind});
    tr.append(el("td", {}, r.kind), el("td", {}, r.target), el("td", {class: "num"}, String(r.waiting)),
              el("td", {class: r.dead ? "num bad" : "num"}, String(r.dead)));
    return tr;
  }));
  const gp = doc.printer;
  document.getElementById("gw-printer").textContent =
    gp ? (gp.status || "not known yet") + (gp.info ? " (" + gp.info + ")" : "") : "printing off";
}

const stream = new EventSource("/sim/events");
stream.addEventListener("sim", e => { document.getElementById("stream").textContent = "live"; render(JSON.parse(e.data)); });
stream.onerror = () => { document.getElementById("stream").textContent = "reconnecting"; };
</script>
</body>
</html>
"""
