"""`[media]`: the removable-media drives (issue 8 item 3).  Drives only for now; the export rules and
the import settings come with the export worker.

    [media.drives.cd]
    kind = "optical-sim"          # optical | usb (drivers/), optical-sim | usb-sim (hw-sim)
    [media.drives.stick]
    kind = "usb"
    device = ""                   # "" = the stick udev reports; or a fixed partition "/dev/sdb1"

`kind` is any kind of the device registry's ``media`` family (drivers/registry.py), checked the way
`print.printer.kind` is: the registry decides, so hw-sim's kinds are valid without this file
naming them.  This module imports the registry (drivers/, a floor below) and config/base only.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, model_validator

from drivers.registry import RegistryError, kinds, unknown_kind_message
from gateway.config.base import FloatRange, IntRange, Section

_NAME_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


def _media_kind(value: str) -> str:
    try:
        known = kinds("media")
    except RegistryError as exc:  # a package's broken declaration: one line, not a traceback
        raise ValueError(str(exc)) from None
    if value not in known:
        raise ValueError(unknown_kind_message("media", value, known))
    return value


class MediaDrive(Section):
    """One drive.  ``device``: the optical drive's node (/dev/sr0, required for kind optical) or a
    USB stick's fixed partition ("" = whichever stick udev reports).  The simulators keep their
    images and their control folder in ``<sim_dir>/<drive name>/`` (relative paths resolve against
    the state directory, as every config path) and report blank discs of ``sim_cd_mb`` /
    ``sim_dvd_mb`` and sticks of ``sim_usb_mb`` megabytes (10^6 bytes).  ``timeout_s`` bounds one
    burn, copy or read-back."""
    kind: Annotated[str, AfterValidator(_media_kind)]
    device: str = ""
    timeout_s: FloatRange(gt=0, le=24 * 3600) = 3600.0
    sim_dir: str = "hw-sim/media"
    sim_cd_mb: IntRange(1, 900) = 700
    sim_dvd_mb: IntRange(1, 9400) = 4700
    # FAT32 needs 65525 clusters: at 512-byte clusters, about 34 MB.
    sim_usb_mb: IntRange(34, 65536) = 64

    @model_validator(mode="after")
    def _where(self) -> "MediaDrive":
        if self.kind == "optical" and not self.device:
            raise ValueError("device is required for an optical drive (e.g. \"/dev/sr0\")")
        if self.device and not self.device.startswith("/dev/"):
            raise ValueError(f"device {self.device!r} must be a device node under /dev/")
        return self


class MediaSection(Section):
    """The drives by name (1-32 of letters, digits, '-', '_'; the name the CLI and events use)."""
    drives: dict[str, MediaDrive] = {}

    @model_validator(mode="after")
    def _consistent(self) -> "MediaSection":
        problems = []
        devices: dict[str, str] = {}
        usb_hotplug = []
        for name, drive in self.drives.items():
            if not _NAME_RE.match(name):
                problems.append(f"drives.{name}: a drive name is 1-32 letters, digits, '-' or '_'")
            if drive.device:
                if drive.device in devices:
                    problems.append(f"drives.{name}.device: {drive.device} is also drives.{devices[drive.device]}")
                devices.setdefault(drive.device, name)
            elif drive.kind == "usb":
                usb_hotplug.append(name)
        # udev names no port a stick came through: two hotplug USB drives could not tell theirs.
        if len(usb_hotplug) > 1:
            problems.append(f"drives: {', '.join(usb_hotplug)} are all usb drives without a device: at most "
                            f"one may take whichever stick is plugged in")
        if problems:
            raise ValueError("; ".join(problems))
        return self
