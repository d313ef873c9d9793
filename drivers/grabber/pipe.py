"""A grabber stream carried over a Unix socket: where hw-sim's frame source stands in for the device
node (there is no v4l2loopback in a container or on CI machines).

The socket carries what a V4L2 device hands out, in the device's pixel format, after one header
line (the answer VIDIOC_G_FMT gives the real driver):

    {"width": 640, "height": 480, "fps": 30, "pixel_format": "yuyv422"}\\n
    frame 0, frame 1, ...   yuyv422: width*height*2 bytes each (Y0 U Y1 V, BT.601 limited range);
                            mjpeg: one JPEG each, as a UVC grabber's MJPEG payload

The stream ends (EOF) when the source changes its format; the next connection's header has the
new one, as a V4L2 source change ends streaming and VIDIOC_G_FMT then says the new size.

What differs from the device path (drivers/grabber/v4l2.py's V4l2Device), exactly: the demuxer
(ffmpeg's ``rawvideo`` or ``mjpeg`` demuxer reading the socket through a PyAV Python file object,
instead of the ``v4l2`` demuxer's mmap'ed kernel buffers), and the format, which comes from the
header line instead of VIDIOC_S_FMT / VIDIOC_G_FMT.  The decoder (``rawvideo`` / ``mjpeg``), the
swscale conversion to rgb24, the reader thread, the queue, SignalLost and FormatChanged are the
same code.
"""

from __future__ import annotations

import io
import json
import os
import select
import socket
import threading
import time
from typing import Any

import av

from drivers.grabber.interface import GrabberError
from drivers.grabber.v4l2 import MJPEG_PROBE

HEADER_MAX = 512
POLL_S = 0.1  # how often a waiting read looks at the stop flag


class _SocketReader(io.RawIOBase):
    """A readable file over ``sock`` for PyAV's custom I/O: a read waits for data, POLL_S at a time,
    and returns EOF once ``stop`` is set or the peer closed, so a grabber's close() is never
    stuck behind a source that sends nothing (signal lost)."""

    def __init__(self, sock: socket.socket, stop: threading.Event, pending: bytes = b""):
        super().__init__()
        self.sock, self.stop, self.pending = sock, stop, pending

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        if self.pending:
            n = min(len(view), len(self.pending))
            view[:n], self.pending = self.pending[:n], self.pending[n:]
            return n
        while not self.stop.is_set():
            ready, _, _ = select.select([self.sock], [], [], POLL_S)
            if ready:
                try:
                    return self.sock.recv_into(view)
                except (ConnectionResetError, BrokenPipeError):
                    return 0
        return 0


class PipeSource:
    """A StreamSource (drivers/grabber/v4l2.py) on the Unix socket ``address`` (a path, or a Linux
    abstract name starting with NUL).  ``description``: for messages."""

    def __init__(self, address: str, description: str | None = None):
        self.address = address
        self.description = description or f"pipe {address.lstrip(chr(0))}"

    def check(self) -> None:
        """GrabberError when a path socket does not exist (an abstract name cannot be checked)."""
        if not self.address.startswith("\0") and not os.path.exists(self.address):
            raise GrabberError(f"{self.description}: no such socket (is the frame source running?)")

    def open(self, first: bool, stop: threading.Event, timeout: float) -> Any:
        """Connect, read the header, open the demuxer on the rest.  GrabberError (one line) when
        nothing listens, the header does not come within ``timeout`` s or is not understood."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(self.address)
            header, rest = self._header(sock, stop, timeout)
            sock.setblocking(False)
            width, height = int(header["width"]), int(header["height"])
            fps, pixel_format = float(header["fps"]), str(header["pixel_format"])
            reader = _SocketReader(sock, stop, rest)
            if pixel_format == "yuyv422":
                fmt, options = "rawvideo", {"video_size": f"{width}x{height}", "pixel_format": "yuyv422",
                                            "framerate": f"{fps:g}"}
                buffer_size = width * height * 2
            elif pixel_format == "mjpeg":
                fmt, buffer_size = "mjpeg", 1 << 16
                options = {"framerate": f"{fps:g}", **MJPEG_PROBE}
            else:
                raise GrabberError(f"{self.description}: pixel format {pixel_format!r} is not yuyv422 or mjpeg")
            container = av.open(reader, format=fmt, options=options, buffer_size=buffer_size)
        except GrabberError:
            sock.close()
            raise
        except (OSError, ValueError, KeyError, TypeError, av.FFmpegError) as exc:
            sock.close()
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise GrabberError(f"{self.description}: {' '.join(str(reason).split())}") from None
        # The container reads through `reader`; closing the socket with the container is PyAV's
        # job only for files it opened itself, so tie it to the container's life here.
        return _Closing(container, sock)

    def _header(self, sock: socket.socket, stop: threading.Event, timeout: float) -> tuple[dict, bytes]:
        data = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in data:
            if stop.is_set() or time.monotonic() > deadline:
                raise GrabberError(f"{self.description}: no stream header within {timeout:g} s")
            if len(data) > HEADER_MAX:
                raise GrabberError(f"{self.description}: no stream header (not a frame source?)")
            sock.settimeout(min(POLL_S, max(0.001, deadline - time.monotonic())))
            try:
                chunk = sock.recv(HEADER_MAX)
            except TimeoutError:
                continue
            if not chunk:
                raise GrabberError(f"{self.description}: the source closed before its header")
            data += chunk
        line, _, rest = data.partition(b"\n")
        try:
            header = json.loads(line)
        except ValueError:
            raise GrabberError(f"{self.description}: the stream header is not JSON") from None
        if not isinstance(header, dict):
            raise GrabberError(f"{self.description}: the stream header is not a JSON object")
        return header, rest


class _Closing:
    """A PyAV container that also closes its socket."""

    def __init__(self, container: Any, sock: socket.socket):
        self._container, self._sock = container, sock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def close(self) -> None:
        try:
            self._container.close()
        finally:
            self._sock.close()
