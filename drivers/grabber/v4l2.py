"""The V4L2 frame grabber (drivers/grabber/interface.py's Grabber) through PyAV.

Why PyAV: one well-kept wheel (manylinux aarch64 for the Pi) carries ffmpeg's libavdevice (the
``v4l2`` demuxer: opens /dev/videoN, sets the pixel format, size and rate, streams by mmap),
libavcodec (the ``rawvideo`` decoder for YUYV, ``mjpeg`` for MJPEG grabbers) and libswscale (the
YUV -> RGB conversion, SIMD: 1080p30 on a Pi 4, where numpy YUV arithmetic is not).

The decode path, the same for every source (``StreamSource``): a PyAV input container ->
``codec_context.decode(packet)`` -> ``VideoFrame.to_ndarray(format="rgb24")`` (swscale, BT.601
limited range for YUYV as the device delivers it, full range for MJPEG's JFIF).  Only the source
of the container differs: ``V4l2Device`` opens the device node with the ``v4l2`` demuxer;
drivers/grabber/pipe.py's ``PipeSource`` (hw-sim's frame source, no v4l2loopback in a container)
opens the ``rawvideo`` (or ``mjpeg``) demuxer on a socket carrying the same bytes a device hands out.

A reader thread decodes into a small queue (``queue_frames``; when the consumer is slower, the
oldest frame is dropped, and ``Frame.index`` shows the gap), so ``read(timeout)`` waits on the
queue only and never longer than its timeout.

What the real device path can and cannot detect without extra ioctls (linuxpy's
VIDIOC_ENUMINPUT input status, V4L2_IN_ST_NO_SIGNAL, and VIDIOC_SUBSCRIBE_EVENT
V4L2_EVENT_SOURCE_CHANGE are NOT used; not done):

- signal lost: detected only as "no frame within the timeout".  A grabber that keeps streaming a
  blue or black "no signal" picture (many USB HDMI dongles do) is NOT seen as signal lost.
- resolution change: detected when the stream ends (the v4l2 demuxer returns an error or EOF;
  HDMI bridge drivers stop streaming on a source change) -- the device is then reopened without a
  forced size, so ffmpeg takes the device's current format (VIDIOC_G_FMT) -- and when a decoded
  frame has another size than the stream had (MJPEG frames carry their own size).  A UVC dongle
  that scales every source to the configured size shows no change at all (nothing to detect).
- a blocked VIDIOC_DQBUF (a driver that waits forever for a frame) cannot be interrupted: close()
  waits CLOSE_JOIN_S for the reader, then leaves it (a daemon thread) to release the device when
  its ioctl returns, and says so in the log.
"""

from __future__ import annotations

import collections
import logging
import os
import stat
import threading
import time
from typing import Any, Protocol

import av

from drivers.grabber.interface import FormatChanged, Frame, FrameFormat, GrabberError, SignalLost

log = logging.getLogger("drivers.grabber")

PIXEL_FORMATS = ("yuyv422", "mjpeg")
REOPEN_S = 0.5      # between two attempts to reopen a stream that ended or failed
CLOSE_JOIN_S = 3.0  # how long close() waits for the reader thread
# MJPEG: without it, opening probes ~50 frames (1.7 s at 30 fps, measured over the pipe) before
# the first is handed out; one frame tells the size.
MJPEG_PROBE = {"probesize": "32"}


def _av_reason(exc: BaseException) -> str:
    """One line for an ffmpeg/OS error: its strerror when it has one."""
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(reason).split())


def stream_format(container: Any, fallback_fps: float, analog: bool) -> FrameFormat:
    """The FrameFormat of ``container``'s first video stream.  GrabberError when it has none."""
    if not container.streams.video:
        raise GrabberError("the stream has no video")
    stream = container.streams.video[0]
    cc = stream.codec_context
    rate = stream.average_rate or stream.guessed_rate
    fps = float(rate) if rate else float(fallback_fps)
    source = "mjpeg" if cc.name == "mjpeg" else (cc.format.name if cc.format is not None else cc.name)
    return FrameFormat(width=cc.width, height=cc.height, fps=fps, source_format=source, analog=analog)


class StreamSource(Protocol):
    """Where a grabber's PyAV container comes from (the device node, or hw-sim's socket).

    ``description``: the device for messages ("/dev/video0").  ``check()``: a quick synchronous
    look before the reader starts (GrabberError, one line, for an absent device).  ``open(first,
    stop, timeout)``: an input container; ``first`` False is a reopen after the stream ended
    (take the source's current format); ``stop`` is set when the grabber closes (a source that
    waits must give up then); GrabberError (one line) when it cannot."""

    description: str

    def check(self) -> None: ...

    def open(self, first: bool, stop: threading.Event, timeout: float) -> Any: ...


class V4l2Device:
    """A V4L2 capture node through ffmpeg's ``v4l2`` demuxer (libavdevice): ``input_format``
    (yuyv422 or mjpeg), ``video_size`` and ``framerate`` as the demuxer's options (it sets them
    with VIDIOC_S_FMT / VIDIOC_S_PARM; a driver that adjusts them is followed: the stream's
    size is what the device took)."""

    def __init__(self, device: str, width: int, height: int, fps: float, pixel_format: str):
        self.device, self.width, self.height, self.fps = device, width, height, fps
        self.pixel_format = pixel_format
        self.description = device

    def check(self) -> None:
        """GrabberError when the node is absent, not a character device or not readable."""
        try:
            st = os.stat(self.device)
        except FileNotFoundError:
            raise GrabberError(f"{self.device}: no such device (is the grabber plugged in? see ls /dev/video*)") from None
        except OSError as exc:
            raise GrabberError(f"{self.device}: {_av_reason(exc)}") from None
        if not stat.S_ISCHR(st.st_mode):
            raise GrabberError(f"{self.device}: not a video device (not a character device)")
        if not os.access(self.device, os.R_OK | os.W_OK):
            raise GrabberError(f"{self.device}: permission denied (is the service in the video group?)")

    def open(self, first: bool, stop: threading.Event, timeout: float) -> Any:
        """The ``v4l2`` demuxer on the node: the configured size and rate on the first open, the
        device's current ones (ffmpeg asks VIDIOC_G_FMT when no size is given) on a reopen."""
        options = {"input_format": self.pixel_format, **(MJPEG_PROBE if self.pixel_format == "mjpeg" else {})}
        if first:
            options.update(video_size=f"{self.width}x{self.height}", framerate=f"{self.fps:g}")
        try:
            return av.open(self.device, format="v4l2", options=options)
        except (av.FFmpegError, OSError) as exc:
            raise GrabberError(f"{self.device}: {_av_reason(exc)}") from None


class V4l2Grabber:
    """A frame grabber on ``source`` (default: the V4L2 node ``device``).

    name: the config's device name.  device: "/dev/video0".  width, height (pixels), fps: what the
    device is asked for.  pixel_format: "yuyv422" | "mjpeg".  analog: the input is analog video
    (Conversion Type DV).  open_timeout_s: how long open() waits for the stream's format.
    queue_frames: frames held for read().  source: another StreamSource (hw-sim's PipeSource)
    in place of the device node; the decode path is the same."""

    def __init__(self, name: str, device: str, width: int, height: int, fps: float,
                 pixel_format: str = "yuyv422", analog: bool = True, open_timeout_s: float = 5.0,
                 queue_frames: int = 4, source: StreamSource | None = None):
        if pixel_format not in PIXEL_FORMATS:
            raise GrabberError(f"grabber {name}: pixel format {pixel_format!r} is not one of {', '.join(PIXEL_FORMATS)}")
        self.name = name
        self.device = device
        self.requested = FrameFormat(width, height, float(fps), pixel_format, analog)
        self.open_timeout_s = open_timeout_s
        self.source: StreamSource = source or V4l2Device(device, width, height, fps, pixel_format)
        self._queue: collections.deque = collections.deque()
        self._queue_frames = max(1, queue_frames)
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._format: FrameFormat | None = None      # what the consumer was last told
        self._stream_format: FrameFormat | None = None  # what the reader decodes now
        self._opened: bool | None = None  # the first open's outcome: None while it runs
        self._open_error: str = ""
        self._last_error: str = ""
        self._fatal: str = ""  # the reader thread died of a bug: read() says so
        self._count = 0
        self.dropped = 0

    # -- the Grabber interface -----------------------------------------------------------------
    @property
    def format(self) -> FrameFormat | None:
        """The current format (the one the frames read() returns next have); None before open()."""
        return self._format

    def open(self) -> FrameFormat:
        """Check the device, start the reader, wait up to open_timeout_s for the stream's format.
        GrabberError (one line naming the device) when it cannot start.  A device that opens but
        sends nothing within the timeout (no signal) is not an error: the requested format is
        returned, read() raises SignalLost, and FormatChanged follows if the stream turns out
        to have another one."""
        if self._thread is not None:
            raise GrabberError(f"grabber {self.name}: already open")
        try:
            self.source.check()
        except GrabberError as exc:
            raise GrabberError(f"grabber {self.name}: {exc}") from None
        # A new flag per open: a reader of the last open still blocked in the driver (see the
        # module) stays stopped.
        self._stop = stop = threading.Event()
        self._queue.clear()
        self._format = self._stream_format = None  # a device reopened may come back in another size
        self._opened, self._open_error, self._last_error, self._fatal = None, "", "", ""
        self._thread = threading.Thread(target=self._run, args=(stop,), name=f"grabber-{self.name}", daemon=True)
        self._thread.start()
        with self._cond:
            self._cond.wait_for(lambda: self._opened is not None, self.open_timeout_s)
            opened, error = self._opened, self._open_error
            if opened:
                self._format = self._stream_format
        if opened is False:
            self.close()
            raise GrabberError(f"grabber {self.name}: {error}")
        if opened is None:
            log.warning("grabber %s: %s opened but no stream within %.1f s (no signal?); assuming %dx%d",
                        self.name, self.source.description, self.open_timeout_s, self.requested.width,
                        self.requested.height)
            with self._cond:
                # From now on a failing first open is retried like a reopen: open() has returned.
                self._opened = True
                if self._format is None:
                    self._format = self._stream_format or self.requested
        assert self._format is not None
        return self._format

    def read(self, timeout: float) -> Frame:
        """The next frame within ``timeout`` seconds.  SignalLost when none comes (the message says
        the last stream error, if any); FormatChanged once when the stream's size changed (then
        ``format`` is the new one); GrabberError when not open or when the reader failed."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while not self._queue:
                if self._thread is None:
                    raise GrabberError(f"grabber {self.name}: not open")
                if self._fatal:
                    raise GrabberError(f"grabber {self.name}: {self._fatal}")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    why = f" ({self._last_error})" if self._last_error else ""
                    raise SignalLost(f"grabber {self.name}: no frame from {self.source.description} "
                                     f"within {timeout:g} s{why}")
                self._cond.wait(remaining)
            item = self._queue.popleft()
            if isinstance(item, FrameFormat):
                before, self._format = self._format, item
        if isinstance(item, FrameFormat):
            raise FormatChanged(f"grabber {self.name}: {self.source.description} changed from "
                                f"{_size(before)} to {_size(item)} ({item.source_format})")
        return item

    def close(self) -> None:
        """Stop the reader and release the device; safe twice and after a failed open()."""
        thread, self._thread = self._thread, None
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if thread is not None and thread is not threading.current_thread():
            thread.join(CLOSE_JOIN_S)
            if thread.is_alive():
                log.warning("grabber %s: the reader of %s did not stop within %.0f s (blocked in the "
                            "driver); it releases the device when its read returns", self.name,
                            self.source.description, CLOSE_JOIN_S)
        with self._cond:
            self._queue.clear()

    # -- the reader thread ---------------------------------------------------------------------
    def _run(self, stop: threading.Event) -> None:
        try:
            self._read_streams(stop)
        except Exception as exc:  # noqa: BLE001 - a bug must not leave read() saying "no signal"
            log.exception("grabber %s: the reader failed", self.name)
            with self._cond:
                self._fatal = f"the reader failed: {type(exc).__name__}: {_av_reason(exc)}"
                self._cond.notify_all()
            self._settle_open(False, self._fatal)

    def _read_streams(self, stop: threading.Event) -> None:
        first = True
        while not stop.is_set():
            try:
                container = self.source.open(first, stop, self.open_timeout_s)
            except GrabberError as exc:
                if first and self._settle_open(False, str(exc)):
                    return
                self._note_error(str(exc))
                stop.wait(REOPEN_S)
                continue
            try:
                self._decode(container, first, stop)
            except (av.FFmpegError, OSError, GrabberError, ValueError) as exc:
                if first and self._settle_open(False, f"{self.source.description}: {_av_reason(exc)}"):
                    return
                self._note_error(f"{self.source.description}: {_av_reason(exc)}")
            finally:
                container.close()
            first = False
            if not stop.is_set():
                # The stream ended (a V4L2 source change, the simulator's resolution change,
                # an unplugged device): reopen after a breath, taking the source's current format.
                if not self._last_error:
                    self._note_error(f"{self.source.description}: the stream ended")
                stop.wait(REOPEN_S)

    def _decode(self, container: Any, first: bool, stop: threading.Event) -> None:
        fmt = stream_format(container, self.requested.fps, self.requested.analog)
        self._new_format(fmt)
        if first:
            self._settle_open(True, "")
        stream = container.streams.video[0]
        cc = stream.codec_context
        for packet in container.demux(stream):
            if stop.is_set():
                return
            for frame in cc.decode(packet):
                if stop.is_set():
                    return
                if (frame.width, frame.height) != (fmt.width, fmt.height):
                    fmt = FrameFormat(frame.width, frame.height, fmt.fps, fmt.source_format, fmt.analog)
                    self._new_format(fmt)
                pixels = frame.to_ndarray(format="rgb24")
                self._put(Frame(pixels=pixels, index=self._count, at=time.monotonic()))
                self._count += 1

    def _settle_open(self, ok: bool, error: str) -> bool:
        """The first open's outcome, for open() to hand out; False when open() already gave up
        waiting (then a failure is retried like any reopen)."""
        with self._cond:
            if self._opened is not None:
                return False
            self._opened, self._open_error = ok, error
            self._cond.notify_all()
            return True

    def _note_error(self, error: str) -> None:
        if error != self._last_error:
            log.info("grabber %s: %s", self.name, error)
        with self._cond:
            self._last_error = error

    def _new_format(self, fmt: FrameFormat) -> None:
        """The reader decodes ``fmt`` from now on; the consumer learns it in order (a marker after
        the frames of the old format), unless it is the format it already has."""
        with self._cond:
            before, self._stream_format = self._stream_format, fmt
            told = self._format
            if told is None and before is None:
                return  # the first format: open() hands it out
            last = next((q for q in reversed(self._queue) if isinstance(q, FrameFormat)), None) or told
            if last is not None and _size(last) == _size(fmt) and last.source_format == fmt.source_format:
                return
            self._queue.append(fmt)
            self._cond.notify_all()

    def _put(self, frame: Frame) -> None:
        with self._cond:
            self._last_error = ""
            frames = sum(1 for q in self._queue if isinstance(q, Frame))
            if frames >= self._queue_frames:
                # Drop the oldest frame, never a format marker: the consumer must learn the change.
                for i, q in enumerate(self._queue):
                    if isinstance(q, Frame):
                        del self._queue[i]
                        self.dropped += 1
                        break
            self._queue.append(frame)
            self._cond.notify_all()


def _size(fmt: FrameFormat | None) -> str:
    return "unknown" if fmt is None else f"{fmt.width}x{fmt.height}"
