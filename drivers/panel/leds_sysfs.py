"""Linux LEDs through the LED class in sysfs (Documentation/leds/leds-class.rst, ledtrig-timer).

Each LED is a folder ``<root>/<device LED name>/`` (root = /sys/class/leds on the box): ``brightness``
(0 .. ``max_brightness``), ``trigger`` (reading lists the kernel's triggers with the active one in
brackets: "none [timer] heartbeat"), and, once the "timer" trigger is active, ``delay_on`` /
``delay_off`` in milliseconds.  Steady: trigger "none", then brightness.  Blink: trigger "timer",
then the two delays; from there the kernel blinks the LED by itself, so the gateway writes nothing
and runs no thread while a LED blinks.  A pattern that did not change is not written again (a
rewrite would restart the blink's phase, a visible stutter).

On the box the LEDs come from the device tree (gpio-leds, ``label = "panel:green:power"``); a udev
rule gives the service's group write access to their files.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from drivers.panel.interface import LedPattern, PanelError, as_pattern

DEFAULT_ROOT = Path("/sys/class/leds")


def _triggers(text: str) -> tuple[list[str], str]:
    """("none [timer] heartbeat") -> (every trigger, the active one)."""
    names, active = [], ""
    for word in text.split():
        if word.startswith("[") and word.endswith("]"):
            word = word[1:-1]
            active = word
        names.append(word)
    return names, active


class SysfsLeds:
    """LEDs ``names``: logical name -> sysfs LED name, under ``root`` (a fake tree in tests and in
    hw-sim's panel).  ``start()`` checks every LED; ``set_led`` writes only what changed."""

    def __init__(self, names: Mapping[str, str], root: str | os.PathLike = DEFAULT_ROOT):
        self.map = dict(names)
        self.names = tuple(self.map)
        self.root = Path(root)
        self._shown: dict[str, LedPattern] = {}
        self._max: dict[str, int] = {}

    def _dir(self, name: str) -> Path:
        return self.root / self.map[name]

    def start(self) -> None:
        """Check each LED: its folder, ``max_brightness``, a "timer" trigger offered.  PanelError
        naming the first LED that fails."""
        self._shown.clear()
        for name in self.names:
            folder = self._dir(name)
            if not (folder / "brightness").exists():
                here = sorted(p.name for p in self.root.iterdir()) if self.root.is_dir() else []
                raise PanelError(f"LED {name}: no LED {self.map[name]!r} in {self.root} (there: "
                                 f"{', '.join(here) or 'none'}); set [panel.leds] {name} to one of them")
            try:
                self._max[name] = max(1, int((folder / "max_brightness").read_text().strip() or 1))
                offered, _ = _triggers((folder / "trigger").read_text())
            except (OSError, ValueError) as exc:
                raise PanelError(f"LED {name} ({folder}): unreadable: {exc}") from None
            if "timer" not in offered:
                raise PanelError(f"LED {name} ({folder}): the kernel offers no 'timer' trigger to blink it "
                                 f"(modprobe ledtrig_timer, or CONFIG_LEDS_TRIGGER_TIMER=y)")

    def _write(self, name: str, leaf: str, value: str) -> None:
        path = self._dir(name) / leaf
        try:
            # One write() per value: sysfs takes a value in one call, never in pieces.  O_TRUNC as a
            # shell's `echo 1 > brightness` does: sysfs ignores it, a fake tree needs it.
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        except OSError as exc:
            hint = " (the udev rule in config/ gives the service's group the LED files)" \
                if exc.errno in (errno.EACCES, errno.EPERM) else ""
            raise PanelError(f"LED {name}: cannot write {value!r} to {path}: {exc.strerror}{hint}") from None

    def set_led(self, name: str, pattern: Any) -> None:
        """Show ``pattern`` (interface.as_pattern) on ``name``.  ValueError for a name that is not
        configured or a bad pattern; PanelError when sysfs refuses."""
        if name not in self.map:
            raise ValueError(f"unknown LED {name!r} (LEDs: {', '.join(self.names)})")
        wanted = as_pattern(pattern)
        if self._shown.get(name) == wanted:
            return
        steady = wanted.steady
        if steady is None:
            self._write(name, "trigger", "timer")
            # The timer trigger creates delay_on / delay_off (500 each) as it is set: ours after.
            self._write(name, "delay_on", str(wanted.on_ms))
            self._write(name, "delay_off", str(wanted.off_ms))
        else:
            # "none" drops any trigger (and turns the LED off); brightness after it sticks.
            self._write(name, "trigger", "none")
            self._write(name, "brightness", str(self._max.get(name, 1) if steady else 0))
        self._shown[name] = wanted

    def shown(self) -> dict[str, LedPattern]:
        """What each LED was last set to (a LED never set is absent)."""
        return dict(self._shown)

    def stop(self) -> None:
        """Every LED off (a stopped gateway shows no stale state); failures are ignored here, the
        box is shutting the service down anyway."""
        for name in self.names:
            try:
                self.set_led(name, "off")
            except PanelError:
                pass
