"""CD / DVD: master an ISO 9660 level 1 image and burn it with xorriso, verify by reading it back.

Why xorriso and not pycdlib: xorriso masters and burns in one pass straight from the source files
(a path list maps each file in place: no staged copy, no image file on the SD card, each byte
read once), it writes to /dev/srN and to ``stdio:<file>`` with the very same command line (so the
simulator runs this code unchanged), and it records an MD5 per file that ``-check_md5_r`` checks
on read-back.  pycdlib would build the image in Python and still need a burner.

Rock Ridge stays on (xorriso's default, as in ../shared/PEERS.md's checked command line): the
per-file MD5s live in its AAIP fields, and ``-check_md5_r`` finds none without them.  A reader that
ignores Rock Ridge sees plain ISO 9660 level 1 names, which is what PS3.12 Annex F asks for.

The device is ``/dev/srN`` on the box and ``stdio:/path/disc.iso`` under hw-sim.  xorriso calls every
stdio file "overwriteable", so for a stdio device the medium's kind and capacity come from
``stdio_profile`` (the simulator's configured disc) instead of the drive.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import stat
import subprocess
import threading
import tempfile
from collections.abc import Callable
from pathlib import Path

from drivers.media.interface import (
    CD_700_BYTES, DVD_BYTES, Mapping, MediaError, MediumFull, MediumInfo, MediumKind, MediumRemoved,
    NoMedium, Progress, ReadBackMismatch, ReadOnlyMedium, WriteFailed)
from drivers.media.readback import compare_tree

log = logging.getLogger("drivers.media.optical")

SECTOR = 2048
# ISO 9660 level 1 (ECMA-119 7.5, 7.6): d-characters, names 8.3, directories 8, at most 8 levels
# (PS3.10 8.2 asks the same of a File ID: upper case, digits, "_", <= 8 characters, <= 8 levels).
_FILE_RE = re.compile(r"^[A-Z0-9_]{1,8}(\.[A-Z0-9_]{1,3})?$")
_DIR_RE = re.compile(r"^[A-Z0-9_]{1,8}$")
_VOLID_RE = re.compile(r"^[A-Z0-9_]{1,32}$")
# xorriso's pacifier while burning: "xorriso : UPDATE : Writing:       3108s   10.5%   fifo   0%  buf  50%"
_WRITING_RE = re.compile(r"Writing:\s+(\d+)s\s+[0-9.]+%")
# Hook phases the simulator acts on (hwsim/media.py); a real drive has no hook.
Hook = Callable[[str, Mapping], None]


def check_destinations(mapping: Mapping, drive: str) -> None:
    """Refuse a destination an ISO 9660 level 1 medium cannot carry unmangled (ECMA-119 7.5/7.6,
    PS3.10 8.2): a ValueError naming the drive and the path, before anything is written."""
    seen = set()
    for dest, _ in mapping:
        parts = dest.split("/")
        bad = (len(parts) > 8 or not _FILE_RE.match(parts[-1])
               or any(not _DIR_RE.match(p) for p in parts[:-1]))
        if bad:
            raise ValueError(f"drive {drive}: {dest!r} is not an ISO 9660 level 1 path (upper-case "
                             f"A-Z 0-9 _, 8 characters a directory, 8.3 a file, at most 8 levels)")
        if dest in seen:
            raise ValueError(f"drive {drive}: {dest!r} is mapped twice")
        seen.add(dest)


def estimate_image_bytes(mapping: Mapping) -> int:
    """An upper estimate of the ISO image size in bytes: 16 system + descriptor sectors, each file
    rounded up to whole sectors, each directory's records (ECMA-119 9.1: 33 bytes + name + pad;
    Rock Ridge adds about 120 more), path tables, and MD5 / Rock Ridge overhead."""
    dirs: dict[str, list[str]] = {"": []}
    total = 0
    for dest, src in mapping:
        size = os.stat(src).st_size
        total += math.ceil(size / SECTOR) * SECTOR
        parts = dest.split("/")
        for i in range(len(parts)):
            parent = "/".join(parts[:i])
            dirs.setdefault(parent, [])
            dirs[parent].append(parts[i])
    for names in dirs.values():
        records = sum(34 + len(n) + 2 + 160 for n in set(names)) + 2 * 34
        total += math.ceil(records / SECTOR) * SECTOR
    # System area, volume descriptors, 4 path tables, the MD5 array (16 bytes a file) and slack.
    total += (16 + 4 + 4 * math.ceil(len(dirs) * 18 / SECTOR) + 32) * SECTOR + 16 * len(mapping)
    return total


def parse_progress(line: str) -> int | None:
    """Bytes written so far from one line of xorriso's burn pacifier (sectors x 2048), or None."""
    m = _WRITING_RE.search(line)
    return int(m.group(1)) * SECTOR if m else None


def _escape_pathspec(text: str) -> str:
    # xorriso -pathspecs: "=" separates target from source, backslash escapes both.
    return text.replace("\\", "\\\\").replace("=", "\\=")


def _read_volume_id(path: str) -> str:
    """The Primary Volume Descriptor's Volume Identifier (ECMA-119 8.4.6: sector 16, bytes 40-71)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(16 * SECTOR)
            pvd = fh.read(SECTOR)
    except OSError:
        return ""
    if pvd[1:6] != b"CD001":
        return ""
    return pvd[40:72].decode("ascii", "replace").strip()


class OpticalDrive:
    """A CD/DVD writer reached through xorriso.

    ``device``: "/dev/sr0" or "stdio:/path/disc.iso".  ``stdio_profile`` (stdio devices only):
    () -> (MediumKind, capacity in bytes) of the disc in the simulated drive.  ``hook`` (hw-sim
    only): called with a phase ("writing", "written", "verifying", "eject") and the mapping at the
    moments a real drive's hardware would act (a disc pulled, a sector going bad).  ``timeout_s``
    bounds one xorriso run (a 4.7 GB DVD at 4x takes about 15 minutes)."""

    def __init__(self, name: str, device: str, *, stdio_profile: Callable[[], tuple[MediumKind, int]] | None = None,
                 hook: Hook | None = None, xorriso: str = "xorriso", timeout_s: float = 3600.0):
        self.name = name
        self.device = device
        self.stdio_profile = stdio_profile
        self.hook = hook
        self.xorriso = xorriso
        self.timeout_s = timeout_s

    # -- helpers ---------------------------------------------------------------------------------
    @property
    def _stdio_path(self) -> str | None:
        return self.device[len("stdio:"):] if self.device.startswith("stdio:") else None

    def _phase(self, phase: str, mapping: Mapping = ()) -> None:
        if self.hook is not None:
            self.hook(phase, mapping)

    def _run(self, args: list[str], on_line: Callable[[str], None] | None = None) -> tuple[int, str]:
        """Run xorriso; (exit status, its messages).  A missing xorriso is a WriteFailed naming it."""
        exe = shutil.which(self.xorriso) or self.xorriso
        try:
            proc = subprocess.Popen([exe, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, text=True, errors="replace")
        except OSError as exc:
            raise WriteFailed(self.name, f"cannot run {self.xorriso}: {exc.strerror}") from None
        lines = []
        # The timeout must also cut a xorriso that hangs with its output open (a drive that stops
        # answering): reading its output would block forever, so a timer kills it.
        expired = threading.Event()

        def cut() -> None:
            expired.set()
            proc.kill()

        timer = threading.Timer(self.timeout_s, cut)
        timer.daemon = True
        timer.start()
        try:
            with proc:  # closes the pipe, waits for the process
                for line in proc.stdout:
                    lines.append(line)
                    if on_line is not None:
                        on_line(line)
        finally:
            timer.cancel()
        if expired.is_set():
            raise WriteFailed(self.name, f"xorriso did not finish within {self.timeout_s:.0f} s")
        return proc.returncode, "".join(lines)

    def _present(self) -> bool:
        path = self._stdio_path
        if path is not None:
            return os.path.isfile(path)
        return self.medium() is not None

    @staticmethod
    def _last_problem(output: str) -> str:
        """xorriso's most telling line (FAILURE, then SORRY), for the one-line error."""
        for severity in ("FATAL", "FAILURE", "SORRY"):
            found = [ln.strip() for ln in output.splitlines() if f": {severity} :" in ln]
            if found:
                return found[0].split(f": {severity} :", 1)[1].strip()
        tail = [ln.strip() for ln in output.splitlines() if ln.strip()]
        return tail[-1] if tail else "no message"

    # -- the interface ----------------------------------------------------------------------------
    def medium(self) -> MediumInfo | None:
        """The disc in the drive: kind, blank, capacity.  Real drives are asked with
        ``xorriso -outdev DEV -toc``; a stdio device by the file (absent: no disc; empty: blank)."""
        path = self._stdio_path
        if path is not None:
            if not os.path.isfile(path):
                return None
            kind, capacity = self.stdio_profile() if self.stdio_profile else (MediumKind.CD, CD_700_BYTES)
            blank = os.path.getsize(path) == 0
            # Discs are written once and closed (single session): a written one takes nothing more.
            return MediumInfo(self.name, kind, blank, capacity, capacity if blank else 0,
                              "" if blank else _read_volume_id(path), read_only=not blank)
        rc, out = self._run(["-outdev", self.device, "-toc"])
        return parse_toc(self.name, out)

    def write(self, mapping: Mapping, volume_id: str, progress: Progress | None = None) -> None:
        """Master and burn ``mapping`` as one closed ISO 9660 level 1 session labelled
        ``volume_id`` (ECMA-119 8.4.6: d-characters, <= 32).  PS3.12 Annex F (CD), PS3.11.
        Raises NoMedium, ReadOnlyMedium (not blank), MediumFull, MediumRemoved, WriteFailed;
        ValueError for a destination or label the medium cannot carry unmangled."""
        check_destinations(mapping, self.name)
        if not _VOLID_RE.match(volume_id):
            raise ValueError(f"drive {self.name}: volume id {volume_id!r} must be 1-32 of A-Z 0-9 _")
        info = self.medium()
        if info is None:
            raise NoMedium(self.name)
        if not info.blank:
            raise ReadOnlyMedium(self.name, f"the {info.kind.value} is not blank")
        need = estimate_image_bytes(mapping)
        if need > info.free_bytes:
            raise MediumFull(self.name, f"needs about {need / 1e6:.1f} MB, the {info.kind.value} "
                                        f"has {info.free_bytes / 1e6:.1f} MB")
        with tempfile.TemporaryDirectory(prefix="xorriso-") as tmp:
            path_list = Path(tmp) / "paths"
            with open(path_list, "w", encoding="utf-8") as fh:
                for dest, src in mapping:
                    fh.write(f"/{_escape_pathspec(dest)}={_escape_pathspec(str(Path(src).resolve()))}\n")

            def on_line(line: str) -> None:
                written = parse_progress(line)
                if written is not None and progress is not None:
                    progress(min(need, written), need)

            self._phase("writing", mapping)
            try:
                rc, out = self._run(["-abort_on", "FAILURE", "-md5", "on", "-outdev", self.device,
                                     "-volid", volume_id, "-compliance", "iso_9660_level=1", "-joliet", "off",
                                     "-pathspecs", "on", "-path_list", str(path_list), "-close", "on",
                                     "-commit"], on_line)
            finally:
                # Also after a burn that timed out: what the drive did to the disc is settled here.
                self._phase("written", mapping)
        if not self._present():
            raise MediumRemoved(self.name)
        if rc != 0:
            problem = self._last_problem(out)
            if re.search(r"exceeds free space|not enough space on medi", problem, re.I):
                raise MediumFull(self.name, problem)
            raise WriteFailed(self.name, f"xorriso exit {rc}: {problem}")
        if progress is not None:
            progress(need, need)
        log.info("drive %s: wrote %d files as %s", self.name, len(mapping), volume_id)

    def verify(self, mapping: Mapping) -> None:
        """Check the disc's recorded MD5s (``xorriso -check_md5_r``) and compare every mapped
        file's bytes read back with its source.  Raises ReadBackMismatch naming the first bad
        file, NoMedium / MediumRemoved when the disc is gone."""
        self._phase("verifying", mapping)
        if not self._present():
            raise MediumRemoved(self.name)
        rc, out = self._run(["-md5", "on", "-indev", self.device, "-check_md5_r", "SORRY", "/", "--"])
        if rc != 0 or "File contents and their MD5 checksums match" not in out:
            m = re.search(r"MD5 MISMATCH: '/?([^']*)'", out)
            if m:
                raise ReadBackMismatch(self.name, m.group(1), "MD5 differs")
            raise ReadBackMismatch(self.name, "/", f"MD5 check failed: {self._last_problem(out)}")
        with tempfile.TemporaryDirectory(prefix="readback-") as tmp:
            root = self._extract(Path(tmp) / "disc")
            compare_tree(self.name, root, mapping)
        log.info("drive %s: verified %d files", self.name, len(mapping))

    def _extract(self, dest_dir: Path) -> Path:
        if not self._present():
            raise NoMedium(self.name)
        dest_dir.parent.mkdir(parents=True, exist_ok=True)
        rc, out = self._run(["-osirrox", "on", "-indev", self.device, "-extract", "/", str(dest_dir)])
        if rc != 0:
            if not self._present():
                raise MediumRemoved(self.name)
            raise MediaError(self.name, f"reading the disc failed: {self._last_problem(out)}")
        # osirrox copies the disc's read-only modes: make the copy ours to move and delete.
        for folder, dirs, files in os.walk(dest_dir):
            os.chmod(folder, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP)
            for f in files:
                os.chmod(os.path.join(folder, f), stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP)
        return dest_dir

    def read_tree(self, dest_dir: Path) -> Path:
        """Copy the disc's files to ``dest_dir`` (xorriso -osirrox -extract; Rock Ridge names when
        present, else ISO 9660 names without ";1").  Raises NoMedium, MediumRemoved, MediaError."""
        return self._extract(Path(dest_dir))

    def eject(self) -> None:
        """Open the tray (``xorriso -outdev DEV -eject all``); an empty drive is not an error."""
        if self._stdio_path is None:
            self._run(["-outdev", self.device, "-eject", "all"])
        self._phase("eject")

    def start(self) -> None:
        """Nothing to start for a real drive."""

    def stop(self) -> None:
        """Nothing to stop for a real drive."""


def parse_toc(drive: str, out: str) -> MediumInfo | None:
    """``xorriso -outdev DEV -toc`` -> MediumInfo, None when the drive reports no disc.
    "Media current: CD-R" / "DVD+R" / "BD-R"; "Media status : is blank" / "is written , is closed";
    "Media blocks : R readable , W writable , T overall" (2048-byte blocks); "Volume id : 'X'"."""
    fields = {}
    for line in out.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    current = fields.get("Media current", "")
    status = fields.get("Media status", "")
    if not current or "is not present" in status or "no media" in current.lower() or current.startswith("is not"):
        return None
    kind = MediumKind.CD if current.upper().startswith("CD") else MediumKind.DVD
    m = re.search(r"(\d+)\s+readable\s*,\s*(\d+)\s+writable\s*,\s*(\d+)\s+overall", fields.get("Media blocks", ""))
    if m:
        writable, overall = int(m.group(2)) * SECTOR, int(m.group(3)) * SECTOR
    else:
        overall = CD_700_BYTES if kind is MediumKind.CD else DVD_BYTES
        writable = overall if "blank" in status else 0
    blank = "is blank" in status
    label = fields.get("Volume id", "").strip("'")
    read_only = not blank and ("closed" in status or current.endswith("ROM") or writable == 0)
    return MediumInfo(drive, kind, blank, overall, writable if blank or not read_only else 0, label, read_only)
