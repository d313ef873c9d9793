"""The attached printer as the spooler and the status poller share it.

One lock around every conversation with the device (a status query must never interleave with a
film's bytes on a serial line).  The driver is opened lazily and reopened after a transport error,
so a printer that is switched off at start-up, or unplugged and plugged back, is picked up again.
For the `-sim` kinds the hw-sim device is started here, in the gateway's process, and the real
driver talks to it (PEERS.md: the simulator sits under the real driver).
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

from drivers.printer.interface import DeviceStatus, Printer, PrinterError, PrintJob

from gateway.print.profile import PrintSection

log = logging.getLogger("gateway.print.device")

_FILMS_LEFT = re.compile(r"(\d+) films left")


def films_left(status: DeviceStatus | None) -> int | None:
    """The supply counter a DRF/1 imager reports (None when the device has none)."""
    m = _FILMS_LEFT.search(status.detail) if status is not None else None
    return int(m.group(1)) if m else None


class PrinterDevice:
    def __init__(self, profile: PrintSection, resolve=lambda p: Path(p)):
        self.profile = profile
        self.cfg = profile.printer
        self.resolve = resolve
        self.lock = threading.RLock()
        self._printer: Printer | None = None
        self.simulator = None
        self.sim_url: str | None = None

    # -- simulators -----------------------------------------------------------------------------
    def start_simulator(self) -> None:
        out = self.resolve(self.cfg.sim_out) if self.cfg.sim_out else None
        if self.cfg.kind == "serial-sim":
            from hwsim.serial_imager import SerialFilmImager
            self.simulator = SerialFilmImager(out_dir=out, films=self.cfg.sim_films)
            self.sim_url = self.simulator.start_tcp()
            log.info("simulated serial film imager at %s, films to %s", self.sim_url, out)
        elif self.cfg.kind == "usb-sim":
            from hwsim.usb_printer import SimulatedUsbPrinter
            self.simulator = SimulatedUsbPrinter(dpi=self.cfg.dpi, out_dir=out, films=self.cfg.sim_films)
            log.info("simulated USB PostScript printer, films to %s", out)

    def stop(self) -> None:
        with self.lock:
            self._close()
        if self.simulator is not None and hasattr(self.simulator, "stop"):
            self.simulator.stop()

    # -- the driver -----------------------------------------------------------------------------
    def _language(self):
        if self.cfg.language == "postscript":
            from drivers.printer.postscript import PostScriptLanguage
            binary = self.cfg.kind in ("usb", "usb-sim", "file")
            return PostScriptLanguage(binary=binary)
        from drivers.printer.raster import RasterLanguage
        return RasterLanguage(escaped=self.cfg.flow_control == "xonxoff",
                              print_timeout=self.cfg.print_timeout_s)

    def _transport(self):
        kind = self.cfg.kind
        if kind in ("serial", "serial-sim"):
            from drivers.printer.transport_serial import SerialTransport
            url = self.sim_url if kind == "serial-sim" else self.cfg.url
            return SerialTransport(url, baudrate=self.cfg.baudrate, flow_control=self.cfg.flow_control)
        if kind in ("usb", "usb-sim"):
            from drivers.printer.transport_usb import UsbTransport
            return UsbTransport(self.cfg.vendor_id or None, self.cfg.product_id or None,
                                backend=self.simulator if kind == "usb-sim" else None)
        from drivers.printer.transport_file import FileTransport
        folder = self.resolve(self.cfg.folder)
        return FileTransport(folder, suffix=".ps" if self.cfg.language == "postscript" else ".drf")

    def _open(self) -> Printer:
        if self._printer is None:
            self._printer = Printer(self._transport(), self._language())
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
            from drivers.printer.interface import PrinterNotReady
            if not isinstance(exc, PrinterNotReady):
                self._close()
            raise
