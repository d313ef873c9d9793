"""What a frame grabber offers the capture service: open, the frame format, read a frame, signal
lost and back, close.

A frame is RGB, 8 bits a sample, (rows, columns, 3) uint8, whatever the device delivers (YUYV,
MJPEG, ...): the driver's decode path converts, so the capture service and the IOD code see one
layout.  Reading never blocks longer than the timeout it is given: a grabber whose source is off
or unplugged raises SignalLost, it does not hang the capture.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


class GrabberError(Exception):
    """The device cannot be used (absent, busy, unsupported format); the message is one line that
    names the device and what to check."""


class SignalLost(GrabberError):
    """No frame within the timeout, or the device reports no input signal.  The next read may
    succeed again (signal back); the capture service decides what a clip does meanwhile."""


class FormatChanged(GrabberError):
    """The source changed its resolution or rate (a modality switched its video mode).  The
    grabber has already reopened itself: ``format`` is the new one, the next read returns frames
    in it.  A clip cannot change shape mid-object: the capture service closes it."""


@dataclass(frozen=True)
class FrameFormat:
    """What frames look like.  width, height: pixels.  fps: the nominal rate (frames a second).
    source_format: the device's own pixel format ("yuyv422", "mjpeg", ...), for logs.
    analog: the video came through an analog input (composite, S-Video, VGA): the SC Equipment
    module's Conversion Type is DV for it, DI for a digital one (PS3.3 C.8.6.1)."""

    width: int
    height: int
    fps: float
    source_format: str
    analog: bool


@dataclass(frozen=True)
class Frame:
    """One frame.  pixels: (height, width, 3) uint8 RGB, owned by the caller.  index: the
    device's frame counter (gaps are frames the reader did not take).  at: time.monotonic() when it
    was read, seconds."""

    pixels: np.ndarray
    index: int
    at: float


@runtime_checkable
class Grabber(Protocol):
    """One frame grabber.  name: the config's device name (for logs and events)."""

    name: str

    def open(self) -> FrameFormat:
        """Start the device; its format.  GrabberError (one line) when it cannot start."""
        ...

    @property
    def format(self) -> FrameFormat | None:
        """The current format; None before open()."""
        ...

    def read(self, timeout: float) -> Frame:
        """The next frame, within ``timeout`` seconds.  SignalLost when none comes or the device
        says there is no signal; FormatChanged when the format changed (see the class);
        GrabberError when the device failed."""
        ...

    def close(self) -> None:
        """Stop the device; safe to call twice or after a failed open()."""
        ...
