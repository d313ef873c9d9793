"""The front panel's one interface: LEDs with blink patterns, a two-line character display, buttons.

The panel's logic (gateway/panel/) decides *what* to show; a driver only shows it:

- ``set_led(name, pattern)``: ``name`` is a logical LED ("power", "error", ...; the config maps it to
  the device's own LED), ``pattern`` one of "off", "on", "blink-slow", "blink-fast", or any object
  with ``on_ms`` / ``off_ms`` (milliseconds lit / dark, the Linux LED "timer" trigger's delay_on /
  delay_off, Documentation/leds/leds-class.rst).  The *driver* does the blinking: the kernel's timer
  trigger on real LEDs, so no Python thread ever toggles a LED.
- ``show(line1, line2)``: two lines already fitted by the logic to ``columns`` characters (16 or 20)
  of ``charset`` ("hd44780-a00": the HD44780 ROM code A00, ASCII plus katakana; "ascii":
  0x20-0x7E).  A driver pads a short line with spaces; a longer one is cut (never wrapped).
- buttons: edges, not presses.  ``start(on_button)`` calls ``on_button(ButtonEvent)`` from the
  driver's own reader thread for every press and release; the logic tells short from long.

Every failure is a PanelError whose message is one line naming the part (LED, device node, bus).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

COLUMNS = (16, 20)
CHARSETS = ("hd44780-a00", "ascii")
ROWS = 2


class PanelError(Exception):
    """A panel part that cannot be used (missing LED, no permission, no device on the bus); the
    message is one line naming it."""


@dataclass(frozen=True)
class ButtonEvent:
    """One edge of a button: ``name`` the logical button ("export", "ack", ...), ``pressed`` True
    when it went down, False when released; ``at`` CLOCK_MONOTONIC seconds (time.monotonic()) of
    the edge as the kernel stamped it where the source gives a stamp."""

    name: str
    pressed: bool
    at: float


@dataclass(frozen=True)
class LedPattern:
    """Lit ``on_ms``, dark ``off_ms``, repeating.  (1, 0) is steady on, (0, 1) off."""

    on_ms: int
    off_ms: int

    @property
    def steady(self) -> bool | None:
        """True for steady on, False for off, None for a blink."""
        if self.off_ms == 0:
            return True
        if self.on_ms == 0:
            return False
        return None


OFF = LedPattern(0, 1)
ON = LedPattern(1, 0)
BLINK_SLOW = LedPattern(500, 500)   # 1 Hz
BLINK_FAST = LedPattern(125, 125)   # 4 Hz
NAMED = {"off": OFF, "on": ON, "blink-slow": BLINK_SLOW, "blink-fast": BLINK_FAST}
# The kernel's timer trigger takes delays in ms as an unsigned long; 1 min is far past any useful blink.
MAX_DELAY_MS = 60_000


def as_pattern(pattern: Any) -> LedPattern:
    """``pattern`` as a LedPattern: a name of NAMED, a LedPattern, or any object with integer
    ``on_ms`` / ``off_ms`` (the panel logic's Pattern).  ValueError (one line) for anything else,
    for a negative delay, both delays 0, or a delay above MAX_DELAY_MS."""
    if isinstance(pattern, str):
        try:
            return NAMED[pattern]
        except KeyError:
            raise ValueError(f"LED pattern {pattern!r} is not one of {', '.join(NAMED)}") from None
    on, off = getattr(pattern, "on_ms", None), getattr(pattern, "off_ms", None)
    if not (isinstance(on, int) and isinstance(off, int)):
        raise ValueError(f"LED pattern {pattern!r} is neither a name ({', '.join(NAMED)}) nor on_ms/off_ms")
    if on < 0 or off < 0 or on + off == 0 or max(on, off) > MAX_DELAY_MS:
        raise ValueError(f"LED pattern on_ms={on} off_ms={off}: each 0-{MAX_DELAY_MS} ms, not both 0")
    return LedPattern(on, off)


def fit(line: str, columns: int) -> str:
    """``line`` cut or space-padded to exactly ``columns`` characters; a control character (which
    a character display would take as a command) becomes a space."""
    clean = "".join(ch if ch >= " " and ch != "\x7f" else " " for ch in line[:columns])
    return clean.ljust(columns)


class Leds(Protocol):
    """The LEDs: logical name -> the device's LED."""

    names: tuple[str, ...]

    def start(self) -> None:
        """Check every LED is there and writable; PanelError naming the first one that is not."""

    def set_led(self, name: str, pattern: Any) -> None:
        """Show ``pattern`` (as_pattern) on LED ``name``; ValueError for an unknown name or
        pattern, PanelError when the device refuses."""

    def stop(self) -> None:
        """Turn every LED off."""


class Display(Protocol):
    """A two-line character display."""

    columns: int
    charset: str

    def start(self) -> None:
        """Open and initialise the display; PanelError when it is not there."""

    def show(self, line1: str, line2: str) -> None:
        """Show the two lines (fit() to ``columns``); only changed characters are sent."""

    def stop(self) -> None:
        """Blank the display and let go of it."""


class Buttons(Protocol):
    """A source of button edges."""

    names: tuple[str, ...]

    def start(self, on_button: Callable[[ButtonEvent], None]) -> None:
        """Open the device (PanelError when it is not there) and call ``on_button`` from a reader
        thread for every edge of a configured button."""

    def stop(self) -> None:
        """Stop the reader thread and close the device."""


@runtime_checkable
class FrontPanel(Protocol):
    """The whole panel, what the gateway holds: the three parts behind one object."""

    columns: int
    charset: str

    def start(self, on_button: Callable[[ButtonEvent], None]) -> None:
        """Start every part (display and LEDs first, buttons last); PanelError naming the part."""

    def set_led(self, name: str, pattern: Any) -> None:
        """See Leds.set_led."""

    def show(self, line1: str, line2: str) -> None:
        """See Display.show."""

    def stop(self) -> None:
        """Stop every part; a part that fails to stop does not keep the others running."""
