"""The FIFO a simulated input device (the front panel's buttons, the foot pedal) writes its
``struct input_event`` records into, for the real evdev drivers (raw mode) to read: made once,
opened for writing without waiting for a reader."""

from __future__ import annotations

import os
from pathlib import Path

from drivers.panel.buttons_evdev import load_evdev


def make(fifo: Path) -> None:
    """A FIFO at ``fifo`` (a plain file left there by a crash is replaced)."""
    if fifo.exists() and not fifo.is_fifo():
        fifo.unlink()
    if not fifo.exists():
        os.mkfifo(fifo, 0o600)


def open_writer(fifo: Path):
    """python-evdev's EventIO writing into ``fifo`` (``.write(type, code, value)``, ``.syn()``;
    close its ``.fd`` when done)."""
    _, EventIO = load_evdev()  # noqa: N806
    writer = EventIO()
    # Read-write: opening a FIFO write-only would block (or fail) until a reader has it.
    writer.fd = os.open(fifo, os.O_RDWR | os.O_NONBLOCK)
    return writer
