"""A video clip written as a multi-frame Secondary Capture file while it is grabbed.

Multi-frame True Color SC (PS3.3 A.8.5) for colour, Multi-frame Grayscale Byte SC (A.8.3) for
settings.color = "grayscale"; both hand-built on gateway/capture/iod.py's modules (highdicom has no
multi-frame SC class), plus Cine (C.7.6.5), Multi-frame (C.7.6.6) and SC Multi-frame Image
(C.8.6.3).

Memory does not grow with the clip: each frame is encoded as it comes and appended to a spool file
next to the target (``<name>.spool``), never held.  close() then writes the Part-10 header (whose
Number of Frames and compression ratio are only known at the end) to ``<name>.part``, copies the
spool behind it as Pixel Data (native: one element of the exact length; encapsulated: an empty
Basic Offset Table filled in (empty beyond 4 GB) and one fragment per frame, PS3.5 A.4), fsyncs,
renames the file to its name and fsyncs the folder: a crash leaves a .spool or .part (never a half
file under the real name), which the caller's start-up sweep removes.

The lossless encoders (pyjpegls for JPEG-LS, pylibjpeg-rle for RLE) hold the GIL for a whole frame
(~45 ms at 1080p): in the capture's process they starve the grabber's reader, which then loses
frames upstream (bench/bench_capture.py measured 1080p JPEG-LS at 0.72 of the encoder alone). They
run in worker processes instead (one fewer than the CPUs, at least one; forkserver, so no thread
state of the service is forked), a few frames in flight, written to the spool in order. JPEG
Baseline and native frames stay in-process: they keep up (0.88-0.99) and a process hop would cost
them more than it saves.

No Extended Offset Table (PS3.3 C.7.6.3.1.8): its OV elements are unknown to the dicom3tools here
(dciodvfy skips them with warnings) and to older PACS parsers, which may misread the element; the
Basic Offset Table does the same job for any clip under 4 GB.
"""

from __future__ import annotations

import multiprocessing
import os
import struct
import threading
from array import array
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom import dcmwrite

from drivers.grabber.interface import FrameFormat
from gateway.buffer.files import fsync_dir
from gateway.buffer.procedure import Procedure
from gateway.capture.iod import (
    MF_GRAYSCALE_BYTE_SC,
    MF_TRUE_COLOR_SC,
    Equipment,
    SeriesInfo,
    common_dataset,
    encode_pixels,
    file_meta,
    frame_pixels,
    image_pixel,
    lossy_compression,
    transfer_syntax,
)
from gateway.config.capture import CaptureSection

_ITEM = struct.Struct("<HHI")  # group, element, 4-byte length: an item or delimiter tag (PS3.5 7.5)
_PIXEL_DATA_OB = struct.Struct("<HH2s2xI")  # (7FE0,0010) OB, reserved, 4-byte length
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True)
class ClipResult:
    """A closed clip: path (the Part-10 file), sop_class_uid, sop_instance_uid, frames (count),
    bytes (the file's size)."""

    path: Path
    sop_class_uid: str
    sop_instance_uid: str
    frames: int
    bytes: int


# The encodings whose encoder holds the GIL for a whole frame: encoded in worker processes.
OFF_GIL_ENCODINGS = ("rle", "jpeg-ls")
# Frames handed to the workers before the oldest is waited for: enough to keep every worker busy,
# few enough that memory stays flat (a 1080p RGB frame is 6 MB).
IN_FLIGHT = 4

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _encoder_pool() -> ProcessPoolExecutor:
    """The worker processes of the lossless encoders, made at the first such clip and kept for
    the service's life (a worker's start, with its imports, costs about a second)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            workers = max(1, (os.cpu_count() or 2) - 1)
            _pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("forkserver"))
        return _pool


def _encode(pixels: np.ndarray, settings: CaptureSection) -> bytes:
    """encode_pixels in a worker process (a module-level function: what a process pool can call)."""
    return encode_pixels(pixels, settings)


class ClipWriter:
    """Streams one clip's frames to disk and makes them a multi-frame SC file on close().

    ClipWriter(path, procedure, series, equipment, settings, fmt, instance_number, started):
    path: where the file goes (its folder must exist); fmt: the grabber's FrameFormat (every frame
    must be fmt.height x fmt.width; fmt.fps gives Frame Time, Cine Rate and Recommended Display
    Frame Rate unless close() measures the rate; fmt.analog the Conversion Type DV/DI); started:
    the first frame's time.
    ValueError (one line) for a bad format or instance number; OSError when the spool cannot be
    created.  Not thread-safe: one grabbing thread owns it.
    """

    def __init__(
        self,
        path: Path,
        procedure: Procedure,
        series: SeriesInfo,
        equipment: Equipment,
        settings: CaptureSection,
        fmt: FrameFormat,
        instance_number: int,
        started: datetime,
    ) -> None:
        if fmt.width < 1 or fmt.height < 1 or not (0 < fmt.fps <= 1000):
            raise ValueError(f"clip format {fmt.width}x{fmt.height} at {fmt.fps} fps is not a video format")
        self.path = Path(path)
        self._settings = settings
        self._fmt = fmt
        self._encapsulated = transfer_syntax(settings).is_encapsulated
        self._sop_class = MF_GRAYSCALE_BYTE_SC if settings.color == "grayscale" else MF_TRUE_COLOR_SC
        # Built now, not at close: a bad identifier or instance number fails the clip's start,
        # not its end after minutes of video.
        self._ds = common_dataset(self._sop_class, procedure, series, equipment, settings, instance_number,
                                  started, fmt.analog)
        self.sop_instance_uid = str(self._ds.SOPInstanceUID)
        self._started = started
        self._spool_path = self.path.with_name(self.path.name + ".spool")
        self._part_path = self.path.with_name(self.path.name + ".part")
        self._spool = open(self._spool_path, "wb")  # noqa: SIM115 - lives as long as the clip
        self._frames = 0
        self._raw_bytes = 0
        self._encoded_bytes = 0
        # Where each frame's item starts after the Basic Offset Table item (PS3.5 A.4), for that
        # table: 4 bytes a frame, the only thing a clip keeps in memory per frame.
        self._offsets = array("Q")
        self._spool_bytes = 0
        self._off_gil = settings.encoding in OFF_GIL_ENCODINGS
        self._pending: deque[Future] = deque()
        self._done = False  # closed or discarded: no more frames
        self._closed = False  # the file is at path and the caller's

    @property
    def frames(self) -> int:
        """The number of frames added so far."""
        return self._frames

    def add(self, frame: np.ndarray) -> None:
        """Encode one frame ((fmt.height, fmt.width, 3) uint8 RGB) and append it to the spool.
        ValueError (one line) for another shape or dtype; RuntimeError after close() or discard();
        OSError when the disk refuses (the clip is then best discarded)."""
        if self._done:
            raise RuntimeError(f"clip {self.path.name} is already closed or discarded")
        pixels = frame_pixels(frame, self._settings)
        if frame.shape[:2] != (self._fmt.height, self._fmt.width):
            raise ValueError(
                f"frame is {frame.shape[1]}x{frame.shape[0]}, the clip is {self._fmt.width}x{self._fmt.height}"
            )
        self._frames += 1
        self._raw_bytes += pixels.nbytes
        if self._off_gil:
            self._pending.append(_encoder_pool().submit(_encode, pixels, self._settings))
            while len(self._pending) >= IN_FLIGHT:
                self._write(self._pending.popleft().result())
        else:
            self._write(encode_pixels(pixels, self._settings))

    def _write(self, encoded: bytes) -> None:
        """Append one encoded frame to the spool (in the order the frames came)."""
        if self._encapsulated:
            pad = len(encoded) % 2  # a fragment has an even length (PS3.5 A.4)
            self._offsets.append(self._spool_bytes)
            self._spool_bytes += _ITEM.size + len(encoded) + pad
            self._spool.write(_ITEM.pack(0xFFFE, 0xE000, len(encoded) + pad))
            self._spool.write(encoded)
            if pad:
                self._spool.write(b"\0")
        else:
            self._spool.write(encoded)
        self._encoded_bytes += len(encoded)

    def close(self, ended: datetime, note: str = "") -> ClipResult:
        """Write the clip's Part-10 file at ``path`` and return what it is.  ended: when the last
        frame was grabbed (with the start, it gives the Frame Time: see _frame_time_ms); note: a
        line for Image Comments (0020,4000), e.g. why the clip ended ("signal lost", "format
        changed"), "" for none.  The file is complete and fsynced (and its
        folder) when this returns.  ValueError for a clip without frames (discard() it instead);
        RuntimeError when already closed or discarded; OSError from the disk (spool and part file
        are then removed)."""
        if self._done:
            raise RuntimeError(f"clip {self.path.name} is already closed or discarded")
        if self._frames == 0:
            raise ValueError(f"clip {self.path.name} has no frames: discard it")
        self._done = True
        try:
            while self._pending:
                self._write(self._pending.popleft().result())
            self._spool.flush()
            self._spool.close()
            size = self._write_file(ended, note)
            os.replace(self._part_path, self.path)
            fsync_dir(self.path.parent)
        except BaseException:
            self._remove_temporaries()
            raise
        self._spool_path.unlink(missing_ok=True)
        self._closed = True
        return ClipResult(self.path, self._sop_class, self.sop_instance_uid, self._frames, size)

    def discard(self) -> None:
        """Stop the clip and remove its spool and any part file; nothing is left at ``path``.
        Safe to call twice; after a successful close() it does nothing (the file is the caller's)."""
        if self._closed:
            return
        self._done = True
        self._remove_temporaries()

    def _remove_temporaries(self) -> None:
        for future in self._pending:
            future.cancel()  # a frame already being encoded finishes in its worker, unread
        self._pending.clear()
        if not self._spool.closed:
            self._spool.close()
        self._spool_path.unlink(missing_ok=True)
        self._part_path.unlink(missing_ok=True)

    def _header(self, ended: datetime, note: str):
        ds = self._ds
        image_pixel(ds, self._fmt.height, self._fmt.width, self._settings)
        lossy_compression(ds, self._settings, self._raw_bytes, self._encoded_bytes)
        frame_ms = self._frame_time_ms(ended)
        rate = max(1, round(1000.0 / frame_ms))
        # Multi-frame (C.7.6.6) and Cine (C.7.6.5).
        ds.NumberOfFrames = self._frames
        ds.FrameIncrementPointer = 0x00181063  # Frame Time
        ds.FrameTime = f"{frame_ms:.6g}"
        ds.CineRate = rate
        ds.RecommendedDisplayFrameRate = rate
        ds.EffectiveDuration = f"{self._frames * frame_ms / 1000.0:.6g}"
        ds.PreferredPlaybackSequencing = 0  # looping
        ds.StartTrim = 1
        ds.StopTrim = self._frames
        # SC Multi-frame Image (C.8.6.3): Burned In Annotation is Type 1 here (set by the common
        # modules); a grayscale clip states its identity rescale and presentation.
        if self._settings.color == "grayscale":
            ds.PresentationLUTShape = "IDENTITY"
            ds.RescaleIntercept = "0"
            ds.RescaleSlope = "1"
            ds.RescaleType = "US"
        if note:
            ds.ImageComments = note[:10240]
        ds.file_meta = file_meta(self._sop_class, self.sop_instance_uid, self._settings)
        return ds

    def _basic_offset_table(self) -> bytes:
        """The Basic Offset Table item (PS3.5 A.4): each frame's offset when the last fits 32 bits
        (a reader then finds frame n without walking n fragments), else empty (a clip over 4 GB,
        e.g. RLE at length; readers then walk the fragments, one a frame)."""
        if self._offsets and self._offsets[-1] <= 0xFFFFFFFF:
            n = len(self._offsets)
            return _ITEM.pack(0xFFFE, 0xE000, 4 * n) + struct.pack(f"<{n}I", *self._offsets)
        return _ITEM.pack(0xFFFE, 0xE000, 0)

    def _frame_time_ms(self, ended: datetime) -> float:
        """The clip's mean frame interval, ms: (ended - started) / (frames - 1) when that can be
        measured, so that a clip whose grabber dropped frames plays back in real time; else the
        format's nominal 1000 / fps."""
        nominal = 1000.0 / self._fmt.fps
        if self._frames < 2:
            return nominal
        try:
            span = (ended - self._started).total_seconds()
        except TypeError:  # one aware, one naive datetime: no measurement
            return nominal
        if span <= 0:
            return nominal
        return span * 1000.0 / (self._frames - 1)

    def _write_file(self, ended: datetime, note: str) -> int:
        ds = self._header(ended, note)
        spool_size = self._spool_path.stat().st_size
        with open(self._part_path, "wb") as out:
            dcmwrite(out, ds, enforce_file_format=True)
            if self._encapsulated:
                out.write(_PIXEL_DATA_OB.pack(0x7FE0, 0x0010, b"OB", 0xFFFFFFFF))
                out.write(self._basic_offset_table())
            else:
                pad = spool_size % 2
                out.write(_PIXEL_DATA_OB.pack(0x7FE0, 0x0010, b"OB", spool_size + pad))
            with open(self._spool_path, "rb") as spool:
                while chunk := spool.read(_COPY_CHUNK):
                    out.write(chunk)
            if self._encapsulated:
                out.write(_ITEM.pack(0xFFFE, 0xE0DD, 0))  # Sequence Delimitation Item
            elif pad:
                out.write(b"\0")
            out.flush()
            os.fsync(out.fileno())
            return out.tell()
