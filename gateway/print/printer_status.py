"""The printer's DICOM status (Printer Status, Printer Status Info), kept current.

Two sources: the spooler hands over what it sees around every film (`observe`, an unbounded inbox
this monitor's thread empties: nothing is dropped and the spooler never waits), and this monitor
polls the device every `print.poll_interval_s` when no film is being sent.  A change is told once
to the print listeners (gateway.print.reports: the Print SCP turns it into an N-EVENT-REPORT of the
Printer SOP instance, PS3.4 H.4.2.2.4, to every open print association) and published on the bus as
"printer-status-changed" for observers.  When the printer becomes able to print
again (FAILURE -> NORMAL/WARNING: film loaded, jam cleared), `on_ready` runs, so films waiting out
their backoff print now rather than at their next retry.
"""

from __future__ import annotations

import logging
import queue
import threading
import time

from drivers.printer.status_map import dicom_printer_status
from gateway.event_kinds import PrinterStatusChanged
from gateway.events import EventBus
from gateway.print.device import PrinterDevice
from gateway.print.reports import PrintJobListener

log = logging.getLogger("gateway.print.status")


class PrinterStatusMonitor:
    """Printer Status / Printer Status Info (PS3.3 C.13.9.1) of the one printer, told on change.

    `current` is the (status, info) pair last seen, e.g. ("NORMAL", "NORMAL"); `interval` is the
    poll period in seconds; `reports` is told of every change (PrintJobListener.on_printer_status)
    and `on_ready` (no arguments) runs when the printer leaves FAILURE."""

    def __init__(self, device: PrinterDevice, events: EventBus, interval: float, on_ready=None,
                 reports: PrintJobListener | None = None):
        self.device, self.events, self.interval = device, events, interval
        self.on_ready = on_ready
        self.reports = reports
        self._lock = threading.Lock()
        self.current: tuple[str, str] = ("FAILURE", "PRINTER INIT")
        self._known = False
        self._stop = threading.Event()
        self._inbox: queue.Queue[tuple[str, str]] = queue.Queue()  # unbounded: never drops
        self._thread = threading.Thread(target=self._run, name="printer-status", daemon=True)

    def start(self) -> None:
        self.update(dicom_printer_status(self.device.status()))
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def observe(self, status: tuple[str, str]) -> None:
        """A reading someone else took (the spooler, around a film): (Printer Status, Printer
        Status Info).  Returns at once; this monitor's thread applies it with `update`."""
        self._inbox.put(tuple(status))

    def update(self, status: tuple[str, str]) -> None:
        """Apply a reading (Printer Status, Printer Status Info): on a change, log it, tell the
        listeners, publish "printer-status-changed", and run `on_ready` when leaving FAILURE."""
        with self._lock:
            changed = not self._known or status != self.current
            was_known = self._known
            old, self.current, self._known = self.current, status, True
        if changed:
            if was_known:
                log.info("printer status %s (%s), was %s (%s)", *status, *old)
            else:  # the first reading: there is no earlier state to name
                log.info("printer status %s (%s)", *status)
            if self.reports is not None:
                self.reports.on_printer_status(status[0], status[1])
            self.events.publish(PrinterStatusChanged(status=status[0], info=status[1]))
            if self.on_ready is not None and old[0] == "FAILURE" and status[0] != "FAILURE":
                self.on_ready()

    def _run(self) -> None:
        last_poll = time.monotonic()
        while not self._stop.is_set():
            try:
                seen = self._inbox.get(timeout=max(0.05, self.interval - (time.monotonic() - last_poll)))
                self.update(seen)
            except queue.Empty:
                pass
            if time.monotonic() - last_poll >= self.interval:
                last_poll = time.monotonic()
                asked, st = self.device.try_status()
                if asked:
                    self.update(dicom_printer_status(st))
