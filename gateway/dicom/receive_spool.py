"""Where pynetdicom streams a received data set: a spool file that survives a full disk.

pynetdicom (STORE_RECV_CHUNKED_DATASET) writes each incoming fragment to a NamedTemporaryFile and
flushes it after every fragment. Two things it does badly for a store that must never fill up
silently: a write error (ENOSPC, EIO from a failing card) raises inside its DUL thread and aborts
the association, so the sender gets an abort instead of A700 and retries blindly; and the
per-fragment flush costs a syscall per PDU. This stands in for NamedTemporaryFile: writes are
buffered, a failing write turns the file into a sink that swallows the rest of the data set (so
the association survives) and records why, and the handler can then answer precisely. It also
refuses to start a new object while free space is under the reserve.
"""

from __future__ import annotations

import errno
import os
import threading
import weakref
from pathlib import Path

_BUFFER = 1 << 20

_lock = threading.Lock()
# Weak: when pynetdicom drops a message (association aborted mid-data-set) nothing here keeps its
# file object, and so its descriptor, alive.
_open: "weakref.WeakValueDictionary[str, SpoolFile]" = weakref.WeakValueDictionary()
_incoming: Path | None = None
_reserve_check = None


def configure(incoming: Path, reserve_check) -> None:
    """`reserve_check()` raises (an OSError) when a new object must not be accepted."""
    global _incoming, _reserve_check
    _incoming, _reserve_check = incoming, reserve_check


def lookup(path: str | os.PathLike) -> "SpoolFile | None":
    with _lock:
        return _open.get(os.fspath(path))


class SpoolFile:
    """The subset of NamedTemporaryFile that pynetdicom uses: name, write, file.flush, close."""

    def __init__(self, *args, suffix: str = ".dcm", **kwargs):
        import tempfile

        fd, self.name = tempfile.mkstemp(suffix=".part", dir=_incoming)
        self._f = os.fdopen(fd, "wb", buffering=_BUFFER)
        self.error: OSError | None = None
        with _lock:
            _open[self.name] = self
        if _reserve_check is not None:
            try:
                _reserve_check()
            except OSError as exc:
                self._fail(exc)

    @property
    def file(self) -> "SpoolFile":
        return self

    def flush(self) -> None:
        # Deliberately nothing: pynetdicom flushes after every fragment; finish() syncs once.
        pass

    def write(self, data) -> int:
        if self.error is None:
            try:
                self._f.write(data)
            except OSError as exc:
                self._fail(exc)
        return len(data)

    def _fail(self, exc: OSError) -> None:
        self.error = exc
        # Give the space back at once: the rest of the data set goes nowhere.
        try:
            self._f.close()
        except OSError:
            pass
        try:
            os.truncate(self.name, 0)
        except OSError:
            pass

    def finish(self) -> None:
        """Flush and fsync the complete data set (called by the handler before taking it)."""
        if self.error is not None:
            raise self.error
        try:
            self._f.flush()
            os.fsync(self._f.fileno())
        except OSError as exc:
            self._fail(exc)
            raise

    def close(self) -> None:
        with _lock:
            _open.pop(self.name, None)
        if not self._f.closed:
            try:
                self._f.close()
            except OSError:
                pass


def discard_partial(assoc) -> None:
    """The connection closed with a data set half received: delete its spool file now rather than
    at the next restart (a box that runs for years must not fill up with fragments)."""
    message = getattr(getattr(assoc, "dimse", None), "message", None)
    spool = getattr(message, "_data_set_file", None)
    if isinstance(spool, SpoolFile):
        spool.close()
        try:
            os.unlink(spool.name)
        except FileNotFoundError:
            pass


def is_disk_full(exc: OSError) -> bool:
    return exc.errno in (errno.ENOSPC, errno.EDQUOT)
