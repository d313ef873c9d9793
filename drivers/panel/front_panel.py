"""The front panel as one object: LEDs, a display and buttons, each a driver of its own.

A box mixes parts (sysfs LEDs + gpio-keys buttons + an I2C or a serial display, or no display), so
the panel is a composition, not a class per combination.  Start order: display and LEDs before the
buttons, so that no press arrives at a panel that cannot yet answer it; stop order the reverse.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from drivers.panel.interface import ButtonEvent, Buttons, Display, Leds, PanelError, fit

log = logging.getLogger("drivers.panel")


class NoDisplay:
    """A panel without a display (``display = "none"``): ``show`` keeps the lines and shows nothing."""

    charset = "ascii"

    def __init__(self, columns: int = 16):
        self.columns = columns
        self.lines = ("", "")

    def start(self) -> None:
        """Nothing to open."""

    def show(self, line1: str, line2: str) -> None:
        """Keep the two lines (fitted), for whoever asks what the panel would show."""
        self.lines = (fit(line1, self.columns), fit(line2, self.columns))

    def stop(self) -> None:
        """Nothing to close."""


class Panel:
    """``leds``, ``display`` and ``buttons`` behind the FrontPanel interface (interface.py)."""

    def __init__(self, leds: Leds, display: Display, buttons: Buttons):
        self.leds = leds
        self.display = display
        self.buttons = buttons
        self.columns = display.columns
        self.charset = display.charset

    def start(self, on_button: Callable[[ButtonEvent], None]) -> None:
        """Display, LEDs, then buttons; on a PanelError the parts already started are stopped."""
        started = []
        try:
            for part in (self.display, self.leds):
                part.start()
                started.append(part)
            self.buttons.start(on_button)
        except PanelError:
            for part in reversed(started):
                _stop(part)
            raise

    def set_led(self, name: str, pattern: Any) -> None:
        """See interface.Leds.set_led."""
        self.leds.set_led(name, pattern)

    def show(self, line1: str, line2: str) -> None:
        """See interface.Display.show."""
        self.display.show(line1, line2)

    def stop(self) -> None:
        """Buttons, LEDs, display; each is stopped even when another fails to stop."""
        for part in (self.buttons, self.leds, self.display):
            _stop(part)


def _stop(part: Any) -> None:
    try:
        part.stop()
    except Exception as exc:  # noqa: BLE001 - one part failing must not keep the others running
        log.error("panel: stopping %s failed: %s", type(part).__name__, exc)
