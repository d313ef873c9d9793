"""The service: wires config, buffer, listener and workers; starts, serves, stops.

Start-up order matters: the buffer recovers (partial files removed, in-flight jobs re-queued)
before the listener accepts anything, and systemd hears READY only when the port is open.
Stop: the listener closes first (no new work accepted), workers finish the object in hand, then
the index closes. Anything abandoned is still queued and goes out after the next start.
"""

from __future__ import annotations

import logging
import signal
import threading
import time

from pynetdicom import evt

from gateway import systemd_notify
from gateway.buffer.attributes import configure_pydicom
from gateway.buffer.ingest import Buffer
from gateway.buffer.retention import Retention
from gateway.config import LoadedConfig
from gateway.dicom.commitment import CommitmentSCU
from gateway.dicom.forward import Forwarder
from gateway.dicom.listener import Listener, configure_pynetdicom
from gateway.dicom.store_scp import StoreSCP
from gateway.events import EventBus
from gateway.print.service import PrintService
from gateway.routing import Router
from gateway.state import StateObserver

log = logging.getLogger("gateway.app")


class Gateway:
    def __init__(self, loaded: LoadedConfig):
        self.loaded = loaded
        cfg = self.config = loaded.config
        self.events = EventBus()
        self.buffer = Buffer(loaded.buffer_dir, cfg.buffer.reserve_mb * 1024 * 1024,
                             cfg.buffer.duplicate_policy, Router(cfg))
        # Hooks into the buffer: the reserve check evicts delivered instances before refusing.
        self.retention = Retention(self.buffer, cfg.buffer, self.events)
        configure_pydicom()
        configure_pynetdicom(self.buffer.files.incoming, self.buffer.files.check_reserve, cfg.ae.max_pdu)
        self.commitment = CommitmentSCU(self.buffer.queue, self.events, cfg.destinations.get,
                                        self._release_done)
        report = [(evt.EVT_N_EVENT_REPORT, self.commitment.handle_report)]
        self.store_scp = StoreSCP(cfg, self.buffer, self.events)
        self.printing = PrintService(loaded, self.buffer, self.events) if cfg.print.enabled else None
        p = self.printing
        self.listener = Listener(cfg, self.store_scp.handlers() + report + (p.scp.handlers() if p else []),
                                 contexts=p.scp.contexts() if p else (),
                                 called_titles=p.scp.called_titles() if p else (), store=self.store_scp.store)
        self.forwarders = [
            Forwarder(name, cfg, self.buffer, self.events, self.commitment, report)
            for name, dest in cfg.destinations.items() if dest.enabled
        ]
        self._stop = threading.Event()
        # Operator view (status): destination reachability and printer state, from events.
        self.state = StateObserver(self.events, loaded.buffer_dir, [f.name for f in self.forwarders],
                                   cfg.print.name if cfg.print.enabled else None)

    def wake_workers(self, *_args) -> None:
        """SIGUSR1, sent by a CLI verb that changed the queue: workers look at it now, even those
        backing off. The waking runs in a thread: a signal handler must not take the locks the
        interrupted main thread may hold."""
        threading.Thread(target=self.buffer.queue.wake_all, name="operator-wake", daemon=True).start()

    def _release_done(self, instance_ids: list[int]) -> None:
        if self.config.buffer.delete_when_done:
            self.buffer.release_if_done(instance_ids)

    def start(self) -> None:
        self.state.start()
        rec = self.buffer.recover()
        log.info("buffer at %s recovered: %d partial files removed, %d orphan files removed, "
                 "%d interrupted jobs queued again", self.loaded.buffer_dir, rec["partial_files"],
                 rec["orphan_files"], rec["requeued_jobs"])
        for f in self.forwarders:
            f.start()
        if self.printing:
            self.printing.start()
        self.listener.start()
        systemd_notify.notify("READY=1\nSTATUS=" + self.status_line())

    def status_line(self) -> str:
        counts = self.buffer.queue.counts()
        waiting = sum(n for (_, _, state), n in counts.items() if state in ("queued", "in_flight", "committing"))
        dead = sum(n for (_, _, state), n in counts.items() if state == "dead")
        return (f"{self.config.ae.title} on {self.config.ae.bind}:{self.config.ae.port}; "
                f"{waiting} jobs waiting, {dead} dead-lettered")

    def serve_forever(self) -> None:
        """Housekeeping until stopped: commitment timeouts, retention, watchdog, status."""
        wd = systemd_notify.watchdog_interval()
        tick = min(5.0, wd) if wd else 5.0
        last_status = 0.0
        while not self._stop.wait(tick):
            self.commitment.expire()
            self.retention.sweep()
            if all(f.is_alive() for f in self.forwarders) and (
                    self.printing is None or self.printing.spooler.is_alive()):
                # Only a healthy process pets the watchdog: a dead worker thread gets us restarted.
                systemd_notify.notify("WATCHDOG=1")
            if time.monotonic() - last_status > 30:
                systemd_notify.notify("STATUS=" + self.status_line())
                last_status = time.monotonic()

    def request_stop(self, *_args) -> None:
        self._stop.set()

    def stop(self) -> None:
        systemd_notify.notify("STOPPING=1")
        log.info("stopping: closing the listener, letting workers finish the object in hand")
        self.listener.stop()
        for f in self.forwarders:
            f.request_stop()
        deadline = time.monotonic() + 20
        for f in self.forwarders:
            f.join(max(0.1, deadline - time.monotonic()))
        if self.printing:
            self.printing.stop()
        self.buffer.close()
        log.info("stopped")


def run(loaded: LoadedConfig) -> int:
    # SIGUSR1's default action ends the process: catch it before anything can find us.
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    gw = Gateway(loaded)
    signal.signal(signal.SIGUSR1, gw.wake_workers)
    # field-queue: CLI verbs find the service through the buffer lock's holder. Item 3 (wt-life)
    # owns where the lock is taken; on merge keep ONE acquire, before recovery.
    from gateway.buffer import lock as buffer_lock

    try:
        gw.buffer_lock = buffer_lock.acquire(loaded.buffer_dir)
    except buffer_lock.BufferLocked as exc:
        raise SystemExit(str(exc)) from None
    signal.signal(signal.SIGTERM, gw.request_stop)
    signal.signal(signal.SIGINT, gw.request_stop)
    gw.start()
    try:
        gw.serve_forever()
    finally:
        gw.stop()
    return 0
