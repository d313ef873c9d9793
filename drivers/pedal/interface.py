"""The foot pedal's contract: edges of one switch, from the driver's reader thread.

``start(on_press)`` opens the device and calls ``on_press(PedalEvent)`` for every press (the pedal
went down) and release, from the driver's own thread; the caller must not block in it (the
capture logic, gateway/capture/pedal.py, hands the event to its own thread).  ``stop()`` stops the
thread and closes the device.  What a press *means* (a still, a clip) is not the driver's business.

Every failure is a PedalError whose message is one line naming the device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class PedalError(Exception):
    """A pedal that cannot be used (no such device, no permission, no such key, grabbed by another
    program); the message is one line naming the device."""


@dataclass(frozen=True)
class PedalEvent:
    """One edge of the pedal: ``pressed`` True when it went down, False when released; ``at``
    CLOCK_MONOTONIC seconds (time.monotonic()) of the edge, as the kernel stamped it."""

    pressed: bool
    at: float


@runtime_checkable
class Pedal(Protocol):
    """A foot pedal."""

    device: str

    def start(self, on_press: Callable[[PedalEvent], None]) -> None:
        """Open the device (PedalError when it cannot be) and call ``on_press`` from a reader
        thread for every edge."""

    def stop(self) -> None:
        """Stop the reader thread and close the device; safe when not started."""
