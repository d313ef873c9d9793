"""A simulated foot pedal, under the real pedal driver (drivers/pedal/evdev_pedal.py).

The simulator owns a folder ``<sim_dir>/``:

  pedal.fifo           a FIFO of ``struct input_event`` records: the real EvdevPedal (raw mode, the
                       panel's EvdevButtons decoding) reads it; the simulator writes the pedal's key
                       edges into it with evdev's own encoder, as hwsim/panel.py does for buttons
                       (a FIFO, not /dev/uinput: no uinput without root or in a container)
  pedal.json           {"key_code", "long_press_s"}: written at start, read by `hw-sim pedal`
  commands/, results/  `hw-sim pedal press [--long]` drops one JSON command; the watcher applies
                       it and answers ({"ok", "error", "state"}), as hwsim/control_folder.py says

A short press holds the pedal SHORT_PRESS_S (a foot's tap), a long one ``long_press_s``
([capture.pedal] sim_long_press_s), released by a timer: ``press`` returns at once.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from drivers.panel.buttons_evdev import EV_KEY
from drivers.pedal.evdev_pedal import EvdevPedal
from drivers.pedal.interface import PedalEvent
from hwsim import control_folder, input_fifo
from hwsim.control_folder import POLL_S, SimError, serve_pending, write_json

KEEP_EDGES = 20
SHORT_PRESS_S = 0.15


class SimulatedPedal:
    """A pedal sending key ``key_code`` into ``folder``/pedal.fifo; ``long_press_s``: how long
    ``press(long=True)`` holds it down."""

    def __init__(self, folder: str | os.PathLike, key_code: int, long_press_s: float = 2.0):
        self.folder = Path(folder)
        self.key_code = key_code
        self.long_press_s = long_press_s
        self.fifo = self.folder / "pedal.fifo"
        self.edges: collections.deque = collections.deque(maxlen=KEEP_EDGES)
        self._writer = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timers: list[threading.Timer] = []

    def start(self) -> None:
        """Make the FIFO and open its writing end, publish pedal.json, watch commands/."""
        self.folder.mkdir(parents=True, exist_ok=True)
        input_fifo.make(self.fifo)
        control_folder.prepare(self.folder)
        self._writer = input_fifo.open_writer(self.fifo)
        write_json(self.folder / "pedal.json", {"key_code": self.key_code, "long_press_s": self.long_press_s})
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="hwsim-pedal", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching, cancel a held pedal's release, close the FIFO."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for timer in self._timers:
            timer.cancel()
        for timer in self._timers:
            timer.join(5)
        self._timers.clear()
        with self._lock:
            if self._writer is not None:
                os.close(self._writer.fd)
                self._writer = None

    def key(self, pressed: bool, code: int | None = None) -> None:
        """The pedal down (``pressed``) or up: an EV_KEY record and a SYN_REPORT into the FIFO, as
        a USB HID keyboard reports them.  ``code``: another key (a test's unknown key).  SimError
        when the simulator is not running."""
        with self._lock:
            if self._writer is None:
                raise SimError("the simulated pedal is not running")
            self._writer.write(EV_KEY, self.key_code if code is None else code, 1 if pressed else 0)
            self._writer.syn()
            self.edges.append({"pressed": pressed, "at": time.monotonic()})

    def press(self, long: bool = False, hold_s: float | None = None) -> None:
        """Press the pedal and release it ``hold_s`` later (default SHORT_PRESS_S, or
        ``long_press_s`` when ``long``), from a timer: returns at once."""
        hold = hold_s if hold_s is not None else self.long_press_s if long else SHORT_PRESS_S
        self.key(True)
        timer = threading.Timer(hold, self._release)
        timer.name = "hwsim-pedal-release"
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _release(self) -> None:
        try:
            self.key(False)
        except SimError:
            pass  # stopped while held: nobody reads it any more

    def state(self) -> dict:
        """{"key_code", "long_press_s", "edges": [{"pressed", "at"}...] (the last KEEP_EDGES)}."""
        return {"key_code": self.key_code, "long_press_s": self.long_press_s, "edges": list(self.edges)}

    def apply(self, command: Mapping[str, Any]) -> None:
        """{"verb": "press", "long": bool}, {"verb": "down"|"up"}, {"verb": "show"}; SimError
        when refused."""
        verb = command.get("verb")
        if verb == "press":
            self.press(bool(command.get("long", False)))
        elif verb in ("down", "up"):
            self.key(verb == "down")
        elif verb != "show":
            raise SimError(f"unknown command {verb!r}")

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            serve_pending(self.folder, self.apply, self.state, (SimError, ValueError, OSError))


class SimPedal:
    """The real EvdevPedal (raw) on a SimulatedPedal's FIFO; ``simulator`` is it.  start() starts
    the simulator first, stop() stops it last."""

    def __init__(self, simulator: SimulatedPedal):
        self.simulator = simulator
        self.device = str(simulator.fifo)
        self.driver = EvdevPedal(self.device, simulator.key_code, raw=True)

    def start(self, on_press: Callable[[PedalEvent], None]) -> None:
        """The simulator, then the driver on it."""
        self.simulator.start()
        try:
            self.driver.start(on_press)
        except Exception:
            self.simulator.stop()
            raise

    def stop(self) -> None:
        """The driver, then the simulator."""
        self.driver.stop()
        self.simulator.stop()


def sim_pedal(cfg: Any, resolve: Callable[[str], Path]) -> SimPedal:
    """Kind ``sim`` (entry point ``pedal.sim``): the [capture.pedal] table ``cfg`` on a simulated
    pedal in ``resolve(cfg.sim_dir)`` sending ``cfg.key_code``."""
    return SimPedal(SimulatedPedal(resolve(cfg.sim_dir), cfg.key_code, cfg.sim_long_press_s))


# -- the hw-sim command line's side -----------------------------------------------------------------

def send(folder: Path, command: dict, timeout: float = 10.0) -> dict:
    """Drop ``command`` into ``folder``/commands and wait for the answer; the pedal's state.
    SimError when refused or when nobody picks it up within ``timeout`` seconds."""
    folder = Path(folder)
    if not (folder / "pedal.json").exists():
        raise SimError(f"no simulated pedal in {folder} (is the service running with [capture.pedal] "
                       f"enabled, kind = \"sim\" and this sim_dir?)")
    return control_folder.send(folder, command, timeout,
                               f"is the service running with [capture.pedal] kind = \"sim\" and sim_dir {folder}?")
