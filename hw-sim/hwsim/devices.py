"""hw-sim's simulators as device kinds the gateway can be configured with.

pyproject.toml names these factories in the ``dicom_gateway.devices`` entry-point group
(``printer.serial-sim``, ``printer.usb-sim``, ``media.optical-sim``, ``media.usb-sim``); drivers/registry.py finds them there, so the
gateway never imports hwsim, and ``kind = "serial-sim"`` in the config is all it takes to run on
simulated hardware.  Each factory returns the real driver's connection (drivers/printer/devices.py)
with the simulator put where the device would be: the real transport and language code run
unchanged.  The simulator lives in the gateway's process, started by ``start()`` and stopped by
``stop()``.  A printer simulator also watches its control folder ``print.printer.sim_dir``
(`hw-sim printer jam`, hwsim/printer_view.py) while it runs.

The simulator modules are imported in ``start()`` (printers) or in the factory (media), not here:
listing or validating kinds must not pull in pyusb's backend machinery.

Media drives (family ``media``, factory ``(name, cfg, resolve) -> MediaDrive``): the real
drivers/media drivers on a simulated drive's image file (hwsim/media.py), with the simulator as
``drive.simulator``; its control folder is ``<cfg.sim_dir>/<name>/`` (resolved like any config path).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

from drivers.printer.devices import SerialConnection, UsbConnection
from drivers.printer.interface import PrinterError, Transport

log = logging.getLogger("hwsim.devices")


def _out_dir(cfg: Any, resolve: Callable[[str], Path]) -> Path | None:
    """Where the simulator writes a PNG per film (none: films are only counted)."""
    return resolve(cfg.sim_out) if cfg.sim_out else None


class SerialSimConnection(SerialConnection):
    """The DRF/1 serial film imager on a loopback TCP port, reached through pyserial's socket://."""

    def __init__(self, cfg: Any, resolve: Callable[[str], Path]):
        # The URL is known once the imager listens (start()).
        super().__init__("", cfg.baudrate, cfg.flow_control)
        self.out_dir = _out_dir(cfg, resolve)
        self.films = cfg.sim_films
        self.control_dir = resolve(cfg.sim_dir)
        self.simulator = None

    def start(self) -> None:
        from hwsim.serial_imager import SerialFilmImager
        self.simulator = SerialFilmImager(out_dir=self.out_dir, films=self.films)
        self.url = self.simulator.start_tcp()
        self.simulator.watch_control(self.control_dir)
        log.info("simulated serial film imager at %s, films to %s", self.url, self.out_dir)

    def open(self) -> Transport:
        if self.simulator is None:
            raise PrinterError("the simulated serial film imager is not started")
        return super().open()

    def stop(self) -> None:
        if self.simulator is not None:
            self.simulator.stop()


class UsbSimConnection(UsbConnection):
    """The USB printer-class PostScript printer as a pyusb backend: the real UsbTransport finds
    it through ``backend`` exactly as it would find the device through libusb."""

    def __init__(self, cfg: Any, resolve: Callable[[str], Path]):
        super().__init__(cfg.vendor_id or None, cfg.product_id or None, backend=None)
        self.dpi = cfg.dpi
        self.out_dir = _out_dir(cfg, resolve)
        self.films = cfg.sim_films
        self.control_dir = resolve(cfg.sim_dir)

    def start(self) -> None:
        from hwsim.usb_printer import SimulatedUsbPrinter
        self.backend = SimulatedUsbPrinter(dpi=self.dpi, out_dir=self.out_dir, films=self.films)
        self.backend.watch_control(self.control_dir)
        log.info("simulated USB PostScript printer, films to %s", self.out_dir)

    def stop(self) -> None:
        if self.backend is not None:
            self.backend.stop_control()
        super().stop()

    @property
    def simulator(self):
        """The simulated device (its faults can be switched), None before start()."""
        return self.backend

    def open(self) -> Transport:
        # Without this, backend None would send the real transport looking for real hardware.
        if self.backend is None:
            raise PrinterError("the simulated USB printer is not started")
        return super().open()


def serial_sim_printer(cfg: Any, resolve: Callable[[str], Path]) -> SerialSimConnection:
    """Entry point ``printer.serial-sim``."""
    return SerialSimConnection(cfg, resolve)


def usb_sim_printer(cfg: Any, resolve: Callable[[str], Path]) -> UsbSimConnection:
    """Entry point ``printer.usb-sim``."""
    return UsbSimConnection(cfg, resolve)


def optical_sim_drive(name: str, cfg: Any, resolve: Callable[[str], Path]):
    """Entry point ``media.optical-sim``: the real OpticalDrive on a simulated drive's disc image
    (``stdio:<sim_dir>/<name>/disc.iso``); blank CD-R / DVD±R capacity from sim_cd_mb / sim_dvd_mb."""
    from hwsim.media import SimulatedOpticalDrive
    sim = SimulatedOpticalDrive(name, resolve(cfg.sim_dir) / name, cd_bytes=cfg.sim_cd_mb * 1_000_000,
                                dvd_bytes=cfg.sim_dvd_mb * 1_000_000)
    drive = sim.drive(cfg.timeout_s)
    drive.simulator = sim
    return drive


def usb_sim_drive(name: str, cfg: Any, resolve: Callable[[str], Path]):
    """Entry point ``media.usb-sim``: the real UsbDisk on a simulated port's FAT32 image
    (``<sim_dir>/<name>/stick.img``, sim_usb_mb a stick)."""
    from hwsim.media import SimulatedUsbPort
    sim = SimulatedUsbPort(name, resolve(cfg.sim_dir) / name, stick_bytes=cfg.sim_usb_mb * 1_000_000)
    drive = sim.drive(cfg.timeout_s)
    drive.simulator = sim
    return drive
