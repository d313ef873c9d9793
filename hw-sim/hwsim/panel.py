"""A simulated front panel, under the real panel drivers (drivers/panel/).

The simulator owns a folder ``<sim_dir>/``:

  leds/<sysfs name>/   a fake /sys/class/leds tree: brightness, max_brightness, trigger, delay_on,
                       delay_off.  The real SysfsLeds writes them; the simulator reads them back into
                       patterns, as a person would read the LEDs on the box.
  buttons.fifo         a FIFO of ``struct input_event`` records: the real EvdevButtons (raw mode)
                       reads and decodes it; the simulator writes key edges into it with evdev's own
                       encoder.  A FIFO, not /dev/uinput: there is no uinput device in a container or
                       on a laptop without root, and the FIFO keeps everything after the device node
                       (evdev's record decoding, the key map, the reader thread) the box's code.
  panel.json           {"columns", "leds", "buttons"}: written at start, read by `hw-sim panel`
  commands/, results/  `hw-sim panel ...` drops one JSON command; the watcher applies it and writes
                       the result ({"ok", "error", "state"}), as hwsim/media.py does for drives.

The display is an HD44780 behind a PCF8574 on a simulated I2C bus (``Hd44780``): the real
Hd44780I2c driver (RPLCD) writes its bytes to it through ``i2c_bus``, and it decodes them the way
the controller does (8-bit power-on mode, the switch to 4-bit, instructions and DDRAM writes), then
shows the DDRAM through the ROM A00 table: so the simulator shows what the glass would show, the
ROM's own glyphs included (katakana, "¥" at 0x5C where ASCII has a backslash, and a blank where
RPLCD found no glyph for a character).

``state()`` is a dict for the web page: LEDs with patterns, the two display lines, the last edges;
the view_* methods make the panel a view of the simulated box's page (gateway/status/views.py):
"press" (short or long), "down" / "up" (a button held from the page).
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from drivers.panel.buttons_evdev import EV_KEY, EvdevButtons
from drivers.panel.devices import display_for
from drivers.panel.front_panel import Panel
from drivers.panel.interface import NAMED, ButtonEvent, LedPattern
from drivers.panel.leds_sysfs import SysfsLeds
from hwsim import control_folder, input_fifo
from hwsim.control_folder import POLL_S, SimError, serve_pending, write_json as _write_json

log = logging.getLogger("hwsim.panel")

KEEP_EDGES = 20
SHORT_PRESS_S = 0.15  # how long a short press holds the button: a finger's tap
PCF8574_RS, PCF8574_RW, PCF8574_E, PCF8574_BL = 0x01, 0x02, 0x04, 0x08
ROW_BASE = (0x00, 0x40)  # HD44780 DDRAM address of each line's first character in 2-line mode
LINE_LEN = 0x28          # 40 DDRAM cells a line




def _rom_a00() -> dict[int, str]:
    """ROM A00 code -> the character it draws (RPLCD's table read backwards; the first character
    listed for a code is its own, later ones are look-alikes that map to it)."""
    from RPLCD.codecs import hd44780_a00  # noqa: PLC0415

    rom: dict[int, str] = {}
    for char, code in hd44780_a00.encoding_table.items():
        rom.setdefault(code, char)
    for first, pairs in hd44780_a00.combined_chars.items():
        for rest, code in pairs:
            rom.setdefault(code, first + rest)
    return rom


class Hd44780:
    """An HD44780 controller behind a PCF8574 at ``address``, as an smbus2-like bus object
    (``write_byte``, ``close``).  A write to another address fails like a bus with nobody there
    (OSError EREMOTEIO: no acknowledge).  ``lines()`` is what the glass shows."""

    def __init__(self, columns: int = 16, address: int = 0x27, on_change: Callable[[], None] | None = None):
        self.columns = columns
        self.address = address
        self.on_change = on_change
        self.rom = _rom_a00()
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Power on: 8-bit interface, display off, DDRAM as after power-on (spaces here)."""
        self.eight_bit = True
        self.pending: int | None = None   # the high nibble, waiting for its low one (4-bit mode)
        self.ddram = [0x20] * 0x80
        self.address_counter = 0
        self.increment = True
        self.display_on = False
        self.two_lines = False
        self.backlight = False
        self.to_cgram = False
        self._last = 0

    # -- the bus ----------------------------------------------------------------------------------
    def __call__(self, bus_number: int) -> "Hd44780":
        """The bus factory the real driver takes (``bus_factory(bus_number)``)."""
        return self

    def write_byte(self, address: int, value: int) -> None:
        """One PCF8574 output state: P7..P4 = D7..D4, P3 backlight, P2 E, P1 RW, P0 RS.  The
        controller latches the data lines on E's falling edge."""
        if address != self.address:
            raise OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))
        with self._lock:
            before = self.lines(), self.backlight
            self.backlight = bool(value & PCF8574_BL)
            if self._last & PCF8574_E and not value & PCF8574_E and not value & PCF8574_RW:
                self._nibble(value >> 4, bool(value & PCF8574_RS))
            self._last = value
            changed = (self.lines(), self.backlight) != before
        if changed and self.on_change is not None:
            self.on_change()

    def write_byte_data(self, address: int, register: int, value: int) -> None:
        """An MCP230xx register write: not this backpack; refused the way a wrong wiring fails."""
        raise OSError(errno.EREMOTEIO, "the simulated backpack is a PCF8574 (no registers)")

    def close(self) -> None:
        """Nothing to release."""

    # -- the controller ---------------------------------------------------------------------------
    def _nibble(self, nibble: int, rs: bool) -> None:
        if self.eight_bit:
            # D3..D0 are not wired on a 4-bit backpack: the controller reads them as 0.
            self._byte(nibble << 4, rs)
            return
        if self.pending is None:
            self.pending = nibble
            return
        byte, self.pending = (self.pending << 4) | nibble, None
        self._byte(byte, rs)

    def _byte(self, value: int, rs: bool) -> None:
        if rs:
            self._data(value)
        else:
            self._instruction(value)

    def _instruction(self, value: int) -> None:
        # HD44780U datasheet, table 6: the highest set bit selects the instruction.
        if value & 0x80:            # set DDRAM address
            self.address_counter, self.to_cgram = value & 0x7F, False
        elif value & 0x40:          # set CGRAM address
            self.to_cgram = True
        elif value & 0x20:          # function set: DL (8-bit), N (2 lines)
            self.eight_bit = bool(value & 0x10)
            self.pending = None
            self.two_lines = bool(value & 0x08)
        elif value & 0x10:          # cursor or display shift: S/C, R/L
            if not value & 0x08:
                self._step(+1 if value & 0x04 else -1)
        elif value & 0x08:          # display on/off control: D
            self.display_on = bool(value & 0x04)
        elif value & 0x04:          # entry mode set: I/D
            self.increment = bool(value & 0x02)
        elif value & 0x02:          # return home
            self.address_counter, self.to_cgram = 0, False
        elif value & 0x01:          # clear display
            self.ddram = [0x20] * 0x80
            self.address_counter, self.increment, self.to_cgram = 0, True, False

    def _data(self, value: int) -> None:
        if self.to_cgram:
            return  # a custom glyph's bitmap: the simulator draws CGRAM codes as '?'
        self.ddram[self.address_counter] = value
        self._step(+1 if self.increment else -1)

    def _step(self, delta: int) -> None:
        # 2-line mode: 0x00-0x27 and 0x40-0x67, the end of one line runs on into the other.
        addr = self.address_counter + delta
        if self.two_lines:
            if addr == LINE_LEN:
                addr = 0x40
            elif addr == 0x40 + LINE_LEN:
                addr = 0
            elif addr == 0x3F:
                addr = LINE_LEN - 1
            elif addr == -1:
                addr = 0x40 + LINE_LEN - 1
        self.address_counter = addr % 0x80

    def lines(self) -> list[str]:
        """The two lines the glass shows (``columns`` characters each, through ROM A00; CGRAM codes
        as '?'); blank while the display is off."""
        if not self.display_on:
            return [" " * self.columns] * 2
        out = []
        for base in ROW_BASE:
            codes = self.ddram[base: base + self.columns]
            out.append("".join("?" if c < 8 else self.rom.get(c, "?") for c in codes))
        return out


def led_pattern(folder: Path) -> LedPattern:
    """What a sysfs LED folder shows: the timer trigger's delays, else steady from brightness."""
    # Real sysfs reads back "none [timer] heartbeat"; this tree holds what the driver last wrote
    # (or the bracketed list it was laid out with).
    words = (folder / "trigger").read_text().split()
    active = next((w[1:-1] for w in words if w.startswith("[") and w.endswith("]")), None)
    if active is None:
        active = words[0] if len(words) == 1 else "none"
    if active == "timer":
        return LedPattern(int((folder / "delay_on").read_text() or 0), int((folder / "delay_off").read_text() or 0))
    return LedPattern(1, 0) if int((folder / "brightness").read_text() or 0) > 0 else LedPattern(0, 1)


def pattern_name(pattern: LedPattern) -> str:
    """"off" / "on" / "blink-slow" / "blink-fast", or "blink <on>/<off> ms" for another blink."""
    for name, named in NAMED.items():
        if named == pattern or (named.steady is not None and named.steady == pattern.steady):
            return name
    return f"blink {pattern.on_ms}/{pattern.off_ms} ms"


class SimulatedPanel:
    """The panel's hardware in ``folder``: a fake LED tree for ``leds`` (logical -> sysfs name), a
    FIFO for ``buttons`` (logical -> key code), an HD44780 of ``columns`` at ``i2c_address``.
    ``long_press_s``: how long ``press(name, long=True)`` holds the button."""

    def __init__(self, folder: str | os.PathLike, leds: Mapping[str, str], buttons: Mapping[str, int],
                 columns: int = 16, i2c_address: int = 0x27, long_press_s: float = 3.0):
        self.folder = Path(folder)
        self.leds = dict(leds)
        self.buttons = dict(buttons)
        self.columns = columns
        self.long_press_s = long_press_s
        self.leds_root = self.folder / "leds"
        self.fifo = self.folder / "buttons.fifo"
        self.display = Hd44780(columns, i2c_address, on_change=self._changed)
        self.edges: collections.deque = collections.deque(maxlen=KEEP_EDGES)
        self._listeners: list[Callable[[dict], None]] = []
        self._writer = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timers: list[threading.Timer] = []
        self._leds_seen: dict[str, Any] = {}

    # -- life -------------------------------------------------------------------------------------
    def prepare(self) -> None:
        """Lay out the fake LED tree (every LED off, the kernel's trigger list) and the FIFO."""
        for device in self.leds.values():
            led = self.leds_root / device
            led.mkdir(parents=True, exist_ok=True)
            for leaf, value in (("brightness", "0"), ("max_brightness", "1"),
                                ("trigger", "[none] timer heartbeat default-on"),
                                ("delay_on", "500"), ("delay_off", "500")):
                (led / leaf).write_text(value)
        input_fifo.make(self.fifo)

    def start(self) -> None:
        """Prepare, open the FIFO's writing end, publish panel.json, watch commands/."""
        self.prepare()
        control_folder.prepare(self.folder)
        self._writer = input_fifo.open_writer(self.fifo)
        _write_json(self.folder / "panel.json", {"columns": self.columns, "leds": self.leds,
                                                 "buttons": self.buttons})
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="hwsim-panel", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching, release held buttons' timers, close the FIFO."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        if self._writer is not None:
            os.close(self._writer.fd)
            self._writer = None

    # -- buttons ----------------------------------------------------------------------------------
    def button(self, name: str, pressed: bool) -> None:
        """Press (``pressed`` True) or release button ``name``: an EV_KEY record and a SYN_REPORT
        into the FIFO, as gpio-keys reports them.  SimError for an unknown button or a stopped panel."""
        if name not in self.buttons:
            raise SimError(f"unknown button {name!r} (buttons: {', '.join(self.buttons)})")
        with self._lock:
            if self._writer is None:
                raise SimError("the simulated panel is not running")
            self._writer.write(EV_KEY, self.buttons[name], 1 if pressed else 0)
            self._writer.syn()
            self.edges.append({"button": name, "pressed": pressed, "at": time.monotonic()})
        self._changed()

    def press(self, name: str, long: bool = False, hold_s: float | None = None) -> None:
        """Press ``name`` and release it ``hold_s`` later (default: SHORT_PRESS_S, or
        ``long_press_s`` when ``long``), from a timer: returns at once."""
        hold = hold_s if hold_s is not None else self.long_press_s if long else SHORT_PRESS_S
        self.button(name, True)
        timer = threading.Timer(hold, self._release, args=(name,))
        timer.daemon = True
        self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _release(self, name: str) -> None:
        try:
            self.button(name, False)
        except SimError:
            pass  # stopped while the button was held: nobody reads it any more

    # -- what is shown ----------------------------------------------------------------------------
    def led_states(self) -> dict[str, dict]:
        """logical LED -> {"device", "pattern" (pattern_name), "on_ms", "off_ms"}; an LED whose
        files are unreadable shows "unknown"."""
        out = {}
        for name, device in self.leds.items():
            try:
                p = led_pattern(self.leds_root / device)
                out[name] = {"device": device, "pattern": pattern_name(p), "on_ms": p.on_ms, "off_ms": p.off_ms}
            except (OSError, ValueError):
                out[name] = {"device": device, "pattern": "unknown", "on_ms": 0, "off_ms": 0}
        return out

    def state(self) -> dict:
        """{"leds": led_states(), "display": {"lines", "columns", "on", "backlight"},
        "buttons": [names], "edges": [{"button", "pressed", "at"}...] (the last KEEP_EDGES)}."""
        d = self.display
        return {"leds": self.led_states(),
                "display": {"lines": d.lines(), "columns": self.columns, "on": d.display_on,
                            "backlight": d.backlight},
                "buttons": list(self.buttons), "edges": list(self.edges)}

    def subscribe(self, listener: Callable[[dict], None]) -> None:
        """``listener(state())`` after every change: display, button edge, LED (LEDs are files the
        driver writes, so they are compared on the watcher's tick, every POLL_S)."""
        self._listeners.append(listener)

    def _changed(self) -> None:
        if not self._listeners:
            return
        state = self.state()
        for listener in list(self._listeners):
            try:
                listener(state)
            except Exception:  # noqa: BLE001 - a page's listener must not break the panel
                log.exception("hw-sim panel: a listener failed")

    # -- the simulated box's page (gateway/status/views.py) ----------------------------------------
    view_name = "panel"
    view_kind = "panel"
    view_action_args = {"press": ("button", "long"), "down": ("button",), "up": ("button",)}

    def view_state(self) -> dict:
        """state(): LEDs, display, buttons, the last edges."""
        return self.state()

    def view_actions(self) -> list[str]:
        """"press" ({"button", "long": bool}), "down" and "up" ({"button"}: held from the page)."""
        return ["press", "down", "up"]

    def view_act(self, action: str, args: Mapping[str, Any] | None = None) -> str:
        """One button action; returns e.g. "pressed ok (long)". ValueError (one line) for another
        action, an unknown button or a panel not running."""
        args = args or {}
        button = str(args.get("button", ""))
        if action not in self.view_actions():
            raise ValueError(f"panel: unknown action {action!r} (one of {', '.join(self.view_actions())})")
        try:
            self.apply({"verb": action, "button": button, "long": bool(args.get("long", False))})
        except SimError as exc:
            raise ValueError(str(exc)) from None
        if action == "press":
            return f"pressed {button}" + (" (long)" if args.get("long") else "")
        return f"{button} {'held' if action == 'down' else 'released'}"

    def view_subscribe(self, listener: Callable[[], None]) -> None:
        """listener() after every change (subscribe's, without the state)."""
        self.subscribe(lambda _state: listener())

    # -- control folder ---------------------------------------------------------------------------
    def apply(self, command: Mapping[str, Any]) -> None:
        """{"verb": "press", "button": B, "long": bool}, {"verb": "down"|"up", "button": B},
        {"verb": "show"}.  SimError when refused."""
        verb = command.get("verb")
        if verb == "press":
            self.press(str(command.get("button", "")), bool(command.get("long", False)))
        elif verb in ("down", "up"):
            self.button(str(command.get("button", "")), verb == "down")
        elif verb != "show":
            raise SimError(f"unknown command {verb!r}")

    def _watch(self) -> None:
        while not self._stop.wait(POLL_S):
            serve_pending(self.folder, self.apply, self.state, (SimError, ValueError, OSError))
            if self._listeners:
                leds = self.led_states()
                if leds != self._leds_seen:
                    self._leds_seen = leds
                    self._changed()


class SimPanel(Panel):
    """The real drivers (SysfsLeds, Hd44780I2c or none, EvdevButtons raw) on a SimulatedPanel;
    ``simulator`` is it.  start() starts the simulator first, stop() stops it last."""

    def __init__(self, simulator: SimulatedPanel, cfg: Any):
        self.simulator = simulator
        super().__init__(SysfsLeds(cfg.leds, simulator.leds_root),
                         display_for(cfg, bus_factory=simulator.display),
                         EvdevButtons(str(simulator.fifo), cfg.buttons, raw=True))

    def start(self, on_button: Callable[[ButtonEvent], None]) -> None:
        """The simulator, then the drivers on it."""
        self.simulator.start()
        try:
            super().start(on_button)
        except Exception:
            self.simulator.stop()
            raise

    def stop(self) -> None:
        """The drivers, then the simulator."""
        super().stop()
        self.simulator.stop()


def sim_panel(cfg: Any, resolve: Callable[[str], Path]) -> SimPanel:
    """Kind ``sim`` (entry point ``panel.sim``): the [panel] table ``cfg`` on a simulated panel in
    ``resolve(cfg.sim_dir)``.  ValueError for display "serlcd" (not simulated)."""
    if cfg.display == "serlcd":
        raise ValueError("the sim panel simulates an hd44780-i2c display (or none), not serlcd")
    sim = SimulatedPanel(resolve(cfg.sim_dir), cfg.leds, cfg.buttons, cfg.columns, cfg.i2c_address,
                         cfg.sim_long_press_s)
    return SimPanel(sim, cfg)


# -- the hw-sim command line's side: drop a command, wait for the simulator's answer ---------------

def send(folder: Path, command: dict, timeout: float = 10.0) -> dict:
    """Drop ``command`` into ``folder``/commands and wait for the result; the panel's state.
    SimError when refused or when nobody picks it up within ``timeout`` seconds."""
    folder = Path(folder)
    if not (folder / "panel.json").exists():
        raise SimError(f"no simulated panel in {folder} (is the service running with [panel] kind = \"sim\" "
                       f"and this sim_dir?)")
    return control_folder.send(folder, command, timeout,
                               f"is the service running with [panel] kind = \"sim\" and sim_dir {folder}?")


def describe(state: dict) -> list[str]:
    """The panel as a few terminal lines: the display in a frame, then the LEDs."""
    cols = state["display"]["columns"]
    lines = ["+" + "-" * cols + "+"] + [f"|{line}|" for line in state["display"]["lines"]] + ["+" + "-" * cols + "+"]
    lines.append("  ".join(f"{name}: {led['pattern']}" for name, led in state["leds"].items()))
    return lines
