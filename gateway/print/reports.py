"""The print control path: Print Job and Printer status changes, told to whoever must answer a client.

The event bus (gateway.events) is for observers and drops the oldest events for a slow one (its
queues hold 1000). A Print SCU waiting for its Print Job's N-EVENT-REPORTs (PS3.4 H.4.2.1.4) or for
the Printer's (PS3.4 H.4.2.2.4) is not an observer: a report lost there is a protocol answer lost.
So the spooler and the printer status monitor call the listeners here directly, in order, and
nothing is dropped; what the bus gets ("print-job", "printer-status-changed", "printed",
"print-held", ...) is only what observers (state, logs, the panel) watch.

A listener is called on the spooler's or the monitor's thread and must return at once: it hands
the report to its own sender (gateway.dicom.report_channel.ReportSender, one per association) and
never waits for the network.  The one DICOM listener is gateway.dicom.print_scp.PrintSCP, which
gateway.app registers with PrintService.add_listener; this module imports nothing of gateway.dicom.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

log = logging.getLogger("gateway.print.reports")


class PrintJobListener(Protocol):
    """Who must be told of a print status change (PS3.4 H.4.2.1.4 Print Job, H.4.2.2.4 Printer).

    Both methods are called on a worker thread of the print domain (spooler, status monitor), in
    the order the changes happened, once per change; they must not block (no network I/O) and
    should not raise (an exception is logged and the others are still told)."""

    def on_job_status(self, uid: str, status: str, info: str) -> None:
        """Print Job `uid` (a UID string) is now `status` -- Execution Status PENDING / PRINTING /
        DONE / FAILURE (PS3.3 C.13.8.1) -- with Execution Status Info `info` (PS3.3 C.13.9.1
        defined terms: "QUEUED", "NORMAL", "PRINTER NOT READY", "QUEUE HELD", ...)."""

    def on_printer_status(self, status: str, info: str) -> None:
        """The printer is now `status` -- Printer Status NORMAL / WARNING / FAILURE (PS3.3
        C.13.9.1) -- with Printer Status Info `info` (defined terms, e.g. "SUPPLY EMPTY")."""


class PrintReports:
    """The listeners of one printer: a PrintJobListener that tells every registered one.

    Non-dropping by construction: a call is a direct call to each listener, not a queue.  Adding
    or removing a listener is thread-safe; a listener added during a call is told from the next
    call on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: list[PrintJobListener] = []

    def add(self, listener: PrintJobListener) -> None:
        with self._lock:
            if listener not in self._listeners:
                self._listeners.append(listener)

    def remove(self, listener: PrintJobListener) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _each(self) -> list[PrintJobListener]:
        with self._lock:
            return list(self._listeners)

    def on_job_status(self, uid: str, status: str, info: str) -> None:
        for listener in self._each():
            try:
                listener.on_job_status(uid, status, info)
            except Exception:  # noqa: BLE001 - one broken listener must not stop the spooler
                log.exception("print job %s: status %s not told to %r", uid, status, listener)

    def on_printer_status(self, status: str, info: str) -> None:
        for listener in self._each():
            try:
                listener.on_printer_status(status, info)
            except Exception:  # noqa: BLE001 - one broken listener must not stop the monitor
                log.exception("printer status %s not told to %r", status, listener)
