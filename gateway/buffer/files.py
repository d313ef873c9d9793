"""Where instance files live on disk, and how they get there durably.

Layout: <root>/objects/<yyyymmdd>/<uuid4 hex>.dcm. No path component ever comes from a DICOM value,
so a UID like "../../etc" cannot steer a write. Files arrive in <root>/incoming/ (same file system, so
the final move is an atomic rename), are fsynced, renamed into place, and the directory is fsynced;
only then may the index be committed and the sender told Success.
"""

from __future__ import annotations

import errno
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Callable


class DiskReserveError(OSError):
    """Accepting the object would leave less free space than the configured reserve."""


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)


def fsync_dir(path: Path) -> None:
    """Make a directory's entries (a file created, renamed into or out of it) survive a power cut;
    a file's own fsync does not cover the name that points at it. Raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """Flush a file already written and closed (by another writer, or through a path) to the disk.
    The one helper for the buffer and the print spool; drivers/printer/transport_file.py keeps its
    own because drivers/ sits below the gateway and may not import it. Raises OSError."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durable(path: Path) -> None:
    """mkdir -p whose result survives a power cut: each directory it creates is named durably (its
    parent fsynced after the mkdir). A fresh box's buffer directory, created but never fsynced
    into its parent, is gone after a cut with every object acknowledged into it. Raises OSError
    (FileExistsError when a component is a file)."""
    missing = []
    p = path
    while not p.is_dir():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        fsync_dir(d.parent)


class FileStore:
    def __init__(self, root: Path, reserve_bytes: int):
        self.root = root
        self.incoming = root / "incoming"
        self.objects = root / "objects"
        self.reserve_bytes = reserve_bytes
        # Set by retention: asked to free at least n bytes (by evicting delivered instances) before
        # an object is refused for the reserve. Returns the bytes it freed.
        self.make_room: Callable[[int], int] | None = None
        for d in (self.root, self.incoming, self.objects):
            make_dirs_durable(d)
        self._incoming_dev = os.stat(self.incoming).st_dev

    # -- space ---------------------------------------------------------------------------------
    def free_bytes(self) -> int:
        return self.disk_usage()[1]

    def disk_usage(self) -> tuple[int, int]:
        """(size, free) of the buffer's file system in bytes; free as an unprivileged writer sees it."""
        st = os.statvfs(self.root)
        return st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize

    def check_reserve(self, incoming_size: int = 0) -> None:
        """Raise DiskReserveError if free space is below the reserve and evicting delivered
        instances (make_room) cannot bring it back.

        `incoming_size` bytes are already on disk (in incoming/) when this is called, so they are not
        subtracted again; what matters is that the file system keeps `reserve_bytes` free after it.
        """
        free = self.free_bytes()
        if free >= self.reserve_bytes:
            return
        freed = 0
        if self.make_room is not None:
            freed = self.make_room(self.reserve_bytes - free)
            # Some file systems report unlinked blocks as free only after their journal commits:
            # count what was freed rather than trust an immediate second statvfs alone.
            free = max(self.free_bytes(), free + freed)
        if free < self.reserve_bytes:
            raise DiskReserveError(
                errno.ENOSPC,
                f"free space {free // (1024 * 1024)} MB is below the reserve "
                f"{self.reserve_bytes // (1024 * 1024)} MB"
                + (f" (object of {incoming_size} bytes); " if incoming_size else "; ")
                + ("nothing delivered is left to evict" if self.make_room is not None
                   else "retention does not evict"),
            )

    # -- placement -----------------------------------------------------------------------------
    def new_incoming_path(self) -> Path:
        return self.incoming / f"{uuid.uuid4().hex}.part"

    def place(self, tmp: Path, synced: bool = False) -> Path:
        """fsync `tmp` (unless the caller already did), rename it to a fresh final path, fsync the
        directory. Returns the final path.

        `tmp` may be anywhere: if it is on another file system it is copied into incoming/ first.
        """
        final_dir = self._day_dir()
        final = final_dir / f"{uuid.uuid4().hex}.dcm"
        if os.stat(tmp).st_dev != self._incoming_dev:
            local = self.new_incoming_path()
            shutil.copyfile(tmp, local)
            os.unlink(tmp)
            tmp, synced = local, False
        if not synced:
            fsync_file(tmp)
        os.replace(tmp, final)
        fsync_dir(final_dir)
        return final

    def _day_dir(self) -> Path:
        final_dir = self.objects / time.strftime("%Y%m%d")
        if not final_dir.is_dir():
            make_dirs_durable(final_dir)
        return final_dir

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def absolute(self, rel: str) -> Path:
        return self.root / rel

    def remove(self, rel: str) -> None:
        try:
            os.unlink(self.root / rel)
        except FileNotFoundError:
            pass

    # -- recovery ------------------------------------------------------------------------------
    def clean_incoming(self) -> int:
        """Remove partial files left by a crash. Nothing in incoming/ was ever acknowledged."""
        n = 0
        for p in self.incoming.iterdir():
            try:
                p.unlink()
                n += 1
            except FileNotFoundError:
                pass
        return n

    def remove_orphans(self, known: set[str]) -> int:
        """Remove files under objects/ that the index does not know.

        They were renamed into place but the process died before the index commit, so the sender
        never got Success and will send them again.
        """
        n = 0
        for day in self.objects.iterdir():
            if not day.is_dir():
                continue
            for p in day.iterdir():
                if self.relative(p) not in known:
                    p.unlink(missing_ok=True)
                    n += 1
        return n
