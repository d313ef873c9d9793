"""USB mass storage: write a file-set to the stick's FAT partition with mtools, never mounting it.

Why mtools: it reads and writes a FAT file system on a partition device (/dev/sdb1) or on an image
file with the same command line, as an ordinary process; nothing is mounted (the appliance's
kernel may have no vfat, and a mount left behind by a pulled stick is worse than none).  hw-sim's
USB port hands this same code a FAT image file (hwsim/media.py).

Writing: the directories in one ``mmd`` call, then one ``mcopy`` per destination folder with all
its files (a folder of symlinks named as on the medium points at the sources, so nothing is
copied twice and mcopy names each file as the medium wants it).  Then fsync of the device and
its page cache dropped, so that ``verify`` reads what is on the stick, not what is in memory.
PS3.12 Annex R (USB), PS3.11 STD-GEN-USB-*.
"""

from __future__ import annotations

import fcntl
import logging
import math
import os
import re
import shutil
import stat
import struct
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from drivers.media.interface import (
    Mapping, MediaError, MediumFull, MediumInfo, MediumKind, MediumRemoved, NoMedium, Progress,
    ReadOnlyMedium, WriteFailed)
from drivers.media.optical import check_destinations
from drivers.media.readback import compare_tree

log = logging.getLogger("drivers.media.usb_disk")

BLKROGET = 0x125E  # linux/fs.h: is the block device read-only
BLKGETSIZE64 = 0x80081272
_LABEL_RE = re.compile(r"^[A-Z0-9_]{1,11}$")
# argv stays far below ARG_MAX even with long temp paths.
_BATCH = 400
Hook = Callable[[str, Mapping], None]
# mtools refuses geometry it finds odd on sticks and image files; these checks guard floppies.
_ENV = {**os.environ, "MTOOLS_SKIP_CHECK": "1", "MTOOLS_LOWER_CASE": "0"}


class UsbDisk:
    """A USB stick's FAT partition.  ``device``: the partition ("/dev/sdb1") or a FAT image file;
    None until hotplug attaches one (``attach``).  ``hook`` (hw-sim only): called with a phase
    ("writing", "copied" after each mcopy with the files copied so far, "written", "verifying",
    "eject") where a real stick's hardware would act."""

    def __init__(self, name: str, device: str | None = None, *, hook: Hook | None = None,
                 timeout_s: float = 3600.0):
        self.name = name
        self.device = device
        self.hook = hook
        self.timeout_s = timeout_s

    # -- hotplug ---------------------------------------------------------------------------------
    def attach(self, devname: str) -> None:
        """The stick's FAT partition appeared (a hotplug "inserted" event)."""
        self.device = devname

    def detach(self) -> None:
        """The stick went away (a hotplug "removed" event)."""
        self.device = None

    # -- helpers ---------------------------------------------------------------------------------
    def _phase(self, phase: str, mapping: Mapping = ()) -> None:
        if self.hook is not None:
            self.hook(phase, mapping)

    def _present(self) -> bool:
        return self.device is not None and os.path.exists(self.device)

    def _mtools(self, tool: str, *args: str) -> tuple[int, str]:
        exe = shutil.which(tool)
        if exe is None:
            raise MediaError(self.name, f"{tool} is not installed (apt-get install mtools)")
        device = self.device
        if device is None:
            # Hotplug detached the stick between two calls (pulled mid-copy): a failed call, which
            # the caller turns into MediumRemoved (_fail sees no device).
            return 1, "the stick is gone"
        try:
            proc = subprocess.run([exe, "-i", device, *args], capture_output=True, text=True,
                                  errors="replace", stdin=subprocess.DEVNULL, env=_ENV, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise WriteFailed(self.name, f"{tool} did not finish within {self.timeout_s:.0f} s") from None
        return proc.returncode, proc.stdout + proc.stderr

    def _read_only(self) -> bool:
        st = os.stat(self.device)
        if stat.S_ISBLK(st.st_mode):
            with open(self.device, "rb") as fh:
                flag = struct.unpack("i", fcntl.ioctl(fh, BLKROGET, b"\0" * 4))[0]
            return bool(flag)
        # An image file: its write bits stand for the stick's lock switch (root ignores them in
        # open(), so they are read here rather than left to a failed write).
        return not st.st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)

    def _size(self) -> int:
        st = os.stat(self.device)
        if stat.S_ISBLK(st.st_mode):
            with open(self.device, "rb") as fh:
                return struct.unpack("Q", fcntl.ioctl(fh, BLKGETSIZE64, b"\0" * 8))[0]
        return st.st_size

    def _sync(self) -> None:
        """Flush the device and drop its cached pages: the next read comes from the stick."""
        device = self.device
        if device is None:  # detached meanwhile: the caller's presence check says so
            return
        try:
            fd = os.open(device, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        except OSError:
            pass
        finally:
            os.close(fd)

    def _fail(self, rc: int, out: str, what: str) -> MediaError:
        """The typed error for a failed mtools call."""
        if not self._present():
            return MediumRemoved(self.name)
        # mtools says the cause first ("init :: non DOS media", "Disk full"), then its
        # consequences ("Cannot initialize '::'", "Bad target ::/X").
        text = out.strip().splitlines()[0] if out.strip() else f"exit {rc}"
        if re.search(r"disk full|no free clusters|no space", out, re.I):
            return MediumFull(self.name, text)
        if re.search(r"read-only|permission denied", out, re.I):
            return ReadOnlyMedium(self.name, text)
        return WriteFailed(self.name, f"{what}: {text}")

    # -- the interface ----------------------------------------------------------------------------
    def medium(self) -> MediumInfo | None:
        """The stick: capacity (device size), free bytes (``mdir``'s "bytes free"), label
        (``mlabel -s``), blank (no file in the root), read-only (BLKROGET / the image's mode).
        None when no stick is attached; a stick with no FAT file system is a MediaError."""
        if not self._present():
            return None
        rc, listing = self._mtools("mdir", "-b", "::/")
        if rc != 0:
            raise MediaError(self.name, f"no FAT file system readable: {listing.strip()[-200:]}")
        rc, full = self._mtools("mdir", "::/")
        m = re.search(r"([\d ]+) bytes free", full)
        free = int(m.group(1).replace(" ", "")) if m else 0
        rc, lab = self._mtools("mlabel", "-s", "::")
        m = re.search(r"Volume label is (.*)", lab)
        label = m.group(1).strip() if m else ""
        return MediumInfo(self.name, MediumKind.USB, not listing.strip(), self._size(), free, label,
                          self._read_only())

    def write(self, mapping: Mapping, volume_id: str, progress: Progress | None = None) -> None:
        """Copy ``mapping`` onto the stick's FAT file system and set its label to ``volume_id``
        (<= 11 of A-Z 0-9 _).  PS3.12 Annex R.  Raises NoMedium, ReadOnlyMedium, MediumFull,
        MediumRemoved, WriteFailed (also when a destination's top-level name is already on the
        stick: a file-set is never written over another); ValueError for a bad name or label."""
        check_destinations(mapping, self.name)
        if not _LABEL_RE.match(volume_id):
            raise ValueError(f"drive {self.name}: FAT label {volume_id!r} must be 1-11 of A-Z 0-9 _")
        info = self.medium()
        if info is None:
            raise NoMedium(self.name)
        if info.read_only:
            raise ReadOnlyMedium(self.name, "the stick is write-protected")
        rc, listing = self._mtools("mdir", "-b", "::/")
        there = {ln.strip().rstrip("/").removeprefix("::/").upper() for ln in listing.splitlines() if ln.strip()}
        clash = sorted(there & {dest.split("/")[0] for dest, _ in mapping})
        if clash:
            raise WriteFailed(self.name, f"the stick already holds {clash[0]}")
        sizes = [os.stat(src).st_size for _, src in mapping]
        cluster = self._cluster_bytes()
        folders = sorted({"/".join(d.split("/")[:i]) for d, _ in mapping for i in range(1, d.count("/") + 1)},
                         key=lambda p: (p.count("/"), p))
        need = sum(math.ceil(s / cluster) * cluster for s in sizes) + len(folders) * cluster
        if need > info.free_bytes:
            raise MediumFull(self.name, f"needs {need / 1e6:.1f} MB, the stick has "
                                        f"{info.free_bytes / 1e6:.1f} MB free")
        total = sum(sizes)
        by_folder: dict[str, list[tuple[str, Path, int]]] = {}
        for (dest, src), size in zip(mapping, sizes):
            folder, _, leaf = dest.rpartition("/")
            by_folder.setdefault(folder, []).append((leaf, Path(src), size))
        self._phase("writing", mapping)
        try:
            failure = self._copy(folders, by_folder, volume_id, progress, total)
            if failure is None:
                self._sync()
        finally:
            # A real stick can vanish or fail at any point of the copy; the simulator acts here.
            self._phase("written", mapping)
        if failure is not None:
            raise self._fail(*failure)
        if not self._present():
            raise MediumRemoved(self.name)
        log.info("drive %s: wrote %d files as %s", self.name, len(mapping), volume_id)

    def _copy(self, folders: list[str], by_folder: dict[str, list[tuple[str, Path, int]]], volume_id: str,
              progress: Progress | None, total: int) -> tuple[int, str, str] | None:
        """mmd, mcopy per folder, mlabel; the first failure as (exit status, output, what), or None."""
        done = 0
        copied: list[tuple[str, Path]] = []
        with tempfile.TemporaryDirectory(prefix="mcopy-") as tmp:
            if folders:
                rc, out = self._mtools("mmd", *(f"::/{f}" for f in folders))
                if rc != 0:
                    return rc, out, "making folders"
            for folder, files in by_folder.items():
                # Symlinks named as on the medium: mcopy takes the name from the source's basename.
                links = Path(tmp) / "links" / folder
                links.mkdir(parents=True, exist_ok=True)
                for i in range(0, len(files), _BATCH):
                    batch = files[i:i + _BATCH]
                    for leaf, src, _ in batch:
                        os.symlink(src.resolve(), links / leaf)
                    rc, out = self._mtools("mcopy", *(str(links / leaf) for leaf, _, _ in batch),
                                           f"::/{folder}/" if folder else "::/")
                    if rc != 0:
                        return rc, out, f"copying into /{folder}"
                    done += sum(s for _, _, s in batch)
                    copied.extend((f"{folder}/{leaf}" if folder else leaf, src) for leaf, src, _ in batch)
                    if progress is not None:
                        progress(done, total)
                    # Between two copies a real stick can be pulled or fail; the simulator acts here.
                    self._phase("copied", copied)
            rc, out = self._mtools("mlabel", f"::{volume_id}")
            if rc != 0:
                return rc, out, "setting the label"
        return None

    def _cluster_bytes(self) -> int:
        rc, out = self._mtools("minfo", "::")
        sector = re.search(r"sector size: (\d+)", out)
        per = re.search(r"cluster size: (\d+)", out)
        return int(sector.group(1)) * int(per.group(1)) if sector and per else 4096

    def verify(self, mapping: Mapping) -> None:
        """Read every mapped file back from the stick (mcopy to a temporary folder, after the page
        cache was dropped) and compare bytes with its source.  Raises ReadBackMismatch naming the
        first bad file, NoMedium / MediumRemoved when the stick is gone."""
        self._phase("verifying", mapping)
        if not self._present():
            raise MediumRemoved(self.name)
        self._sync()
        with tempfile.TemporaryDirectory(prefix="readback-") as tmp:
            root = self.read_tree(Path(tmp) / "stick")
            compare_tree(self.name, root, mapping)
        log.info("drive %s: verified %d files", self.name, len(mapping))

    def read_tree(self, dest_dir: Path) -> Path:
        """Copy the stick's whole FAT tree into ``dest_dir`` (``mcopy -s -n``); names as the stick
        records them (long names when present).  Raises NoMedium, MediumRemoved, MediaError."""
        if not self._present():
            raise NoMedium(self.name)
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        rc, listing = self._mtools("mdir", "-b", "::/")
        if rc == 0 and not listing.strip():
            return dest_dir
        rc, out = self._mtools("mcopy", "-s", "-n", "-m", "::/*", str(dest_dir) + "/")
        if rc != 0:
            if not self._present():
                raise MediumRemoved(self.name)
            raise MediaError(self.name, f"reading the stick failed: {out.strip()[-200:]}")
        return dest_dir

    def eject(self) -> None:
        """Flush and let go of the stick (``eject DEV`` on a block device, when installed, powers
        it down so it can be pulled); no stick is not an error."""
        if self._present():
            self._sync()
            if stat.S_ISBLK(os.stat(self.device).st_mode) and shutil.which("eject"):
                subprocess.run(["eject", self.device], capture_output=True, timeout=60)
        self._phase("eject")

    def start(self) -> None:
        """Nothing to start for a real stick."""

    def stop(self) -> None:
        """Nothing to stop for a real stick."""
