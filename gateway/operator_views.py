"""What the operator reads on the box: `status`, `studies` and `queue list`, as text.

Read-only views over the buffer's index, the buffer lock's holder and the running service's
snapshot (gateway/state.py); the command line (cli.py) resolves the config and the queue and calls
these. Nothing here changes the buffer. Patient IDs are shown (the operator's own terminal); no
name ever is.
"""

from __future__ import annotations

import json
import shutil
import time
from types import SimpleNamespace

from gateway.buffer.files import FileStore
from gateway.buffer.retention import retention_summary
from gateway.config import LoadedConfig
from gateway.state import read_snapshot


def clock(t: float | None) -> str:
    """A wall-clock time (seconds since the epoch) as the operator reads it: HH:MM:SS today, else the date."""
    if not t:
        return "-"
    fmt = "%H:%M:%S" if abs(time.time() - t) < 20 * 3600 else "%Y-%m-%d %H:%M"
    return time.strftime(fmt, time.localtime(t))


def span(seconds: float) -> str:
    """A duration in seconds, in the largest unit that keeps it readable."""
    s = int(max(0, seconds))
    if s < 90:
        return f"{s} s"
    if s < 90 * 60:
        return f"{s // 60} min"
    if s < 48 * 3600:
        return f"{s // 3600} h {s % 3600 // 60} min"
    return f"{s // 86400} days"


def size(n: float) -> str:
    """A size in bytes, in B/KB/MB/GB/TB (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def show_queue(q, states: list[str]) -> None:
    """`queue list`: per destination (or printer), each job once with tries and next try, each
    distinct error once (jobs point at it by number)."""
    jobs = q.list(states)
    groups: dict[str, list] = {}
    for j in jobs:
        groups.setdefault(j.target, []).append(j)
    now = time.time()
    if not jobs:
        print("no jobs in state " + ", ".join(states))
    for target, group in groups.items():
        per_state: dict[str, int] = {}
        for j in group:
            per_state[j.state] = per_state.get(j.state, 0) + 1
        print(f"{target}: " + ", ".join(f"{n} {s}" for s, n in per_state.items()))
        errors: dict[str, int] = {}
        print(f"{'ID':>7} {'KIND':8} {'STATE':10} {'TRIES':>5}  {'NEXT TRY':18} {'OBJECT':44} ERROR")
        for j in group:
            if j.state == "queued":
                nxt = "now" if j.next_attempt <= now else f"{clock(j.next_attempt)} (in {span(j.next_attempt - now)})"
            else:
                nxt = "-"
            # A payload job other than a film (an export's study list, an MPPS step) is named by its
            # kind ("export of 2 studies to cd", "MPPS N-SET of 1.2.3").
            what = j.sop_uid or (_film_name(j.payload) if j.kind == "print" else q.describe(j))
            err = ""
            if j.last_error:
                err = f"[{errors.setdefault(j.last_error, len(errors) + 1)}]"
            print(f"{j.id:>7} {j.kind:8} {j.state:10} {j.attempts:>5}  {nxt:18} {what:44} {err}")
        for text, n in errors.items():
            print(f"    [{n}] {text}")
        print()
    totals: dict[str, int] = {}
    for (_kind, _target, state), n in q.counts().items():
        totals[state] = totals.get(state, 0) + n
    print("totals: " + (", ".join(f"{s} {n}" for s, n in sorted(totals.items())) or "empty"))


def _film_name(payload: str | None) -> str:
    try:
        p = json.loads(payload or "{}")
        return f"film {p['film']} of print job {p['print_job']}"
    except (ValueError, KeyError, TypeError):
        return (payload or "")[:44]


def show_status(loaded: LoadedConfig, q, pid: int | None) -> int:
    """`status`: service, buffer and retention, each destination, the printer."""
    cfg = loaded.config
    buf = loaded.buffer_dir
    now = time.time()
    snap = read_snapshot(buf)
    live = snap if (snap and pid and snap.get("pid") == pid) else None
    if pid:
        since = f" since {clock(live['started'])}" if live else ""
        print(f"service: running, PID {pid if pid > 0 else 'unknown'}{since}")
    else:
        print(f"service: not running (nothing holds {buf / 'gateway.lock'}); figures are from the buffer")
    counts = (live or {}).get("counts")
    if counts:  # a snapshot from before the counts were kept has none
        last = live.get("last_received") or {}
        print(f"    since start: {counts.get('received', 0)} received"
              + (f" (last {clock(last['at'])} from {last.get('source', '')})" if last.get("at") else "")
              + f", {counts.get('refused', 0)} refused, {counts.get('forwarded', 0)} forwarded"
              + f", {counts.get('dead_lettered', 0)} dead-lettered")
    # What the config asks for and the running service could not have (they hold until a restart).
    for p in (live or {}).get("config_problems") or ():
        print(f"    CONFIG PROBLEM since {clock(p.get('at'))}: {p.get('key', '')}: {p.get('detail', '')}")
    row = q.index.query("SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS b FROM instances")[0]
    usage = shutil.disk_usage(buf)
    print(f"buffer: {buf}: {row['n']} instances, {size(row['b'])}; free {size(usage.free)} of "
          f"{size(usage.total)}; reserve {cfg.buffer.reserve_mb} MB"
          + ("  ** below the reserve: new images are refused **" if usage.free < cfg.buffer.reserve_mb * 2**20 else ""))
    for line in _retention_lines(loaded, q.index):
        print(line)
    per = _per_target(q.index, "forward")
    names = list(cfg.destinations) + [t for t in per if t not in cfg.destinations]
    if not names:
        print("destinations: none configured")
    for name in names:
        d = cfg.destinations.get(name)
        where = f"{d.ae_title}@{d.host}:{d.port}" if d else "no longer in the config"
        if d is not None and not d.enabled:
            reach = "disabled"
        elif not pid:
            reach = "unknown (service not running)"
        else:
            e = (live or {}).get("destinations", {}).get(name)
            if not e or e.get("reachable") is None:
                reach = "not tried yet"
            elif e["reachable"]:
                reach = "reachable" + (f", last forward {clock(e['last_forwarded'])}" if e.get("last_forwarded") else "")
            else:
                reach = f"UNREACHABLE since {clock(e['since'])} ({e.get('reason', '')})"
        print(f"destination {name} ({where}): {reach}")
        print("    " + _backlog_line(per.get(name, {}), now))
    if cfg.print.enabled:
        pr = (live or {}).get("printer") or {}
        state = (f"{pr['status']} ({pr.get('info', '')}) since {clock(pr.get('since'))}"
                 if pr.get("status") else "unknown (service not running)" if not pid else "not known yet")
        print(f"printer {cfg.print.name}: {state}")
        print("    " + _backlog_line(_per_target(q.index, "print").get(cfg.print.name, {}), now, "films"))
    exports = _per_target(q.index, "export")
    for name, drive in cfg.media.drives.items():
        m = ((live or {}).get("media") or {}).get(name) or {}
        if not pid:
            held = "unknown (service not running)"
        elif m.get("present") is None:
            held = "no medium seen since start"
        elif m["present"]:
            held = (f"{m.get('medium') or 'medium'}" + (" (blank)" if m.get("blank") else "")
                    + (" (read-only)" if m.get("read_only") else ""))
        else:
            held = "empty"
        print(f"drive {name} ({drive.kind}): {held}" + (f"; {m['busy']}" if m.get("busy") else "")
              + (f"; last: {m['last']}" if m.get("last") else ""))
        print("    " + _backlog_line(exports.get(name, {}), now, "exports"))
    for line in capture_lines(cfg, live if pid else None, clock):
        print(line)
    return 0


def capture_lines(cfg, live: dict | None, clock) -> list[str]:
    """`status`'s capture and worklist lines from the snapshot's `capture` and `worklist` (state.py):
    the grabber's signal, what is recording, the last object or failure, the procedure chosen
    (its Patient ID: the operator checks it before capturing; never the name), the worklist's
    source. [] when the box does not capture."""
    if not cfg.capture.enabled:
        return []
    g = cfg.capture.grabber
    if live is None:
        return [f"capture ({g.kind}): unknown (service not running)"]
    cap, wl = live.get("capture") or {}, live.get("worklist") or {}
    signal = cap.get("signal")
    if signal == "up":
        now = f"signal {cap['width']}x{cap['height']} at {cap['fps']:g} fps since {clock(cap['since'])}"
    elif signal == "lost":
        now = f"NO SIGNAL since {clock(cap['since'])}"
    else:
        now = "no frame yet"
    out = [f"capture ({g.kind}): {now}; {cap.get('stored', 0)} objects captured since start"]
    rec = cap.get("recording")
    if rec:
        out.append(f"    recording a {rec['seconds']:g} s clip since {clock(rec['since'])}")
    last, failed = cap.get("last"), cap.get("last_failed")
    if last:
        what = last["what"] + (f" of {last['frames']} frames" if last["what"] == "clip" else "")
        out.append(f"    last: {what} at {clock(last['at'])}" + (f" ({last['dropped']} frames dropped)"
                                                                 if last.get("dropped") else "")
                   + (f"; {last['note']}" if last.get("note") else ""))
    if failed and (not last or failed["at"] > last["at"]):
        out.append(f"    last failed: {failed['what']} at {clock(failed['at'])}: {failed['reason']}")
    cur = wl.get("current")
    who = ("none chosen" if not cur else f"Patient ID {cur['patient_id']}"
           + ("" if cur["scheduled"] else " (UNSCHEDULED)"))
    if not cfg.worklist.enabled:
        source = "worklist off"
    elif wl.get("failed"):
        f = wl["failed"]
        source = (f"worklist SCP failing since {clock(f['at'])} ({f['reason']}); "
                  + (f"using the worklist of {clock(f['using_cache_from'])}" if f.get("using_cache_from")
                     else "no worklist: unscheduled captures only"))
    elif wl.get("items") is not None:
        source = f"worklist of {wl['items']} items ({'from the cache' if wl['source'] == 'cache' else 'fetched'} " \
                 f"{clock(wl['refreshed'])})"
    else:
        source = "worklist not fetched yet"
    out.append(f"    procedure: {who}; {source}")
    if cfg.mpps.enabled:
        m = live.get("mpps") or {}
        failing, sent = m.get("failing"), m.get("last_sent")
        waiting = sum(sum(v for k, v in states.items() if k != "dead")
                      for states in ((live.get("queues") or {}).get("mpps") or {}).values())
        if failing:
            state = (f"FAILING since {clock(failing['since'])}: {failing['reason']}"
                     + (" (dead-lettered: dicom-gateway queue list / retry)" if failing["dead"] else ""))
        elif sent:
            state = f"last step {sent['status']} accepted {clock(sent['at'])}"
        else:
            state = "nothing sent yet"
        out.append(f"    MPPS to {cfg.mpps.ae_title}: {state}; {waiting} steps waiting")
    return out


def _retention_lines(loaded: LoadedConfig, index) -> list[str]:
    """Retention figures for `status`: what may be evicted, what may not, and the policy."""
    cfg = loaded.config.buffer
    files = FileStore(loaded.buffer_dir, cfg.reserve_mb * 1024 * 1024)
    s = retention_summary(SimpleNamespace(index=index, files=files), cfg)
    pol = s["policy"]
    if pol["delete_when_done"]:
        rule = "delete each instance once delivered"
    elif pol["enabled"]:
        rule = f"evict delivered instances, oldest first, below {size(pol['high_water_bytes'])} free"
        if pol["max_age_days"]:
            rule += f" or after {pol['max_age_days']} days"
    else:
        rule = "off (nothing is evicted; a full disk refuses new images)"
    lines = [f"retention: {rule}"]
    for key, label in (("evictable", "evictable"), ("undelivered", "undelivered (never evicted)"),
                       ("unrouted", "unrouted (no route matched)")):
        c = s.get(key)
        if c is not None:
            lines.append(f"  {label}: {c['instances']} instances, {size(c['bytes'])}")
    return lines


def _per_target(index, kind: str) -> dict[str, dict]:
    """Per target: job counts per state, oldest waiting job's creation, earliest next try."""
    out: dict[str, dict] = {}
    for r in index.query("SELECT target, state, COUNT(*) AS n, MIN(created) AS oldest,"
                         " MIN(next_attempt) AS nxt FROM jobs WHERE kind = ? GROUP BY target, state", (kind,)):
        out.setdefault(r["target"], {})[r["state"]] = (r["n"], r["oldest"], r["nxt"])
    return out


def _backlog_line(states: dict, now: float, noun: str = "jobs") -> str:
    def n(s):
        return states.get(s, (0, None, None))[0]

    waiting = [states[s] for s in ("queued", "in_flight", "committing") if s in states]
    parts = [f"backlog {sum(w[0] for w in waiting)} {noun}"]
    if waiting:
        oldest = min(w[1] for w in waiting)
        parts[0] += f" (oldest waiting since {clock(oldest)}, {span(now - oldest)})"
    parts.append(f"in flight {n('in_flight')}")
    if n("committing"):
        parts.append(f"awaiting commitment {n('committing')}")
    if "queued" in states:
        nxt = states["queued"][2]
        parts.append("next retry now" if nxt <= now else f"next retry {clock(nxt)} (in {span(nxt - now)})")
    parts.append(f"dead letters {n('dead')}")
    return ", ".join(parts)


def show_studies(q, archives: frozenset[str] = frozenset()) -> int:
    """`studies`: each study held, with its delivery state per destination (latest job).
    archives: the destinations' AE titles (Config.archive_titles): a study that came only from
    them (retrieved from the PACS) is said to be a copy, not "no route matched"."""
    studies = q.index.query(
        "SELECT st.id, st.study_uid, st.study_date, p.patient_id,"
        " (SELECT GROUP_CONCAT(DISTINCT se.modality) FROM series se WHERE se.study_fk = st.id) AS modalities,"
        " (SELECT COUNT(*) FROM instances i JOIN series se ON se.id = i.series_fk WHERE se.study_fk = st.id) AS n,"
        " (SELECT GROUP_CONCAT(DISTINCT i.calling_ae) FROM instances i JOIN series se ON se.id = i.series_fk"
        "  WHERE se.study_fk = st.id) AS sources"
        " FROM studies st JOIN patients p ON p.id = st.patient_fk ORDER BY st.first_received")
    held = [s for s in studies if s["n"]]
    if not held:
        print("the buffer holds no studies")
        return 0
    # Delivery state per instance and destination is that of its latest forward job.
    rows = q.index.query(
        "SELECT se.study_fk AS study, j.target, j.state, COUNT(*) AS n FROM jobs j"
        " JOIN (SELECT MAX(id) AS id FROM jobs WHERE kind = 'forward' GROUP BY instance_fk, target) last"
        " ON last.id = j.id JOIN instances i ON i.id = j.instance_fk JOIN series se ON se.id = i.series_fk"
        " GROUP BY se.study_fk, j.target, j.state")
    delivery: dict[int, dict[str, dict[str, int]]] = {}
    for r in rows:
        delivery.setdefault(r["study"], {}).setdefault(r["target"], {})[r["state"]] = r["n"]
    print(f"{'DATE':10} {'PATIENT ID':16} {'MOD':8} {'IMAGES':>6}  STUDY UID / DELIVERY")
    for s in held:
        print(f"{s['study_date'] or '-':10} {s['patient_id'] or '-':16} {s['modalities'] or '-':8} "
              f"{s['n']:>6}  {s['study_uid']}")
        per = delivery.get(s["id"], {})
        sources = set((s["sources"] or "").split(","))
        if not per and sources and sources <= archives:
            # routing.py never sends a copy back where it came from (retrieved from the PACS)
            print(f"{'':45}a copy from {', '.join(sorted(sources))}: not forwarded")
        elif not per:
            print(f"{'':45}no destination (no route matched)")
        for target, counts in sorted(per.items()):
            label = {"done": "delivered", "queued": "waiting", "in_flight": "sending",
                     "committing": "awaiting commitment", "dead": "DEAD"}
            text = ", ".join(f"{counts[k]} {label[k]}" for k in label if k in counts)
            print(f"{'':45}{target}: {text}")
    return 0


def show_imports(store, import_id: int | None = None) -> int:
    """`imports`: the latest media imports with their totals; `imports ID`: that import's files,
    each with what became of it. Shows UIDs, File IDs and reasons (the report holds nothing else).
    Returns the exit code: 1 for an unknown ID."""
    if import_id is None:
        rows = store.recent()
        if not rows:
            print("no media imports yet")
            return 0
        print(f"{'ID':>5} {'STARTED':16} {'LABEL':12} {'READ BY':9} {'STATE':9} {'FILES':>5} {'NEW':>5} "
              f"{'DUP':>5} {'SKIP':>5} {'FAIL':>5} {'FLAG':>5}")
        for r in rows:
            state = r.state if r.state != "running" else "running or interrupted"
            print(f"{r.id:>5} {clock(r.started):16} {r.label:12} {r.method:9} {state:9} {r.files:>5} "
                  f"{r.imported:>5} {r.duplicates:>5} {r.skipped:>5} {r.failed:>5} {r.flagged:>5}")
        return 0
    row = store.get(import_id)
    if row is None:
        print(f"no import {import_id} (`dicom-gateway imports` lists them)")
        return 1
    print(f"import {row.id} from MEDIA:{row.label}, {clock(row.started)}, read by {row.method}"
          + (f" ({row.note})" if row.note else "") + f": {row.state}")
    for it in store.items(import_id):
        what = it.status if it.status != "duplicate" else f"duplicate ({it.outcome})"
        where = it.file_id or "-"
        extra = f" [{it.reason}]" if it.reason else ""
        extra += f" [{it.flag}]" if it.flag else ""
        print(f"{it.seq:>5} {what:22} {where:24} {it.sop_uid or '-'}{extra}" + (f": {it.detail}" if it.detail else ""))
    print(f"{row.files} files: {row.imported} imported, {row.duplicates} duplicate, {row.skipped} skipped, "
          f"{row.failed} failed; {row.flagged} flagged")
    return 0


def export_progress(snapshot: dict | None, job_id: int) -> tuple[int, int] | None:
    """(done_bytes, total_bytes) of the medium job `job_id` is writing, from the running service's
    snapshot (gateway/state.py media.<drive>.progress); None when the snapshot has none for it."""
    for drive in ((snapshot or {}).get("media") or {}).values():
        p = (drive or {}).get("progress")
        if p and p.get("job_id") == job_id:
            return int(p.get("done_bytes") or 0), int(p.get("total_bytes") or 0)
    return None


def export_state(job, progress: tuple[int, int] | None = None, width: int = 24) -> tuple[str, str]:
    """(outcome, words): outcome "verified", "failed" or "" while it is not settled. `progress`:
    (done_bytes, total_bytes) of an in-flight job's write, shown as a bar of `width` characters
    (0: a percentage in steps of 10 %, for a log that must not get a line per second)."""
    if job is None:
        return "failed", "no longer in the queue"
    if job.state == "done":
        return "verified", "written and verified"
    if job.state == "dead":
        return "failed", f"failed: {job.last_error}"
    if job.state == "in_flight":
        words = f"writing and verifying (attempt {job.attempts})"
        if progress is not None and progress[1] > 0:
            done, total = min(progress[0], progress[1]), progress[1]
            if done >= total:
                return "", f"verifying (attempt {job.attempts}): {total / 1e6:.1f} MB written"
            if width:
                filled = width * done // total
                bar = "[" + "#" * filled + "." * (width - filled) + "]"
                return "", f"writing {bar} {100 * done // total:3d} % {done / 1e6:.1f} of {total / 1e6:.1f} MB"
            return "", f"writing: {10 * (10 * done // total)} % of {total / 1e6:.1f} MB"
        return "", words
    if job.attempts > 0:
        # An attempt was used and the job is queued again: that medium is not good.
        from gateway.media.export import last_failure  # here: the other views need no pydicom

        why = last_failure(job) or job.last_error
        return "failed", f"attempt {job.attempts} failed: {why}; the job waits for the next medium"
    return "", job.last_error or "queued"


def follow_exports(q, ids: list[int], tty: bool, poll_s: float = 0.5) -> bool:
    """`export --wait`: the jobs' states until each is verified or one failed (True: all verified);
    on a terminal one line rewritten in place, with a progress bar of the bytes written (from the
    running service's snapshot, which it updates about once a second); else a line per change
    (progress in steps of 10 %)."""
    buffer_dir = q.index.path.parent
    shown: dict[int, str] = {}
    while True:
        snapshot = read_snapshot(buffer_dir)
        states = {i: export_state(q.get(i), export_progress(snapshot, i), 24 if tty else 0) for i in ids}
        if tty:
            line = "; ".join(f"job {i}: {words}" for i, (_, words) in states.items())
            print("\r\033[K" + line[:200], end="", flush=True)
        else:
            for i, (_, words) in states.items():
                if shown.get(i) != words:
                    print(f"job {i}: {words}", flush=True)
        shown = {i: words for i, (_, words) in states.items()}
        failed = [i for i, (outcome, _) in states.items() if outcome == "failed"]
        if failed or all(outcome == "verified" for outcome, _ in states.values()):
            if tty:
                print()
                for i, (_, words) in states.items():
                    print(f"job {i}: {words}")
            return not failed
        time.sleep(poll_s)


# -- `dicom-gateway worklist` -------------------------------------------------------------------------
def _cell_width(text: str) -> int:
    import unicodedata

    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _fit(text: str, width: int) -> str:
    """``text`` in ``width`` terminal columns (wide CJK characters count two): padded, or cut with
    an ellipsis."""
    full = _cell_width(text)
    if full <= width:
        return text + " " * (width - full)
    out, used = [], 0
    for ch in text:
        w = _cell_width(ch)
        if used + w > width - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…" + " " * (width - 1 - used)


def displayable_name(name: str, encoding: str) -> str:
    """A patient's name as this terminal can show it: whole when its encoding takes it, else the
    first component group that it takes (PS3.5 6.2.1.2: alphabetic, then ideographic, then
    phonetic; a Japanese name's romaji), else with '?' for what it cannot show."""
    for candidate in [name, *name.split("=")]:
        if not candidate:
            continue
        try:
            candidate.encode(encoding)
            return candidate
        except (UnicodeEncodeError, LookupError):
            continue
    return name.encode(encoding or "ascii", "replace").decode(encoding or "ascii", "replace")


def _start(start: str) -> str:
    if len(start) >= 12:
        return f"{start[:4]}-{start[4:6]}-{start[6:8]} {start[8:10]}:{start[10:12]}"
    if len(start) >= 8:
        return f"{start[:4]}-{start[4:6]}-{start[6:8]}"
    return start or "-"


def worklist_lines(cached, status: dict | None, width: int = 100, encoding: str = "utf-8") -> list[str]:
    """`worklist`'s listing: a head line (from whom, when, whether from the cache and why), one line
    per item (position, current mark, Patient ID, name as the terminal allows, accession, start,
    modality, description), and the current procedure. ``cached``: the buffer's CachedWorklist or
    None; ``status``: the running service's worklist-status document (gateway/commands.py), None
    when no service answers. Patient names are shown: the operator chooses the patient by them at
    the box's own terminal (the other views show IDs only)."""
    lines = []
    current = (status or {}).get("current", "")
    if status is not None and not status.get("enabled", True):
        lines.append("worklist disabled ([worklist] enabled = false): unscheduled captures only")
        cached = None  # a copy from when it was enabled is not used: not shown as if it were
    if cached is None:
        lines.append("no worklist fetched yet" + (f" (the last try: {status['last_error']})"
                                                  if status and status.get("last_error") else ""))
    else:
        head = f"worklist from {cached.source}, fetched {time.strftime('%Y-%m-%d %H:%M', time.localtime(cached.fetched_at))}"
        if status and status.get("last_error"):
            head += (f"; FROM THE CACHE: the SCP has failed since "
                     f"{clock(status.get('failing_since'))}: {status['last_error']}")
        elif status is None:
            head += " (the buffer's copy; no service answers)"
        lines.append(head + f": {len(cached.items)} items")
        fixed = 3 + 2 + 17 + 17 + 17 + 5 + 6  # position, mark, ID, accession, start, modality, gaps
        name_w = max(10, min(40, (width - fixed) // 2))
        desc_w = max(10, width - fixed - name_w)
        if cached.items:
            lines.append(f"{'#':>3} {' '} {'PATIENT ID':16} {_fit('NAME', name_w)} {'ACCESSION':16} "
                         f"{'START':16} {'MOD':4} DESCRIPTION")
        for i, p in enumerate(cached.items, 1):
            mark = "*" if current and p.key == current else " "
            lines.append(f"{i:>3} {mark} {p.patient_id[:16]:16} {_fit(displayable_name(p.patient_name, encoding), name_w)}"
                         f" {p.accession_number[:16]:16} {_start(p.start):16} {p.modality[:4]:4} "
                         f"{_fit(p.description, desc_w).rstrip()}")
    if status is None:
        lines.append("current procedure: - (no service running)")
    elif not current:
        lines.append("current procedure: none chosen")
    elif not status.get("current_scheduled", True):
        lines.append(f"current procedure: unscheduled, generated Patient ID {status.get('current_patient_id', '')}")
    elif status.get("position"):
        lines.append(f"current procedure: item {status['position']} (*)")
    else:
        lines.append(f"current procedure: Patient ID {status.get('current_patient_id', '')}, no longer in the worklist")
    return lines
