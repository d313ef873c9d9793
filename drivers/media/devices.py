"""The ``media`` family in the device registry (drivers/registry.py), and its real kinds.

A factory ``(name, cfg, resolve) -> MediaDrive`` (drivers/media/interface.py): ``name`` is the
drive's name in the config ([media.drives.<name>]), ``cfg`` that table (read by attribute:
device, timeout_s, and the sim_* options the simulators use; drivers/ never imports gateway/),
``resolve`` turns a config path into an absolute one.  Every drive it returns also has
``events``: a hotplug source (``start(on_event)``, ``stop()``, drivers/media/hotplug.py) that
reports media inserted into and removed from that drive.

Kinds here: ``optical`` (``device = "/dev/sr0"``) and ``usb`` (``device = ""``: whichever stick
udev reports; or a fixed partition such as "/dev/sdb1").  hw-sim's ``optical-sim`` and ``usb-sim``
come from its entry points (hwsim/media.py), never from here.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from drivers.media.hotplug import MediaEvent, UdevEventSource
from drivers.media.optical import OpticalDrive
from drivers.media.usb_disk import UsbDisk


class TrackedEvents:
    """A drive's hotplug source that first tells a USB drive where its stick is (``attach`` /
    ``detach``), then the listener."""

    def __init__(self, source: Any, disk: UsbDisk):
        self.source = source
        self.disk = disk

    def start(self, on_event: Callable[[MediaEvent], None]) -> None:
        """Start the source; each event updates the disk, then goes to ``on_event``."""
        def track(event: MediaEvent) -> None:
            if event.action == "inserted":
                self.disk.attach(event.devname)
            else:
                self.disk.detach()
            on_event(event)
        self.source.start(track)

    def stop(self) -> None:
        """Stop the source."""
        self.source.stop()


def optical_drive(name: str, cfg: Any, resolve: Callable[[str], Path]) -> OpticalDrive:
    """Kind ``optical``: a CD/DVD writer at ``cfg.device`` (/dev/srN), events from udev."""
    drive = OpticalDrive(name, cfg.device, timeout_s=cfg.timeout_s)
    drive.events = UdevEventSource({cfg.device: name}, None)
    return drive


def usb_drive(name: str, cfg: Any, resolve: Callable[[str], Path]) -> UsbDisk:
    """Kind ``usb``: the FAT partition of a USB stick, found by udev (or fixed by ``cfg.device``)."""
    disk = UsbDisk(name, cfg.device or None, timeout_s=cfg.timeout_s)
    disk.events = TrackedEvents(UdevEventSource({}, name), disk)
    return disk


def register(registry) -> None:
    """drivers/registry.py calls this the first time the media family is asked about."""
    registry.register("media", "optical", optical_drive)
    registry.register("media", "usb", usb_drive)
