"""The service: wires config, buffer, listener and workers; starts, serves, stops.

Start-up order matters:
1. the buffer's lock (gateway/buffer/lock.py), before anything in the buffer is touched: a second
   instance on the same buffer exits here, naming the holder's PID, having changed nothing;
2. the DICOM port is bound and listening, but not accepting: a port in use ends the start before
   recovery has changed anything, and modalities that connect now wait in the backlog;
3. recovery (partial files removed, in-flight jobs re-queued): no association is being served, so
   no incoming/ file of a live C-STORE can be taken for a leftover;
4. the workers (forwarders, print spooler), then the media drives: the media service (drives and
   their hotplug sources, gateway/media/service.py) and an exporter per drive;
5. the front panel (gateway/panel/runner.py: its thread, fed by the bus, driving [panel] kind's
   hardware); hardware that is not there leaves the service running without it, said in one line;
   then the foot pedal ([capture.pedal], after the capture service it triggers; same rule);
   then the control channel (gateway/control.py: `<buffer>/control.sock`, the verbs on the drives
   the command line asks for), once the drives are served;
6. accepting associations, then READY=1 to systemd.

Stop (SIGTERM, SIGINT): the control socket is closed and removed first (no verb starts on a service
going away), then the front panel and the foot pedal stop (no button or pedal acts on it); no new
associations; what is in hand is finished within `timers.stop_drain_s` (below the unit's TimeoutStopSec): a C-STORE being received
is stored and answered, a forward being sent completes. Past the deadline both are aborted (A-ABORT,
a WARNING naming the association); an aborted forward does not count as an attempt. The exporters
and the media service stop within the same deadline (an export cut there is not done and runs
again). Then the index closes. Anything abandoned is still queued and goes out after the next start.

SIGHUP is logged and ignored: the config is read at start only (restart to apply a change).
"""

from __future__ import annotations

import errno
import logging
import signal
import socket
import sqlite3
import threading
import time

from drivers import registry
from gateway import exit_codes, preflight, systemd_notify
from gateway.buffer import lock as buffer_lock
from gateway.buffer.files import make_dirs_durable
from gateway.buffer.ingest import Buffer
from gateway.buffer.retention import Retention
from gateway.commands import Commands
from gateway.control import ControlServer, Verb, capture_verbs, worklist_verbs
from gateway.config import LoadedConfig
from gateway.dicom.echo import VerificationSCP
from gateway.dicom.commitment import CommitmentSCU
from gateway.dicom.forward import Forwarder
from gateway.dicom.mpps_scu import MppsSCU
from gateway.dicom.net.listener import Listener, configure_pynetdicom
from gateway.dicom.store_scp import StoreSCP
from gateway.dicom.print_scp import PrintSCP
from gateway.dicom.worklist_service import WorklistService
# the C-FIND SCP over the buffer
from gateway.dicom.qr_find_scp import QueryFindSCP
from gateway.event_kinds import ConfigProblem, DiskSpace, QueueDepths
from gateway.events import EventBus
from gateway.panel.runner import PanelRunner
from gateway.part10.attributes import configure_pydicom
from gateway.print.service import PrintService
from gateway.routing import Router
from gateway.state import StateObserver, backlog
from gateway.status.health import Health
from gateway.status.metrics import new_registry
from gateway.status.server import StatusServer

log = logging.getLogger("gateway.app")

# After the drain deadline, aborted associations and workers get this long to wind down before the
# index closes under them.
_CUT_GRACE_S = 5.0
# The housekeeping tick counts the queue and measures the disk for the state snapshot at most this
# often (the tick itself runs every second under a 2 s watchdog).
_OBSERVE_EVERY_S = 5.0


class StartupError(Exception):
    """The service cannot start: one line for the operator and the exit code (gateway.exit_codes)."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def _lock_buffer(root) -> buffer_lock.BufferLock:
    if root.exists() and not root.is_dir():
        raise StartupError(f"buffer.path: {root} is a file, not a folder", exit_codes.CONFIG)
    try:
        # named durably: on a fresh box a power cut lost a buffer whose folder was never fsynced
        # into its parent, with every object acknowledged into it (the power-cut campaign)
        make_dirs_durable(root)
    except OSError as exc:
        raise StartupError(f"buffer.path: cannot create {root}: {exc.strerror or exc}", exit_codes.CONFIG) from None
    try:
        return buffer_lock.acquire(root)
    except buffer_lock.BufferLocked as exc:
        raise StartupError(f"{exc}: another instance runs on this buffer; not started, nothing touched",
                           exit_codes.BUFFER_IN_USE) from None
    except OSError as exc:
        raise StartupError(f"buffer.path: cannot write in {root}: {exc.strerror or exc}",
                           exit_codes.CONFIG) from None


class Gateway:
    """The whole service. Construction takes the buffer's lock first (StartupError when another
    instance holds it); start() binds, recovers, starts the workers, accepts; stop() drains."""

    def __init__(self, loaded: LoadedConfig, stop: threading.Event | None = None):
        self.loaded = loaded
        self.config = loaded.config
        self.events = EventBus()
        self._stop = stop or threading.Event()
        self._lock = _lock_buffer(loaded.buffer_dir)
        self._started: list[str] = []
        try:
            self._build(loaded)
        except BaseException:
            self._lock.close()
            raise

    def _build(self, loaded: LoadedConfig) -> None:
        cfg = self.config
        problems = preflight.buffer_folder(loaded) + preflight.import_mapping(loaded)
        if problems:
            raise StartupError(problems[0], exit_codes.CONFIG)
        try:
            self.buffer = Buffer(loaded.buffer_dir, cfg.buffer.reserve_mb * 1024 * 1024,
                                 cfg.buffer.duplicate_policy, Router(cfg), cfg.archive_titles())
        except (OSError, sqlite3.Error) as exc:
            raise StartupError(f"buffer.path: cannot open the buffer in {loaded.buffer_dir}: {exc}",
                               exit_codes.CONFIG) from None
        # Hooks into the buffer: the reserve check evicts delivered instances before refusing.
        self.retention = Retention(self.buffer, cfg.buffer, self.events)
        configure_pydicom()
        configure_pynetdicom(self.buffer.files.incoming, self.buffer.files.check_reserve, cfg.ae.max_pdu)
        self.commitment = CommitmentSCU(self.buffer.queue, self.events, cfg.destinations.get,
                                        self._release_done)
        report = self.commitment.handlers()
        self.store_scp = StoreSCP(cfg, self.buffer, self.events)
        self.printing = PrintService(loaded, self.buffer, self.events) if cfg.print.enabled else None
        # The print domain's DIMSE adapter, told of job and printer changes directly (not the bus).
        self.print_scp = p = PrintSCP(self.printing, cfg) if self.printing else None
        if p:
            self.printing.add_listener(p)
        # The services behind the port, each bringing its contexts and handlers; the fast path
        # serves the Verification and Storage contexts through store_scp.store.
        roles = [VerificationSCP(), self.store_scp, self.commitment, *([p] if p else [])]
        # Query/Retrieve C-MOVE / C-GET SCP over the buffer. After store_scp: it
        #    re-adds the storage contexts with the SCP/SCU role answers a C-GET needs.
        from gateway.dicom.qr_retrieve_scp import QRRetrieveSCP
        self.qr_retrieve_scp = QRRetrieveSCP(cfg, self.buffer, self.events)
        roles.append(self.qr_retrieve_scp)
        # Query/Retrieve C-FIND over the buffer (peers.*.may_query)
        self.qr_find = QueryFindSCP(cfg, self.buffer.index, self.events)
        roles.append(self.qr_find)
        self.listener = Listener(cfg, roles, store=self.store_scp.store, events=self.events,
                                 head_coercion=self.store_scp.head_coercion)
        self.forwarders = [
            Forwarder(name, cfg, self.buffer, self.events, self.commitment, report)
            for name, dest in cfg.destinations.items() if dest.enabled
        ]
        self.drives, self.exporters, self.media = self._build_media(loaded)
        # The worklist (its thread runs only with [worklist] enabled) and the current procedure a
        # capture is for; the MPPS SCU, a queue worker, with [mpps] enabled.
        self.worklist = WorklistService(cfg, loaded.buffer_dir, self.events)
        self.mpps = MppsSCU(cfg, self.buffer.queue, self.events) if cfg.mpps.enabled else None
        self.capture = self._build_capture(loaded)
        # The operator verbs in-process (the panel, the status page): gateway/commands.py.
        self.commands = Commands(self.buffer.queue, cfg, drives=self.drives, exporters=self.exporters,
                                 busy=self.media.busy if self.media is not None else None,
                                 events=self.events,
                                 request_import=self.media.request_import if self.media is not None else None,
                                 worklist=self.worklist, capture=self.capture)
        # What the command line asks of the running service over <buffer>/control.sock.
        c = self.commands
        self.control = ControlServer(loaded.buffer_dir, self._lock, {
            "import": Verb(c.import_medium, {"drive": str}),
            "eject": Verb(c.eject, {"drive": str}),
            "wake": Verb(c.wake, {}),
            **worklist_verbs(c),
            **capture_verbs(c),
        })
        # The state snapshot (gateway/state.py), folded from events: what STATUS=, status_line and
        # `dicom-gateway status` (through state.json) read.
        self.state = StateObserver(self.events, loaded.buffer_dir, [f.name for f in self.forwarders],
                                   cfg.print.name if cfg.print.enabled else None, list(self.drives))
        # The front panel (gateway/panel/runner.py): subscribed now, so that what happens before
        # it starts (a config problem at start-up) is shown.
        self.panel = self._build_panel(loaded)
        # The foot pedal ([capture.pedal]): the panel's capture lambda on a pedal of its own.
        self.pedal = self._build_pedal(loaded)
        # The status endpoint (gateway/status/): metrics folded from events in their own thread,
        # the page and /status.json from the snapshot and the index; read-only.
        # One check for /healthz and the watchdog: systemd restarts exactly what monitoring sees failing.
        self.health = Health(self.healthy, self.buffer.index.path)
        self.metrics = self.status_http = None
        if cfg.status_http.enabled:
            registry, self.metrics = new_registry(self.events, self.state.get_status, self.buffer.index)
            self.status_http = StatusServer(cfg.status_http, self.state.get_status, registry,
                                            self.health, self.buffer.index,
                                            devices=self.devices, qr=self.metrics.qr)

    def devices(self) -> list:
        """The device objects built from the registry: the printer connection, the media drives and
        the front panel's device (when the panel was built). The status server looks for hw-sim's
        views on them (gateway/status/views.py); asked at each look, because a printer simulator
        exists only once the print service started it."""
        found = [self.printing.device.connection] if self.printing is not None else []
        return (found + list(self.drives.values()) + ([self.panel.front] if self.panel is not None else [])
                + ([self.capture.grabber] if self.capture is not None else []))

    def _build_capture(self, loaded: LoadedConfig):
        """The capture service over [capture.grabber] kind's grabber (device registry family
        "grabber"); None with [capture] enabled = false."""
        cfg = self.config.capture
        if not cfg.enabled:
            return None
        # Imported only with a grabber: a box that does not capture never loads the pixel codecs.
        from gateway import identity
        from gateway.capture.iod import Equipment
        from gateway.capture.service import CaptureService
        try:
            grabber = registry.create("grabber", cfg.grabber.kind, "grabber", cfg.grabber, loaded.resolve)
        except (registry.UnknownKind, registry.RegistryError, OSError, ValueError) as exc:
            raise StartupError(f"capture.grabber: {exc}", exit_codes.CONFIG) from None
        equipment = Equipment(manufacturer="dicom-gateway", model_name="edge gateway video capture",
                              software_versions=identity.IMPLEMENTATION_VERSION_NAME,
                              station_name=self.config.ae.title, analog=cfg.grabber.analog)
        return CaptureService(cfg, grabber, self.worklist.current, self.store_scp.intake,
                              self.buffer.files.new_incoming_path, self.events, equipment=equipment,
                              mpps=self.mpps.store if self.mpps is not None else None,
                              station_ae=self.config.ae.title)

    def _build_media(self, loaded: LoadedConfig):
        """The media drives of [media.drives] from the device registry (family "media"), an Exporter
        per drive and the MediaService over them; ({}, {}, None) when no drive is configured."""
        cfg = self.config.media
        if not cfg.drives:
            return {}, {}, None
        # Imported only with drives configured: a gateway without media never loads the FSC.
        from gateway.media.export import Exporter
        from gateway.media.service import STAGING, MediaService
        drives = {}
        for name, d in cfg.drives.items():
            try:
                drives[name] = registry.create("media", d.kind, name, d, loaded.resolve)
            except (registry.UnknownKind, registry.RegistryError, OSError, ValueError) as exc:
                raise StartupError(f"media.drives.{name}: {exc}", exit_codes.CONFIG) from None
        root = loaded.buffer_dir
        exporters = {name: Exporter(self.buffer, drive, self.events, staging_dir=root / "media-export" / name)
                     for name, drive in drives.items()}
        service = MediaService(cfg, self.buffer, self.store_scp.intake, self.events, drives, exporters,
                               staging_root=root / STAGING)
        return drives, exporters, service

    def _build_panel(self, loaded: LoadedConfig) -> PanelRunner | None:
        """The front panel: [panel] kind's FrontPanel from the device registry (family "panel") under
        a PanelRunner; None when [panel] enabled = false, or (with one WARNING line) when the driver
        cannot even be built."""
        cfg = self.config.panel
        if not cfg.enabled:
            return None
        try:
            front = registry.create("panel", cfg.kind, cfg, loaded.resolve)
        except (registry.UnknownKind, registry.RegistryError, OSError, ValueError) as exc:
            self._no_panel(exc)
            return None
        # capture: None without a grabber; the panel says "NO GRABBER".
        capture = self._capture_trigger if self.capture is not None else None
        return PanelRunner(self.events, front, self.commands, self.buffer.index, cfg,
                           drives=list(self.drives), printer=self.config.print.enabled, capture=capture)

    def _build_pedal(self, loaded: LoadedConfig):
        """The foot pedal: [capture.pedal] kind's Pedal from the device registry (family "pedal")
        under a PedalTrigger (gateway/capture/pedal.py); None without a grabber, with [capture.pedal]
        enabled = false, or (with one WARNING line) when the driver cannot even be built."""
        cfg = self.config.capture.pedal
        if self.capture is None or not cfg.enabled:
            return None
        from gateway.capture.pedal import PedalTrigger
        try:
            pedal = registry.create("pedal", cfg.kind, cfg, loaded.resolve)
        except (registry.UnknownKind, registry.RegistryError, OSError, ValueError) as exc:
            self._no_pedal(exc)
            return None
        return PedalTrigger(pedal, self._capture_trigger, cfg.long_press_s)

    def _capture_trigger(self, long: bool):
        """What the panel's CAPTURE button and the foot pedal do: a still, or (long) a clip of
        capture.clip_s, through the operator verb the command line uses too."""
        return self.commands.capture(self.config.capture.clip_s if long else 0.0)

    def _no_pedal(self, exc: BaseException) -> None:
        # Like the panel: a pedal that is not there leaves the CLI and the panel's button to capture.
        log.warning("foot pedal not started: %s; the service runs without it", exc)
        self.events.publish(ConfigProblem(key="capture.pedal", detail=str(exc)))

    def _no_panel(self, exc: BaseException) -> None:
        # The box's DICOM work matters more than its LEDs: it runs on, and says why once.
        log.warning("front panel not started: %s; the service runs without it", exc)
        self.events.publish(ConfigProblem(key="panel", detail=str(exc)))

    def wake_workers(self, *_args) -> None:
        """SIGUSR1, sent by a CLI verb that changed the queue: workers look at it now, even those
        backing off. The waking runs in a thread: a signal handler must not take the locks the
        interrupted main thread may hold."""
        threading.Thread(target=self.commands.wake, name="operator-wake", daemon=True).start()

    def _release_done(self, instance_ids: list[int]) -> None:
        if self.config.buffer.delete_when_done:
            self.buffer.release_if_done(instance_ids)

    def start(self) -> None:
        """Bind, recover, start the workers, accept, READY (the order is the module docstring's)."""
        self.state.start()
        try:
            self.listener.start(accept=False)
        except socket.gaierror as exc:
            raise StartupError(f"ae.bind: cannot resolve {self.config.ae.bind!r}: {exc.strerror}",
                               exit_codes.CONFIG) from None
        except OSError as exc:
            code = exit_codes.PORT_IN_USE if exc.errno == errno.EADDRINUSE else exit_codes.CONFIG
            raise StartupError(preflight.port_problem(exc, self.loaded), code) from None
        self._started.append("listener")
        log.info("config %s; relative paths against %s", self.loaded.source, self.loaded.state_dir)
        if self.status_http is not None:
            self.metrics.start()
            self._started.append("metrics")
            try:
                log.info("status page %s (also /status.json, /metrics, /healthz)", self.status_http.start())
                self._started.append("status_http")
            except OSError as exc:
                # An observer never keeps the DICOM service down: it runs on without its page.
                self.metrics.stop()
                self._started.remove("metrics")
                log.warning("status page: cannot listen on %s:%d: %s; running without it",
                            self.config.status_http.bind, self.config.status_http.port, exc.strerror or exc)
                self.events.publish(ConfigProblem(
                    key="status_http.port", detail=f"cannot listen on {self.config.status_http.bind}:"
                                                   f"{self.config.status_http.port}: {exc.strerror or exc}"))
        rec = self.buffer.recover()
        log.info("buffer at %s recovered: %d partial files removed, %d orphan files removed, "
                 "%d interrupted jobs queued again", self.loaded.buffer_dir, rec["partial_files"],
                 rec["orphan_files"], rec["requeued_jobs"])
        for f in self.forwarders:
            f.start()
        self._started.append("forwarders")
        if self.printing:
            self.printing.start()
            self._started.append("printing")
        if self.media is not None:
            self.media.start()  # the drives first: an exporter may look at its medium at once
            self._started.append("media")
            for e in self.exporters.values():
                e.start()
            self._started.append("exporters")
        self.worklist.start()  # the cached worklist at once; the SCP asked on its own thread
        self._started.append("worklist")
        if self.mpps is not None:
            self.mpps.start()
            self._started.append("mpps")
        if self.capture is not None:
            self.capture.start()
            self._started.append("capture")
        if self.pedal is not None:
            try:
                self.pedal.start()
                self._started.append("pedal")
            except Exception as exc:  # noqa: BLE001 - PedalError by contract; DICOM goes on whatever a driver raises
                self._no_pedal(exc)
        if self.panel is not None:
            try:
                self.panel.start()
                self._started.append("panel")
            except Exception as exc:  # noqa: BLE001 - PanelError by contract; whatever a driver raises, DICOM goes on
                self._no_panel(exc)
        try:
            self.control.start()
            self._started.append("control")
        except OSError as exc:
            # The DICOM work goes on without it; only `import DRIVE` / `eject` are refused.
            log.error("control channel not started: cannot create %s: %s", self.control.path,
                      exc.strerror or exc)
            self.events.publish(ConfigProblem(key="buffer.path", detail=f"control channel: cannot create "
                                                                        f"{self.control.path}: {exc.strerror or exc}"))
        if "status_http" in self._started and self.status_http.sim_url():
            log.info("simulated box (hw-sim): %s", self.status_http.sim_url())
        self.listener.accept()
        self.observe()
        systemd_notify.notify("READY=1\nSTATUS=" + self.status_line())

    def observe(self) -> None:
        """The housekeeping tick's facts for the snapshot: the queue's depths counted from the index
        (queue-depths) and the buffer's disk (disk-space); then the snapshot folds them (sync), so
        the status line sent next reads them. A failing count is logged, never raised: the tick
        also pets the watchdog."""
        try:
            counts = self.buffer.queue.open_counts()
            self.events.publish(QueueDepths(counts=tuple(
                (kind, target, state, n) for (kind, target, state), n in sorted(counts.items()))))
            total, free = self.buffer.files.disk_usage()
            self.events.publish(DiskSpace(free_bytes=free, total_bytes=total,
                                          reserve_bytes=self.buffer.files.reserve_bytes))
        except (OSError, sqlite3.Error) as exc:
            log.warning("cannot count the queue or measure the buffer's disk for the status: %s", exc)
        self.state.sync()

    def status_line(self) -> str:
        """systemd's STATUS=: the listening address, the backlog and any destination down, read
        from the state snapshot (as of the last observe())."""
        snap = self.state.get_status(["queues", "destinations"])
        counts = backlog(snap)
        jobs = "jobs not counted yet" if counts is None else f"{counts[0]} jobs waiting, {counts[1]} dead-lettered"
        down = sorted(name for name, d in snap["destinations"].items() if d["reachable"] is False)
        return (f"{self.config.ae.title} on {self.config.ae.bind}:{self.config.ae.port}; {jobs}"
                + (f"; unreachable: {', '.join(down)}" if down else ""))

    def serve_forever(self) -> None:
        """Housekeeping until stopped: commitment timeouts, retention, the snapshot's counts
        (observe), watchdog, status."""
        wd = systemd_notify.watchdog_interval()
        tick = min(5.0, wd) if wd else 5.0
        last_status = last_observed = 0.0
        problem: str | None = None
        while not self._stop.wait(tick):
            self.commitment.expire()
            self.retention.sweep()
            if time.monotonic() - last_observed >= _OBSERVE_EVERY_S:
                self.observe()
                last_observed = time.monotonic()
            # Only while /healthz would answer 200 (worker threads run, the index reads): a dead
            # thread or a lost index stops the petting and systemd restarts the service.
            was, problem = problem, self.health()
            if problem is None:
                systemd_notify.notify("WATCHDOG=1")
            if problem != was:
                if problem is None:
                    log.info("healthy again: petting the watchdog")
                else:
                    log.error("unhealthy, not petting the watchdog: %s", problem)
            if time.monotonic() - last_status > 30:
                systemd_notify.notify("STATUS=" + self.status_line())
                last_status = time.monotonic()

    def healthy(self) -> bool:
        """Every worker thread runs: the forwarders, the print spooler, each media drive's worker,
        each exporter, the front panel's thread and the control channel once started. self.health
        adds the index probe: that pair is what /healthz and the watchdog's WATCHDOG=1 vouch for."""
        return (all(f.is_alive() for f in self.forwarders)
                and (self.printing is None or self.printing.spooler.is_alive())
                and (self.media is None or self.media.is_alive())
                and all(e.is_alive() for e in self.exporters.values())
                and ("panel" not in self._started or self.panel.is_alive())
                and ("worklist" not in self._started or self.worklist.is_alive())
                and ("mpps" not in self._started or self.mpps.is_alive())
                and ("capture" not in self._started or self.capture.alive)
                and ("pedal" not in self._started or self.pedal.is_alive())
                and ("control" not in self._started or self.control.is_alive()))

    def request_stop(self, *_args) -> None:
        self._stop.set()

    def stop(self) -> None:
        """Drain within timers.stop_drain_s, then abort what is left; close the index and the lock.
        Safe after a start that failed half-way."""
        if not self._started:  # the start failed before anything ran: nothing to drain
            self.close()
            return
        systemd_notify.notify("STOPPING=1")
        drain = self.config.timers.stop_drain_s
        deadline = time.monotonic() + drain
        log.info("stopping: no new associations; finishing the objects in hand (at most %.0f s)", drain)
        if "control" in self._started:
            self.control.stop()
        if "panel" in self._started:
            self.panel.stop()
        if "pedal" in self._started:
            self.pedal.stop()  # before the capture service: no press reaches a service stopping
        if "capture" in self._started:
            self.capture.stop()  # a clip being recorded is closed and taken before the buffer closes
        if "worklist" in self._started:
            self.worklist.stop()
        forwarders = self.forwarders if "forwarders" in self._started else []
        for f in forwarders:
            f.request_stop()  # first, so that forwards drain while the listener does
        if "listener" in self._started:
            self.listener.stop(max(0.0, deadline - time.monotonic()))
        for f in forwarders:
            f.join(max(0.0, deadline - time.monotonic()))
        for f in forwarders:
            if f.is_alive():
                f.cut(drain)
        for f in forwarders:
            f.join(_CUT_GRACE_S)
        if "mpps" in self._started:
            self.mpps.request_stop()
            self.mpps.join(max(0.0, deadline - time.monotonic()) + _CUT_GRACE_S)
        if "exporters" in self._started:
            for e in self.exporters.values():
                e.request_stop()
            for e in self.exporters.values():
                e.join(max(0.0, deadline - time.monotonic()) + _CUT_GRACE_S)
        if "media" in self._started:
            self.media.stop(max(0.0, deadline - time.monotonic()) + _CUT_GRACE_S)
        if "printing" in self._started:
            self.printing.stop()
        if "status_http" in self._started:
            self.status_http.stop()
        if "metrics" in self._started:
            self.metrics.stop()
        # Last: the workers' final events (a forward that finished during the drain) are folded in.
        self.state.stop()
        self.close()
        log.info("stopped")

    def close(self) -> None:
        """Close the index and give up the buffer's lock."""
        try:
            self.buffer.close()
        finally:
            self._lock.close()


def _ignore_sighup(*_args) -> None:
    log.info("SIGHUP received and ignored: the config is read at start only; restart the service "
             "to apply a change")


def run(loaded: LoadedConfig) -> int:
    """The service until SIGTERM/SIGINT. Raises StartupError when it cannot start."""
    stop = threading.Event()
    # Installed before anything starts: a SIGTERM during recovery still ends in a clean stop, and
    # SIGHUP's default action (terminate, silently) never applies.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, _ignore_sighup)
    # SIGUSR1 (a CLI verb's wake-up) would end the process by default: ignored until the
    # workers exist, then it wakes them.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    gw = Gateway(loaded, stop)
    signal.signal(signal.SIGUSR1, gw.wake_workers)
    try:
        gw.start()
        gw.serve_forever()
    finally:
        gw.stop()
    return 0
