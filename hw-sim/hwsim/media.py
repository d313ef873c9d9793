"""A simulated optical drive and a simulated USB port, under the real media drivers.

Each simulated drive owns a folder ``<sim_dir>/<drive name>/``:

  drive.json   {"drive": name, "type": "optical" | "usb"}: written at start, read by `hw-sim media`
  disc.iso     the optical drive's disc (absent: tray empty; empty file: a blank disc; else an ISO)
  stick.img    the USB port's stick (absent: nothing plugged in; else a FAT image)
  state.json   what is in the drive and which faults are armed; rewritten after every change
  ejected/     what the drive gave back when the gateway ejected it (a burned disc, a written
               stick), named <time>-<ns>-disc.iso / -stick.img, the last KEEP_EJECTED of them: the
               medium a user would now hold, to look at (`xorriso -indev`, `mdir -i`)
  pulled/      a medium pulled mid-write by the "pull" fault, named as in ejected/: half-written
  commands/    `hw-sim media ...` drops one JSON command file here; the simulator's watcher thread
               applies it, writes ``results/<same name>`` ({"ok": bool, "error": str}) and
               deletes the command.  So another terminal drives the simulator living inside the
               service, with nothing but files (no socket, no root).

The real driver runs on the image: drivers/media/optical.OpticalDrive with ``stdio:<disc.iso>``
(xorriso's same command line as for /dev/sr0), drivers/media/usb_disk.UsbDisk with ``stick.img``
(mtools, as on /dev/sdb1).  Insertion and removal reach the gateway through the driver's own
udev classifier (drivers/media/hotplug.UdevClassifier.feed) with the properties a pyudev Device
would carry, DEVNAME pointing at the image.

Faults, armed at run time (``fault(kind, at)``, `hw-sim media fault DRIVE KIND`), each fires once:

  pull         the medium is pulled in the middle of the write: the writer has put part of the
               file-set on it when the device fails under it, then the medium is gone (kept in
               pulled/ as <time>-disc.iso / <time>-stick.img: the half-written medium the user holds)
  full         optical: the disc in the tray reports 64 KiB of space (until it is taken out); USB:
               the stick fills up as the copy starts, so mcopy runs out of clusters partway
  write-error  the device fails under the writer in the middle of the write; the half-written
               medium stays in the drive (a ruined CD-R, a stick holding part of the file-set)
  read-only    USB: the stick's lock switch (the image loses its write bits, "clear" gives them
               back); optical: refused
  bad-sector   after writing, bytes of the first written file are corrupted in the image, so
               read-back finds them (an unreadable sector surfacing as wrong data)

Where a mid-write fault (pull, write-error) strikes: ``at`` (0 < at < 1, default 0.5) of the
file-set's file bytes.  Optical: while xorriso burns, ``disc.iso`` is a FIFO that the simulator
drains into the disc; after the ISO's 32 KiB system area and ``at`` of the files' bytes it stops
reading and closes it, so xorriso's next write(2) fails (EPIPE, "libburn indicates failure with
writing") in the middle of the stream; the ISO is always longer than that (the files' bytes, the
directory records and xorriso's 300 KiB padding), so the cut is always inside the burn.  USB:
mtools needs a seekable image, so the cut falls between two of the driver's mtools calls: after
the copy that brings the files written to ``at`` of their bytes (the driver's "copied" hook), the
stick image turns into /dev/full (write-error: the next mcopy reads no FAT and fails) or is taken
away (pull); whole files are on the stick, others are not, the label is not set.

The simulated box's page (gateway/status/views.py) sees each drive as a view named after it: its
state as last published (every change publishes and tells the view's listeners), "insert" (blank,
or with the sample study of hwsim/samples.py) and "pull".

The drivers call ``hook(phase, mapping)`` at "writing", "copied" (USB, after each mtools copy,
with the files copied so far), "written", "verifying" and "eject": the moments a real device's
hardware would act.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import select
import re
import stat
import subprocess
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drivers.media.hotplug import MediaEvent, UdevClassifier
from drivers.media.interface import CD_700_BYTES, DVD_BYTES, MediumKind
from drivers.media.optical import OpticalDrive
from drivers.media.usb_disk import UsbDisk
from hwsim import control_folder
from hwsim.control_folder import POLL_S, SimError, serve_pending, write_json as _write_json

log = logging.getLogger("hwsim.media")

FAULTS = ("pull", "full", "write-error", "read-only", "bad-sector")
MID_WRITE = ("pull", "write-error")
KEEP_EJECTED = 10
# ECMA-119 6.2.1: the system area, 16 sectors of 2048 bytes, precedes everything an ISO holds.
ISO_SYSTEM_AREA = 16 * 2048




class SimulatedDrive:
    """What both simulated drives share: the folder, the armed faults, the command watcher and the
    simulated udev source (``events``, a drivers.media.hotplug.UdevClassifier)."""

    type = ""
    image_name = ""
    # The simulated box's page (gateway/status/views.py): one view per drive, named as the drive.
    view_kind = "drive"

    def __init__(self, name: str, folder: Path):
        self.name = name
        self._view_listeners: list = []
        self._published: dict | None = None
        self.folder = Path(folder)
        self.image = self.folder / self.image_name
        self.faults: set[str] = set()
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.events = _ColdplugSource(self)
        self._spare: Path | None = None
        # Where a mid-write fault strikes (fraction of the file bytes); the file bytes of the
        # write in progress; whether the armed mid-write fault struck during it.
        self.cut_at = 0.5
        self._total = 0
        self._struck: str | None = None

    def _optical_map(self) -> dict[str, str]:
        return {}

    def _usb_name(self) -> str | None:
        return None

    # -- state and control -------------------------------------------------------------------------
    def start(self) -> None:
        """Create the folder, publish drive.json and state.json, watch commands/."""
        control_folder.prepare(self.folder)
        self._settle_interrupted()
        _write_json(self.folder / "drive.json", {"drive": self.name, "type": self.type})
        self._publish()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name=f"hwsim-media-{self.name}", daemon=True)
        self._thread.start()

    def _settle_interrupted(self) -> None:
        """A write with a mid-write fault that the service's death interrupted (kill -9, power
        cut) left the device half-way: a FIFO or /dev/full where the image was, the medium
        beside it.  The medium goes back in the drive as the writer left it (half-written)."""
        for spare in (self.image.with_name(self.image.name + ".burning"),
                      self.image.with_name(self.image.name + ".failing")):
            if spare.is_file():
                if self.image.is_symlink() or (self.image.exists() and not self.image.is_file()):
                    self.image.unlink()
                if not self.image.exists():
                    os.replace(spare, self.image)
                    log.info("drive %s: a write was interrupted; the medium stays as it was left", self.name)

    def stop(self) -> None:
        """Stop watching commands/ (the medium stays, as in a drive when the box powers off)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def state(self) -> dict:
        """{"drive", "type", "medium": None | {"kind", "blank"}, "faults": [...]}."""
        return {"drive": self.name, "type": self.type, "medium": self._medium_state(),
                "faults": sorted(self.faults)}

    def _medium_state(self) -> dict | None:
        raise NotImplementedError

    def _publish(self) -> None:
        state = self.state()
        _write_json(self.folder / "state.json", state)
        self._published = state
        for listener in list(self._view_listeners):
            try:
                listener()
            except Exception:  # noqa: BLE001 - a page's listener must not break the drive
                log.exception("hw-sim drive %s: a listener failed", self.name)

    # -- the simulated box's page (gateway/status/views.py) --------------------------------------
    @property
    def view_name(self) -> str:
        return self.name

    def view_state(self) -> dict:
        """state() as last published: the page reads no image (a USB stick's mdir) between changes."""
        return self._published if self._published is not None else self.state()

    view_action_args = {"insert": ("medium", "data")}

    def view_actions(self) -> list[str]:
        """"insert" ({"medium": "cd"|"dvd"|"usb", "data": bool}) and "pull"."""
        return ["insert", "pull"]

    def view_act(self, action: str, args: Mapping[str, Any] | None = None) -> str:
        """Insert a blank medium or one holding the sample study (hwsim/samples.py), or pull the
        medium; returns "<drive>: <what it holds>". ValueError (one line) when refused."""
        args = args or {}
        try:
            if action == "insert":
                medium = str(args.get("medium") or ("usb" if self.type == "usb" else "cd"))
                source = None
                if args.get("data"):
                    from hwsim.samples import sample_folder  # noqa: PLC0415 - pydicom only when asked
                    source = sample_folder(self.folder / "sample-study")
                self.insert(medium, source)
            elif action == "pull":
                self.pull()
            else:
                raise SimError(f"drive {self.name}: unknown action {action!r} (insert or pull)")
        except SimError as exc:
            raise ValueError(str(exc)) from None
        medium = self.view_state().get("medium")
        held = "empty" if medium is None else f"{medium['kind']} {'blank' if medium.get('blank') else 'with data'}"
        return f"{self.name}: {held}"

    def view_subscribe(self, listener) -> None:
        """listener() after every change of what the drive holds or its faults."""
        self._view_listeners.append(listener)

    def fault(self, kind: str, at: float | None = None) -> None:
        """Arm a fault (FAULTS) or "clear" all of them.  ``at``: for pull and write-error, where
        in the write the device fails, as a fraction 0 < at < 1 of the file-set's file bytes
        (None: 0.5).  SimError for an unknown fault or a bad ``at``."""
        with self._lock:
            if at is not None:
                if kind not in MID_WRITE:
                    raise SimError(f"only {' and '.join(MID_WRITE)} strike at a point of the write, not {kind!r}")
                if not isinstance(at, (int, float)) or isinstance(at, bool) or not 0 < at < 1:
                    raise SimError(f"at must be a fraction of the write between 0 and 1, not {at!r}")
            if kind == "clear":
                self._clear()
            elif kind not in FAULTS:
                raise SimError(f"unknown fault {kind!r}: one of {', '.join(FAULTS)} or clear")
            else:
                self._arm(kind)
                if kind in MID_WRITE:
                    self.cut_at = 0.5 if at is None else float(at)
            self._publish()

    def _arm(self, kind: str) -> None:
        self.faults.add(kind)

    def _clear(self) -> None:
        self.faults.clear()

    def apply(self, command: Mapping[str, Any]) -> None:
        """One control command: {"verb": "insert", "medium": "cd"|"dvd"|"usb", "from": DIR|None},
        {"verb": "pull"}, {"verb": "fault", "kind": K, "at": F (optional)}.  SimError when refused."""
        verb = command.get("verb")
        if verb == "insert":
            self.insert(command.get("medium", ""), Path(command["from"]) if command.get("from") else None)
        elif verb == "pull":
            self.pull()
        elif verb == "fault":
            self.fault(command.get("kind", ""), command.get("at"))
        else:
            raise SimError(f"unknown command {verb!r}")

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            serve_pending(self.folder, self.apply, self.state, (SimError, ValueError, OSError, KeyError))

    def _under(self, driver):
        """The real `driver`, sitting on this simulator: its hotplug events are the simulator's,
        and its start/stop start and stop the simulator (the factory's contract, drivers/media/
        devices.py)."""
        driver.events = self.events
        driver.start = self.start
        driver.stop = self.stop
        return driver

    # -- the device's moments --------------------------------------------------------------------
    def hook(self, phase: str, mapping) -> None:
        """Called by the real driver (its ``hook``) at "writing", "copied" (USB: after each mtools
        copy, ``mapping`` the files copied so far), "written", "verifying", "eject"."""
        with self._lock:
            if phase == "writing":
                self._struck = None
                self._total = sum(os.stat(src).st_size for _, src in mapping)
                self._writing(mapping)
                if self.image.is_file() and any(f in self.faults for f in MID_WRITE):
                    self._arm_cut()
            elif phase == "copied":
                self._copied(mapping)
            elif phase == "written":
                self._finish_cut()
                if self._struck is not None:
                    self.faults.discard(self._struck)
                    if self._struck == "pull" and self.image.exists():
                        self._remove(keep_in="pulled")
                if "bad-sector" in self.faults and mapping and self.image.is_file():
                    self.faults.discard("bad-sector")
                    corrupt_first_file(self.image, mapping)
            elif phase == "eject":
                self._remove(keep_in="ejected")
            self._publish()

    def _armed_mid_write(self) -> str | None:
        return next((f for f in MID_WRITE if f in self.faults), None)

    def _writing(self, mapping) -> None:
        """What the medium does as a write starts (the USB stick filling up)."""

    def _arm_cut(self) -> None:
        """A mid-write fault is armed and a write starts: set the device up to fail under it."""

    def _copied(self, copied) -> None:
        """The writer finished one copy of several (USB): the device may fail now."""

    def _finish_cut(self) -> None:
        """The write ended (cut or not): the medium is what the device left of it."""

    def _remove(self, keep_in: str | None = None) -> None:
        """The medium leaves the drive.  ``keep_in``: "ejected" (the gateway ejected it) or
        "pulled" (pulled mid-write), the folder that keeps the medium the user now holds, the
        last KEEP_EJECTED of them; None: it is gone (a user's pull)."""
        # A "full" optical disc is that disc: the next one reports its real space.
        if self.type == "optical":
            self.faults.discard("full")
        if self.image.exists() or self.image.is_symlink():
            if keep_in and self.image.is_file() and not self.image.is_symlink() and self.image.stat().st_size:
                out = self.folder / keep_in
                out.mkdir(exist_ok=True)
                # Two media may leave within a second (a failed one, then the retried one).
                now = time.time_ns()
                stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now // 10**9))
                os.replace(self.image, out / f"{stamp}-{now % 10**9:09d}-{self.image.name}")
                for old in sorted(out.iterdir())[:-KEEP_EJECTED]:
                    old.unlink(missing_ok=True)
            else:
                self.image.unlink()
            self.events.feed(*self._removed_uevent())

    def pull(self) -> None:
        """Take the medium out (a disc from the tray, a stick from the port); SimError when empty."""
        with self._lock:
            if not self.image.exists():
                raise SimError(f"drive {self.name} has no medium to pull")
            self._remove()
            self._publish()

    def insert(self, medium: str, source: Path | None) -> None:
        raise NotImplementedError

    def _removed_uevent(self) -> tuple[str, dict]:
        raise NotImplementedError


class _ColdplugSource(UdevClassifier):
    """The simulated drive's uevents, through the driver's own classifier. Like the box's udev
    source (drivers/media/hotplug.UdevEventSource), start() first reports the medium already in the
    drive (a disc left in the tray, a stick plugged in before the service started)."""

    def __init__(self, sim: "SimulatedDrive"):
        super().__init__(sim._optical_map(), sim._usb_name())
        self.sim = sim

    def start(self, on_event) -> None:
        super().start(on_event)
        with self.sim._lock:
            if self.sim.image.is_file():
                self.feed("add" if self.sim.type == "usb" else "change", self.sim.uevent())


def corrupt_first_file(image: Path, mapping) -> None:
    """Flip bytes of the first mapped file's data where it lies in the image (found by its first
    bytes), the way an unreadable sector surfaces as wrong data on read-back."""
    dest, src = mapping[0]
    head = Path(src).read_bytes()[:256]
    data = image.read_bytes()
    at = data.find(head) if head else -1
    if at < 0:
        log.warning("bad-sector fault: %s not found in %s", dest, image)
        return
    with open(image, "r+b") as fh:
        fh.seek(at)
        fh.write(bytes(b ^ 0xFF for b in head[:16]))
        fh.flush()
        os.fsync(fh.fileno())


class _Relay(threading.Thread):
    """The disc while xorriso burns with a mid-write fault armed: the FIFO ``fifo`` stands where
    the disc image was, and its bytes go into ``disc`` until ``cut_bytes`` are there; then the
    FIFO's only reader closes, and the writer's next write(2) fails (EPIPE) mid-stream, as a burn
    fails when the disc goes or the laser errs.  ``received``: bytes on the disc; ``cut``: struck."""

    def __init__(self, fifo: Path, disc: Path, cut_bytes: int):
        super().__init__(name=f"hwsim-burn-{fifo.parent.name}", daemon=True)
        self.disc = disc
        self.cut_bytes = cut_bytes
        self.received = 0
        self.cut = False
        self._done = threading.Event()
        # O_RDWR: opening does not wait for the writer, and the pipe's buffer is made one page
        # before xorriso writes, so it is never more than a page ahead of the cut.
        self._fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
        try:
            fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, 4096)
        except OSError:
            pass

    def run(self) -> None:
        try:
            with open(self.disc, "wb") as out:
                while not self._done.is_set() and self.received < self.cut_bytes:
                    if not select.select([self._fd], [], [], 0.05)[0]:
                        continue
                    try:
                        chunk = os.read(self._fd, min(65536, self.cut_bytes - self.received))
                    except BlockingIOError:
                        continue
                    out.write(chunk)
                    self.received += len(chunk)
                self.cut = self.received >= self.cut_bytes
                out.flush()
                os.fsync(out.fileno())
        finally:
            os.close(self._fd)

    def stop(self) -> None:
        """The writer ended: stop draining (if not cut yet) and wait for the disc to be synced."""
        self._done.set()
        self.join(30)


class SimulatedOpticalDrive(SimulatedDrive):
    """A CD/DVD writer whose disc is ``disc.iso``.  ``cd_bytes`` / ``dvd_bytes``: the capacity a
    blank CD-R / DVD±R reports.  ``drive()`` is the real OpticalDrive on ``stdio:disc.iso``."""

    type = "optical"
    image_name = "disc.iso"

    def __init__(self, name: str, folder: Path, cd_bytes: int = CD_700_BYTES, dvd_bytes: int = DVD_BYTES):
        self.capacity = {MediumKind.CD: cd_bytes, MediumKind.DVD: dvd_bytes}
        super().__init__(name, folder)
        self.kind = MediumKind.CD
        self._relay: _Relay | None = None

    def _optical_map(self) -> dict[str, str]:
        return {str(self.folder / self.image_name): self.name}

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        saved = self.folder / "state.json"
        if saved.exists():  # a disc left in the tray by the last run keeps its kind
            medium = json.loads(saved.read_text()).get("medium") or {}
            self.kind = MediumKind(medium.get("kind", "cd"))
        super().start()

    def _arm(self, kind: str) -> None:
        if kind == "read-only":
            raise SimError("read-only is a USB stick fault (a written disc is read-only already)")
        super()._arm(kind)

    def profile(self) -> tuple[MediumKind, int]:
        """(kind, capacity in bytes) of the disc: the drive's ``stdio_profile``."""
        with self._lock:
            if "full" in self.faults:
                # Less than any ISO image needs (system area and descriptors alone are 40 KB).
                return self.kind, 64 * 1024
            return self.kind, self.capacity[self.kind]

    def drive(self, timeout_s: float = 3600.0) -> OpticalDrive:
        """The real driver, pointed at this drive's disc image."""
        return self._under(OpticalDrive(self.name, f"stdio:{self.image}", stdio_profile=self.profile,
                                        hook=self.hook, timeout_s=timeout_s))

    def _medium_state(self) -> dict | None:
        if not self.image.exists():
            return None
        return {"kind": self.kind.value, "blank": self.image.stat().st_size == 0}

    def insert(self, medium: str, source: Path | None) -> None:
        """Close the tray on a disc: ``medium`` "cd" or "dvd", blank (``source`` None) or mastered
        from the folder ``source`` with xorriso.  SimError when a disc is in or the folder is bad."""
        if medium not in ("cd", "dvd"):
            raise SimError(f"an optical drive takes cd or dvd, not {medium!r}")
        with self._lock:
            if self.image.exists():
                raise SimError(f"drive {self.name} already holds a disc (pull it first)")
            self.kind = MediumKind(medium)
            if source is None:
                self.image.write_bytes(b"")
            else:
                master_iso(source, self.image)
            self._publish()
            self.events.feed("change", self.uevent())

    def uevent(self) -> dict[str, str]:
        """The properties udev's cdrom_id gives the drive with this disc in it."""
        blank = self.image.stat().st_size == 0
        media = "ID_CDROM_MEDIA_CD_R" if self.kind is MediumKind.CD else "ID_CDROM_MEDIA_DVD_PLUS_R"
        props = {"DEVNAME": str(self.image), "SUBSYSTEM": "block", "DEVTYPE": "disk", "ID_CDROM": "1",
                 "ID_BUS": "ata", "ID_CDROM_MEDIA": "1", media: "1",
                 "ID_CDROM_MEDIA_STATE": "blank" if blank else "complete"}
        if not blank:
            props["ID_FS_TYPE"] = "iso9660"
        return props

    def _removed_uevent(self) -> tuple[str, dict]:
        return "change", {"DEVNAME": str(self.image), "SUBSYSTEM": "block", "DEVTYPE": "disk",
                          "ID_CDROM": "1", "ID_BUS": "ata"}

    def _arm_cut(self) -> None:
        # The blank disc's file becomes the disc the relay burns into; a FIFO stands in its place.
        self._spare = self.image.with_name(self.image.name + ".burning")
        os.replace(self.image, self._spare)
        os.mkfifo(self.image)
        self._relay = _Relay(self.image, self._spare, ISO_SYSTEM_AREA + int(self.cut_at * self._total))
        self._relay.start()

    def _finish_cut(self) -> None:
        relay, self._relay = getattr(self, "_relay", None), None
        if relay is None:
            return
        relay.stop()
        if relay.cut:
            self._struck = self._armed_mid_write()
        self.image.unlink(missing_ok=True)
        os.replace(self._spare, self.image)
        self._spare = None
        log.info("drive %s: the burn was %s after %d bytes", self.name,
                 "cut" if relay.cut else "not cut", relay.received)


class SimulatedUsbPort(SimulatedDrive):
    """A USB port; a stick is ``stick.img``, a FAT32 image (mkfs.vfat) of ``stick_bytes``.
    ``drive()`` is the real UsbDisk on that image."""

    type = "usb"
    image_name = "stick.img"

    def __init__(self, name: str, folder: Path, stick_bytes: int = 64 * 1024 * 1024):
        self.stick_bytes = stick_bytes
        super().__init__(name, folder)

    def _usb_name(self) -> str | None:
        return self.name

    def drive(self, timeout_s: float = 3600.0) -> UsbDisk:
        """The real driver, pointed at this port's stick image."""
        return self._under(UsbDisk(self.name, str(self.image), hook=self.hook, timeout_s=timeout_s))

    def _medium_state(self) -> dict | None:
        if not self.image.exists():
            return None
        rc = subprocess.run(["mdir", "-b", "-i", str(self.image), "::/"], capture_output=True, text=True,
                            env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
        return {"kind": "usb", "blank": rc.returncode == 0 and not rc.stdout.strip(),
                "read_only": not self.image.stat().st_mode & stat.S_IWUSR}

    def _arm(self, kind: str) -> None:
        super()._arm(kind)
        if kind == "read-only" and self.image.exists():
            os.chmod(self.image, 0o444)

    def _clear(self) -> None:
        # The lock switch goes back with the fault: the stick in the port is writable again.
        if "read-only" in self.faults and self.image.is_file():
            os.chmod(self.image, 0o644)
        super()._clear()

    def insert(self, medium: str, source: Path | None) -> None:
        """Plug in a stick: FAT32 made with mkfs.vfat, empty (``source`` None) or holding a copy of
        the folder ``source`` (mcopy -s).  SimError when a stick is in or a tool fails."""
        if medium != "usb":
            raise SimError(f"a USB port takes usb, not {medium!r}")
        with self._lock:
            if self.image.exists():
                raise SimError(f"drive {self.name} already holds a stick (pull it first)")
            make_fat_image(self.image, self.stick_bytes, source)
            if "read-only" in self.faults:
                os.chmod(self.image, 0o444)
            self._publish()
            self.events.feed("add", self.uevent())

    def uevent(self) -> dict[str, str]:
        """The properties udev gives a USB stick's vfat partition."""
        return {"DEVNAME": str(self.image), "SUBSYSTEM": "block", "DEVTYPE": "partition", "ID_BUS": "usb",
                "ID_FS_TYPE": "vfat", "ID_FS_USAGE": "filesystem", "ID_FS_LABEL": "", "ID_MODEL": "SimStick"}

    def _removed_uevent(self) -> tuple[str, dict]:
        return "remove", self.uevent()

    def _writing(self, mapping) -> None:
        if "full" in self.faults and self.image.exists():
            self.faults.discard("full")
            fill_fat_image(self.image)

    def _copied(self, copied) -> None:
        fault = self._armed_mid_write()
        if fault is None or self._struck is not None or not self.image.is_file():
            return
        done = sum(os.stat(src).st_size for _, src in copied)
        if done < self.cut_at * self._total:
            return
        self._struck = fault
        log.info("drive %s: %s after %d of %d bytes", self.name, fault, done, self._total)
        if fault == "pull":
            self._remove(keep_in="pulled")
        else:
            # The stick fails under the writer: it reads no FAT and takes no byte (ENOSPC).
            self._spare = self.image.with_name(self.image.name + ".failing")
            os.replace(self.image, self._spare)
            os.symlink("/dev/full", self.image)

    def _finish_cut(self) -> None:
        if self._spare is not None:
            # What the stick holds is what was written before it failed.
            self.image.unlink(missing_ok=True)
            os.replace(self._spare, self.image)
            self._spare = None


def _run(args: list[str], what: str) -> None:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "MTOOLS_SKIP_CHECK": "1"})
    except FileNotFoundError:
        raise SimError(f"{what}: {args[0]} is not installed") from None
    if proc.returncode != 0:
        raise SimError(f"{what}: {args[0]} exit {proc.returncode}: {(proc.stdout + proc.stderr).strip()[-300:]}")


def master_iso(source: Path, image: Path, volume_id: str = "SIMDISC") -> None:
    """An ISO 9660 level 1 image of the folder ``source`` (xorriso, the drivers' settings)."""
    if not Path(source).is_dir():
        raise SimError(f"{source} is not a folder")
    image.unlink(missing_ok=True)
    _run(["xorriso", "-md5", "on", "-outdev", f"stdio:{image}", "-volid", volume_id, "-compliance",
          "iso_9660_level=1", "-joliet", "off", "-map", str(source), "/", "-commit"], "mastering the disc")


def make_fat_image(image: Path, size: int, source: Path | None = None) -> None:
    """A FAT32 file system of ``size`` bytes in ``image`` (mkfs.vfat), holding ``source``'s tree."""
    if source is not None and not Path(source).is_dir():
        raise SimError(f"{source} is not a folder")
    tmp = image.with_name(image.name + ".new")
    tmp.unlink(missing_ok=True)
    with open(tmp, "wb") as fh:
        fh.truncate(size)
    _run(["mkfs.vfat", "-F", "32", "-n", "SIMSTICK", str(tmp)], "formatting the stick")
    entries = sorted(Path(source).iterdir()) if source is not None else []
    if entries:
        _run(["mcopy", "-s", "-i", str(tmp), *map(str, entries), "::/"], "copying onto the stick")
    os.replace(tmp, image)


def fill_fat_image(image: Path, leave: int = 2048) -> None:
    """Fill the stick's free space with one file, leaving about ``leave`` bytes."""
    out = subprocess.run(["mdir", "-i", str(image), "::/"], capture_output=True, text=True,
                         env={**os.environ, "MTOOLS_SKIP_CHECK": "1"}).stdout
    m = re.search(r"([\d ]+) bytes free", out)
    free = int(m.group(1).replace(" ", "")) if m else 0
    filler = image.with_name("filler.bin")
    with open(filler, "wb") as fh:
        fh.truncate(max(0, free - leave))
    try:
        _run(["mcopy", "-i", str(image), str(filler), "::/FILLER.BIN"], "filling the stick")
    finally:
        filler.unlink(missing_ok=True)


# -- the hw-sim command line's side: drop a command, wait for the simulator's answer ---------------

def drives_in(sim_dir: Path) -> dict[str, str]:
    """drive name -> "optical" | "usb" for every simulated drive that published itself in sim_dir."""
    out = {}
    for info in sorted(Path(sim_dir).glob("*/drive.json")):
        try:
            data = json.loads(info.read_text())
            out[data["drive"]] = data["type"]
        except (OSError, ValueError, KeyError):
            continue
    return out


def send(sim_dir: Path, drive: str, command: dict, timeout: float = 10.0) -> dict:
    """Drop ``command`` into the drive's commands/ and wait for its result; SimError when the
    simulator refuses it or nobody picks it up within ``timeout`` seconds."""
    return control_folder.send(Path(sim_dir) / drive, command, timeout,
                               f"is the service running with drive {drive} (a media *-sim kind) and sim_dir {sim_dir}?")


__all__ = ["FAULTS", "ISO_SYSTEM_AREA", "MID_WRITE", "MediaEvent", "SimError", "SimulatedOpticalDrive", "SimulatedUsbPort", "drives_in",
           "send", "master_iso", "make_fat_image"]
