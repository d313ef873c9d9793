"""The foot pedal as a capture trigger (issue 10): a tap takes a still, a hold records a clip.

The pedal's driver (drivers/pedal/) calls ``on_event`` from its reader thread with every edge;
this module only queues the edge there, and its own thread decides and calls the injected
``capture(long)`` (the app gives it the panel's: Commands.capture with capture.clip_s for a long
press), so a capture that takes a moment (a still encoded and fsynced into the buffer) never
stalls the driver's reading, and the driver never runs capture code.

Short or long: a press released before ``long_press_s`` is a still, decided at the release; a
press held ``long_press_s`` is a clip, started at that moment (the foot is still down; the release
then does nothing).  The times are the edges' CLOCK_MONOTONIC stamps for the release and the
monotonic clock for the hold, the panel's rule (gateway/panel/buttons.py ButtonTracker).

A refused capture (no signal, a clip already recording: the capture service refuses, not this
module) is logged as one INFO line; the same refusal again (a foot tapping on while a clip
records) is not repeated until a capture is accepted or the refusal changes.  What ``capture``
returns is read by duck typing: ``refused`` (a one-line reason, "" when it ran) and ``ok``, as
gateway/commands.py CommandResult has them, so this floor needs nothing of the app's.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from drivers.pedal.interface import Pedal, PedalEvent

log = logging.getLogger("gateway.capture.pedal")

_STOP = object()


class PedalTrigger:
    """``pedal`` (a drivers/pedal Pedal) triggering ``capture(long: bool)``; ``long_press_s``
    (seconds) tells a tap from a hold.  start() / stop(); PedalError from start() when the pedal
    cannot be opened (nothing keeps running then)."""

    def __init__(self, pedal: Pedal, capture: Callable[[bool], Any], long_press_s: float):
        self.pedal = pedal
        self.capture = capture
        self.long_press_s = long_press_s
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._last_refusal = ""

    def start(self) -> None:
        """Start the deciding thread, then the pedal (its reader feeds the thread's queue)."""
        self._thread = threading.Thread(target=self._run, name="capture-pedal", daemon=True)
        self._thread.start()
        try:
            self.pedal.start(self._events.put)
        except BaseException:
            self._halt()
            raise
        log.info("foot pedal on %s: a tap takes a still, held %g s records a clip", self.pedal.device,
                 self.long_press_s)

    def stop(self) -> None:
        """Stop the pedal's reader, then the deciding thread (a capture in hand finishes first)."""
        try:
            self.pedal.stop()
        finally:
            self._halt()

    def is_alive(self) -> bool:
        """The deciding thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _halt(self) -> None:
        if self._thread is not None:
            self._events.put(_STOP)
            self._thread.join(30)
            self._thread = None

    # -- the deciding thread ----------------------------------------------------------------------
    def _run(self) -> None:
        down_at: float | None = None   # the press's stamp while the pedal is down and undecided
        held = False                   # the pedal is down and its clip was already asked for
        while True:
            timeout = None
            if down_at is not None:
                timeout = max(0.0, down_at + self.long_press_s - time.monotonic())
            try:
                item = self._events.get(timeout=timeout)
            except queue.Empty:
                # Held long_press_s: the clip starts now, the foot still down.
                down_at, held = None, True
                self._fire(True)
                continue
            if item is _STOP:
                return
            ev: PedalEvent = item
            if ev.pressed:
                if down_at is None and not held:   # a second down without an up: a lost release
                    down_at = ev.at
            elif down_at is not None:
                long = ev.at - down_at >= self.long_press_s
                down_at = None
                self._fire(long)
            else:
                held = False

    def _fire(self, long: bool) -> None:
        what = "clip" if long else "still"
        try:
            result = self.capture(long)
        except Exception:  # noqa: BLE001 - one failing capture must not end the pedal
            log.exception("foot pedal: the %s capture failed", what)
            return
        refused = str(getattr(result, "refused", "") or "")
        if refused:
            if refused != self._last_refusal:
                log.info("foot pedal: %s refused: %s", what, refused)
            self._last_refusal = refused
            return
        self._last_refusal = ""
        if getattr(result, "ok", True):
            log.info("foot pedal: %s taken", what)
        else:
            log.warning("foot pedal: %s: %s", what, "; ".join(getattr(result, "lines", lambda: [])()))
