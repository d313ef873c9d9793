"""Media insertion and removal: udev block-device properties -> MediaEvent.

The classifier (``UdevClassifier.feed``) is the one piece both sources share: on the box a
pyudev Monitor on subsystem "block" (``UdevEventSource``) hands it each uevent's action and
properties; under hw-sim a simulated source hands it the properties a pyudev Device would have,
with DEVNAME pointing at the simulator's image file (hwsim/media.py).  So the code that decides
"a blank CD-R is in sr0" or "a vfat stick appeared" runs the same in both.

What udev says (systemd's cdrom_id and blkid builtins):
- optical: a "change" on the drive (DEVNAME=/dev/sr0, ID_CDROM=1).  A disc is in when
  ID_CDROM_MEDIA=1; ID_CDROM_MEDIA_STATE=blank for an empty writable disc; ID_CDROM_MEDIA_DVD* /
  ID_CDROM_MEDIA_BD* =1 name a DVD / BD, ID_CDROM_MEDIA_CD* a CD.  No ID_CDROM_MEDIA: tray empty.
- USB: "add" / "remove" of a block device with ID_BUS=usb; the file system's partition (or a
  partitionless stick's disk) carries ID_FS_TYPE (vfat, exfat...).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from drivers.media.interface import MediumKind

log = logging.getLogger("drivers.media.hotplug")

# File systems mtools writes (usb_disk.py): FAT12/16/32 all report "vfat".
USB_FILE_SYSTEMS = {"vfat", "msdos"}


@dataclass(frozen=True)
class MediaEvent:
    """A medium arrived in or left a configured drive.  ``kind`` None on a removal; ``blank``
    None when udev cannot tell (a stick: only its file listing can); ``devname`` the device node
    (or the simulator's image file)."""
    action: Literal["inserted", "removed"]
    drive: str
    kind: MediumKind | None
    blank: bool | None
    devname: str


def _on(props: Mapping[str, str], key: str) -> bool:
    return props.get(key, "") == "1"


def classify(action: str, props: Mapping[str, str], optical: Mapping[str, str],
             usb: str | None) -> MediaEvent | None:
    """One uevent -> a MediaEvent, or None when it is not about a configured drive's medium.

    ``action``: udev's "add" / "change" / "remove"; ``props``: the device's properties (DEVNAME,
    ID_BUS, ID_CDROM_MEDIA, ID_CDROM_MEDIA_STATE, ID_FS_TYPE, DEVTYPE...); ``optical``: device node
    -> drive name of the configured optical drives; ``usb``: the drive name sticks go to (None:
    no USB drive configured)."""
    devname = props.get("DEVNAME", "")
    if devname in optical:
        drive = optical[devname]
        if action == "remove" or not _on(props, "ID_CDROM_MEDIA"):
            return MediaEvent("removed", drive, None, None, devname)
        if any(_on(props, k) for k in props if k.startswith(("ID_CDROM_MEDIA_DVD", "ID_CDROM_MEDIA_BD"))):
            kind = MediumKind.DVD
        else:
            kind = MediumKind.CD
        return MediaEvent("inserted", drive, kind, props.get("ID_CDROM_MEDIA_STATE") == "blank", devname)
    if usb is None or props.get("ID_BUS") != "usb" or _on(props, "ID_CDROM"):
        return None
    if action == "remove":
        # A stick's disk and its partitions each go; the file-system one is what was attached.
        if props.get("ID_FS_TYPE", "") in USB_FILE_SYSTEMS:
            return MediaEvent("removed", usb, None, None, devname)
        return None
    if action == "add" and props.get("ID_FS_TYPE", "") in USB_FILE_SYSTEMS:
        return MediaEvent("inserted", usb, MediumKind.USB, None, devname)
    return None


class UdevClassifier:
    """The seam: whatever delivers uevents calls ``feed``; the events go to ``on_event``.
    ``optical``: device node -> drive name; ``usb``: the drive sticks go to (or None)."""

    def __init__(self, optical: Mapping[str, str], usb: str | None):
        self.optical = dict(optical)
        self.usb = usb
        self._on_event: Callable[[MediaEvent], None] | None = None

    def start(self, on_event: Callable[[MediaEvent], None]) -> None:
        """Begin delivering events to ``on_event`` (called from the source's thread)."""
        self._on_event = on_event

    def stop(self) -> None:
        """Stop delivering events."""
        self._on_event = None

    def feed(self, action: str, props: Mapping[str, str]) -> MediaEvent | None:
        """Classify one uevent and deliver it; returns the event (None: not ours)."""
        event = classify(action, props, self.optical, self.usb)
        if event is not None:
            log.info("media %s: drive %s (%s)", event.action, event.drive, event.devname)
            callback = self._on_event
            if callback is not None:
                callback(event)
        return event


class UdevEventSource(UdevClassifier):
    """The box's source: a pyudev Monitor on subsystem "block" watched by a MonitorObserver
    thread.  ``start`` first reports what is already in the drives (a stick plugged in before
    boot), then every uevent.  Needs a readable udev netlink socket (no root needed)."""

    def __init__(self, optical: Mapping[str, str], usb: str | None):
        super().__init__(optical, usb)
        self._observer = None
        self._lock = threading.Lock()

    def start(self, on_event: Callable[[MediaEvent], None]) -> None:
        import pyudev  # only a box with real drives needs it
        super().start(on_event)
        context = pyudev.Context()
        for device in context.list_devices(subsystem="block"):
            props = dict(device.properties)
            self.feed("add" if props.get("ID_BUS") == "usb" else "change", props)
        monitor = pyudev.Monitor.from_netlink(context)
        monitor.filter_by(subsystem="block")

        def deliver(device) -> None:
            self.feed(device.action or "change", dict(device.properties))

        with self._lock:
            self._observer = pyudev.MonitorObserver(monitor, callback=deliver, name="media-udev")
            self._observer.start()

    def stop(self) -> None:
        super().stop()
        with self._lock:
            if self._observer is not None:
                self._observer.stop()
                self._observer = None
