"""The front panel running in the service: events and button edges in, LEDs and two lines out, on
one thread of its own (issue 9 items 1-3 wired).

    bus ──(own subscription, FOLDED)───────────────────┐
    driver's reader thread ──(button edges, queued)────┴─▶ runner thread ─▶ Panel ─▶ FrontPanel
                                                                              (set_led / show)

Why one queue for both: the runner waits on a single queue.Queue with a timeout of the logic's next
due time (a long press coming due, a command's answer expiring, the activity LED going dark), so it
sleeps while nothing happens and wakes exactly when something must change. The driver's callback
only puts the edge on the queue: the logic (gateway/panel/panel.py) is touched by this thread alone
and needs no lock.

Why a C-STORE never waits for the panel: the bus hands events over without blocking and drops the
oldest when this queue is full (gateway/events.py); a slow I2C display slows this thread only.

What is pushed: only what changed. An LED's pattern is written when it differs from the last one
the driver took (the kernel's timer trigger blinks it, so a blink costs one write); the two lines
when either differs. A part that fails (PanelError, OSError: an LED label gone, nothing answering at
the I2C address) is one WARNING line, the first time; it becomes the panel's own alarm "PANEL FAULT"
(the error LED and the display show it where they still work), is retried on each change, and the
alarm clears when it works again.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from drivers.panel.interface import ButtonEvent, FrontPanel
from gateway.config.panel import PanelSection
from gateway.events import EventBus
from gateway.panel.buttons import UnknownButton
from gateway.panel.facts import FOLDED
from gateway.panel.leds import ACTIVITY_S
from gateway.panel.panel import CommandsLike, Panel
from gateway.panel.studies import recent_studies

if TYPE_CHECKING:
    from gateway.buffer.index import Index

log = logging.getLogger("gateway.panel")

# The kinds the runner takes from the bus: what the logic folds (config problems among them).
KINDS = FOLDED
# With nothing due, the runner still wakes this often: a failed part is tried again, and a step of
# the wall clock (the logic's clock) cannot leave a due time a day away.
MAX_WAIT_S = 30.0
# Past a due time by this much before acting: the logic compares `>=` on its own clock reading.
_SLACK_S = 0.01
# At most this many queued items are folded before the panel is drawn: a burst of C-STOREs is one
# redraw, not one I2C transfer per image.
_BATCH = 200
_STOP = object()


# How long after an event the panel takes what else arrived before it draws (seconds): the activity
# LED's flicker is 50/150 ms, so a lag this short is not seen.
LINGER_S = 0.05
# The display is redrawn at most this often (seconds); LEDs at once.
DISPLAY_EVERY_S = 0.25

class PanelRunner:
    """The panel's thread. events: the service's EventBus (subscribed at construction, so what
    happens before start() is shown). front: a FrontPanel (drivers/panel/interface.py), not yet
    started. commands: the operator verbs (gateway.commands.Commands). index: the buffer's Index,
    for the studies offered for export (None: none offered). settings: the config's [panel].
    drives: the media drive names. printer: printing is configured. capture(long): a still, or a
    clip when long (None: no grabber). clock: the logic's clock, seconds since the epoch (the events' `at`).

    start() raises what front.start() raises (PanelError naming the part); stop() never raises."""

    def __init__(self, events: EventBus, front: FrontPanel, commands: CommandsLike, index: "Index | None",
                 settings: PanelSection = PanelSection(), *, drives: Sequence[str] = (), printer: bool = False,
                 capture: Callable[[bool], Any] | None = None, clock: Callable[[], float] = time.time,
                 maxsize: int = 1000):
        self.front = front
        self.panel = Panel(commands, drives=drives, printer=printer, settings=settings, clock=clock,
                           studies=(lambda: recent_studies(index)) if index is not None else (lambda: ()),
                           capture=capture)
        self._events = events
        self._sub = events.subscribe(maxsize, kinds=KINDS)
        self._thread: threading.Thread | None = None
        self._shown_leds: dict[str, Any] = {}
        self._shown_lines: tuple[str, str] | None = None
        # When the display was last drawn and when the lines that changed since are due (monotonic).
        self._display_at = 0.0
        self._display_due: float | None = None
        self._faults: dict[str, str] = {}
        # button -> when its long press comes due on the logic's clock (inf once it fired)
        self._held: dict[str, float] = {}
        self._message_due: float | None = None

    # -- life -------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the hardware (display and LEDs, then buttons), then the thread. On a failure the
        subscription is given back and the exception (PanelError, OSError, ValueError) raised."""
        try:
            self.front.start(self._on_button)
        except BaseException:
            self._events.unsubscribe(self._sub)
            raise
        self._thread = threading.Thread(target=self._run, name="panel", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread (within `timeout` seconds), then stop the hardware. A thread stuck in a
        driver call is left (a daemon: it ends with the process) and its hardware not touched from
        here, so the service's stop never hangs on a panel."""
        self._events.unsubscribe(self._sub)
        if self._thread is not None:
            self._sub.offer(_STOP)  # type: ignore[arg-type]
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("panel: its thread is stuck in the driver; stopping without waiting for it")
                return
        try:
            self.front.stop()
        except Exception as exc:  # noqa: BLE001 - the service stops whatever the panel says
            log.warning("panel: stopping the hardware failed: %s", exc)

    def is_alive(self) -> bool:
        """The panel's thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def _on_button(self, edge: ButtonEvent) -> None:
        # The driver's reader thread: queue the edge, never touch the logic from here.
        self._sub.offer(edge)  # type: ignore[arg-type]

    # -- the thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        self._draw()
        while True:
            try:
                item = self._sub.get(timeout=self._wait())
            except queue.Empty:
                item = None
            if item is not None and not isinstance(item, ButtonEvent) and item is not _STOP:
                # Events come in bursts (a study arriving): drawn once per LINGER_S, not per event
                # (gateway/events.py Subscription.take says why); a button is handled at once.
                time.sleep(LINGER_S)
            taken = 0
            while item is not None:
                if item is _STOP:
                    return
                self._take(item)
                taken += 1
                if taken == _BATCH:
                    break
                try:
                    item = self._sub.get_nowait()
                except queue.Empty:
                    item = None
            self._tick()
            self._draw()

    def _take(self, item: Any) -> None:
        # A bad event or a logic error costs that one item, never the panel's thread: the
        # watchdog would restart the whole service for it.
        try:
            if isinstance(item, ButtonEvent):
                self._edge(item)
            else:
                self.panel.apply(item)
        except UnknownButton as exc:
            log.warning("panel: %s", exc)
        except Exception as exc:  # noqa: BLE001 - logged in one line, the panel goes on
            what = f"button {item.name}" if isinstance(item, ButtonEvent) else f"event {item.kind}"
            log.error("panel: %s not handled: %s: %s", what, type(exc).__name__, exc)

    def _edge(self, edge: ButtonEvent) -> None:
        p = self.panel
        # The edge's own time, on the logic's clock: an edge that waited in the queue behind a slow
        # display still measures the press as the operator held it (a 3 s hold stays long).
        at = p.clock() - max(0.0, time.monotonic() - edge.at)
        if edge.pressed:
            p.buttons.down(edge.name, at)
            self._held.setdefault(edge.name, at + p.buttons.long_s)
        else:
            self._held.pop(edge.name, None)
            press = p.buttons.up(edge.name, at)
            if press is not None:
                p.press(press)
                self._answered()

    def _tick(self) -> None:
        p = self.panel
        now = p.clock()
        fired = [b for b, due in self._held.items() if due <= now]
        try:
            p.tick()
        except Exception as exc:  # noqa: BLE001 - as in _take
            log.error("panel: a long press not handled: %s: %s", type(exc).__name__, exc)
        for b in fired:
            self._held[b] = math.inf
        if fired:
            self._answered()
        if self._message_due is not None and self._message_due <= now:
            self._message_due = None

    def _answered(self) -> None:
        # A press may have put an answer on the display; it expires message_s later (a redraw then
        # finds the same lines when there was none: nothing is sent).
        self._message_due = self.panel.clock() + self.panel.settings.message_s

    def _wait(self) -> float:
        p = self.panel
        now = p.clock()
        due = [t for t in self._held.values() if t != math.inf]
        if self._message_due is not None:
            due.append(self._message_due)
        last = p.facts.last_activity
        if last is not None and last + ACTIVITY_S > now:
            due.append(last + ACTIVITY_S)
        if self._faults:
            due.append(now + MAX_WAIT_S)
        wait = MAX_WAIT_S if not due else min(MAX_WAIT_S, max(0.0, min(due) - now + _SLACK_S))
        if self._display_due is not None:  # on the monotonic clock, not the logic's
            wait = min(wait, max(0.0, self._display_due - time.monotonic()))
        return wait

    # -- out --------------------------------------------------------------------------------------
    def _draw(self) -> None:
        # Two passes: a part failing in the first raises the panel's alarm, which the second shows
        # on the parts that still work.
        for _ in range(2):
            faults = len(self._faults)
            try:
                patterns, lines = self.panel.leds(), self.panel.lines()
            except Exception as exc:  # noqa: BLE001 - as in _take
                log.error("panel: cannot compute what to show: %s: %s", type(exc).__name__, exc)
                return
            for name, pattern in patterns.items():
                if self._shown_leds.get(name) != pattern and self._push(f"LED {name}", self.front.set_led,
                                                                        name, pattern):
                    self._shown_leds[name] = pattern
            if lines != self._shown_lines:
                # The glass at most every DISPLAY_EVERY_S: an HD44780 on a 100 kHz I2C bus takes
                # ~20 ms to redraw, and "QUEUE 12" changing per C-STORE is not read that fast.
                now = time.monotonic()
                if self._shown_lines is not None and now < self._display_at + DISPLAY_EVERY_S:
                    self._display_due = self._display_at + DISPLAY_EVERY_S
                elif self._push("display", self.front.show, *lines):
                    self._shown_lines, self._display_at, self._display_due = lines, now, None
            if len(self._faults) == faults:
                return

    def _push(self, part: str, call: Callable[..., Any], *args: Any) -> bool:
        try:
            call(*args)
        except Exception as exc:  # noqa: BLE001 - a panel part never stops the service
            if part not in self._faults:
                log.warning("panel: %s failed: %s; the service runs on, the panel shows what it still can",
                            part, exc)
                self._faults[part] = str(exc)
                self.panel.alarms.raise_(f"panel:{part}", "PANEL FAULT", f"{part}: {exc}", self.panel.clock())
                self.panel.alarm_item = 0
            if part.startswith("LED "):
                self._shown_leds.pop(part[4:], None)
            else:
                self._shown_lines = None
            return False
        if part in self._faults:
            log.info("panel: %s works again", part)
            del self._faults[part]
            self.panel.alarms.clear(f"panel:{part}")
        return True
