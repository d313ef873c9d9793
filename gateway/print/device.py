"""The attached printer as the spooler and the status poller share it.

One lock around every conversation with the device (a status query must never interleave with a
film's bytes on a serial line).  The driver is opened lazily and reopened after a transport error,
so a printer that is switched off at start-up, or unplugged and plugged back, is picked up again.

The config's `print.printer.kind` and `language` are looked up in the device registry
(drivers/registry.py): drivers/ registers the real kinds, hw-sim its simulators through entry
points, so nothing here knows one kind from another.  For the `-sim` kinds the connection's
start() runs the hw-sim device in the gateway's process and the real driver talks to it
(../shared/PEERS.md: the simulator sits under the real driver).
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

from drivers import registry
from drivers.printer.interface import DeviceStatus, Printer, PrinterError, PrinterNotReady, PrintJob

from gateway.print.profile import PrintSection

log = logging.getLogger("gateway.print.device")

_FILMS_LEFT = re.compile(r"(\d+) films left")


def films_left(status: DeviceStatus | None) -> int | None:
    """The supply counter a DRF/1 imager reports (None when the device has none)."""
    m = _FILMS_LEFT.search(status.detail) if status is not None else None
    return int(m.group(1)) if m else None


class PrinterDevice:
    """The configured printer: its kind's connection from the registry, the driver over it."""

    def __init__(self, profile: PrintSection, resolve=lambda p: Path(p)):
        self.profile = profile
        self.cfg = profile.printer
        self.resolve = resolve
        self.lock = threading.RLock()
        self._printer: Printer | None = None
        # Built now so that a kind that does not load fails at start-up, not at the first film.
        self.connection = registry.create("printer", self.cfg.kind, self.cfg, resolve)

    def start(self) -> None:
        """Bring the connection up (a simulated kind starts its device here)."""
        self.connection.start()

    def stop(self) -> None:
        with self.lock:
            self._close()
        self.connection.stop()

    # -- the driver -----------------------------------------------------------------------------
    def _open(self) -> Printer:
        if self._printer is None:
            # The language first: nothing to close if it cannot be made.
            language = registry.create("printer-language", self.cfg.language, self.cfg, self.connection)
            self._printer = Printer(self.connection.open(), language)
        return self._printer

    def _close(self) -> None:
        if self._printer is not None:
            try:
                self._printer.close()
            except Exception:  # noqa: BLE001 - closing a broken link must not mask the cause
                pass
            self._printer = None

    def status(self) -> DeviceStatus | None:
        """The device's status, None when it cannot be reached at all (PRINTER DOWN)."""
        with self.lock:
            try:
                return self._open().status()
            except PrinterError as exc:
                log.debug("printer status: %s", exc)
                self._close()
                return None

    def try_status(self) -> tuple[bool, DeviceStatus | None]:
        """(asked, status) without waiting while a film is being sent."""
        if not self.lock.acquire(blocking=False):
            return False, None
        try:
            return True, self.status()
        finally:
            self.lock.release()

    def print_film(self, job: PrintJob) -> DeviceStatus:
        """Caller holds `lock`.  Raises PrinterNotReady (device says: not printed) or PrinterError
        (link lost: the outcome is unknown)."""
        try:
            return self._open().print_film(job)
        except PrinterError as exc:
            if not isinstance(exc, PrinterNotReady):
                self._close()
            raise
