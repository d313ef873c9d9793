"""The print side of the appliance, put together: printer device, spool, status monitor, control path.

app.Gateway builds one when `[print] enabled = true`, builds the Print SCP over it
(gateway.dicom.print_scp.PrintSCP(service, config)), registers that as the service's
PrintJobListener and hands the SCP's handlers, presentation contexts and AE title to the listener.
"""

from __future__ import annotations

import logging
import time

from gateway.buffer.ingest import Buffer
from gateway.config import LoadedConfig
from gateway.events import EventBus
from gateway.print.device import PrinterDevice
from gateway.print.printer_status import PrinterStatusMonitor
from gateway.print.reports import PrintJobListener, PrintReports
from gateway.print.spooler import Spooler
from gateway.print.store import PRINT, PrintStore

log = logging.getLogger("gateway.print")


class PrintService:
    """The one printer's print domain: `device` (PrinterDevice), `store` (PrintStore), `monitor`
    (PrinterStatusMonitor), `spooler` (Spooler) and `reports` (PrintReports, the control path they
    tell).  No DIMSE: the Print SCP is built by app.py over this service and added with
    `add_listener`.  start() removes the films of unanswered N-ACTIONs and starts device, monitor
    and spooler; stop() stops them in the reverse order."""

    def __init__(self, loaded: LoadedConfig, buffer: Buffer, events: EventBus):
        self.profile = p = loaded.config.print
        self.events = events
        self.device = PrinterDevice(p, loaded.resolve)
        self.store = PrintStore(buffer.files.root, buffer.index, buffer.queue, p.name)
        # The control path (gateway.print.reports): status changes to the listeners, not the bus.
        self.reports = PrintReports()
        self.monitor = PrinterStatusMonitor(self.device, events, p.poll_interval_s, on_ready=self._printer_ready,
                                            reports=self.reports)
        self.spooler = Spooler(p, self.store, self.device, events, reports=self.reports,
                               printer_seen=self.monitor.observe)

    def add_listener(self, listener: PrintJobListener) -> None:
        """Tell `listener` of every Print Job and Printer status change from now on (the control
        path, gateway.print.reports; app.py registers the Print SCP here)."""
        self.reports.add(listener)

    def _printer_ready(self) -> None:
        """Films that waited for the printer (backoff up to print.retry_max_s) are due now."""
        woken = self.store.queue.make_due(PRINT, self.profile.name, later_than=time.time())
        if woken:  # make_due has woken the spooler
            log.info("printer ready: %d waiting film(s) due now", woken)

    def start(self) -> None:
        orphans = self.store.remove_orphans()
        if orphans:
            log.info("print spool: %d unanswered print jobs' films removed", orphans)
        self.device.start()
        self.monitor.start()
        self.spooler.start()
        log.info("print SCP: printer %s (%s, %s, %g dpi%s)", self.profile.name, self.profile.printer.kind,
                 self.profile.printer.language, self.profile.printer.dpi,
                 ", colour" if self.profile.printer.color else "")

    def stop(self) -> None:
        self.spooler.stop()
        self.monitor.stop()
        self.device.stop()
