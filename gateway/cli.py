"""`dicom-gateway`: the service and the tools an engineer uses on the box.

Which config: `--config FILE`; else $DICOM_GATEWAY_CONFIG; else ./config/gateway.toml in the current
folder (a checkout, where `make run` runs); else /etc/dicom-gateway/gateway.toml (installed). A
command that found its config by this search says which file it used (on stderr).

Errors are one line on stderr, never a traceback; exit codes are in gateway/exit_codes.py (and the
README): 0 ok, 1 the operation failed, 2 bad command line or config, 3 buffer in use by another
instance, 4 port in use, 70 internal error (the traceback with DICOM_GATEWAY_DEBUG=1).
"""

from __future__ import annotations

import argparse
import os
import re
import sqlite3
import sys
import tempfile
import traceback
from contextlib import contextmanager
from pathlib import Path

from gateway import config as config_mod
from gateway import exit_codes
from gateway.config import ConfigError, DestinationSection, LoadedConfig

DEFAULT_CONFIG = "/etc/dicom-gateway/gateway.toml"
CONFIG_ENV = "DICOM_GATEWAY_CONFIG"
# Searched in this order when neither --config nor $DICOM_GATEWAY_CONFIG is given.
SEARCH_PATH = ("config/gateway.toml", DEFAULT_CONFIG)


def find_config(given: str | None) -> tuple[Path, str]:
    """The config file to use and how it was chosen ("--config", the variable, or "found")."""
    if given:
        return Path(given), "--config"
    env = os.environ.get(CONFIG_ENV)
    if env:
        return Path(env), f"${CONFIG_ENV}"
    for candidate in SEARCH_PATH:
        if Path(candidate).is_file():
            return Path(candidate), "found"
    raise ConfigError([f"no config file: none of {', '.join(SEARCH_PATH)} exists (give --config FILE "
                       f"or set {CONFIG_ENV})"])

QUEUE_VERBS_HELP = """\
what each verb does to a job, by its state (anything else is refused with the reason; exit 1):
  retry        queued: due now, tries reset   dead: queued again, tries reset
               done forward job: use re-forward; in flight / awaiting commitment: wait
  dead-letter  queued: given up (dead)        dead: unchanged
  re-forward   forward jobs and stored studies/series/instances, whatever their earlier jobs
               (a dead job for DEST is revived; one waiting for DEST is made due now)
A verb wakes the running service (SIGUSR1) so it acts at once; with no service running the
change takes effect at its next start.
"""


class UsageError(Exception):
    """The command line asks for something that cannot be (an unknown name, a bad ID, a missing
    argument): one line, exit 2 like argparse's own usage errors."""


def _load(args) -> LoadedConfig:
    path, how = find_config(args.config)
    loaded = config_mod.load(path, args.set)
    if how != "--config" and not getattr(args, "quiet_config", False):
        print(f"(config {loaded.source}, from {how if how != 'found' else 'the search path'})", file=sys.stderr)
    return loaded


def _resolve_dest(loaded: LoadedConfig, name: str) -> DestinationSection:
    cfg = loaded.config
    if name in cfg.destinations:
        return cfg.destinations[name]
    if name in cfg.peers:
        p = cfg.peers[name]
        return DestinationSection(ae_title=p.ae_title, host=p.host, port=p.port)
    m = re.fullmatch(r"([^@]{1,16})@([^:]+):(\d{1,5})", name)
    if m:
        return DestinationSection(ae_title=m.group(1), host=m.group(2), port=int(m.group(3)))
    known = ", ".join(list(cfg.destinations) + list(cfg.peers)) or "none configured"
    raise UsageError(f"unknown destination {name!r} (known: {known}; or give AET@host:port)")


def cmd_run(args) -> int:
    from gateway import app, logs

    args.quiet_config = True  # the service logs which config it runs with (Gateway.start)
    loaded = _load(args)
    logs.setup(loaded.config.logging.level, loaded.config.logging.journald)
    return app.run(loaded)


def cmd_check_config(args) -> int:
    """What the README says: `ok: FILE` and what the service would use, or every problem."""
    from gateway import preflight

    args.quiet_config = True  # the first line names the file
    loaded = _load(args)
    problems, notes = preflight.check(loaded)
    if problems:
        raise ConfigError(problems)
    c = loaded.config
    print(f"ok: {loaded.source}")
    print(f"  listens as {c.ae.title} on {c.ae.bind}:{c.ae.port}")
    print(f"  buffer {loaded.buffer_dir} (relative paths against {loaded.state_dir})")
    for name, d in c.destinations.items():
        print(f"  forwards to {name}: {d.ae_title}@{d.host}:{d.port}{'' if d.enabled else ' (disabled)'}")
    if c.capture.enabled:
        g = c.capture.grabber
        where = f"{g.device} " if g.kind == "v4l2" else ""
        print(f"  captures from grabber {g.kind} {where}{g.width}x{g.height} at {g.fps:g} fps {g.pixel_format}, "
              f"encoded {c.capture.encoding}" + (f"; foot pedal {c.capture.pedal.kind}" if c.capture.pedal.enabled else ""))
    if c.worklist.enabled:
        w = c.worklist
        print(f"  worklist from {w.ae_title}@{w.host}:{w.port} every {w.refresh_s:g} s")
    if c.mpps.enabled:
        print(f"  MPPS to {c.mpps.ae_title}@{c.mpps.host}:{c.mpps.port}")
    # attribute coercion rules and routes on indexed attributes
    from gateway.config.coercion import check_config_lines
    for line in check_config_lines(c):
        print(f"  {line}")
    for note in notes:
        print(f"  note: {note}")
    return exit_codes.OK


def cmd_echo(args) -> int:
    from gateway.dicom.echo import echo

    loaded = _load(args)
    d = _resolve_dest(loaded, args.dest)
    ok, msg = echo(args.aet or loaded.config.ae.title, d.ae_title, d.host, d.port,
                   loaded.config.timers.association_s)
    print(msg)
    return exit_codes.OK if ok else exit_codes.FAILED


def _files(paths: list[str]) -> list[Path]:
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(f for f in p.rglob("*") if f.is_file()))
        elif p.is_file():
            out.append(p)
        else:
            raise UsageError(f"{p}: no such file or directory")
    return out


def cmd_send(args) -> int:
    import pydicom

    from gateway.dicom.net.listener import configure_pynetdicom
    from gateway.dicom.store_scu import AssociationFailed, SendItem, StoreSCU, fit_batch

    loaded = _load(args)
    d = _resolve_dest(loaded, args.to)
    items, failures = [], 0
    for f in _files(args.paths):
        try:
            meta = pydicom.dcmread(f, stop_before_pixels=True).file_meta
            items.append(SendItem(f, str(meta.MediaStorageSOPClassUID), str(meta.MediaStorageSOPInstanceUID),
                                  str(meta.TransferSyntaxUID)))
        except Exception as exc:
            print(f"{f}: skipped, not a DICOM Part-10 file ({exc})")
            failures += 1
    configure_pynetdicom(Path(tempfile.gettempdir()))
    scu = StoreSCU(args.aet or loaded.config.ae.title, d, loaded.config.timers, loaded.config.ae.tcp_nodelay)
    while items:
        n = fit_batch(items)
        batch, items = items[:n], items[n:]
        try:
            assoc = scu.open(batch)
        except AssociationFailed as exc:
            print(f"error: {exc}")
            return 1
        try:
            for it in batch:
                r = scu.send(assoc, it)
                state = "ok" if r.ok else "FAILED"
                code = f"0x{r.status:04X}" if r.status is not None else "no response"
                print(f"{it.path}: {state} ({code}){' ' + r.error if r.error else ''}")
                failures += 0 if r.ok else 1
        finally:
            if assoc.is_established:
                assoc.release()
    return 1 if failures else 0


def _queue(loaded: LoadedConfig):
    from gateway.buffer.index import Index
    from gateway.buffer.mpps import MPPS_JOB_KIND
    from gateway.buffer.queue import JobQueue
    from gateway.media.export import EXPORT_JOB_KIND
    from gateway.print.store import PRINT_JOB_KIND

    path = loaded.buffer_dir / "index.sqlite"
    if not path.exists():
        raise SystemExit(f"no buffer at {loaded.buffer_dir} (has the service run with this config?)")
    q = JobQueue(Index(path))
    # Every kind the service may have queued, so that the verbs name its jobs as the service would.
    q.register_kind(PRINT_JOB_KIND)
    q.register_kind(EXPORT_JOB_KIND)
    q.register_kind(MPPS_JOB_KIND)
    return q


def _job_ids(verb: str, raw: list[str | int]) -> list[int]:
    from gateway import commands

    # `queue` IDs arrive as ints (argparse checked them), re-forward's as text.
    return commands.job_ids(verb, raw)


def _service_pid(buffer_dir: Path) -> int | None:
    from gateway.buffer.lock import holder

    try:
        return holder(buffer_dir)
    except OSError:
        return None


def _catches_sigusr1(pid: int) -> bool:
    """Whether the process has a SIGUSR1 handler: its default action would end the service (a
    service still starting has not installed it yet)."""
    import signal

    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signal.SIGUSR1 - 1) & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def _wake_service(buffer_dir: Path) -> None:
    """Tell the running service that the queue changed, so its workers act now rather than at the
    end of a backoff (up to `retry_max_s`)."""
    import os
    import signal

    pid = _service_pid(buffer_dir)
    if pid is None:
        print("no service is running on this buffer: the change takes effect at its next start")
        return
    if pid > 0 and _catches_sigusr1(pid):
        try:
            os.kill(pid, signal.SIGUSR1)
            print(f"the running service (PID {pid}) was told to act on it now")
            return
        except OSError:
            pass
    # Not signalled (still starting, another user's process): its workers see the change the next
    # time they look at the queue, at the latest when their current retry wait ends.
    print(f"the running service (PID {pid if pid > 0 else 'unknown'}) could not be told; it acts on the"
          " change when its workers next look at the queue")


def _report(result) -> int:
    """A verb's lines (gateway/commands.py words them for every face) and its exit code."""
    for line in result.lines():
        print(line)
    return 0 if result.ok else 1


def cmd_queue(args) -> int:
    from gateway import commands
    from gateway.buffer.queue import STATES
    from gateway.operator_views import show_queue

    loaded = _load(args)
    if args.action == "list":
        states = args.state or ["queued", "in_flight", "committing", "dead"]
        bad = [s for s in states if s not in STATES]
        if bad:
            raise UsageError(f"unknown state {bad[0]!r}; states: {', '.join(STATES)}")
        show_queue(_queue(loaded), states)
        return 0
    ids = _job_ids(f"queue {args.action}", args.ids)
    if args.action == "dead-letter":
        commands.need_ids("queue dead-letter", ids)  # before the buffer is opened
    q = _queue(loaded)
    if args.action == "retry":
        result = commands.retry(q, ids, loaded.config)
    else:
        result = commands.dead_letter(q, ids, args.reason)
    rc = _report(result)
    if result.changed:
        _wake_service(loaded.buffer_dir)
    elif not _service_pid(loaded.buffer_dir):
        # "being sent now" is stale when no service runs: recovery queues such jobs again.
        if any(j.state == "in_flight" for j in (q.get(r.job_id) for r in result.results if r.job_id) if j):
            print("(no service is running: jobs left in flight are queued again at its next start)")
    return rc


def cmd_reforward(args) -> int:
    from gateway import commands

    loaded = _load(args)
    selection = commands.Selection(tuple(args.jobs), args.study, args.series, args.instance)
    # The checks that need no buffer come first: a wrong command line is said so even without one.
    commands.forward_destination(loaded.config, args.to)
    selection.form()
    result = commands.re_forward(_queue(loaded), loaded.config, selection, args.to)
    rc = _report(result)
    if any(r.ok for r in result.results):
        _wake_service(loaded.buffer_dir)
    return rc


def cmd_status(args) -> int:
    from gateway.operator_views import show_status

    loaded = _load(args)
    return show_status(loaded, _queue(loaded), _service_pid(loaded.buffer_dir))


def cmd_studies(args) -> int:
    from gateway.operator_views import show_studies

    return show_studies(_queue(_load(args)))


# A medium's label becomes the source MEDIA:<label> that routes match and the index records; the
# default is not the folder's name, which may be a patient's on a stick written by hand.
_LABEL_RE = re.compile(r"[A-Za-z0-9._-]{1,32}")
DEFAULT_IMPORT_LABEL = "IMPORT"


def _ask_service(loaded: LoadedConfig, verb: str, timeout: float, no_service: str, **args) -> int:
    """Run `verb` in the running service over its control socket (gateway/control.py) and print
    its answer: exit 0 done, 1 failed or refused, 2 a usage refusal. `no_service`: the one line
    when no service runs on this buffer."""
    from gateway import control
    from gateway.commands import Refused

    try:
        answer = control.request(loaded.buffer_dir, verb, timeout, **args)
    except control.NoService:
        pid = _service_pid(loaded.buffer_dir)
        if pid is None:
            raise Refused(no_service) from None
        # The lock is held but nothing listens: the service is still starting (the socket comes
        # after the drives), or it could not create the socket (its log says why).
        raise Refused(f"{verb}: the service (PID {pid if pid > 0 else 'unknown'}) does not answer on"
                      f" {control.socket_path(loaded.buffer_dir)} yet; try again in a moment") from None
    except control.ControlError as exc:
        raise Refused(f"{verb}: {exc}") from None
    if answer.get("refused"):
        raise Refused(str(answer["refused"]), usage=bool(answer.get("usage")))
    for line in answer.get("lines", []):
        if line:
            print(line)
    return exit_codes.OK if answer.get("ok") else exit_codes.FAILED


def _import_drive(loaded: LoadedConfig, drive: str, label: str | None) -> int:
    """`import DRIVE`: the running service reads the medium in its drive (Commands.import_medium)."""
    from gateway.commands import IMPORT_WAIT_S

    if label:
        raise UsageError(f"import: --label is for a folder; an import from drive {drive} is labelled MEDIA:{drive}")
    return _ask_service(
        loaded, "import", IMPORT_WAIT_S + 30,
        f"import: drive {drive} is read by the running service, and no service runs on this buffer (start"
        " it: dicom-gateway run); to import a medium mounted or copied at a folder: dicom-gateway import PATH",
        drive=drive)


def cmd_worklist(args) -> int:
    """`worklist [--refresh] [--select N|KEY | --next | --previous | --unscheduled]`: the changes go
    to the running service (gateway/control.py worklist_verbs), then the listing: the buffer's
    cached worklist and, from the service, which procedure is current and whether the SCP answers."""
    import json
    import shutil

    from gateway import control
    from gateway.buffer.worklist import WorklistStore
    from gateway.operator_views import worklist_lines

    loaded = _load(args)
    no_service = ("worklist: choosing the procedure and refreshing are done by the running service, and no"
                  " service runs on this buffer (start it: dicom-gateway run)")
    rc = exit_codes.OK
    if args.refresh:
        rc = _ask_service(loaded, "worklist-refresh", loaded.config.worklist.timeout_s + 15, no_service)
    verb = ("procedure-select" if args.select is not None else "procedure-next" if args.next
            else "procedure-previous" if args.previous else "procedure-unscheduled" if args.unscheduled else None)
    if verb is not None:
        extra = {"which": args.select} if args.select is not None else {}
        rc = max(rc, _ask_service(loaded, verb, 30.0, no_service, **extra))
    status = None
    try:
        answer = control.request(loaded.buffer_dir, "worklist-status", 10.0)
        if not answer.get("refused"):
            status = json.loads(answer.get("summary") or "{}")
    except (control.ControlError, ValueError):
        status = None  # no service (or an older one): the buffer's copy alone
    encoding = sys.stdout.encoding or "utf-8"
    for line in worklist_lines(WorklistStore(loaded.buffer_dir).load(), status,
                               shutil.get_terminal_size((100, 24)).columns, encoding):
        print(line.encode(encoding, "replace").decode(encoding, "replace"))
    return rc


def cmd_capture(args) -> int:
    """`capture [--clip [SECONDS]] [--no-wait] | --end | --discontinue`: the running service's
    grabber takes a still (or records a clip) for the current procedure (Commands.capture), or ends
    the procedure (its MPPS). Exit 0 stored, 1 refused or failed, 2 a usage mistake."""
    loaded = _load(args)
    cfg = loaded.config.capture
    no_service = ("capture: the grabber is driven by the running service, and no service runs on this buffer "
                  "(start it: dicom-gateway run)")
    if args.end or args.discontinue:
        return _ask_service(loaded, "capture-end", 30.0, no_service, discontinued=bool(args.discontinue))
    clip = 0.0 if args.clip is None else (args.clip or cfg.clip_s)
    if clip and not clip <= cfg.clip_max_s:
        raise UsageError(f"capture: --clip {clip:g}: a clip lasts at most {cfg.clip_max_s:g} s (capture.clip_max_s)")
    # A clip is waited for (its length and the encoder's tail) unless --no-wait: the answer is then
    # what reached the buffer, not that recording began.
    wait = 0.0 if not clip or args.no_wait else clip + 30.0
    return _ask_service(loaded, "capture", wait + 30.0, no_service, clip_s=float(clip), wait_s=wait)


def _clip_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0.5:
        raise argparse.ArgumentTypeError(f"{text!r}: a clip lasts at least 0.5 s")
    return value


def cmd_eject(args) -> int:
    """`eject DRIVE`: the running service gives the medium in DRIVE back (Commands.eject); refused
    while it writes, verifies or reads it. Exit 0 ejected, 1 refused, 2 an unknown drive."""
    loaded = _load(args)
    drives = loaded.config.media.drives
    if args.drive not in drives:
        raise UsageError(f"eject: unknown drive {args.drive!r} (configured: {', '.join(sorted(drives)) or 'none'})")
    return _ask_service(
        loaded, "eject", 60.0,
        f"eject: drive {args.drive} is driven by the running service, and no service runs on this buffer;"
        " with the service stopped, take the medium out by hand", drive=args.drive)


@contextmanager
def buffer_for_writing(loaded):
    """The buffer opened for ingest from this process (`import`, `retrieve --get`). Without a
    service, this process holds the buffer's lock while it writes, so a service started meanwhile
    cannot run its start-up recovery (which empties incoming/ and deletes files not yet indexed)
    under it: that start is refused naming this PID (exit 3) and can be repeated. Beside a running
    service it takes the writer's lock: a restart of the service leaves this process's files in
    incoming/ alone. Yields (buffer, beside_service)."""
    from gateway.buffer import lock as buffer_lock
    from gateway.buffer.ingest import Buffer
    from gateway.routing import Router

    cfg = loaded.config
    held = None
    if _service_pid(loaded.buffer_dir) is None:
        try:
            loaded.buffer_dir.mkdir(parents=True, exist_ok=True)
            held = buffer_lock.acquire(loaded.buffer_dir)
        except buffer_lock.BufferLocked:
            held = None  # a service started a moment ago; its recovery is done: write beside it
    try:
        buffer = Buffer(loaded.buffer_dir, cfg.buffer.reserve_mb * 1024 * 1024, cfg.buffer.duplicate_policy,
                        Router(cfg), cfg.archive_titles())
        writing = buffer_lock.writer(loaded.buffer_dir)
        try:
            yield buffer, held is None
        finally:
            writing.close()
            buffer.close()
    finally:
        if held is not None:
            held.close()


def cmd_import(args) -> int:
    """`import PATH [--label LABEL]`: the file-set under PATH into the buffer (gateway/media/importer.py),
    beside a running service or without one; exit 0 when every file was imported, 1 when some were not.

    `import DRIVE`: a bare name (no '/') that is a drive of [media.drives] means that drive, even
    when a folder of that name is in the current folder (`./NAME` or `NAME/` is the folder): the
    running service's worker for the drive reads and imports its medium, as on insertion, and the
    answer comes over the control socket (gateway/control.py). The drive wins because it is what
    the operator at the box means by "usb"; a folder is always reachable with a slash.

    Beside a running service the two processes share the index (SQLite serialises their write
    transactions; the duplicate check runs inside one) and the new forward jobs are announced with
    SIGUSR1, as the queue verbs do. What assumes one process: the service's start-up recovery
    (Buffer.recover) deletes everything in incoming/ and every file under objects/ not yet
    indexed, so this command holds the buffer's lock when no service runs, and beside a running
    service it holds a writer's lock (buffer/lock.py writer) that makes a service restarted
    meanwhile leave the cleaning to its next start. Retention's room-making before a reserve
    refusal is the service's only: here a full reserve fails the file (disk-full)."""
    from gateway.buffer.intake import Intake
    from gateway.dicom.sop_classes import storage_sop_classes
    from gateway.events import EventBus
    from gateway.media.importer import import_tree
    from gateway.part10.attributes import configure_pydicom

    loaded = None
    if "/" not in args.path:
        loaded = _load(args)
        if args.path in loaded.config.media.drives:
            return _import_drive(loaded, args.path, args.label)
    label = args.label or DEFAULT_IMPORT_LABEL
    if not _LABEL_RE.fullmatch(label):
        raise UsageError(f"import: label {label!r}: 1 to 32 letters, digits, '.', '_' or '-'")
    root = Path(args.path)
    if not root.is_dir():
        raise UsageError(f"import: {root}: {'not a folder' if root.exists() else 'no such folder'}"
                         " (give the folder a medium is mounted or copied at, or a drive of [media.drives])")
    loaded = loaded or _load(args)
    cfg = loaded.config
    with buffer_for_writing(loaded) as (buffer, beside):
        configure_pydicom()
        intake = Intake(cfg, buffer, EventBus(), storage_sop_classes(cfg.storage.extra_sop_classes))
        report = import_tree(root, label, intake, buffer.files.new_incoming_path)
    how = "followed its DICOMDIR" if report.method == "dicomdir" else report.note
    print(f"import {report.import_id} of {root} as MEDIA:{label}: {how}")
    if report.method == "dicomdir" and report.note:
        print(f"note: {report.note}")
    for item in report.problems():
        print(item.line())
    print(report.summary())
    if report.routed:
        if not beside:
            print("no service is running on this buffer: the imported objects are forwarded at its next start")
        else:
            _wake_service(loaded.buffer_dir)
    if not report.ok:
        print(f"some files were not imported (above); the report: dicom-gateway imports {report.import_id}")
        return exit_codes.FAILED
    return exit_codes.OK


def cmd_imports(args) -> int:
    from gateway.buffer.imports import ImportStore
    from gateway.operator_views import show_imports

    return show_imports(ImportStore(_queue(_load(args)).index), args.id)


def cmd_export(args) -> int:
    """`export STUDY_UID... [--to DRIVE] [--copies N] [--wait]`: queue the studies for media
    (gateway/media/export.py), wake the running service, print the job ids. With --wait, follow
    the jobs in the index: exit 0 when every medium was verified, 1 as soon as one attempt failed
    (the job itself waits for the next medium; `queue list` shows it), 2 for a usage error."""
    from gateway import commands

    loaded = _load(args)
    commands.export_drive(loaded.config, args.to)  # a usage error before the buffer is opened
    q = _queue(loaded)
    # The split is decided now, for the smallest medium the drive's kind takes: the CLI does not
    # touch a drive the service may be burning with.
    result = commands.export(q, loaded.config, args.studies, args.to, args.copies, mark=not args.no_mark)
    for line in result.lines()[:-1]:
        print(line)
    ids = [r.job_id for r in result.results]
    _wake_service(loaded.buffer_dir)
    if not args.wait:
        return exit_codes.OK
    from gateway.operator_views import follow_exports

    try:
        return exit_codes.OK if follow_exports(q, ids, sys.stdout.isatty()) else exit_codes.FAILED
    except KeyboardInterrupt:
        # --wait waits for a medium as long as it takes; leaving it gives nothing up.
        print(f"\nstopped waiting; job{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids))} stay queued "
              "(dicom-gateway queue list)", file=sys.stderr)
        return exit_codes.INTERRUPTED


def _copies(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 20:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of copies (1 to 20)")
    return int(text)


def cmd_print_test(args) -> int:
    from gateway.print.calibrate import print_test

    return print_test(_load(args), args.steps, args.wedge)


def cmd_conformance(args) -> int:
    """`conformance [--output FILE]`: the DICOM Conformance Statement (gateway/conformance.py) as
    Markdown on stdout, or written to FILE. Without --config the statement is the published one, for
    the schema's defaults (the config search is not used: a checkout's config/gateway.toml would
    change it); with --config (and --set) it describes that box."""
    from gateway.conformance import render

    config = config_mod.load(args.config, args.set).config if args.config or args.set else None
    text = render(config)
    if args.output is None:
        sys.stdout.write(text)
        return exit_codes.OK
    out = Path(args.output)
    # Written beside and renamed: an interrupted run never leaves half a statement in place.
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(out)
    except OSError as exc:
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        print(f"conformance: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return exit_codes.FAILED
    print(f"wrote {out}", file=sys.stderr)
    return exit_codes.OK


def _job_id(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a job ID (a number from `queue list`)")
    return int(text)


def _import_id(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not an import's number (a number from `imports`)")
    return int(text)


def _ae_title(text: str) -> str:
    try:
        return config_mod._check_ae_title(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Parser(argparse.ArgumentParser):
    """argparse, with a usage error in one line (the usage itself is one --help away)."""

    def error(self, message: str):
        self.exit(exit_codes.CONFIG, f"{self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="dicom-gateway", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(name, func, help_):
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--config", default=None,
                        help=f"config file (default: ${CONFIG_ENV}, else the first of {', '.join(SEARCH_PATH)})")
        sp.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set ae.port=11113 (repeatable)")
        sp.set_defaults(func=func)
        return sp

    add("run", cmd_run, "run the service")
    add("check-config", cmd_check_config, "validate the config and list every problem")
    sp = add("echo", cmd_echo, "C-ECHO a destination or peer")
    sp.add_argument("dest", help="destination or peer name, or AET@host:port")
    sp.add_argument("--aet", type=_ae_title, help="calling AE title (default: ae.title)")
    sp = add("send", cmd_send, "send files or folders with C-STORE")
    sp.add_argument("paths", nargs="+")
    sp.add_argument("--to", required=True, help="destination or peer name, or AET@host:port")
    sp.add_argument("--aet", type=_ae_title, help="calling AE title (default: ae.title)")
    sp = add("queue", cmd_queue, "list, retry or dead-letter jobs")
    sp.add_argument("action", choices=["list", "retry", "dead-letter"])
    sp.add_argument("ids", nargs="*", type=_job_id, help="job IDs (retry: default all dead jobs)")
    sp.add_argument("--state", action="append", help="list only these states (repeatable)")
    sp.add_argument("--reason", default="dead-lettered by operator")
    sp.formatter_class = argparse.RawDescriptionHelpFormatter
    sp.epilog = QUEUE_VERBS_HELP
    sp = add("re-forward", cmd_reforward, "send stored objects to a destination again, even if delivered")
    sp.add_argument("jobs", nargs="*", help="forward job IDs whose objects to send again")
    sp.add_argument("--study", metavar="UID", help="every instance of this study held in the buffer")
    sp.add_argument("--series", metavar="UID", help="every instance of this series held in the buffer")
    sp.add_argument("--instance", metavar="UID", help="this SOP instance")
    sp.add_argument("--to", required=True, metavar="DEST", help="destination name from the config")
    sp.formatter_class = argparse.RawDescriptionHelpFormatter
    sp.epilog = QUEUE_VERBS_HELP
    add("status", cmd_status, "service, buffer, destinations and printer at a glance")
    add("studies", cmd_studies, "studies held in the buffer, with their delivery state per destination")
    sp = add("import", cmd_import, "import the DICOM files under a folder (a medium's file-set), or the medium in "
                                   "a drive, into the buffer")
    sp.add_argument("path", metavar="PATH|DRIVE",
                    help="the folder: a mounted or copied medium (its DICOMDIR is followed, else every file is "
                         "read); or a drive of [media.drives], whose medium the running service reads (./NAME "
                         "for a folder named like a drive)")
    sp.add_argument("--label", help=f"the medium's name; the source is MEDIA:<label> (default {DEFAULT_IMPORT_LABEL})")
    sp = add("imports", cmd_imports, "the reports of media imports, or one import's files")
    sp.add_argument("id", nargs="?", type=_import_id, help="an import's number: its files and what became of each")
    sp = add("export", cmd_export, "write studies to a USB stick, CD or DVD (queued; the service writes them)")
    sp.add_argument("studies", nargs="+", metavar="STUDY_UID", help="Study Instance UIDs held in the buffer")
    sp.add_argument("--to", metavar="DRIVE", help="drive name from [media.drives] (default: the only one)")
    sp.add_argument("--copies", type=_copies, default=1, help="how many media (default 1)")
    sp.add_argument("--no-mark", action="store_true",
                    help="do not count the studies as exported (an export rule taking studies not yet "
                         "exported still takes them)")
    sp.add_argument("--wait", action="store_true",
                    help="follow the jobs until every medium is verified (exit 0) or an attempt fails (exit 1)")
    sp = add("eject", cmd_eject, "give back the medium in a drive (refused while it is written or read)")
    sp.add_argument("drive", metavar="DRIVE", help="drive name from [media.drives]")
    sp = add("worklist", cmd_worklist, "the modality worklist and the current procedure a capture is for")
    sp.add_argument("--refresh", action="store_true", help="ask the worklist SCP now (the running service does)")
    choice = sp.add_mutually_exclusive_group()
    choice.add_argument("--select", metavar="N|KEY", help="make item N of the listing (or the item with that key)"
                                                         " the current procedure")
    choice.add_argument("--next", action="store_true", help="the next item becomes current (wraps)")
    choice.add_argument("--previous", action="store_true", help="the previous item becomes current (wraps)")
    choice.add_argument("--unscheduled", action="store_true",
                        help="capture for no worklist item: a generated Patient ID, flagged unscheduled")
    sp = add("capture", cmd_capture, "take a still (or record a clip) from the grabber for the current procedure")
    what = sp.add_mutually_exclusive_group()
    what.add_argument("--clip", nargs="?", const=0.0, type=_clip_seconds, metavar="SECONDS",
                      help="record a clip (default length: capture.clip_s) instead of a still")
    what.add_argument("--end", action="store_true", help="the procedure is over: its MPPS is completed")
    what.add_argument("--discontinue", action="store_true",
                      help="the procedure was stopped before it was finished: its MPPS is discontinued")
    sp.add_argument("--no-wait", action="store_true", help="with --clip: answer when recording starts")
    sp = add("conformance", cmd_conformance, "the DICOM Conformance Statement (PS3.2), generated from the code")
    sp.add_argument("--output", metavar="FILE", help="write it to FILE (default: print it); "
                                                     "CONFORMANCE.md is this for the default config")
    sp = add("print-test", cmd_print_test, "print a step wedge on the configured printer (calibration)")
    sp.add_argument("--steps", type=int, default=17, help="number of steps (default 17)")
    sp.add_argument("--wedge", choices=["drive", "gsdf"], default="drive",
                    help="drive: raw drive levels to measure (default); gsdf: P-values through the LUT")
    # `query` and `retrieve` (gateway/cli_query.py)
    from gateway import cli_query
    cli_query.add_parsers(add)
    return p


def main(argv: list[str] | None = None) -> int:
    """Parse, run, and turn every expected failure into one line and its exit code."""
    args = build_parser().parse_args(argv)  # usage errors: one line, exit 2 (argparse)
    from gateway.app import StartupError
    from gateway.commands import Refused

    try:
        return args.func(args)
    except UsageError as exc:
        print(f"dicom-gateway: {exc}", file=sys.stderr)
        return exit_codes.CONFIG
    except Refused as exc:  # an operator verb refused as a whole (gateway/commands.py)
        print(f"dicom-gateway: {exc}" if exc.usage else str(exc), file=sys.stderr)
        return exit_codes.CONFIG if exc.usage else exit_codes.FAILED
    except ConfigError as exc:
        if len(exc.problems) == 1:
            print(f"config: {exc.problems[0]}", file=sys.stderr)
        else:
            print(f"config: {len(exc.problems)} problems:", file=sys.stderr)
            for line in exc.problems:
                print(f"  {line}", file=sys.stderr)
        return exit_codes.CONFIG
    except StartupError as exc:
        print(f"dicom-gateway: not started: {exc}", file=sys.stderr)
        return exc.code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return exit_codes.INTERRUPTED
    except BrokenPipeError:
        return exit_codes.FAILED  # `dicom-gateway queue list | head`
    except (OSError, sqlite3.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.FAILED
    except Exception as exc:
        if os.environ.get("DICOM_GATEWAY_DEBUG"):
            traceback.print_exc()
        else:
            import logging

            if logging.getLogger().handlers:
                # The service's log keeps the traceback for the developer; the terminal gets one line.
                logging.getLogger("gateway").error("internal error", exc_info=True)
        print(f"internal error: {type(exc).__name__}: {exc} (details: DICOM_GATEWAY_DEBUG=1)", file=sys.stderr)
        return exit_codes.INTERNAL


if __name__ == "__main__":
    sys.exit(main())
