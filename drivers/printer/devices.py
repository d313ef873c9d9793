"""The printer families in the device registry (drivers/registry.py), and their real kinds.

Family ``printer``: a factory ``(cfg, resolve) -> Connection``.  ``cfg`` is the config's printer
section (read by attribute: url, baudrate, flow_control, vendor_id, product_id, folder, language,
dpi, sim_out, sim_films; drivers/ never imports gateway/, so it is not typed here), ``resolve``
turns a config path into an absolute one.  A Connection is how the gateway reaches a printer of
that kind: ``start()`` once before the first use (a simulator starts its device there),
``open()`` for a fresh transport each time the driver (re)opens the link, ``stop()`` at the end.

Family ``printer-language``: a factory ``(cfg, connection) -> PrinterLanguage``, so a language can
fit the channel (PostScript goes binary only where every byte value arrives).

hw-sim's ``serial-sim`` and ``usb-sim`` build on SerialConnection and UsbConnection from its own
package (hwsim/devices.py), registered through entry points, never from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from drivers.printer.interface import Transport


class Connection:
    """How a printer of one kind is reached; the base starts and stops nothing."""

    # Every byte value arrives unchanged (USB bulk, a file): binary PostScript is safe.
    eight_bit_clean = False

    def start(self) -> None:
        """Called once before the first open."""

    def open(self) -> Transport:
        """A new transport to the printer; raises PrinterError when it cannot be reached."""
        raise NotImplementedError

    def stop(self) -> None:
        """Called once at the end, after the last transport was closed."""


class SerialConnection(Connection):
    """A serial line: a device path or a pyserial URL (socket://, rfc2217://)."""

    def __init__(self, url: str, baudrate: int = 115200, flow_control: str = "none"):
        self.url = url
        self.baudrate = baudrate
        self.flow_control = flow_control

    def open(self) -> Transport:
        # Imported here: pyserial is only needed by a box that has a serial printer.
        from drivers.printer.transport_serial import SerialTransport
        return SerialTransport(self.url, baudrate=self.baudrate, flow_control=self.flow_control)


class UsbConnection(Connection):
    """A USB printer-class device; ``backend`` None is pyusb's platform backend (libusb)."""

    eight_bit_clean = True

    def __init__(self, vendor_id: int | None = None, product_id: int | None = None, backend=None):
        self.vendor_id = vendor_id
        self.product_id = product_id
        self.backend = backend

    def open(self) -> Transport:
        from drivers.printer.transport_usb import UsbTransport
        return UsbTransport(self.vendor_id, self.product_id, backend=self.backend)


class FileConnection(Connection):
    """A folder each job is written to, as one file."""

    eight_bit_clean = True

    def __init__(self, folder: Path, suffix: str):
        self.folder = folder
        self.suffix = suffix

    def open(self) -> Transport:
        from drivers.printer.transport_file import FileTransport
        return FileTransport(self.folder, suffix=self.suffix)


def serial_printer(cfg: Any, resolve: Callable[[str], Path]) -> SerialConnection:
    return SerialConnection(cfg.url, cfg.baudrate, cfg.flow_control)


def usb_printer(cfg: Any, resolve: Callable[[str], Path]) -> UsbConnection:
    # 0 in the config: any printer-class device (the first found).
    return UsbConnection(cfg.vendor_id or None, cfg.product_id or None)


def file_printer(cfg: Any, resolve: Callable[[str], Path]) -> FileConnection:
    return FileConnection(resolve(cfg.folder), ".ps" if cfg.language == "postscript" else ".drf")


def postscript_language(cfg: Any, connection: Connection):
    from drivers.printer.postscript import PostScriptLanguage
    return PostScriptLanguage(binary=connection.eight_bit_clean)


def raster_language(cfg: Any, connection: Connection):
    from drivers.printer.raster import RasterLanguage
    # XON/XOFF flow control would swallow 0x11/0x13 in the film's bytes: escape them.
    return RasterLanguage(escaped=cfg.flow_control == "xonxoff", print_timeout=cfg.print_timeout_s)


def register(registry) -> None:
    """drivers/registry.py calls this the first time a printer family is asked about."""
    registry.register("printer", "serial", serial_printer)
    registry.register("printer", "usb", usb_printer)
    registry.register("printer", "file", file_printer)
    registry.register("printer-language", "postscript", postscript_language)
    registry.register("printer-language", "raster", raster_language)
