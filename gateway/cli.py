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

    loaded = _load(args)
    return show_studies(_queue(loaded), loaded.config.archive_titles())


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


@contextmanager
def buffer_for_writing(loaded):
    """The buffer opened for ingest from this process (`import`, `retrieve --get`). Without a
    service, this process holds the buffer's lock while it writes, so a service started meanwhile
    cannot run its start-up recovery (which empties incoming/ and deletes files not yet indexed)
    under it: that start is refused naming this PID (exit 3) and can be repeated. Beside a running
    service it takes the writer's lock: a restart of the service leaves this process's files in
    incoming/ alone. Yields (buffer, beside_service)."""
    from gateway.buffer import lock as buffer_lock
    from gateway.buffer.files import make_dirs_durable
    from gateway.buffer.ingest import Buffer
    from gateway.routing import Router

    cfg = loaded.config
    held = None
    if _service_pid(loaded.buffer_dir) is None:
        try:
            make_dirs_durable(loaded.buffer_dir)  # as the service names it (gateway/app.py)
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


def cmd_print_test(args) -> int:
    from gateway.print.calibrate import print_test

    return print_test(_load(args), args.steps, args.wedge)


def cmd_conformance(args) -> int:
    """`conformance [--output FILE]`: the DICOM Conformance Statement (gateway/conformance/) as
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
    # `import`, `imports`, `export`, `eject` (gateway/cli_media.py); `worklist`, `capture`
    # (gateway/cli_capture.py)
    from gateway import cli_capture, cli_media
    cli_media.add_parsers(add)
    cli_capture.add_parsers(add)
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
    # `python -m gateway.cli` runs this file as __main__, a second copy of the module beside the
    # gateway.cli that cli_media, cli_capture and cli_query import: the verbs there raise that
    # copy's UsageError, which only that copy's main() catches (else: "internal error", exit 70).
    from gateway.cli import main as _main

    sys.exit(_main())
