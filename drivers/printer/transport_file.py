"""File transport: each job becomes one file in a folder (a spool for another program, a share, or
a printer's hot folder).  A file appears complete or not at all: written under a temporary name,
fsynced, then renamed.  Status: the folder missing or read-only is PRINTER OFFLINE, a nearly full
disk is RECEIVER FULL.
"""

from __future__ import annotations

import itertools
import os
import time
from pathlib import Path

from drivers.printer.interface import DeviceStatus, PrinterError


class FileTransport:
    def __init__(self, folder: str | os.PathLike, suffix: str = ".prn",
                 min_free_bytes: int = 64 * 1024 * 1024):
        self.folder = Path(folder)
        self.suffix = suffix
        self.min_free_bytes = min_free_bytes
        self.last_path: Path | None = None
        self._seq = itertools.count(1)

    def write(self, data: bytes) -> None:
        name = f"job-{time.time_ns()}-{os.getpid()}-{next(self._seq):04d}{self.suffix}"
        final, tmp = self.folder / name, self.folder / f".{name}.part"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
            fd = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise PrinterError(f"cannot write print job into {self.folder}: {exc}") from exc
        self.last_path = final

    def status(self) -> DeviceStatus:
        if not self.folder.is_dir():
            return DeviceStatus(online=False, detail=f"{self.folder} does not exist")
        if not os.access(self.folder, os.W_OK):
            return DeviceStatus(online=False, detail=f"{self.folder} is not writable")
        free = os.statvfs(self.folder)
        if free.f_bavail * free.f_frsize < self.min_free_bytes:
            return DeviceStatus(receiver_full=True, detail=f"{self.folder} is nearly full")
        return DeviceStatus()

    def close(self) -> None:
        pass
