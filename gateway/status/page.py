"""The status page: one plain HTML document with its CSS and a few lines of JavaScript, no build
step, no library. It opens /events (Server-Sent Events; the browser reconnects by itself) and
redraws from each status document it receives: no polling loop in the page. Text goes in with
textContent only, never as HTML. The document holds no patient data, so neither does the page.

Element ids a test (or a curious engineer) can read: "received", "refused", "forwarded",
"dead-lettered" (counts since start), "health", "assoc-open", "assoc-accepted", "assoc-refused"
(the listener's associations since start), "last-refused" (the last A-ASSOCIATE-RJ: who, when,
why, with its result / source / diagnostic, PS3.8 9.3.4; "none"), "config-problems",
"destinations", "dead-letters", "printer", "media", "capture", "procedure", "qr" (Query/Retrieve
served from the buffer today: queries and the last one's time and calling AE, retrieves with their
sub-operations), "qr-failure" (the last Q/R request that failed, with its status; "none"), "disk", "errors",
"updated", "stream" (the stream's state: "live", "reconnecting" or "closed ...": a browser does not retry a stream
answered 503).
"""

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>DICOM gateway status</title>
<style>
 body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #222; background: #fafafa; }
 h1 { font-size: 1.3em; margin: 0 0 .3em; }
 h2 { font-size: 1.05em; margin: 1.2em 0 .3em; border-bottom: 1px solid #ccc; }
 table { border-collapse: collapse; }
 td, th { padding: .15em .8em .15em 0; text-align: left; vertical-align: top; }
 th { font-weight: 600; color: #555; }
 .num { text-align: right; font-variant-numeric: tabular-nums; }
 .bad { color: #a00; font-weight: 600; } .good { color: #070; } .muted { color: #888; }
 #counts span, #associations span { display: inline-block; margin-right: 2em; }
 #counts b { font-size: 1.4em; } #associations b { font-size: 1.1em; }
</style>
</head>
<body>
<h1>DICOM gateway <span id="health" class="muted">connecting…</span></h1>
<div class="muted">updated <span id="updated">-</span>, stream <span id="stream">connecting</span></div>
<h2>Since start</h2>
<div id="counts">
 <span><b id="received">-</b> received</span><span><b id="refused">-</b> refused</span>
 <span><b id="forwarded">-</b> forwarded</span><span><b id="dead-lettered">-</b> dead-lettered</span>
</div>
<h2>Associations since start</h2>
<div id="associations">
 <span><b id="assoc-open">-</b> open</span><span><b id="assoc-accepted">-</b> accepted</span>
 <span><b id="assoc-refused">-</b> refused</span>
</div>
<div>Last refused: <span id="last-refused" class="muted">-</span></div>
<h2>Config problems (until a restart)</h2><table id="config-problems"></table>
<h2>Destinations</h2><table id="destinations"></table>
<h2>Dead letters (newest first)</h2><table id="dead-letters"></table>
<h2>Printer</h2><div id="printer">-</div>
<h2>Media</h2><table id="media"></table>
<h2>Capture</h2><div id="capture">-</div><div id="procedure" class="muted">-</div>
<h2>Query/Retrieve today</h2><div id="qr">-</div><div>Last failure: <span id="qr-failure" class="muted">-</span></div>
<h2>Disk</h2><div id="disk">-</div>
<h2>Last errors</h2><table id="errors"></table>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const clock = (t) => t ? new Date(t * 1000).toLocaleString() : "-";
const size = (n) => { if (n == null) return "-"; const u = ["B", "KB", "MB", "GB", "TB"]; let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; } return (i ? n.toFixed(1) : n) + " " + u[i]; };
const span = (s) => s == null ? "-" : s < 90 ? Math.round(s) + " s" : s < 5400 ? Math.round(s / 60) + " min"
  : Math.round(s / 3600) + " h";
function table(el, head, rows) {
  el.replaceChildren();
  const tr = el.insertRow(); for (const h of head) { const th = document.createElement("th"); th.textContent = h; tr.append(th); }
  for (const row of rows) { const r = el.insertRow();
    for (const cell of row) { const c = r.insertCell(); const [text, cls] = Array.isArray(cell) ? cell : [cell, ""];
      c.textContent = text == null ? "-" : String(text); if (cls) c.className = cls; } }
  if (!rows.length) { const c = el.insertRow().insertCell(); c.textContent = "none"; c.className = "muted"; }
}
function draw(s) {
  const h = $("health"); h.textContent = s.service.healthy ? "healthy" : "NOT HEALTHY: " + s.service.problem;
  h.className = s.service.healthy ? "good" : "bad";
  for (const k of ["received", "refused", "forwarded"]) $(k).textContent = s.counts[k];
  $("dead-lettered").textContent = s.counts.dead_lettered;
  // A snapshot from before associations were counted has none: "-", not a broken page.
  const a = s.associations || {};
  for (const k of ["open", "accepted", "refused"]) $("assoc-" + k).textContent = a[k] == null ? "-" : a[k];
  const r = a.last_refused, lr = $("last-refused");
  lr.textContent = r ? clock(r.at) + ": " + (r.calling_ae || "?") + " -> " + (r.called_ae || "?") + " from "
    + (r.peer || "?") + ": " + (r.reason || "refused") + " (result " + r.result + ", source " + r.source
    + ", diagnostic " + r.diagnostic + ")" : "none";
  lr.className = r ? "bad" : "muted";
  table($("config-problems"), ["when", "key", "problem"],
    (s.config_problems || []).slice().reverse().map((c) => [clock(c.at), [c.key, "bad"], c.detail]));
  table($("destinations"), ["name", "reachable", "waiting", "in flight", "dead", "oldest waiting", "last forward"],
    Object.entries(s.destinations).map(([n, d]) => [n,
      d.reachable == null ? ["not tried yet", "muted"] : d.reachable ? ["yes", "good"] : ["NO: " + d.reason, "bad"],
      [d.queued + d.committing, "num"], [d.in_flight, "num"], [d.dead, d.dead ? "num bad" : "num"],
      span(d.oldest_age_s), clock(d.last_forwarded)]));
  table($("dead-letters"), ["job", "kind", "target", "object", "since", "tries", "reason"],
    s.dead_letters.map((j) => [j.id, j.kind, j.target, j.sop_uid, clock(j.since), j.attempts, j.reason]));
  const p = s.printer;
  $("printer").textContent = p ? p.name + ": " + (p.status || "not known yet") + (p.info ? " (" + p.info + ")" : "") : "printing off";
  table($("media"), ["drive", "medium", "busy", "last"], Object.entries(s.media || {}).map(([n, m]) => [n,
    m.present ? (m.medium || "?") + (m.blank ? " (blank)" : "") : m.present === false ? "empty" : "unknown",
    m.busy || "", m.last]));
  const c = s.capture || {}, w = s.worklist || {}, cur = w.current;
  $("capture").textContent = c.signal === "up" ? "signal " + c.width + "x" + c.height + " at " + c.fps + " fps; "
    + c.stored + " captured" + (c.recording ? "; RECORDING a " + c.recording.seconds + " s clip" : "")
    + (c.last ? "; last " + c.last.what + " " + clock(c.last.at) + (c.last.note ? " (" + c.last.note + ")" : "") : "")
    : c.signal === "lost" ? "NO SIGNAL since " + clock(c.since) : c.signal == null ? "no grabber, or no frame yet" : c.signal;
  $("capture").className = c.signal === "lost" ? "bad" : "";
  $("procedure").textContent = "procedure: " + (cur ? "Patient ID " + cur.patient_id + (cur.scheduled ? "" : " (UNSCHEDULED)")
    : "none chosen") + (w.failed ? "; worklist SCP failing: " + w.failed.reason : w.items != null
    ? "; worklist of " + w.items + " items (" + w.source + ")" : "");
  // A document without Q/R (the status server given a bare registry) draws "-", not a broken page.
  const q = s.qr, t = q ? q.today : null, lq = q ? q.last_query : null, qf = q ? q.last_failure : null;
  const hex = (c) => c < 0 ? "no final response" : "0x" + c.toString(16).toUpperCase().padStart(4, "0");
  const plural = (k, one, many) => k + " " + (k === 1 ? one : many);
  $("qr").textContent = !q ? "-" : plural(t.queries, "query", "queries")
    + (lq ? " (last " + clock(lq.at) + " from " + lq.calling_ae + ", " + (lq.level || "no level") + ", "
    + lq.matches + " matches)" : "") + "; " + plural(t.retrieves, "retrieve", "retrieves") + ": "
    + t.completed + " sent, " + t.failed + " failed, " + t.warning + " with warnings"
    + (q && q.since ? " (counted since " + clock(q.since) + ", when the service started)" : "");
  $("qr-failure").textContent = !qf ? "none" : clock(qf.at) + ": " + qf.operation + " from " + qf.calling_ae
    + (qf.operation === "C-MOVE" ? " to " + qf.destination : "") + ": " + hex(qf.status) + " (" + qf.outcome + ")"
    + (qf.operation === "C-FIND" ? "" : ", " + qf.completed + " sent, " + qf.failed + " failed, " + qf.remaining
    + " not attempted") + (q.failing ? "" : "; got through since");
  $("qr-failure").className = !qf ? "muted" : q.failing ? "bad" : "";
  const d = s.disk;
  $("disk").textContent = "free " + size(d.free_bytes) + " of " + size(d.total_bytes) + ", reserve " + size(d.reserve_bytes)
    + (d.below_reserve ? " (BELOW THE RESERVE: new images are refused)" : "");
  $("disk").className = d.below_reserve ? "bad" : "";
  table($("errors"), ["when", "what"], s.errors.map((e) => [clock(e.at), e.what]));
  $("updated").textContent = clock(s.at);
}
const stream = new EventSource("events");
stream.addEventListener("status", (e) => { $("stream").textContent = "live"; draw(JSON.parse(e.data)); });
stream.onerror = () => { $("stream").textContent = stream.readyState === EventSource.CLOSED
  ? "closed (too many pages open, or the service stopped): reload the page" : "reconnecting"; };
</script>
</body>
</html>
"""
