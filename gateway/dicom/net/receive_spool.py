"""Where pynetdicom streams a received data set: a spool file that survives a full disk.

pynetdicom (STORE_RECV_CHUNKED_DATASET) writes each incoming fragment to a NamedTemporaryFile and
flushes it after every fragment. Two things it does badly for a store that must never fill up
silently: a write error (ENOSPC, EIO from a failing card) raises inside its DUL thread and aborts
the association, so the sender gets an abort instead of A700 and retries blindly; and the
per-fragment flush costs a syscall per PDU. This stands in for NamedTemporaryFile: writes are
buffered, a failing write turns the file into a sink that swallows the rest of the data set (so
the association survives) and records why, and the handler can then answer precisely. It also
refuses to start a new object while free space is under the reserve.

Large objects are written behind: every few MB the file's dirty pages are handed to the disk
(sync_file_range, SYNC_FILE_RANGE_WRITE: start writeback, do not wait), so the disk writes while
the rest of the object is still arriving and the fsync before Success only waits for the tail.
Without it the whole object sits in the page cache until that fsync: a 90 MB ultrasound loop
costs its full write time again after the last byte arrived.

With ingest coercion rules for the sender, the fast path gives the spool the object's
HeadCoercion (coerce_head): the first bytes are held in memory until the header is complete, and
the coerced header is written in their place (gateway/buffer/head_coercion.py says why).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from gateway.buffer.files import is_disk_full  # noqa: F401  (re-exported: the storage path uses it)

_BUFFER = 1 << 20
# Writes at least this large skip the Python buffer (a P-DATA fragment of a 128 KB PDU does).
_DIRECT = 64 * 1024
_WRITEBEHIND_STEP = 4 << 20
_SYNC_FILE_RANGE_WRITE = 2
# a head held for coercion is first tried at this size (end_head tries a smaller object).
_HEAD_MIN = 2048
# ... and held at most this much beyond what it needs: a fragment's rest is written from the
# fragment itself (a header is a few KB; copying the whole 128 KB fragment twice, into the held
# bytes and out again, cost as much as a third of the head's coercion).
_HEAD_WINDOW = 16 * 1024


def _load_sync_file_range():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):  # not Linux/glibc: the final fsync does all the work
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


_sync_file_range = _load_sync_file_range()
# fsync waits for the disk with the GIL released: the receiving thread parses the header meanwhile.
_syncer = ThreadPoolExecutor(max_workers=4, thread_name_prefix="spool-fsync")

# No registry of open spool files: whoever holds one (the fast path's message, pynetdicom's request
# primitive) hands its start_finish to the intake. When pynetdicom drops a message (association
# aborted mid-data-set) nothing here keeps its file object, and so its descriptor, alive.
_incoming: Path | None = None
_reserve_check = None


def configure(incoming: Path, reserve_check) -> None:
    """`reserve_check()` raises (an OSError) when a new object must not be accepted."""
    global _incoming, _reserve_check
    _incoming, _reserve_check = incoming, reserve_check


class SpoolFile:
    """The subset of NamedTemporaryFile that pynetdicom uses: name, write, file.flush, close."""

    def __init__(self, *args, suffix: str = ".dcm", **kwargs):
        import tempfile

        fd, self.name = tempfile.mkstemp(suffix=".part", dir=_incoming)
        self._f = os.fdopen(fd, "wb", buffering=_BUFFER)
        self._written = 0
        self._handed_to_disk = 0
        self.error: OSError | None = None
        self._head = None  # the object's coercion in the stream, while its head is held
        # ... and kept to the end: the intake finds it by this file's path in a weak mapping.
        self._head_kept = None
        self._held = bytearray()
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

    def coerce_head(self, head) -> None:
        """hold what is written from now on (the file meta first) until `head`
        (a gateway.buffer.head_coercion.HeadCoercion) returns the buffers to write in its place:
        the coerced header, written once; the rest streams as usual. Call before any write."""
        if self.error is None:
            self._head = self._head_kept = head

    def end_head(self) -> None:
        """the data set is complete: write what is still held (the head decides on the
        whole object). Called by the receiver before the intake; start_finish calls it too."""
        if self._head is not None:
            out = self._head.feed(bytes(self._held), True)
            self._head, self._held = None, bytearray()
            for data in out:
                self._put(data)

    def write(self, data) -> int:
        if self._head is not None:
            self._hold(memoryview(data))
            return len(data)
        self._put(data)
        return len(data)

    def _hold(self, view: memoryview) -> None:
        """Hold `view` for the head; once the head has its coerced bytes, write them and the rest."""
        while True:
            room = max(_HEAD_WINDOW, 2 * len(self._held)) - len(self._held)
            self._held += view[:room]
            view = view[room:]
            if len(self._held) < _HEAD_MIN:
                return  # the file meta alone: the header is not there yet
            out = self._head.feed(bytes(self._held), False)
            if out is not None:
                self._head, self._held = None, bytearray()
                for piece in out:
                    self._put(piece)
                if view:
                    self._put(view)
                return
            if not view:
                return  # more is needed: the next fragment

    def _put(self, data) -> None:
        if self.error is None:
            try:
                if len(data) >= _DIRECT:
                    self._f.flush()
                    view = memoryview(data)
                    while view:
                        view = view[os.write(self._f.fileno(), view):]
                else:
                    self._f.write(data)
                self._written += len(data)
                if self._written - self._handed_to_disk >= _WRITEBEHIND_STEP:
                    self._write_behind()
            except OSError as exc:
                self._fail(exc)

    def _write_behind(self) -> None:
        if _sync_file_range is None:
            return
        self._f.flush()
        start, length = self._handed_to_disk, self._written - self._handed_to_disk
        # A failure here is only a missed optimisation; the fsync in finish() reports real errors.
        _sync_file_range(self._f.fileno(), start, length, _SYNC_FILE_RANGE_WRITE)
        self._handed_to_disk = self._written

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
        self.start_finish().result()

    def start_finish(self, durable: bool = True) -> "Future[None]":
        """Flush now; fsync on a worker thread. The file may be read by path at once; it must not
        be closed before the future is done. The future raises what finish() would.
        durable=False: flush only, the future already done: the intake writes the
        object again (coerced) and fsyncs that copy, so this one need not reach the disk."""
        self.end_head()
        if self.error is not None:
            raise self.error
        try:
            self._f.flush()
        except OSError as exc:
            self._fail(exc)
            raise
        if not durable:
            done: Future[None] = Future()
            done.set_result(None)
            return done
        return _syncer.submit(self._sync)

    def _sync(self) -> None:
        try:
            os.fdatasync(self._f.fileno())
        except OSError as exc:
            self._fail(exc)
            raise

    def close(self) -> None:
        if not self._f.closed:
            try:
                self._f.close()
            except OSError:
                pass


def discard_partial(spool) -> None:
    """The connection closed with a data set half received: delete its spool file now rather than
    at the next restart (a box that runs for years must not fill up with fragments). `spool`: the
    file pynetdicom was streaming into (pynetdicom_patches.receiving_file), or None."""
    if isinstance(spool, SpoolFile):
        spool.close()
        try:
            os.unlink(spool.name)
        except FileNotFoundError:
            pass
